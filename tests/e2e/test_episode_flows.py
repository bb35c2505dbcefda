"""A nurse ends a patient's monitoring in the browser (JavaScript off, the way every page must work):
the planned texts are cancelled on the patient page, and the patient's link then shows the calm
"your texts have ended" page with whom to call. Its own patient, so the demo patients other browser
tests use are left alone."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import open_patient_link, sign_in

pytestmark = pytest.mark.browser


def enrol_patient_directly(app_server, first: str, last: str, mobile: str) -> int:
    from recovery.files import templates as templates_repo
    from recovery.clock import utcnow
    from recovery.store.db import begin_write, db
    from recovery.services.enrolment import EnrolmentInput, enrol_patient
    from recovery.store.models import Clinic

    app = app_server._app()
    with app.app_context():
        begin_write(db.session)
        clinic = db.session.scalar(sa.select(Clinic).order_by(Clinic.id).limit(1))
        now = utcnow()
        template = templates_repo.clinic_template(app.config["SCHEDULES_DIR"], clinic.template_file,
                                                  app.config["DEFAULT_TEMPLATE"])
        enrolment = enrol_patient(db.session, clinic=clinic, staff=None, template=template, now=now, data=EnrolmentInput(
            first_name=first, last_name=last, mobile_e164=mobile, timezone=clinic.timezone,
            procedure_type="kyphoplasty", procedure_end=now - timedelta(days=3), discharge_at=now - timedelta(days=3),
            sms_consent=True))
        db.session.commit()
        patient_id = enrolment.patient_id
        db.session.remove()
    return patient_id


def test_nurse_ends_monitoring_without_javascript_and_the_patient_link_says_so(open_context, app_server):
    patient_id = enrol_patient_directly(app_server, "Eve", "Ending", "+12025550177")
    link = app_server.issue_link("Eve Ending")
    nurse = open_context("desktop", javascript=False)
    sign_in(nurse, app_server.login("nurse"))
    nurse.goto(f"/nurse/patients/{patient_id}")
    page = nurse.page
    assert "active" in page.locator("#episode").inner_text()
    with page.expect_navigation():
        page.get_by_role("link", name="End monitoring…").click()
    # Submitting without a reason re-shows the form with the error.
    with page.expect_navigation():
        page.get_by_role("button", name="End monitoring").click()
    assert "Choose why monitoring ends." in page.locator(".error-summary").inner_text()
    assert [p for p in nurse.problems if "422" not in p] == []  # the browser logs the 422 it was meant to get
    nurse.problems.clear()
    page.get_by_label("Readmitted to hospital").check()
    page.get_by_role("textbox", name="Note").fill("Admitted to the ward on day 3.")
    with page.expect_navigation():
        page.get_by_role("button", name="End monitoring").click()
    assert page.url.endswith(f"/nurse/patients/{patient_id}")
    assert "No more texts will be sent." in page.locator(".flashes").inner_text()
    assert "Readmitted to hospital" in page.locator("#episode").inner_text()
    texts = page.locator("#texts").locator("xpath=following::table[1]").inner_text()
    assert "enrolment ended" in texts and "planned" not in texts.replace("Planned for", "")
    nurse.assert_clean()

    patient = open_context("phone")
    open_patient_link(patient, link)
    assert patient.page.url.endswith("/me")
    body = patient.page.locator("main").inner_text()
    assert "Your recovery texts from" in body and "have ended" in body
    assert patient.page.get_by_role("link", name="Call your care team: (202) 555-0100").count() == 1
    assert patient.page.get_by_role("link", name="Emergency: call 911").count() == 1
    patient.assert_clean()
    axe_ctx = open_context("phone", axe=True, storage_state=patient.context.storage_state())
    axe_ctx.goto("/me")
    assert_accessible(axe_ctx.page, "monitoring ended page")

"""An admin changes the clinic's plan in the browser (JavaScript off): TL03's end, a preview
timeline with the reworded text, then publish. A clinic of its own, so that the demo clinic's
plan, which other browser tests enrol on, stays as shipped."""
from __future__ import annotations

import pytest

from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import sign_in
from tests.e2e.server import DemoLogin

pytestmark = pytest.mark.browser

PASSWORD = "plan admin passphrase 42"


def make_clinic_admin(app_server) -> DemoLogin:
    from recovery.clock import utcnow
    from recovery.services.passwords import hash_password
    from recovery.store.db import begin_write, db
    from recovery.store.models import Clinic, StaffRole, StaffUser

    with app_server._app().app_context():
        begin_write(db.session)
        now = utcnow()
        clinic = Clinic(slug="e2e-plan", name="Plan Test Clinic", timezone="America/New_York",
                        template_file="demo-clinic", emergency_number="911", care_phone="(202) 555-0100",
                        created_at=now)
        db.session.add(clinic)
        db.session.flush()
        db.session.add(StaffUser(clinic_id=clinic.id, email="plan-admin@example.org", name="Pat Planner",
                                 role=StaffRole.ADMIN, password_hash=hash_password(PASSWORD), active=True,
                                 created_at=now))
        db.session.commit()
        db.session.remove()
    return DemoLogin(role="admin", email="plan-admin@example.org", password=PASSWORD)


def test_admin_changes_tl03_previews_and_publishes(open_context, app_server):
    admin = open_context("desktop", javascript=False)
    sign_in(admin, make_clinic_admin(app_server))
    admin.goto("/admin")
    page = admin.page
    with page.expect_navigation():
        page.get_by_role("link", name="The clinic's plan").click()
    assert "version 2+2" in page.locator(".lead").inner_text()
    end = page.get_by_label("TL03 No driving or public transport: ends")
    assert end.input_value() == "T0+48h"
    end.fill("T0+72h")
    with page.expect_navigation():
        page.get_by_role("button", name="Preview").click()
    changes = page.locator("#draft-changes").inner_text()
    assert "TL03 No driving or public transport: ends T0+72h instead of T0+48h" in changes
    assert "S01 text changed" in changes
    texts = page.locator("#preview-texts").inner_text()
    assert "Do not drive or use buses or trains for 3 days." in texts
    assert page.get_by_label("TL03 No driving or public transport: ends").input_value() == "T0+72h"
    with page.expect_navigation():
        page.get_by_role("button", name="Publish version 3").click()
    assert "Version 3 is published" in page.locator(".flashes").inner_text()
    assert "version 2+3" in page.locator(".lead").inner_text()
    versions = page.locator("#versions").inner_text()
    assert "unapproved" in versions and "S01 text changed" in versions
    admin.assert_clean()
    axe_ctx = open_context("desktop", axe=True, storage_state=admin.context.storage_state())
    axe_ctx.goto("/admin/plan")
    assert_accessible(axe_ctx.page, "the clinic's plan")

"""The clinic's plan at /admin/plan (issue 13 §1): publish a new immutable version; patients
enrolled before keep their plan and texts, patients enrolled after get the new one; the form's
errors are the clinic file loader's, named per field; export and import; other clinics and nurses
see nothing of it."""
from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from recovery.dispatch.sender import send_due
from recovery.dispatch.settings import DispatchSettings
from recovery.store.enrolments import current_enrolment
from recovery.store.models import AuditEvent, ClinicPlanVersion, OutboundMessage, StaffRole
from tests.support.factories import enrol, login, make_clinic, make_staff

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)


def _form(page: bytes) -> dict:
    """Every field of the plan form as the page shows it (what a browser would send back)."""
    html = page.decode()
    form = html[html.index('id="plan-form"'):]
    form = form[:form.index("</form>")]
    data = {m.group(1): m.group(2) for m in re.finditer(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form)}
    for m in re.finditer(r'<textarea[^>]*name="([^"]+)"[^>]*>\s*(.*?)</textarea>', form, re.S):
        data[m.group(1)] = m.group(2)
    for m in re.finditer(r'<select[^>]*name="([^"]+)".*?<option selected value="([^"]*)"', form, re.S):
        data[m.group(1)] = m.group(2)
    import html as h
    return {k: h.unescape(v) for k, v in data.items() if k != "csrf_token"}


def _texts(session, patient, message_id):
    return session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.patient_id == patient.id, OutboundMessage.message_id == message_id,
        OutboundMessage.recipient == "patient").order_by(OutboundMessage.due_at)).all()


def test_publishing_makes_the_next_version_for_new_enrolments_only(app, session, client, frozen, sms):
    clinic = make_clinic(session, template_file="demo-clinic")
    admin = make_staff(session, clinic, role=StaffRole.ADMIN)
    before = enrol(session, clinic, procedure_end=NOW - timedelta(hours=3), now=NOW, first="Early")
    session.commit()
    login(client, admin)
    page = client.get("/admin/plan")
    assert page.status_code == 200
    assert b"kyphoplasty+demo-clinic version 2+2" in page.data
    data = _form(page.data)
    assert data["TL03_end"] == "T0+48h" and data["replaces"] == "2"

    data |= {"TL03_end": "T0+72h", "TL16_at": "date T0+49d", "action": "preview"}
    preview = client.post("/admin/plan", data=data)
    assert preview.status_code == 200, preview.data
    changes = preview.data.decode()
    assert "TL03 No driving or public transport: ends T0+72h instead of T0+48h" in changes
    assert "S01 text changed" in changes and "TL16 Follow-up visit: at date T0+49d instead of date T0+42d" in changes
    assert 'id="preview-texts"' in changes and "for 3 days" in changes
    assert session.scalar(sa.select(sa.func.count()).select_from(ClinicPlanVersion)) == 0  # a preview saves nothing

    published = client.post("/admin/plan", data=data | {"action": "publish"})
    assert published.status_code == 303
    row = session.scalar(sa.select(ClinicPlanVersion))
    assert (row.version, row.approval.value, row.published_by_id) == (3, "unapproved", admin.id)
    event = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "clinic_plan_published"))
    assert event.actor_id == admin.id and event.detail["version"] == 3 and "S01 text changed" in event.detail["changes"]
    page = client.get("/admin/plan").data.decode()
    assert "kyphoplasty+demo-clinic version 2+3" in page and "unapproved" in page

    after = enrol(session, clinic, procedure_end=NOW - timedelta(hours=3), now=NOW, first="Late")
    session.commit()
    old, new = current_enrolment(before), current_enrolment(after)
    assert (old.template_version, old.plan_version_id) == ("2+2", None)
    assert (new.template_version, new.plan_version_id) == ("2+3", row.id)
    assert "48 hours" in _texts(session, before, "S01")[0].text_template
    assert "3 days" in _texts(session, after, "S01")[0].text_template
    # S16 goes 7 days before the follow-up visit: day 35 on the old plan, day 42 on the new one
    old_s16, new_s16 = _texts(session, before, "S16")[0].due_at, _texts(session, after, "S16")[0].due_at
    assert new_s16 - old_s16 == timedelta(days=7)
    # and the send pipeline sends each their own (its quiet hours come from the same plan)
    report = send_due(session, sms, DispatchSettings.from_config(app.config, max_per_second=0, send_concurrency=1),
                      clock=lambda: NOW)
    assert report.sent >= 4
    s01 = {p.first_name: [t.body for t in sms.sent_to(p.mobile_e164) if "welcome home" in t.body]
           for p in (before, after)}
    assert "for 48 hours" in s01["Early"][0] and "for 3 days" in s01["Late"][0]
    # each patient's page shows their own plan
    nurse = make_staff(session, clinic)
    session.commit()
    other = app.test_client()
    login(other, nurse)
    assert "for 48 hours" in other.get(f"/nurse/patients/{before.id}").data.decode()
    assert "for 3 days" in other.get(f"/nurse/patients/{after.id}").data.decode()
    # a published version never changes (database triggers), whoever tries
    for change in (sa.update(ClinicPlanVersion).values(content="x"), sa.delete(ClinicPlanVersion)):
        with pytest.raises(sa.exc.DatabaseError):
            with session.begin_nested():
                session.execute(change)
    session.rollback()
    # a form shown before the publish cannot publish over it
    stale = client.post("/admin/plan", data=data | {"TL03_end": "T0+96h", "action": "publish"})
    assert stale.status_code == 422 and b"was published after this page was shown" in stale.data


def test_bad_values_are_named_per_field_keep_what_was_typed_and_save_nothing(app, session, client, frozen):
    clinic = make_clinic(session)  # on the template as it is: no clinic file
    admin = make_staff(session, clinic, role=StaffRole.ADMIN)
    session.commit()
    login(client, admin)
    data = _form(client.get("/admin/plan").data)
    assert data["replaces"] == "0"
    bad = data | {"TL03_end": "T0+banana", "S02_text": "{first}, call {emerg} now if your legs feel numb ☺",
                  "S02_text_es": data["S02_text_es"] + " Gracias.", "action": "publish"}
    page = client.post("/admin/plan", data=bad)
    assert page.status_code == 422
    html = page.data.decode()
    assert 'value="T0+banana"' in html and "☺" in html
    assert re.search(r'id="TL03_end-error">[^<]*&#39;end&#39;', html)
    assert session.scalar(sa.select(sa.func.count()).select_from(ClinicPlanVersion)) == 0
    # one problem at a time, as the loader reports it: with the offset right, the text is named
    page = client.post("/admin/plan", data=bad | {"TL03_end": "T0+48h"})
    assert page.status_code == 422
    assert re.search(r'id="S02_text-error">[^<]*GSM', page.data.decode())
    # a timing a text repeats cannot change without the text: TL05 has no 'lasts' to reword it with
    page = client.post("/admin/plan", data=data | {"TL05_end": "T0+30d", "action": "preview"})
    assert page.status_code == 422 and b"repeats that timing" in page.data
    assert client.post("/admin/plan", data=data | {"action": "publish"}).status_code == 422  # nothing changed
    assert session.scalar(sa.select(sa.func.count()).select_from(ClinicPlanVersion)) == 0


def test_export_then_import_round_trip_and_a_bad_file_names_its_line(app, session, client, frozen):
    clinic = make_clinic(session, template_file="example-strict-driving")
    admin = make_staff(session, clinic, role=StaffRole.ADMIN)
    session.commit()
    login(client, admin)
    data = _form(client.get("/admin/plan").data)
    # a text changed in English only is refused: every language says the same (the Spanish field)
    only_english = client.post("/admin/plan", data=data | {"S04_text": data["S04_text"] + " Thank you.",
                                                            "action": "publish"})
    assert only_english.status_code == 422 and b"every language" in only_english.data
    assert client.post("/admin/plan", data=data | {"S04_text": data["S04_text"] + " Thank you.",
                                                   "S04_text_es": data["S04_text_es"] + " Gracias.",
                                                   "action": "publish"}).status_code == 303
    exported = client.get("/admin/plan/export?version=3")
    assert exported.status_code == 200
    assert 'filename="example-strict-driving_v3.toml"' in exported.headers["Content-Disposition"]
    assert b"2-week driving rule" in exported.data and b"Thank you." in exported.data  # comments kept
    shipped = client.get("/admin/plan/export?version=2")
    assert shipped.status_code == 200 and b"version = 2" in shipped.data

    back = client.post("/admin/plan/import", data={"plan_file": (io.BytesIO(shipped.data), "mine.toml")},
                       content_type="multipart/form-data")
    assert back.status_code == 303
    rows = session.scalars(sa.select(ClinicPlanVersion).order_by(ClinicPlanVersion.version)).all()
    assert [r.version for r in rows] == [3, 4]
    assert rows[1].changes == ["S04 text changed"] and b"version = 4" in client.get("/admin/plan/export?version=4").data

    broken = shipped.data.replace(b'end = "T0+14d"', b'end = "T0+14 days"')
    page = client.post("/admin/plan/import", data={"plan_file": (io.BytesIO(broken), "broken.toml")},
                       content_type="multipart/form-data")
    assert page.status_code == 422
    line = shipped.data.decode().splitlines().index('end = "T0+14d"') + 1
    assert f"broken.toml:{line}: milestone TL03" in page.data.decode()
    other = client.post("/admin/plan/import", data={"plan_file": (io.BytesIO(shipped.data.replace(
        b'clinic = "example-strict-driving"', b'clinic = "demo-clinic"')), "x.toml")}, content_type="multipart/form-data")
    assert other.status_code == 422 and b"another clinic" in other.data
    assert session.scalar(sa.select(sa.func.count()).select_from(ClinicPlanVersion)) == 2


def test_another_clinics_admin_neither_sees_nor_changes_the_plan(app, session, client, frozen):
    clinic_a, clinic_b = make_clinic(session, template_file="demo-clinic"), make_clinic(session, template_file="demo-clinic")
    admin_a, admin_b = make_staff(session, clinic_a, role=StaffRole.ADMIN), make_staff(session, clinic_b, role=StaffRole.ADMIN)
    nurse_a = make_staff(session, clinic_a)
    session.commit()
    login(client, admin_a)
    data = _form(client.get("/admin/plan").data)
    assert client.post("/admin/plan", data=data | {"TL03_end": "T0+72h", "action": "publish"}).status_code == 303
    b = app.test_client()
    login(b, admin_b)
    page = b.get("/admin/plan").data
    assert b"version 2+2" in page and _form(page)["TL03_end"] == "T0+48h"
    assert b.get("/admin/plan/export?version=3").status_code == 404
    patient_b = enrol(session, clinic_b, procedure_end=NOW - timedelta(hours=3), now=NOW)
    assert current_enrolment(patient_b).template_version == "2+2"
    n = app.test_client()
    login(n, nurse_a)
    assert n.get("/admin/plan").status_code == 403
    assert n.get("/admin/plan/export?version=3").status_code == 403
    assert n.post("/admin/plan", data=data | {"action": "publish"}).status_code == 403

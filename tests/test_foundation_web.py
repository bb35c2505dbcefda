"""The nurse and patient sides of the foundation: sign-in, enrolment, timeline, links, Today, .ics."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from icalendar import Calendar

from recovery.models import AccessLink, AuditEvent, Enrolment, OutboundMessage, Patient
from tests.factories import enrol, login, make_clinic, make_staff, open_link, patient_link

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)  # Mon 9 Mar 2026, 11:00 in New York


def _clinic_and_nurse(session):
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    session.commit()
    return clinic, nurse


def enrolment_form(**over):
    data = {"first_name": "Maria", "last_name": "Lopez", "mobile": "(202) 555-0143",
            "timezone": "America/New_York", "language": "en", "sms_consent": "y",
            "procedure_type": "kyphoplasty", "procedure_end": "2026-03-07T10:30",
            "discharge_at": "2026-03-07T13:00", "baseline_back_pain": "7"}
    data.update(over)
    return data


def test_login_page_and_wrong_password(client, session, frozen):
    _, nurse = _clinic_and_nurse(session)
    assert client.get("/login").status_code == 200
    r = client.post("/login", data={"email": nurse.email, "password": "wrong password!"})
    assert r.status_code == 422
    assert b"do not match an active account" in r.data
    assert client.get("/nurse/patients").status_code == 302


def test_nurse_enrols_a_patient_and_sees_the_timeline(client, session, frozen):
    frozen.move_to(NOW)
    _, nurse = _clinic_and_nurse(session)
    assert login(client, nurse).status_code == 303
    r = client.post("/nurse/patients/new", data=enrolment_form())
    assert r.status_code == 303, r.data
    patient = session.scalar(sa.select(Patient).where(Patient.last_name == "Lopez"))
    assert patient.mobile_e164 == "+12025550143"
    enrolment = session.scalar(sa.select(Enrolment).where(Enrolment.patient_id == patient.id))
    # 10:30 EST on 7 March is 15:30 UTC
    assert enrolment.procedure_end == datetime(2026, 3, 7, 15, 30, tzinfo=timezone.utc)
    assert (enrolment.template_id, enrolment.template_version) == ("kyphoplasty", "2")
    rows = session.scalars(sa.select(OutboundMessage).where(OutboundMessage.patient_id == patient.id)).all()
    assert rows and all(r.send_after >= NOW - timedelta(hours=2) for r in rows)
    # the first text is the opt-in confirmation (CTIA), planned at once
    (optin,) = [r for r in rows if r.message_id == "S00"]
    assert optin.send_after == NOW and optin.urgent and optin.recipient == "patient"
    page = client.get(f"/nurse/patients/{patient.id}")
    assert page.status_code == 200
    for mid in ("TL03", "TL14", "TL16"):
        assert mid.encode() in page.data
    # The seed rule: no driving for 48 h after the 10:30 procedure, across the DST change of 8 March.
    assert b"Mon 9 Mar, 11:30" in page.data
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.patient_id == patient.id)).all()
    assert "patient_enrolled" in actions and "record_viewed" in actions


def test_enrolment_errors_rerender_with_everything_kept(client, session, frozen):
    frozen.move_to(NOW)
    _, nurse = _clinic_and_nurse(session)
    login(client, nurse)
    r = client.post("/nurse/patients/new", data=enrolment_form(mobile="12", baseline_back_pain="11",
                                                                procedure_end=""))
    assert r.status_code == 422
    assert b"not a valid phone number" in r.data or b"Enter a phone number" in r.data
    assert b"Enter a number from 0 to 10" in r.data
    assert b"Enter when the procedure ended" in r.data
    assert b'value="Maria"' in r.data and b'value="Lopez"' in r.data
    assert session.scalar(sa.select(sa.func.count()).select_from(Patient)) == 0


def test_enrolment_rejects_a_future_procedure_and_a_landline(client, session, frozen):
    frozen.move_to(NOW)
    _, nurse = _clinic_and_nurse(session)
    login(client, nurse)
    r = client.post("/nurse/patients/new", data=enrolment_form(procedure_end="2026-03-12T10:30",
                                                                discharge_at=""))
    assert r.status_code == 422 and b"in the future" in r.data


def test_patient_link_get_does_not_consume_post_does_once(client, session, frozen):
    frozen.move_to(NOW)
    clinic, _ = _clinic_and_nurse(session)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=20), now=NOW)
    token = patient_link(session, patient, now=NOW)
    session.commit()
    for _ in range(2):  # link previews fetch it; nothing happens
        r = client.get(f"/l/{token}")
        assert r.status_code == 200 and b"Open my recovery plan" in r.data
        assert r.headers["Referrer-Policy"] == "no-referrer"
    assert session.scalar(sa.select(AccessLink.used_at)) is None
    r = open_link(client, token)
    assert r.status_code == 303 and r.headers["Location"].endswith("/me")
    today = client.get("/me")
    assert today.status_code == 200
    assert b"Hello Maria" in today.data and b"No driving" in today.data and b"left" in today.data
    other = client.application.test_client()
    assert open_link(other, token).status_code == 410
    assert other.get("/me").status_code == 302
    stored = session.scalar(sa.select(AccessLink.token_hash))
    assert token not in stored and len(stored) == 64


def test_expired_and_unknown_links(client, session, frozen):
    frozen.move_to(NOW)
    clinic, _ = _clinic_and_nurse(session)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=20), now=NOW)
    token = patient_link(session, patient, now=NOW, ttl=timedelta(hours=1))
    session.commit()
    frozen.move_to(NOW + timedelta(hours=2))
    assert client.get(f"/l/{token}").status_code == 410
    assert open_link(client, token).status_code == 410
    assert client.get("/l/not-a-token").status_code == 404


def test_calendar_download_parses(client, session, frozen):
    frozen.move_to(NOW)
    clinic, _ = _clinic_and_nurse(session)
    patient = enrol(session, clinic, procedure_end=datetime(2026, 3, 7, 15, 30, tzinfo=timezone.utc), now=NOW)
    token = patient_link(session, patient, now=NOW)
    session.commit()
    open_link(client, token)
    r = client.get("/me/calendar.ics")
    assert r.status_code == 200 and r.mimetype == "text/calendar"
    cal = Calendar.from_ical(r.data)
    summaries = {str(e["SUMMARY"]): e for e in cal.walk("VEVENT")}
    assert "Follow-up visit" in summaries
    assert summaries["Follow-up visit"].decoded("DTSTART").isoformat().startswith("2026-04-18")
    assert any(s.startswith("No driving") for s in summaries)


def test_security_headers_on_pages(client, session):
    r = client.get("/login")
    csp = r.headers["Content-Security-Policy"]
    assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age=31536000" in r.headers["Strict-Transport-Security"]


def test_nurse_overrides_driving_and_follow_up_at_enrolment(client, session, frozen):
    frozen.move_to(NOW)
    _, nurse = _clinic_and_nurse(session)
    login(client, nurse)
    r = client.post("/nurse/patients/new", data=enrolment_form(no_driving_days="14", followup_day="14",
                                                                brace="y"))
    assert r.status_code == 303, r.data
    patient = session.scalar(sa.select(Patient).where(Patient.last_name == "Lopez"))
    enrolment = session.scalar(sa.select(Enrolment).where(Enrolment.patient_id == patient.id))
    assert enrolment.overrides["milestones"] == {"TL03": {"end": "T0+336h"}, "TL16": "date T0+14d"}
    assert enrolment.brace
    page = client.get(f"/nurse/patients/{patient.id}").data
    assert b"Sat 21 Mar, 11:30" in page  # 14 x 24 h after 10:30 EST, now in EDT
    texts = session.scalars(sa.select(OutboundMessage.message_id).where(OutboundMessage.patient_id == patient.id)).all()
    assert "S15" in texts  # brace reminders on


def test_static_files_are_compressed_and_cached_by_content_hash(client):
    page = client.get("/login").data.decode()
    import re
    css = re.search(r'href="(/static/app\.css\?v=[0-9a-f]{12})"', page).group(1)
    js = re.search(r'src="(/static/vendor/htmx-2\.0\.10\.min\.js\?v=[0-9a-f]{12})"', page).group(1)
    for url, full in ((css, 10_000), (js, 50_000)):
        r = client.get(url, headers={"Accept-Encoding": "gzip, br"})
        assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
        assert len(r.data) < full / 2
        assert "max-age=31536000" in r.headers["Cache-Control"]
        again = client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": r.headers["ETag"]})
        assert again.status_code == 304
    assert client.get("/static/../app.py").status_code == 404

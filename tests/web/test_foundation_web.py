"""The nurse and patient sides of the foundation: sign-in, enrolment, timeline, links, Today, .ics."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from icalendar import Calendar

from recovery.store.models import AccessLink, AuditEvent, Enrolment, OutboundMessage, Patient
from tests.support.factories import enrol, login, make_clinic, make_staff, open_link, patient_link

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
    for url in (css, js):
        full = len(client.get(url, headers={"Accept-Encoding": "identity"}).data)
        r = client.get(url, headers={"Accept-Encoding": "gzip, br"})
        assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
        assert len(r.data) < full / 2
        assert "max-age=31536000" in r.headers["Cache-Control"]
        again = client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": r.headers["ETag"]})
        assert again.status_code == 304
    assert client.get("/static/../app.py").status_code == 404


# ---------------------------------------------------------------------------------------------
# Issue 10 item 3: safety texts through the real enrolment form and the real sender
# ---------------------------------------------------------------------------------------------

from zoneinfo import ZoneInfo  # noqa: E402

from recovery.dispatch.settings import DispatchSettings  # noqa: E402
from recovery.scheduler.tick import tick  # noqa: E402
from recovery.store.models import OutboxStatus  # noqa: E402

NY = ZoneInfo("America/New_York")


def _ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY)


def _rows(session, patient) -> dict[str, OutboundMessage]:
    return {r.occurrence_key: r for r in session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.patient_id == patient.id, OutboundMessage.recipient == "patient")
        .execution_options(populate_existing=True))}


def _enrol_by_form(client, session, **form) -> Patient:
    r = client.post("/nurse/patients/new", data=enrolment_form(**form))
    assert r.status_code == 303, r.data
    return session.scalar(sa.select(Patient).where(Patient.last_name == "Lopez"))


def test_enrolled_at_1350_after_a_0900_procedure_the_patient_gets_s01_at_once(app, client, session, frozen, sms):
    frozen.move_to(_ny("2026-06-10T13:50"))
    _, nurse = _clinic_and_nurse(session)
    login(client, nurse)
    patient = _enrol_by_form(client, session, procedure_end="2026-06-10T09:00", discharge_at="2026-06-10T11:00")
    rows = _rows(session, patient)
    assert rows["S01:TD"].safety and rows["S01:TD"].send_after == _ny("2026-06-10T13:50")
    assert rows["S02:TD+1h"].safety and rows["S02:TD+1h"].send_after == _ny("2026-06-10T13:50")
    assert not rows["S05:TD+2h"].safety
    tick(session, sms, _ny("2026-06-10T13:50"), DispatchSettings.from_config(app.config, max_per_second=0))
    bodies = [s.body for s in sms.sent]
    assert any("have an adult stay with you tonight" in b for b in bodies)
    assert any("if you get chest pain" in b for b in bodies)
    assert _rows(session, patient)["S01:TD"].status == OutboxStatus.SENT
    page = client.get(f"/nurse/patients/{patient.id}").data
    assert b"the patient did not get" not in page  # nothing to tell the nurse


def test_evening_discharge_sends_s01_and_s02_that_evening(app, client, session, frozen, sms):
    frozen.move_to(_ny("2026-06-10T21:30"))
    _, nurse = _clinic_and_nurse(session)
    login(client, nurse)
    patient = _enrol_by_form(client, session, procedure_end="2026-06-10T19:30", discharge_at="2026-06-10T21:30")
    rows = _rows(session, patient)
    assert rows["S01:TD"].send_after == _ny("2026-06-10T21:30")
    assert rows["S02:TD+1h"].send_after == _ny("2026-06-10T22:30")
    assert rows["S05:TD+2h"].send_after == _ny("2026-06-11T11:00")  # routine: the morning, 2 h after S02
    assert "S04:TD+1h" not in rows  # over the day's 3 routine texts: left to the Today page
    settings = DispatchSettings.from_config(app.config, max_per_second=0)
    for at in ("2026-06-10T21:30", "2026-06-10T22:30", "2026-06-10T22:59"):
        tick(session, sms, _ny(at), settings)
    sent = [s.body for s in sms.sent]
    # the opt-in confirmation first (an answer to the consent just given), then S01 in the same tick
    assert len(sent) == 3 and "you are signed up for recovery texts" in sent[0]
    assert "tonight" in sent[1] and "chest pain" in sent[2]
    assert _rows(session, patient)["S01:TD"].sent_at == _ny("2026-06-10T21:30")
    assert _rows(session, patient)["S02:TD+1h"].sent_at == _ny("2026-06-10T22:30")


def test_the_nurse_page_says_which_safety_text_did_not_go_and_why(app, client, session, frozen, sms):
    frozen.move_to(_ny("2026-06-11T17:00"))  # enrolled 30 h after a discharge at 11:00 the day before
    _, nurse = _clinic_and_nurse(session)
    login(client, nurse)
    late = _enrol_by_form(client, session, procedure_end="2026-06-10T09:00", discharge_at="2026-06-10T11:00")
    assert "S01:TD" not in _rows(session, late)
    page = client.get(f"/nurse/patients/{late.id}").data.decode()
    box = page.split('id="safety-texts"')[1].split("</section>")[0]
    assert "Safety texts the patient did not get" in page and "Tell the patient yourself" in box
    assert "S01" in box and "have an adult stay with you tonight" in box and "S02" in box
    assert "enrolled 30 hours after discharge" in box and "only up to 24 hours after discharge" in box
    # a patient who replied STOP before the evening text went: S02 is suppressed at send time
    frozen.move_to(_ny("2026-06-12T21:30"))
    login(client, nurse)
    session.execute(sa.delete(OutboundMessage))
    session.execute(sa.update(Patient).where(Patient.id == late.id).values(last_name="Old"))
    session.commit()
    patient = _enrol_by_form(client, session, procedure_end="2026-06-12T19:30", discharge_at="2026-06-12T21:30",
                             mobile="(202) 555-0144")  # another patient: not the first one's (active) mobile
    settings = DispatchSettings.from_config(app.config, max_per_second=0)
    tick(session, sms, _ny("2026-06-12T21:30"), settings)
    session.execute(sa.update(Patient).where(Patient.id == patient.id).values(sms_opted_out=True))
    session.commit()
    tick(session, sms, _ny("2026-06-12T22:30"), settings)
    page = client.get(f"/nurse/patients/{patient.id}").data.decode()
    box = page.split('id="safety-texts"')[1].split("</section>")[0]
    assert "S02" in box and "Not sent: the patient asked us to stop texting (STOP, or in their own words)." in box
    assert "S01" not in box  # it went at 21:30
    # the same page counts the SMS segments of what went (S00 and S01 at 21:30, one each)
    texts_table = page.split('id="safety-texts"')[1].split("</section>", 1)[1]
    assert texts_table.count("1 SMS segment<") == 2 and "SMS segments" not in texts_table
    # no consent to texts at all: both are listed, with that reason
    session.execute(sa.update(Patient).where(Patient.id == patient.id).values(last_name="Older"))
    session.commit()
    silent = _enrol_by_form(client, session, procedure_end="2026-06-12T19:30", discharge_at="2026-06-12T21:30",
                            sms_consent="", mobile="(202) 555-0145")
    box = client.get(f"/nurse/patients/{silent.id}").data.decode().split('id="safety-texts"')[1]
    assert box.count("Not sent: the patient has not agreed to texts.") == 2


# ---------------------------------------------------------------------------------------------
# Issue 10 item 6: a per-patient no-driving time says the same length everywhere
# ---------------------------------------------------------------------------------------------

def _today(client, session, patient) -> str:
    token = patient_link(session, patient, now=NOW)
    session.commit()
    patient_client = client.application.test_client()
    assert open_link(patient_client, token).status_code == 303
    return patient_client.get("/me").data.decode()


def test_no_driving_for_21_days_keeps_the_clinic_wording_and_says_3_weeks_everywhere(client, session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW, template_file="example-strict-driving")
    nurse = make_staff(session, clinic, now=NOW)
    session.commit()
    login(client, nurse)
    patient = _enrol_by_form(client, session, no_driving_days="21", procedure_end="2026-03-09T09:00",
                             discharge_at="2026-03-09T11:00")
    enrolment = session.scalar(sa.select(Enrolment).where(Enrolment.patient_id == patient.id))
    assert enrolment.template_id == "kyphoplasty+example-strict-driving"
    assert enrolment.overrides == {"milestones": {"TL03": {"end": "T0+504h"}}}  # no wording from nurse.py
    s01 = _rows(session, patient)["S01:TD"].text_template
    assert s01 == ("Hi {first}, welcome home. Please have an adult stay with you tonight. Do not drive or use "
                   "buses or trains for 3 weeks.")
    today = _today(client, session, patient)
    card = today.split("No driving or public transport until")[1].split("</div>")[0]
    assert card.startswith(" Monday 30 Mar, 9 am")  # day 21
    assert "for 3 weeks" in card and "2 weeks" not in card and "48 hours" not in card
    assert "2 weeks" not in today


def test_no_driving_for_10_days_on_the_default_plan(client, session, frozen):
    frozen.move_to(NOW)
    _, nurse = _clinic_and_nurse(session)
    login(client, nurse)
    patient = _enrol_by_form(client, session, no_driving_days="10", procedure_end="2026-03-09T09:00",
                             discharge_at="2026-03-09T11:00")
    assert _rows(session, patient)["S01:TD"].text_template.endswith("buses or trains for 10 days.")
    card = _today(client, session, patient).split("No driving or public transport until")[1].split("</div>")[0]
    assert card.startswith(" Thursday 19 Mar, 9 am") and "for 10 days after the sedation" in card


def test_correcting_the_times_there_and_back_loses_no_text(client, session, frozen):
    """A corrected time that brings an occurrence back to a time it had before gets a row again
    (a cancelled row used to keep its dedupe key), and a safety text stays planned."""
    frozen.move_to(_ny("2026-06-10T11:00"))
    _, nurse = _clinic_and_nurse(session)
    login(client, nurse)
    patient = _enrol_by_form(client, session, procedure_end="2026-06-10T09:00", discharge_at="2026-06-10T11:00")
    first = {k: r.send_after for k, r in _rows(session, patient).items()}

    def correct(end: str, discharge: str) -> None:
        r = client.post(f"/nurse/patients/{patient.id}/times",
                        data={"procedure_end": end, "discharge_at": discharge, "reason": "typed the wrong time"})
        assert r.status_code == 303, r.data

    frozen.move_to(_ny("2026-06-10T11:10"))
    correct("2026-06-10T10:00", "2026-06-10T12:00")
    moved = _rows(session, patient)
    assert moved["S01:TD"].send_after == _ny("2026-06-10T12:00") and moved["S01:TD"].safety
    correct("2026-06-10T09:00", "2026-06-10T11:00")  # back: S01 due 11:00 again, 10 minutes ago
    live = session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.patient_id == patient.id, OutboundMessage.recipient == "patient",
        OutboundMessage.status == OutboxStatus.PLANNED)).all()
    keys = [r.occurrence_key for r in live]
    assert sorted(keys) == sorted(first) and len(keys) == len(set(keys))  # every text once, none lost
    assert {r.occurrence_key: r.send_after for r in live}["S01:TD"] == _ny("2026-06-10T11:00")  # due: goes now

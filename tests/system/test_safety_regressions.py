"""Failing examples of the safety-path state machine (tests/support/safety_machine.py), kept as plain tests.

Each one is what the machine (or its earlier, lost attempt) found, written as the patient, nurse
or Twilio did it, through the same routes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from recovery.scheduler.tick import tick
from recovery.messaging.twilio_gateway import compute_signature
from recovery.store.models import Alert, AlertStatus, Checkin, OutboundMessage, OutboxStatus, Patient
from recovery.scheduler.process import settings_for
from tests.support.factories import enrol, login, make_clinic, make_staff, open_link, patient_link
from tests.web.test_checkin_web import CALM, post_step, screen_data, walk

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)  # Mon 9 Mar 2026, 11:00 in New York (EDT)
TOKEN = "test-auth-token"
BASE = "https://recovery.example.org"
CHEST_PAIN = {"cardioresp": ["chest_pain"]}


def text_in(client, number: str, body: str, n: int):
    form = {"MessageSid": f"SM{n:032x}", "From": number, "To": "+15005550006", "Body": body}
    sig = compute_signature(TOKEN, BASE + "/twilio/sms", form)
    return client.post("/twilio/sms", data=form, headers={"X-Twilio-Signature": sig})


def test_a_checkin_before_the_corrected_procedure_end_is_scored_not_a_500(app, client, session, frozen):
    """Finding 1: the nurse corrects the procedure end to a time still ahead of the clock (the form
    allows an hour); the patient's check-in then had negative hours since T0, which triage refuses,
    so the emergency answer gave a 500 and no EMERGENCY alert."""
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, on_call=1, now=NOW)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=3), now=NOW)
    session.commit()
    nurse_client = app.test_client()
    login(nurse_client, nurse)
    r = nurse_client.post(f"/nurse/patients/{patient.id}/times",
                          data={"procedure_end": "2026-03-09T11:40", "reason": "the theatre log"})  # 40 min ahead
    assert r.status_code == 303
    token = patient_link(session, patient, now=NOW)
    session.commit()
    open_link(client, token)
    r = client.post("/me/checkin/report")
    cid = int(r.headers["Location"].rsplit("/", 1)[1])
    r = post_step(client, cid, "cardioresp", CHEST_PAIN)
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/me/checkin/{cid}/emergency")
    assert session.scalar(sa.select(Alert).where(Alert.checkin_id == cid)).level == "EMERGENCY"
    r = walk(client, cid, {**CALM, "emergency": {**CALM["emergency"], "cardioresp": ["none"]}})
    assert client.post(f"/me/checkin/{cid}/review").status_code == 303
    c = session.get(Checkin, cid)
    session.refresh(c)
    assert c.status == "submitted" and c.hours == 0


def test_a_symptom_report_begun_on_one_link_and_sent_on_a_later_one_shows_its_outcome(app, client, session, frozen):
    """Finding 2: a report started from a check-in link's session and sent after opening a later
    link: the submission went through, then its own outcome page (and emergency page) was a 404."""
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    make_staff(session, clinic, on_call=1, now=NOW)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW)
    session.commit()
    first = patient_link(session, patient, purpose="checkin", now=NOW, slot=None)
    session.commit()
    assert open_link(client, first).status_code == 303
    cid = session.scalar(sa.select(Checkin.id).where(Checkin.patient_id == patient.id, Checkin.slot.is_(None)))
    post_step(client, cid, "cardioresp", screen_data("cardioresp"))
    frozen.move_to(NOW + timedelta(hours=2))
    later = patient_link(session, patient, purpose="checkin", now=NOW + timedelta(hours=2), slot=None)
    session.commit()
    assert open_link(client, later).status_code == 303
    walk(client, cid)
    r = client.post(f"/me/checkin/{cid}/review")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/me/checkin/{cid}/done")
    assert client.get(r.headers["Location"]).status_code == 200
    assert client.get(f"/me/checkin/{cid}").status_code == 303  # and it still finds its way there


def test_an_opted_out_number_stays_opted_out_for_a_later_enrolment(app, client, session, sms, frozen):
    """Finding 3: opt-out holds per phone number. STOP, then the same number enrolled again (a new
    record): nothing is texted to it until START, and the nurse gets the phone follow-up task."""
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    number = "+12025550161"
    enrol(session, clinic, procedure_end=NOW - timedelta(days=20), now=NOW - timedelta(days=20), mobile=number)
    session.commit()
    assert text_in(client, number, "STOP", 1).status_code == 200
    nurse_client = app.test_client()
    login(nurse_client, nurse)
    r = nurse_client.post("/nurse/patients/new", data={
        "first_name": "Maria", "last_name": "Again", "mobile": number, "timezone": "America/New_York",
        "sms_consent": "y", "procedure_type": "kyphoplasty", "procedure_end": "2026-03-09T10:00"})
    assert r.status_code == 422 and b"shared family phone" in r.data  # the first record is still active
    r = nurse_client.post("/nurse/patients/new", data={
        "first_name": "Maria", "last_name": "Again", "mobile": number, "timezone": "America/New_York",
        "sms_consent": "y", "procedure_type": "kyphoplasty", "procedure_end": "2026-03-09T10:00",
        "shared_phone": "y"})
    assert r.status_code == 303
    again = session.get(Patient, int(r.headers["Location"].rsplit("/", 1)[1]))
    assert again.sms_opted_out
    task = session.scalar(sa.select(Alert).where(Alert.patient_id == again.id, Alert.status != AlertStatus.RESOLVED))
    assert task is not None and "M5" in task.rules  # the nurse arranges phone follow-up
    assert b"replied STOP earlier" in nurse_client.get(r.headers["Location"]).data
    tick(session, sms, NOW, settings_for(app))
    assert [a for a in sms.attempts if a.to == number] == []
    assert text_in(client, number, "START", 2).status_code == 200
    session.refresh(again)
    assert not again.sms_opted_out
    later = NOW + timedelta(hours=1)
    tick(session, sms, later, settings_for(app))
    assert [a for a in sms.attempts if a.to == number]


def test_a_corrected_procedure_time_keeps_three_routine_texts_a_day(app, session, sms, frozen):
    """Finding 5: day 1 brought its three routine texts (S02 09:00, S08 11:00, S07 13:00); at 15:00
    the nurse moves the procedure a day earlier, so today is day 2 and the new plan wanted day 2's
    check-in reminder S07 at 13:00 — already past, so at once: a fourth routine text that day, 2
    hours after the last. The re-plan counts what already went."""
    ny = ZoneInfo("America/New_York")
    t0 = datetime(2026, 3, 9, 9, 0, tzinfo=ny).astimezone(timezone.utc)
    frozen.move_to(t0)
    clinic = make_clinic(session, now=t0)
    nurse = make_staff(session, clinic, now=t0)
    patient = enrol(session, clinic, procedure_end=t0, now=t0)
    session.commit()
    now = t0
    while now < datetime(2026, 3, 10, 15, 0, tzinfo=ny):
        now += timedelta(minutes=30)
        tick(session, sms, now, settings_for(app), scan_missed=False)
    frozen.move_to(now)
    nurse_client = app.test_client()
    login(nurse_client, nurse)
    r = nurse_client.post(f"/nurse/patients/{patient.id}/times",
                          data={"procedure_end": "2026-03-08T09:00", "reason": "it was the day before"})
    assert r.status_code == 303
    for _ in range(12):  # the rest of the day, ticking
        now += timedelta(minutes=30)
        tick(session, sms, now, settings_for(app), scan_missed=False)
    session.expire_all()
    per_day: dict = {}
    for row in session.scalars(sa.select(OutboundMessage).where(
            OutboundMessage.patient_id == patient.id, OutboundMessage.recipient == "patient",
            OutboundMessage.kind.in_(("reminder", "checkin_reminder")), OutboundMessage.safety.is_(False),
            OutboundMessage.status.in_((OutboxStatus.PLANNED, OutboxStatus.SENT, OutboxStatus.DELIVERED)))):
        at = (row.sent_at or row.send_after).astimezone(ny)
        per_day.setdefault(at.date(), []).append(at)
    for day, times in per_day.items():
        times.sort()
        assert len(times) <= 3, (day, [t.strftime("%H:%M") for t in times])
        assert all(b - a >= timedelta(hours=2) for a, b in zip(times, times[1:])), (day, times)

"""Issue 13 §2: ending monitoring and pausing texts, through the nurse's pages and the real scheduler
tick. Reproductions: a patient whose monitoring ended (deceased) and a patient whose texts are
paused get no routine text, whatever the tick finds in the outbox."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recovery.services import alerting
from recovery.services import missed
from recovery.store.models import (Alert, AlertStatus, AuditEvent, Enrolment, EnrolmentStatus, OutboundMessage,
                             OutboxStatus)
from recovery.store.enrolments import current_enrolment
from recovery.scheduler.process import run_tick
from tests.support.factories import enrol, login, make_clinic, make_staff, open_link, patient_link
from tests.services.test_dispatch import plant, rows

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=NY)  # Tue 10 Mar 2026, 10:00 New York


def local(day: int, hh: int, mm: int = 0) -> datetime:
    d = T0.date() + timedelta(days=day)
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=NY).astimezone(UTC)


@pytest.fixture
def world(app, session, time_machine):
    time_machine.move_to(T0 + timedelta(hours=2), tick=False)
    clinic = make_clinic(session, now=T0)
    nurse = make_staff(session, clinic, now=T0)
    p = enrol(session, clinic, procedure_end=T0.astimezone(UTC), now=T0 + timedelta(hours=2),
              discharge_at=(T0 + timedelta(hours=3)).astimezone(UTC))
    session.commit()
    return {"clinic": clinic, "nurse": nurse, "p": p, "tm": time_machine}


def nurse_client(app, nurse):
    c = app.test_client()
    assert login(c, nurse).status_code == 303
    return c


def ticks(app, sms, start: datetime, end: datetime, every=timedelta(minutes=30)):
    t = start
    while t <= end:
        report = run_tick(app, gateway=sms, now=t)
        assert not report.errors, report.errors
        t += every


def enrolment_of(session, p) -> Enrolment:
    return session.scalar(sa.select(Enrolment).where(Enrolment.patient_id == p.id)
                          .execution_options(populate_existing=True))


def audit_rows(session, action, p):
    return session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action,
                                                       AuditEvent.patient_id == p.id)).all()


# ---- ending ------------------------------------------------------------------------------------

def test_ending_monitoring_deceased_cancels_everything_and_no_tick_ever_texts_the_patient(app, session, sms, world):
    p, nurse = world["p"], world["nurse"]
    ticks(app, sms, local(0, 12), local(0, 16))  # day 0 as usual: some texts go out
    sent_before = len(sms.sent_to(p.mobile_e164))
    assert sent_before > 0
    alert = alerting.raise_rules(session, patient=p, enrolment=current_enrolment(p), rule_ids=["U20"],
                                 now=local(0, 16))[0]
    session.commit()
    world["tm"].move_to(local(0, 17), tick=False)
    c = nurse_client(app, nurse)
    r = c.post(f"/nurse/patients/{p.id}/end", data={"reason": "deceased", "note": "Family called."})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/nurse/patients/{p.id}")
    e = enrolment_of(session, p)
    assert (e.status, e.end_reason, e.end_note) == (EnrolmentStatus.ENDED, "deceased", "Family called.")
    planned = rows(session, enrolment_id=e.id, status=OutboxStatus.PLANNED)
    assert planned == []
    cancelled = [r for r in rows(session, enrolment_id=e.id) if r.status_reason == "enrolment_ended"]
    assert len(cancelled) > 10
    a = session.scalar(sa.select(Alert).where(Alert.id == alert.id).execution_options(populate_existing=True))
    assert a.status == AlertStatus.RESOLVED and a.disposition == "monitoring_ended" and "died" in a.note
    (event,) = audit_rows(session, "monitoring_ended", p)
    assert event.actor_id == nurse.id and event.detail["old_status"] == "active"
    assert event.detail["new_status"] == "ended" and event.detail["reason"] == "deceased"
    assert event.detail["alerts_closed"] == 1 and event.detail["texts_cancelled"] == len(cancelled)

    # A row planned afterwards by any path (here: straight into the outbox) is refused at send time.
    late = plant(session, p, due=local(1, 9), message_id="S09")
    urgent = plant(session, p, due=local(1, 9), message_id="S21", kind="event_reply", urgent=True)
    ticks(app, sms, local(0, 17), local(8, 12), every=timedelta(hours=3))
    assert len(sms.sent_to(p.mobile_e164)) == sent_before, "a text went to an ended enrolment"
    for planted in (late, urgent):
        got = session.scalar(sa.select(OutboundMessage).where(OutboundMessage.id == planted.id)
                             .execution_options(populate_existing=True))
        assert (got.status, got.status_reason) == (OutboxStatus.CANCELLED, "enrolment_ended")
    # The missed-check-in scan raised nothing for it.
    assert session.scalars(sa.select(Alert).where(Alert.patient_id == p.id,
                                                  Alert.status != AlertStatus.RESOLVED)).all() == []
    assert sms.sent_to(nurse.mobile_e164) == ()


def test_the_patient_link_after_ending_shows_a_calm_page_with_whom_to_call(app, session, world):
    p, nurse, clinic = world["p"], world["nurse"], world["clinic"]
    token = patient_link(session, p, now=T0 + timedelta(hours=2))
    checkin_token = patient_link(session, p, purpose="checkin", slot="day0", now=T0 + timedelta(hours=2))
    session.commit()
    assert nurse_client(app, nurse).post(f"/nurse/patients/{p.id}/end",
                                         data={"reason": "completed"}).status_code == 303
    patient = app.test_client()
    assert open_link(patient, token).status_code == 303
    page = patient.get("/me")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "have ended" in text and clinic.care_phone in text and "tel:911" in text
    assert "check-in" not in text.lower().replace("check-ins from us", "")
    assert patient.get("/me/checkin").status_code == 303
    assert patient.get("/me/calendar.ics").status_code == 303
    other = app.test_client()
    r = open_link(other, checkin_token)
    assert r.status_code == 303
    assert other.get(r.headers["Location"]).status_code == 303  # the check-in page sends them to Today
    assert "have ended" in other.get("/me").get_data(as_text=True)


def test_end_form_needs_a_reason_and_a_note_for_other_and_ends_once(app, session, world):
    p, nurse = world["p"], world["nurse"]
    c = nurse_client(app, nurse)
    page = c.get(f"/nurse/patients/{p.id}/end")
    assert page.status_code == 200 and b"deceased" in page.data
    for data, message in (({}, b"Choose why monitoring ends."), ({"reason": "teleported"}, b"Not a valid choice"),
                          ({"reason": "other", "note": "  "}, b"Say why monitoring ends."),
                          ({"reason": "completed", "note": "x" * 1001}, b"1000 characters")):
        r = c.post(f"/nurse/patients/{p.id}/end", data=data)
        assert r.status_code == 422 and message in r.data, data
    assert enrolment_of(session, p).status == EnrolmentStatus.ACTIVE
    assert audit_rows(session, "monitoring_ended", p) == []
    assert c.post(f"/nurse/patients/{p.id}/end", data={"reason": "readmitted"}).status_code == 303
    again = c.post(f"/nurse/patients/{p.id}/end", data={"reason": "deceased"})
    assert again.status_code == 409 and b"already ended" in again.data
    assert enrolment_of(session, p).end_reason == "readmitted"
    page = c.get(f"/nurse/patients/{p.id}").get_data(as_text=True)
    assert "Readmitted to hospital" in page and "End monitoring…" not in page
    assert c.post(f"/nurse/patients/{p.id}/pause", data={"until": "2026-03-20"}).status_code == 409


def test_sending_refuses_a_claimed_row_of_an_enrolment_ended_between_claim_and_send(app, session, sms, world):
    """The re-check before sending reads the enrolment fresh: ending it after a row was claimed
    still stops that row."""
    from recovery.dispatch import claims, prepare
    from recovery.services import episodes
    from tests.services.test_dispatch import settings
    p, nurse = world["p"], world["nurse"]
    session.execute(sa.delete(OutboundMessage).where(OutboundMessage.patient_id == p.id))
    session.commit()
    row = plant(session, p, due=local(1, 10), message_id="S09")
    s = settings(app)
    assert [c.id for c in claims.claim_due(session, local(1, 10), s)] == [row.id]
    episodes.end_monitoring(session, enrolment=current_enrolment(p), patient=p, reason="deceased", note=None,
                            staff=nurse, now=local(1, 10))
    session.commit()
    ctx = prepare.SendContext(s)
    assert prepare.prepare(session, row.id, local(1, 10), ctx) == prepare.NotSent("enrolment_ended")
    assert sms.sent_to(p.mobile_e164) == ()


# ---- pausing -----------------------------------------------------------------------------------

def test_paused_texts_are_not_sent_until_the_day_then_the_plan_goes_on(app, session, sms, world):
    p, nurse = world["p"], world["nurse"]
    ticks(app, sms, local(0, 12), local(0, 13))
    world["tm"].move_to(local(0, 14), tick=False)
    c = nurse_client(app, nurse)
    page = c.get(f"/nurse/patients/{p.id}/pause")
    assert page.status_code == 200 and b'name="until"' in page.data
    r = c.post(f"/nurse/patients/{p.id}/pause", data={"until": "2026-03-14", "note": "In hospital"})
    assert r.status_code == 303
    e = enrolment_of(session, p)
    assert e.paused_until == datetime(2026, 3, 14, 0, 0, tzinfo=NY).astimezone(UTC)
    held = [r for r in rows(session, enrolment_id=e.id) if r.status_reason == "paused"]
    assert held and all(r.send_after < e.paused_until for r in held)
    assert all(r.status == OutboxStatus.CANCELLED for r in held)
    ahead = [r for r in rows(session, enrolment_id=e.id, status=OutboxStatus.PLANNED)]
    assert ahead and all(r.send_after >= e.paused_until for r in ahead)
    (event,) = audit_rows(session, "texts_paused", p)
    assert event.detail["old_paused_until"] is None and event.detail["until_day"] == "2026-03-14"
    assert event.detail["note"] == "In hospital" and event.detail["texts_cancelled"] == len(held)
    assert b"texts paused" in c.get(f"/nurse/patients/{p.id}").data

    sent_before = len(sms.sent_to(p.mobile_e164))
    # A routine text planned during the pause by another path is held at send time; a reply to the
    # patient's own text (S21) still goes.
    routine = plant(session, p, due=local(1, 9, 30), message_id="S09")
    reply = plant(session, p, due=local(1, 9, 30), message_id="S21", kind="event_reply", urgent=True)
    ticks(app, sms, local(0, 14), local(3, 23), every=timedelta(hours=1))
    got = {r.id: r for r in rows(session, patient_id=p.id)}
    assert (got[routine.id].status, got[routine.id].status_reason) == (OutboxStatus.CANCELLED, "paused")
    assert got[reply.id].status == OutboxStatus.SENT
    assert len(sms.sent_to(p.mobile_e164)) == sent_before + 1
    # No missed-check-in task while paused.
    assert [a for a in session.scalars(sa.select(Alert).where(Alert.patient_id == p.id,
                                                              Alert.family == "missed_checkin"))] == []
    # The day comes: the plan goes on by itself.
    ticks(app, sms, local(4, 8), local(4, 12), every=timedelta(hours=1))
    assert len(sms.sent_to(p.mobile_e164)) > sent_before + 1


def test_resume_now_replans_what_the_pause_cancelled_that_is_still_ahead(app, session, sms, world):
    p, nurse = world["p"], world["nurse"]
    world["tm"].move_to(local(0, 14), tick=False)
    c = nurse_client(app, nurse)
    assert c.post(f"/nurse/patients/{p.id}/pause", data={"until": "2026-03-20"}).status_code == 303
    e = enrolment_of(session, p)
    held = {(r.occurrence_key, r.recipient) for r in rows(session, enrolment_id=e.id) if r.status_reason == "paused"}
    world["tm"].move_to(local(2, 12), tick=False)
    c = nurse_client(app, nurse)  # the nurse's session timed out in two days
    r = c.post(f"/nurse/patients/{p.id}/resume")
    assert r.status_code == 303
    e = enrolment_of(session, p)
    assert e.paused_until is None
    back = [r for r in rows(session, enrolment_id=e.id, status=OutboxStatus.PLANNED)
            if (r.occurrence_key, r.recipient) in held]
    assert back and all(r.send_after > local(2, 12) for r in back)
    (event,) = audit_rows(session, "texts_resumed", p)
    assert event.detail["new_paused_until"] is None and event.detail["texts_planned"] == len(back)
    assert event.detail["old_paused_until"].startswith("2026-03-20")
    again = c.post(f"/nurse/patients/{p.id}/resume")
    assert again.status_code == 409 and b"not paused" in again.data
    ticks(app, sms, local(3, 8), local(3, 10), every=timedelta(hours=1))
    assert any(s.body for s in sms.sent_to(p.mobile_e164))


@pytest.mark.parametrize("until,message", [
    ("", b"Enter the day texts should start again"), ("2026-03-10", b"Choose a day after today"),
    ("2026-03-09", b"Choose a day after today"), ("2027-03-10", b"up to 90 days"),
    ("20/03/2026", b"Enter the day as year-month-day"), ("9999-99-99", b"Enter the day as year-month-day"),
])
def test_pause_form_bad_days_are_422_and_change_nothing(app, session, world, until, message):
    p, nurse = world["p"], world["nurse"]
    world["tm"].move_to(local(0, 14), tick=False)
    before = len(rows(session, enrolment_id=current_enrolment(p).id, status=OutboxStatus.PLANNED))
    r = nurse_client(app, nurse).post(f"/nurse/patients/{p.id}/pause", data={"until": until})
    assert r.status_code == 422 and message in r.data, r.data[-3000:]
    assert enrolment_of(session, p).paused_until is None
    assert len(rows(session, enrolment_id=current_enrolment(p).id, status=OutboxStatus.PLANNED)) == before


def test_sent_to_ed_offers_to_pause_texts(app, session, world):
    p, nurse = world["p"], world["nurse"]
    alert = alerting.raise_rules(session, patient=p, enrolment=current_enrolment(p), rule_ids=["U20"],
                                 now=T0 + timedelta(hours=2))[0]
    session.commit()
    c = nurse_client(app, nurse)
    r = c.post(f"/nurse/alerts/{alert.id}/resolve", data={"disposition": "sent_to_ed", "note": "", "next": "/nurse/"})
    assert r.status_code == 303 and f"/nurse/patients/{p.id}/pause?from=ed" in r.headers["Location"]
    page = c.get(r.headers["Location"]).get_data(as_text=True)
    assert "Sent to the emergency department" in page and 'name="until"' in page
    # With htmx the resolve panel offers the same.
    alert2 = alerting.raise_rules(session, patient=p, enrolment=current_enrolment(p), rule_ids=["U20"],
                                  now=T0 + timedelta(hours=2))[0]
    session.commit()
    r = c.post(f"/nurse/alerts/{alert2.id}/resolve", data={"disposition": "sent_to_ed", "note": ""},
               headers={"HX-Request": "true"})
    assert r.status_code == 200 and f"/nurse/patients/{p.id}/pause?from=ed".encode() in r.data
    # Other outcomes do not.
    alert3 = alerting.raise_rules(session, patient=p, enrolment=current_enrolment(p), rule_ids=["U20"],
                                  now=T0 + timedelta(hours=2))[0]
    session.commit()
    r = c.post(f"/nurse/alerts/{alert3.id}/resolve", data={"disposition": "called_patient", "next": "/nurse/"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/nurse/")


def test_another_clinics_nurse_cannot_end_or_pause(app, session, world):
    p = world["p"]
    other = make_staff(session, make_clinic(session, now=T0), now=T0)
    session.commit()
    c = nurse_client(app, other)
    for method, url, data in (("get", "end", None), ("post", "end", {"reason": "deceased"}),
                              ("get", "pause", None), ("post", "pause", {"until": "2026-03-20"}),
                              ("post", "resume", {})):
        r = getattr(c, method)(f"/nurse/patients/{p.id}/{url}", data=data)
        assert r.status_code == 404, (method, url)
    assert enrolment_of(session, p).status == EnrolmentStatus.ACTIVE
    assert enrolment_of(session, p).paused_until is None
    anonymous = app.test_client()
    assert anonymous.post(f"/nurse/patients/{p.id}/end", data={"reason": "deceased"}).status_code in (400, 403)


def test_texts_from_a_patient_whose_monitoring_ended_get_no_reply_and_open_no_task(app, session, sms, world):
    """STOP or a question from an ended episode's number is recorded (the opt-out stands), but no
    reply is texted and no "arrange phone follow-up" task is opened for a patient no longer followed."""
    from tests.web.test_checkin_alerts import text_in
    p, nurse = world["p"], world["nurse"]
    assert nurse_client(app, nurse).post(f"/nurse/patients/{p.id}/end",
                                         data={"reason": "deceased"}).status_code == 303
    text_in(app.test_client(), p.mobile_e164, "Is this still on?")
    text_in(app.test_client(), p.mobile_e164, "STOP")
    session.expire_all()
    assert session.get(type(p), p.id).sms_opted_out
    assert session.scalars(sa.select(Alert).where(Alert.patient_id == p.id,
                                                  Alert.status != AlertStatus.RESOLVED)).all() == []
    assert rows(session, patient_id=p.id, status=OutboxStatus.PLANNED) == []
    ticks(app, sms, local(0, 13), local(0, 14))
    assert sms.sent_to(p.mobile_e164) == ()

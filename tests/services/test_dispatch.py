"""The send pipeline: claim, re-check, render, send, record; errors; pacing; outage; DST."""
from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recovery.dispatch.claims import claim_due
from recovery.dispatch.prepare import SendContext, prepare
from recovery.dispatch.sender import deliver, send_due
from recovery.dispatch.settings import DispatchSettings
from recovery.dispatch.status import apply_status
from recovery.scheduler.tick import tick
from recovery.domain import texts
from recovery.messaging import MAX_ATTEMPTS, SendError
from recovery.store.models import (AccessLink, Alert, AuditEvent, Checkin, Enrolment, EnrolmentStatus, OutboundMessage,
                             OutboxStatus, Patient, SmsConversation)
from recovery.domain.timeline import PlannedMessage
from recovery.services.tokens import digest
from recovery.store.outbox import add_if_new, new_row
from tests.support.factories import enrol, make_clinic, make_staff

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # Tue 10 Mar 2026, 11:00 in New York (EDT)


def settings(app, **over) -> DispatchSettings:
    over.setdefault("max_per_second", 0)
    over.setdefault("send_concurrency", 1)  # deterministic order; concurrency has its own test
    over.setdefault("rng", random.Random(7))
    return DispatchSettings.from_config(app.config, **over)


def rows(session, **where):
    stmt = sa.select(OutboundMessage).order_by(OutboundMessage.id).execution_options(populate_existing=True)
    for k, v in where.items():
        stmt = stmt.where(getattr(OutboundMessage, k) == v)
    return session.scalars(stmt).all()


def row(session, row_id):
    return session.scalar(sa.select(OutboundMessage).where(OutboundMessage.id == row_id)
                          .execution_options(populate_existing=True))


def plant(session, patient, *, due: datetime, message_id="S03", kind="reminder", urgent=False,
          text="{first}, a test text.", recipient="patient", slot=None, key=None) -> OutboundMessage:
    """One planned row, due at `due`, for the patient's current enrolment."""
    enrolment = patient.enrolments[-1]
    message = PlannedMessage(id=message_id, key=key or f"{message_id}:t{due:%d%H%M%S}", kind=kind, send_at=due,
                             due_at=due, text_template=text, urgent=urgent, quiet_moved=False)
    r = new_row(enrolment=enrolment, patient_id=patient.id, recipient=recipient, message=message, now=due,
                slot=slot)
    assert add_if_new(session, r)
    session.commit()
    return r


def patient_at(session, *, procedure_end=NOW - timedelta(days=5), now=None, sms_consent=True, **kw) -> Patient:
    clinic = make_clinic(session, now=now or NOW)
    p = enrol(session, clinic, procedure_end=procedure_end, now=now or NOW, sms_consent=sms_consent, **kw)
    # Only the rows a test plants (or asks for) are in play.
    session.execute(sa.delete(OutboundMessage).where(OutboundMessage.patient_id == p.id))
    session.commit()
    return p


def audits(session, action):
    return session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)).all()


def alert_rules(session, patient):
    return sorted(r for a in session.scalars(sa.select(Alert).where(Alert.patient_id == patient.id)
                                             .execution_options(populate_existing=True)) for r in a.rules)


# ---------------------------------------------------------------------------------------------
# The happy path
# ---------------------------------------------------------------------------------------------

def test_a_due_text_is_sent_once_with_its_sid_body_and_callback(app, session, sms):
    p = patient_at(session, first="Rosa")
    r = plant(session, p, due=NOW - timedelta(minutes=1))
    later = plant(session, p, due=NOW + timedelta(minutes=10), message_id="S09")
    report = tick(session, sms, NOW, settings(app))
    assert not report.errors and report.send.outcomes == {"sent": 1}
    assert [(s.to, s.body) for s in sms.sent] == [(p.mobile_e164, "Rosa, a test text.")]
    assert sms.sent[0].status_callback == f"https://recovery.example.org/twilio/status?ob={r.id}"
    got = row(session, r.id)
    assert (got.status, got.provider_sid, got.provider_status, got.body) == (
        OutboxStatus.SENT, sms.sent[0].provider_id, "queued", "Rosa, a test text.")
    assert got.sent_at == NOW and got.lease_until is None and got.attempts == 1
    assert got.claimed_by == settings(app).worker_id  # kept: which process sent it
    assert row(session, later.id).status == OutboxStatus.PLANNED
    assert [a.subject_id for a in audits(session, "sms_sent")] == [r.id]
    # a second tick (or a second scheduler) sends nothing again
    assert tick(session, sms, NOW + timedelta(seconds=5), settings(app)).send.claimed == 0
    assert len(sms.sent) == 1


def test_the_real_plan_goes_out_through_ticks(app, session, sms):
    """An enrolment's own outbox rows, ticked through a day: each text once, at its time."""
    clinic = make_clinic(session, now=NOW)
    t0 = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)  # 09:00 New York
    p = enrol(session, clinic, procedure_end=t0, now=t0 + timedelta(hours=1), first="Ana")
    session.commit()
    planned = {r.id: r for r in rows(session, patient_id=p.id)}
    t = t0 + timedelta(hours=1)
    end = t0 + timedelta(days=2)
    while t <= end:
        assert not tick(session, sms, t, settings(app), scan_missed=False).errors
        t += timedelta(minutes=10)
    sent = [r for r in rows(session, patient_id=p.id) if r.status == OutboxStatus.SENT]
    due = [r for r in planned.values() if r.send_after <= end]
    assert {r.id for r in sent} == {r.id for r in due}
    assert len(sms.sent) == len(due) and len({s.status_callback for s in sms.sent}) == len(due)
    for r in sent:  # sent within one 10-minute step of its time, never before
        assert timedelta(0) <= r.sent_at - planned[r.id].send_after < timedelta(minutes=10)
        assert "Ana" in r.body or r.message_id == "S05"


def test_links_are_fresh_single_purpose_tokens_and_only_their_hash_is_stored(app, session, sms):
    p = patient_at(session)
    inv = plant(session, p, due=NOW - timedelta(minutes=2), message_id="S06", kind="checkin_invite",
                text="Hi {first}, please do today's 2-minute recovery check-in: {link}", slot="day5")
    det = plant(session, p, due=NOW - timedelta(minutes=1), message_id="S16",
                text="Hi {first}, you have a follow-up visit in 7 days. Details: {link}")
    again = plant(session, p, due=NOW, message_id="S22", kind="event_reply",
                  text="Thanks {first}, your check-in is saved. If anything changes, check in again: {link}")
    tick(session, sms, NOW, settings(app))
    bodies = {s.status_callback.rsplit("=", 1)[1]: s.body for s in sms.sent}
    expect = {inv.id: ("checkin", "day5", 24), det.id: ("today", None, 72), again.id: ("checkin", None, 24)}
    for rid, (purpose, slot, hours) in expect.items():
        body = bodies[str(rid)]
        token = body.rsplit("/l/", 1)[1]
        # 128 random bits in 22 base64url characters: the whole link is the length templates are
        # checked with (texts.link_length), so every text with a link still fits one SMS.
        assert len(token) == 22 and len(base64.urlsafe_b64decode(token + "==")) == 16
        assert len(body.rsplit(" ", 1)[1]) == texts.link_length(app.config["PUBLIC_BASE_URL"]) == 53
        link = session.scalar(sa.select(AccessLink).where(AccessLink.token_hash == digest(token)))
        assert (link.purpose, link.checkin_slot, link.expires_at - link.created_at) == (
            purpose, slot, timedelta(hours=hours))
        stored = row(session, rid).body
        assert token not in stored and stored.endswith("https://recovery.example.org/l/[link]")


def test_invitation_opens_the_reply_by_text_conversation(app, session, sms):
    p = patient_at(session)
    plant(session, p, due=NOW, message_id="S06", kind="checkin_invite", slot="day5",
          text="Hi {first}, please do today's 2-minute recovery check-in: {link}")
    tick(session, sms, NOW, settings(app))
    conv = session.scalar(sa.select(SmsConversation).where(SmsConversation.patient_id == p.id))
    assert (conv.state, conv.slot, conv.expires_at) == ("awaiting_pain", "day5", NOW + timedelta(hours=24))


# ---------------------------------------------------------------------------------------------
# Claiming and leases
# ---------------------------------------------------------------------------------------------

def test_claims_are_exclusive_and_an_expired_lease_is_claimable_again(app, session):
    p = patient_at(session)
    ids = [plant(session, p, due=NOW - timedelta(minutes=i)).id for i in range(5)]
    a, b = settings(app, worker_id="A", batch=3), settings(app, worker_id="B", batch=10)
    first = claim_due(session, NOW, a)
    second = claim_due(session, NOW, b)
    assert len(first) == 3 and len(second) == 2
    assert {c.id for c in first} | {c.id for c in second} == set(ids)
    assert claim_due(session, NOW + timedelta(seconds=299), b) == []
    assert {r.claimed_by for r in rows(session)} == {"A", "B"}
    # A sent one (SID stored) and died: its other two come back after the lease, the sent one never.
    sent = row(session, first[0].id)
    sent.provider_sid, sent.status = "SM" + "1" * 32, OutboxStatus.SENT
    session.commit()
    again = claim_due(session, NOW + timedelta(seconds=301), b)
    assert {c.id for c in again} == {first[1].id, first[2].id, *[c.id for c in second]}
    assert all(row(session, c.id).attempts == 2 for c in again)


def test_a_row_whose_worker_keeps_dying_is_failed_after_max_attempts(app, session, sms):
    p = patient_at(session, procedure_end=NOW - timedelta(days=1))
    r = plant(session, p, due=NOW)
    s = settings(app)
    t = NOW
    for _ in range(MAX_ATTEMPTS):
        assert len(claim_due(session, t, s)) == 1  # claimed, then the process "crashes"
        t += timedelta(seconds=301)
    report = tick(session, sms, t, s)
    assert report.expired == 1 and sms.sent == ()
    got = row(session, r.id)
    assert (got.status, got.status_reason) == (OutboxStatus.FAILED, "attempts_exhausted")
    assert alert_rules(session, p) == ["M4e"]  # day 1


def test_status_only_moves_forward_and_a_lost_claim_is_not_sent(app, session, sms):
    p = patient_at(session)
    r = plant(session, p, due=NOW)
    (c,) = claim_due(session, NOW, settings(app, worker_id="A"))
    # B takes it over after A's lease and sends it; A wakes up late: it must not send again.
    (c2,) = claim_due(session, NOW + timedelta(seconds=301), settings(app, worker_id="B"))
    ctx_b = SendContext(settings(app, worker_id="B"))
    assert deliver(session, sms, c2, ctx_b, lambda: NOW + timedelta(seconds=302), lambda s: None) == "sent"
    ctx_a = SendContext(settings(app, worker_id="A"))
    assert deliver(session, sms, c, ctx_a, lambda: NOW + timedelta(seconds=303), lambda s: None) == "lost_claim"
    assert len(sms.sent) == 1 and row(session, r.id).status == OutboxStatus.SENT


# ---------------------------------------------------------------------------------------------
# Re-checks just before sending
# ---------------------------------------------------------------------------------------------

def test_quiet_hours_move_a_non_urgent_text_to_0800_and_urgent_replies_go_at_night(app, session, sms):
    p = patient_at(session)
    night = datetime(2026, 3, 10, 21, 30, tzinfo=NY)
    plain = plant(session, p, due=night - timedelta(minutes=40))  # 20:50, scheduler was busy/down
    urgent = plant(session, p, due=night - timedelta(minutes=5), message_id="S21", kind="event_reply", urgent=True,
                   text="Thanks {first}. Texts are not watched all the time. If this is an emergency call {emerg} now. "
                        "Other questions: {phone}")
    report = tick(session, sms, night, settings(app))
    assert report.send.outcomes == {"quiet_hours": 1, "sent": 1}
    assert [s.body.startswith("Thanks Maria.") for s in sms.sent] == [True]
    assert "call 911 now" in sms.sent[0].body and "(202) 555-0100" in sms.sent[0].body
    moved = row(session, plain.id)
    assert (moved.status, moved.status_reason, moved.attempts) == (OutboxStatus.PLANNED, "quiet_hours", 0)
    assert moved.send_after == datetime(2026, 3, 11, 8, 0, tzinfo=NY)
    assert row(session, urgent.id).status == OutboxStatus.SENT
    # nothing at 07:59; at 08:00 it goes (11 h 10 min after it was due: not stale)
    assert tick(session, sms, datetime(2026, 3, 11, 7, 59, tzinfo=NY), settings(app)).send.claimed == 0
    tick(session, sms, datetime(2026, 3, 11, 8, 0, tzinfo=NY), settings(app))
    assert row(session, plain.id).status == OutboxStatus.SENT and len(sms.sent) == 2


def test_a_deferred_text_is_stale_only_12_h_after_the_quiet_period_ended(app, session, sms):
    p = patient_at(session)
    r = plant(session, p, due=datetime(2026, 3, 10, 18, 0, tzinfo=NY))
    tick(session, sms, datetime(2026, 3, 10, 21, 5, tzinfo=NY), settings(app))  # 3 h late, now quiet
    assert row(session, r.id).send_after == datetime(2026, 3, 11, 8, 0, tzinfo=NY)
    tick(session, sms, datetime(2026, 3, 11, 9, 0, tzinfo=NY), settings(app))  # 15 h after due, 1 h after 08:00
    assert row(session, r.id).status == OutboxStatus.SENT


@pytest.mark.parametrize("late, outcome", [(timedelta(hours=11, minutes=59), OutboxStatus.SENT),
                                           (timedelta(hours=12, minutes=1), OutboxStatus.SUPPRESSED)])
def test_texts_more_than_12_hours_late_are_suppressed_as_stale(app, session, sms, late, outcome):
    p = patient_at(session)
    now = datetime(2026, 3, 10, 20, 30, tzinfo=NY)  # due 08:29 or 08:31: outside quiet hours
    r = plant(session, p, due=now - late, message_id="S07", kind="checkin_reminder", slot="day5",
              text="Reminder {first}: we have not had today's check-in yet. It helps your nurse keep an eye on you: {link}")
    tick(session, sms, now, settings(app))
    got = row(session, r.id)
    assert got.status == outcome
    if outcome == OutboxStatus.SUPPRESSED:
        assert got.status_reason == "stale" and sms.sent == ()


def test_an_answered_checkin_cancels_its_invitation_and_reminder(app, session, sms):
    p = patient_at(session)
    e = p.enrolments[-1]
    session.add(Checkin(enrolment_id=e.id, patient_id=p.id, slot="day5", source="web", status="submitted",
                        answers={}, started_at=NOW, updated_at=NOW, submitted_at=NOW, fired_rules=[]))
    session.commit()
    rem = plant(session, p, due=NOW, message_id="S07", kind="checkin_reminder", slot="day5",
                text="Reminder {first}: we have not had today's check-in yet. It helps your nurse keep an eye on you: {link}")
    other = plant(session, p, due=NOW, message_id="S07", kind="checkin_reminder", slot="day4", key="S07:day4",
                  text="Reminder {first}: {link}")
    tick(session, sms, NOW, settings(app))
    assert (row(session, rem.id).status, row(session, rem.id).status_reason) == (OutboxStatus.CANCELLED, "checkin_done")
    assert row(session, other.id).status == OutboxStatus.SENT


CHANGES = [
    (lambda p, e: setattr(p, "sms_opted_out", True), OutboxStatus.SUPPRESSED, "opted_out"),
    (lambda p, e: setattr(p, "sms_consent", False), OutboxStatus.SUPPRESSED, "no_consent"),
    (lambda p, e: setattr(p, "number_status", "invalid"), OutboxStatus.SUPPRESSED, "number_invalid"),
    (lambda p, e: setattr(e, "status", EnrolmentStatus.WITHDRAWN), OutboxStatus.CANCELLED, "enrolment_ended"),
]


def test_consent_opt_out_number_and_enrolment_are_checked_at_send_time(app, session, sms):
    cases = []
    for change, status, reason in CHANGES:
        p = patient_at(session)
        cases.append((plant(session, p, due=NOW), status, reason))
        change(p, p.enrolments[-1])
    session.commit()
    tick(session, sms, NOW, settings(app))
    assert sms.sent == ()
    for r, status, reason in cases:
        got = row(session, r.id)
        assert (got.status, got.status_reason, got.final_at) == (status, reason, NOW)
    assert len(audits(session, "sms_cancelled")) == 1 and len(audits(session, "sms_suppressed")) == 3


def test_caregivers_get_copies_of_reminders_but_never_a_link(app, session, sms):
    p = patient_at(session, caregiver_name="Luis Diaz", caregiver_mobile_e164="+12025559876", caregiver_consent=True)
    copy = plant(session, p, due=NOW, recipient="caregiver")
    linked = plant(session, p, due=NOW, message_id="S17", recipient="caregiver",
                   text="Hi {first}, your follow-up visit is tomorrow. Details: {link}")
    reply = plant(session, p, due=NOW, message_id="S24", kind="event_reply", urgent=True, recipient="caregiver",
                  text="Thanks {first}.")
    tick(session, sms, NOW, settings(app))
    assert sorted((s.to, s.body) for s in sms.sent) == [("+12025559876", "Maria, a test text."),
                                                        ("+12025559876", "Thanks Luis.")]
    assert (row(session, linked.id).status, row(session, linked.id).status_reason) == (
        OutboxStatus.SUPPRESSED, "caregiver_no_link")
    assert row(session, copy.id).status == row(session, reply.id).status == OutboxStatus.SENT
    p.caregiver_opted_out = True
    session.commit()
    later = plant(session, p, due=NOW + timedelta(hours=1), recipient="caregiver")
    tick(session, sms, NOW + timedelta(hours=1), settings(app))
    assert row(session, later.id).status_reason == "opted_out" and len(sms.sent) == 2


def test_staff_pages_link_the_worklist_and_are_dropped_once_acknowledged(app, session, sms):
    from recovery.services import alerting
    p = patient_at(session)
    clinic_id = p.clinic_id
    from recovery.store.models import Clinic
    clinic = session.get(Clinic, clinic_id)
    nurse = make_staff(session, clinic, mobile="+12025550177", on_call=1, now=NOW)
    session.commit()
    alerting.raise_rules(session, patient=p, enrolment=p.enrolments[-1], rule_ids=["E1"], now=NOW)
    session.commit()
    page = rows(session, recipient="staff")[0]
    tick(session, sms, NOW, settings(app))
    assert [(s.to, s.body) for s in sms.sent] == [
        ("+12025550177", "Recovery Tracker: EMERGENCY alert waiting 0 min for a nurse. Please open the worklist: "
                         "https://recovery.example.org/nurse/")]
    assert row(session, page.id).status == OutboxStatus.SENT
    # the next rung is paged only while nobody has acknowledged
    alert = session.scalar(sa.select(Alert))
    alerting.acknowledge(session, alert, nurse, NOW + timedelta(minutes=1))
    session.commit()
    second = PlannedMessage(id="ESC", key="ESC:manual", kind="staff_page", send_at=NOW, due_at=NOW,
                            text_template="page {link}", urgent=True, quiet_moved=False)
    add_if_new(session, new_row(enrolment=None, patient_id=None, recipient="staff", message=second, now=NOW,
                                staff_id=nurse.id, alert_id=alert.id))
    session.commit()
    tick(session, sms, NOW + timedelta(minutes=2), settings(app))
    assert rows(session, occurrence_key="ESC:manual")[0].status_reason == "alert_acknowledged"
    assert len(sms.sent) == 1


# ---------------------------------------------------------------------------------------------
# Provider errors
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("days_after, task", [(1, "M4e"), (5, "M4")])
def test_an_invalid_number_fails_the_text_marks_the_number_and_opens_a_task(app, session, sms, days_after, task):
    p = patient_at(session, procedure_end=NOW - timedelta(days=days_after))
    sms.fail_number(p.mobile_e164, SendError("invalid_number", code=21211, http_status=400))
    r = plant(session, p, due=NOW)
    nxt = plant(session, p, due=NOW + timedelta(minutes=5), message_id="S09")
    tick(session, sms, NOW, settings(app))
    got = row(session, r.id)
    assert (got.status, got.status_reason, got.error_code) == (OutboxStatus.FAILED, "invalid_number", "21211")
    session.refresh(p)
    assert p.number_status == "invalid"
    assert alert_rules(session, p) == [task]
    tick(session, sms, NOW + timedelta(minutes=5), settings(app))  # never tried again
    assert row(session, nxt.id).status_reason == "number_invalid" and len(sms.attempts) == 1


def test_21610_marks_the_patient_opted_out_and_opens_an_urgent_m5_task(app, session, sms):
    p = patient_at(session)
    sms.fail_number(p.mobile_e164, SendError("opted_out", code=21610, http_status=400))
    r = plant(session, p, due=NOW)
    tick(session, sms, NOW, settings(app))
    assert (row(session, r.id).status, row(session, r.id).status_reason) == (OutboxStatus.SUPPRESSED, "opted_out")
    session.refresh(p)
    assert p.sms_opted_out
    alert = session.scalar(sa.select(Alert).where(Alert.patient_id == p.id))
    assert (alert.rules, alert.level) == (["M5"], "URGENT")


def test_retryable_errors_back_off_then_give_up_with_a_task(app, session, sms):
    p = patient_at(session)
    s = settings(app)
    sms.fail_next(SendError("retryable", code=20429, http_status=429), times=MAX_ATTEMPTS)
    r = plant(session, p, due=NOW)
    t = NOW
    for attempt in range(1, MAX_ATTEMPTS):
        tick(session, sms, t, s)
        got = row(session, r.id)
        assert (got.status, got.status_reason, got.attempts, got.error_code) == (
            OutboxStatus.PLANNED, "retry", attempt, "20429")
        assert t <= got.send_after <= t + timedelta(seconds=min(300, 2 * 2 ** (attempt - 1)))
        t = got.send_after
    tick(session, sms, t, s)
    got = row(session, r.id)
    assert (got.status, got.status_reason, got.attempts) == (OutboxStatus.FAILED, "retries_exhausted", MAX_ATTEMPTS)
    assert len(sms.attempts) == MAX_ATTEMPTS and sms.sent == ()
    assert alert_rules(session, p) == ["M4"]


def test_a_timeout_that_may_have_sent_waits_for_the_callback_before_retrying(app, session, sms):
    p = patient_at(session)
    sms.fail_next(SendError("retryable", reason="read timeout", may_have_sent=True))
    r = plant(session, p, due=NOW)
    tick(session, sms, NOW, settings(app))
    assert row(session, r.id).send_after >= NOW + timedelta(seconds=120)
    # the first callback of that attempt arrives: the row is tied to it and never sent again
    assert apply_status(session, outbox_id=r.id, sid="SM" + "a" * 32, status="sent", error_code=None,
                                 now=NOW + timedelta(seconds=5)) == "updated"
    session.commit()
    tick(session, sms, NOW + timedelta(minutes=5), settings(app))
    got = row(session, r.id)
    assert (got.status, got.provider_sid, sms.sent) == (OutboxStatus.SENT, "SM" + "a" * 32, ())


def test_a_permanent_error_fails_at_once(app, session, sms):
    p = patient_at(session)
    sms.fail_next(SendError("permanent", code=21606, http_status=400))
    r = plant(session, p, due=NOW)
    tick(session, sms, NOW, settings(app))
    assert (row(session, r.id).status, row(session, r.id).status_reason) == (OutboxStatus.FAILED, "provider_error")
    assert alert_rules(session, p) == ["M4"] and len(sms.attempts) == 1


def test_a_gateway_bug_is_retried_not_fatal(app, session):
    p = patient_at(session)
    r = plant(session, p, due=NOW)

    class Broken:
        def send(self, **kw):
            raise RuntimeError("boom +12025550100")

    report = tick(session, Broken(), NOW, settings(app))
    assert not report.errors and report.send.outcomes == {"retry": 1}
    assert row(session, r.id).status == OutboxStatus.PLANNED


# ---------------------------------------------------------------------------------------------
# Pacing
# ---------------------------------------------------------------------------------------------

def test_pacing_hands_out_slots_one_interval_apart_across_processes(app, session, sms):
    p = patient_at(session)
    for i in range(6):
        plant(session, p, due=NOW - timedelta(minutes=1, seconds=i))
    a = settings(app, worker_id="A", max_per_second=2, tick_seconds=1.5)  # claims 3 at a time
    b = settings(app, worker_id="B", max_per_second=2, tick_seconds=1.5)
    claims = [(a, c) for c in claim_due(session, NOW, a)] + [(b, c) for c in claim_due(session, NOW, b)]
    assert len(claims) == 6
    # both processes re-check their rows at the same moment: the slots interleave, 0.5 s apart
    order = [claims[0], claims[3], claims[1], claims[4], claims[2], claims[5]]
    slots = [prepare(session, c.id, NOW, SendContext(s)).slot for s, c in order]
    assert slots == [NOW + timedelta(seconds=0.5 * i) for i in range(6)]
    got = {r.id: r for r in rows(session)}
    assert all(got[c.id].lease_until >= got[c.id].send_after + timedelta(seconds=300) for _, c in claims)
    # a slot far in the past does not hold anyone back
    plant(session, p, due=NOW + timedelta(seconds=10), message_id="S09")
    (late,) = claim_due(session, NOW + timedelta(seconds=10), a)
    assert prepare(session, late.id, NOW + timedelta(seconds=10), SendContext(a)).slot == \
        NOW + timedelta(seconds=10)


def test_the_sender_waits_for_each_slot(app, session, sms):
    p = patient_at(session)
    for i in range(3):
        plant(session, p, due=NOW - timedelta(seconds=i))
    clock = {"t": NOW}
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock["t"] += timedelta(seconds=seconds)

    report = send_due(session, sms, settings(app, max_per_second=1, tick_seconds=5),
                               clock=lambda: clock["t"], sleep=sleep)
    assert report.sent == 3 and slept == [1.0, 1.0]
    assert sorted(r.sent_at for r in rows(session)) == [NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)]


# ---------------------------------------------------------------------------------------------
# Outage and DST
# ---------------------------------------------------------------------------------------------

def test_a_scheduler_down_for_an_hour_sends_the_gap_once_and_defers_quiet_ones(app, session, sms):
    p = patient_at(session)
    down = datetime(2026, 3, 10, 20, 30, tzinfo=NY)
    gap = [plant(session, p, due=down + timedelta(minutes=m), message_id=f"S{m:02d}") for m in (5, 20, 45)]
    urgent = plant(session, p, due=down + timedelta(minutes=50), message_id="S21", kind="event_reply", urgent=True)
    s = settings(app)
    tick(session, sms, down, s)  # the last tick before the outage: nothing due yet
    assert sms.sent == ()
    back = down + timedelta(hours=1)  # 21:30: the gap's 20:35 and 20:50 texts are due, and it is quiet
    tick(session, sms, back, s)
    tick(session, sms, back + timedelta(seconds=5), s)
    assert [s_.status_callback.endswith(f"={urgent.id}") for s_ in sms.sent] == [True]
    for r in gap:
        got = row(session, r.id)
        assert (got.status, got.send_after) == (OutboxStatus.PLANNED, datetime(2026, 3, 11, 8, 0, tzinfo=NY))
    morning = datetime(2026, 3, 11, 8, 0, tzinfo=NY)
    tick(session, sms, morning, s)
    tick(session, sms, morning + timedelta(seconds=5), s)
    ids = [int(x.status_callback.rsplit("=", 1)[1]) for x in sms.sent]
    assert sorted(ids) == sorted([urgent.id] + [r.id for r in gap]) and len(ids) == len(set(ids))


def test_an_hour_long_outage_in_the_day_sends_everything_due_in_the_gap(app, session, sms):
    p = patient_at(session)
    start = datetime(2026, 3, 10, 10, 0, tzinfo=NY)
    gap = [plant(session, p, due=start + timedelta(minutes=m), message_id=f"S{m % 100:02d}") for m in range(0, 60, 7)]
    tick(session, sms, start + timedelta(hours=1, seconds=3), settings(app))
    assert {r.status for r in rows(session)} == {OutboxStatus.SENT}
    assert sorted(int(x.status_callback.rsplit("=", 1)[1]) for x in sms.sent) == [r.id for r in gap]


@pytest.mark.parametrize("procedure_end, change_day", [
    (datetime(2026, 3, 5, 15, 0, tzinfo=UTC), datetime(2026, 3, 8).date()),   # spring forward
    (datetime(2026, 10, 28, 14, 0, tzinfo=UTC), datetime(2026, 11, 1).date()),  # fall back
])
def test_the_daily_0900_checkin_fires_once_a_day_across_the_2026_dst_changes(app, session, sms, procedure_end,
                                                                              change_day):
    clinic = make_clinic(session, now=procedure_end)
    p = enrol(session, clinic, procedure_end=procedure_end, now=procedure_end + timedelta(hours=3))
    session.commit()
    s = settings(app)
    t = procedure_end + timedelta(hours=3)
    stop = procedure_end + timedelta(days=7, hours=12)
    while t <= stop:  # a tick every 30 minutes, in real (UTC) time, through the change
        assert not tick(session, sms, t, s, scan_missed=False).errors
        t += timedelta(minutes=30)
    invites = [r for r in rows(session, patient_id=p.id, message_id="S06")
               if r.status == OutboxStatus.SENT and r.slot != "day0"]  # day 0's is at T0+6h
    local = sorted(r.sent_at.astimezone(NY) for r in invites)
    days = [d.date() for d in local]
    assert change_day in days and len(days) == len(set(days))  # once a day, the change day included
    assert all((d.hour, d.minute) == (9, 0) for d in local), local
    assert days == [days[0] + timedelta(days=i) for i in range(7)]  # days 1-7, none skipped


# ---------------------------------------------------------------------------------------------
# The real SDK against Prism (Twilio's own OpenAPI spec), canned errors on the magic numbers
# ---------------------------------------------------------------------------------------------

def test_the_pipeline_through_the_real_twilio_sdk_and_prism(app, session, twilio_gateway, twilio_errors):
    from tests.twilio import canned_errors as canned
    ok = patient_at(session, procedure_end=NOW - timedelta(days=4), first="Ana", mobile="+15558675310")
    invalid = patient_at(session, procedure_end=NOW - timedelta(days=4), mobile=canned.TO_INVALID)
    stopped = patient_at(session, procedure_end=NOW - timedelta(days=4), mobile=canned.TO_OPTED_OUT)
    busy = patient_at(session, procedure_end=NOW - timedelta(days=4), mobile=canned.TO_RATE_LIMITED_RETRY_AFTER)
    r_ok = plant(session, ok, due=NOW, message_id="S06", kind="checkin_invite", slot="day4", text=INVITE_TEXT)
    assert tick(session, twilio_gateway, NOW, settings(app), scan_missed=False).send.outcomes == {"sent": 1}
    got = row(session, r_ok.id)
    assert got.status == OutboxStatus.SENT and got.provider_sid.startswith("SM") and got.provider_status == "queued"
    form = dict(twilio_gateway.http_client._test_only_last_request.data)  # what the SDK really sent
    assert form["StatusCallback"] == f"https://recovery.example.org/twilio/status?ob={r_ok.id}"
    assert form["To"] == "+15558675310" and form["From"] == "+15005550006"
    assert form["Body"].startswith("Hi Ana, please do today's 2-minute recovery check-in: https://recovery.example.org/l/")
    r_invalid, r_stopped, r_busy = (plant(session, p, due=NOW) for p in (invalid, stopped, busy))
    report = tick(session, twilio_gateway, NOW, settings(app), scan_missed=False)
    assert report.send.outcomes == {"invalid_number": 1, "opted_out": 1, "retry": 1}
    assert (row(session, r_invalid.id).status, row(session, r_invalid.id).error_code) == (OutboxStatus.FAILED, "21211")
    assert row(session, r_stopped.id).status_reason == "opted_out"
    busy_row = row(session, r_busy.id)
    assert busy_row.status == OutboxStatus.PLANNED and busy_row.send_after >= NOW + timedelta(seconds=30)  # Retry-After
    for p in (invalid, stopped):
        session.refresh(p)
    assert invalid.number_status == "invalid" and stopped.sms_opted_out


INVITE_TEXT = "Hi {first}, please do today's 2-minute recovery check-in: {link}"


def test_several_texts_in_flight_still_send_each_once(app, session, sms):
    p = patient_at(session)
    ids = [plant(session, p, due=NOW - timedelta(seconds=i), message_id=f"S{i:02d}").id for i in range(45)]
    report = send_due(session, sms, settings(app, send_concurrency=4, batch=7), clock=lambda: NOW)
    assert report.sent == 45 and report.claimed == 45
    got = sorted(int(s.status_callback.rsplit("=", 1)[1]) for s in sms.sent)
    assert got == sorted(ids)
    assert {r.status for r in rows(session)} == {OutboxStatus.SENT}


# ---------------------------------------------------------------------------------------------
# Safety texts (issue 10 item 3): the sender's own quiet-hours check applies the 23:00 rule
# ---------------------------------------------------------------------------------------------

def plant_safety(session, patient, *, due: datetime, created: datetime | None = None, safety: bool = True):
    enrolment = patient.enrolments[-1]
    message = PlannedMessage(id="S01", key=f"S01:TD{due:%d%H%M}", kind="reminder", send_at=due, due_at=due,
                             text_template="Hi {first}, welcome home. Please have an adult stay with you tonight.",
                             urgent=False, quiet_moved=False, safety=safety)
    r = new_row(enrolment=enrolment, patient_id=patient.id, recipient="patient", message=message,
                now=created or due)
    assert add_if_new(session, r)
    session.commit()
    return r


@pytest.mark.parametrize("minute,outcome", [("22:30", "sent"), ("22:59", "sent"), ("23:00", "quiet_hours"),
                                            ("23:40", "quiet_hours"), ("07:59", "quiet_hours")])
def test_a_safety_text_may_go_until_2300_at_send_time(app, session, sms, minute, outcome):
    p = patient_at(session)
    day = "2026-03-10" if minute >= "12:00" else "2026-03-11"
    now = datetime.fromisoformat(f"{day}T{minute}").replace(tzinfo=NY)
    safe = plant_safety(session, p, due=now - timedelta(minutes=1))
    plain = plant(session, p, due=now - timedelta(minutes=1))  # a routine text due at the same moment
    report = tick(session, sms, now, settings(app))
    assert row(session, plain.id).status_reason == "quiet_hours"  # 21:00-08:00 for routine texts
    got = row(session, safe.id)
    if outcome == "sent":
        assert got.status == OutboxStatus.SENT and report.send.outcomes.get("sent") == 1
        assert sms.sent[0].body.startswith("Hi Maria, welcome home.")
    else:
        assert (got.status, got.status_reason) == (OutboxStatus.PLANNED, "quiet_hours") and sms.sent == ()
        assert got.send_after == datetime(2026, 3, 11, 8, 0, tzinfo=NY)


def test_a_safety_text_held_at_night_goes_at_0800(app, session, sms):
    p = patient_at(session)
    r = plant_safety(session, p, due=datetime(2026, 3, 10, 23, 15, tzinfo=NY))
    tick(session, sms, datetime(2026, 3, 10, 23, 20, tzinfo=NY), settings(app))
    assert row(session, r.id).send_after == datetime(2026, 3, 11, 8, 0, tzinfo=NY)
    tick(session, sms, datetime(2026, 3, 11, 8, 0, tzinfo=NY), settings(app))
    assert row(session, r.id).status == OutboxStatus.SENT


def test_lateness_counts_from_when_the_text_was_planned(app, session, sms):
    """A safety text planned at a late enrolment (due 11:00, planned at 22:00) is not stale at 08:00."""
    p = patient_at(session)
    due = datetime(2026, 3, 10, 11, 0, tzinfo=NY)
    r = plant_safety(session, p, due=due, created=datetime(2026, 3, 10, 22, 50, tzinfo=NY))
    tick(session, sms, datetime(2026, 3, 11, 8, 5, tzinfo=NY), settings(app))  # 21 h after due
    assert row(session, r.id).status == OutboxStatus.SENT
    # the 12 h rule still holds from that moment: a sender down all day suppresses it, and says so
    r2 = plant_safety(session, p, due=due - timedelta(minutes=1), created=datetime(2026, 3, 10, 12, 0, tzinfo=NY))
    tick(session, sms, datetime(2026, 3, 11, 0, 30, tzinfo=NY) + timedelta(hours=8), settings(app))
    assert (row(session, r2.id).status, row(session, r2.id).status_reason) == (OutboxStatus.SUPPRESSED, "stale")

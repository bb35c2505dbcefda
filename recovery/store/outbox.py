"""Planning texts into the outbox (the send pipeline is recovery/dispatch/: claims, prepare, sender, results).

Every planned text is one row with a unique dedupe key (enrolment + recipient + occurrence + due
time), so planning twice, or by two processes, gives one row.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain.plan.model import Template
from recovery.domain.timeline import PlannedMessage, Timeline, plan_reply
from recovery.store.models import Enrolment, OutboundMessage, OutboxStatus, Patient

# Copies to a caregiver: general reminders only, never check-ins or anything about symptoms.
CAREGIVER_KINDS = frozenset({"reminder"})
# Occurrence-key suffixes of the carrier texts (CTIA): the opt-in confirmation that must be the
# first text a number gets (the dispatcher holds the others until it has gone), and the one reply
# to an opt-out in the patient's own words (the only text that may go after an opt-out).
OPT_IN_REF, OPT_OUT_REF = "optin", "optout"


def dedupe_key(enrolment_id: int | None, recipient: str, key: str, due_at: datetime) -> str:
    return f"e{enrolment_id}:{recipient}:{key}:{due_at.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"


def slot_of(timeline: Timeline) -> dict[str, str]:
    """Map a check-in invitation/reminder key to its check-in slot."""
    out: dict[str, str] = {}
    for c in timeline.checkins:
        out[c.invite.key] = c.slot
        if c.reminder is not None:
            out[c.reminder.key] = c.slot
    return out


def recipients_for(patient: Patient, message: PlannedMessage) -> list[str]:
    out = ["patient"]
    if (message.kind in CAREGIVER_KINDS and patient.caregiver_mobile_e164
            and patient.caregiver_consent):
        out.append("caregiver")
    return out


def new_row(*, enrolment: Enrolment | None, patient_id: int | None, recipient: str,
            message: PlannedMessage, now: datetime, slot: str | None = None,
            staff_id: int | None = None, alert_id: int | None = None,
            checkin_id: int | None = None) -> OutboundMessage:
    return OutboundMessage(
        dedupe_key=dedupe_key(enrolment.id if enrolment else None, recipient if staff_id is None
                              else f"staff{staff_id}", message.key, message.due_at),
        enrolment_id=enrolment.id if enrolment else None, patient_id=patient_id, staff_id=staff_id,
        alert_id=alert_id, checkin_id=checkin_id, recipient=recipient, message_id=message.id,
        occurrence_key=message.key, slot=slot, kind=message.kind, urgent=message.urgent, safety=message.safety,
        text_template=message.text_template, due_at=message.due_at, send_after=message.send_at,
        status=OutboxStatus.PLANNED, attempts=0, created_at=now, updated_at=now)


def add_if_new(session: Session, row: OutboundMessage) -> bool:
    """Insert unless a row with the same dedupe key exists (a savepoint keeps the transaction)."""
    exists = session.scalar(sa.select(OutboundMessage.id).where(OutboundMessage.dedupe_key == row.dedupe_key))
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except sa.exc.IntegrityError:
        return False
    return True


def plan_timeline(session: Session, enrolment: Enrolment, patient: Patient, timeline: Timeline,
                  now: datetime, messages: list[PlannedMessage] | None = None) -> int:
    """Put the timeline's texts (or the given subset) into the outbox. Returns rows added.

    An occurrence that already has a row for the recipient that is not cancelled (planned, sent,
    failed ...) is not planned again, whatever its due time: a re-plan that moved its due time but
    not its send time (a new time zone, quiet hours) must not make it two texts. A re-plan cancels
    the rows it replaces first."""
    slots = slot_of(timeline)
    added = 0
    taken = set(session.execute(sa.select(OutboundMessage.recipient, OutboundMessage.occurrence_key).where(
        OutboundMessage.enrolment_id == enrolment.id, OutboundMessage.status != OutboxStatus.CANCELLED)).all())
    for m in (timeline.messages if messages is None else messages):
        for recipient in recipients_for(patient, m):
            if (recipient, m.key) in taken:
                continue
            added += add_if_new(session, new_row(enrolment=enrolment, patient_id=patient.id,
                                                 recipient=recipient, message=m, now=now,
                                                 slot=slots.get(m.key)))
    return added


def reply_for_event(template: Template, event: str) -> str | None:
    """The id of the template's event reply to `event` ("enrolled", "opted_out"), if it has one."""
    return next((m.id for m in template.messages if m.kind == "event_reply" and m.on == event), None)


def plan_opt_in(session: Session, enrolment: Enrolment, patient: Patient, template: Template,
                now: datetime) -> int:
    """The opt-in confirmation, at once, to the patient and to a consenting caregiver. A template
    without one (version 1) plans nothing. Returns rows added."""
    message_id = reply_for_event(template, "enrolled")
    if message_id is None or not patient.sms_consent:
        return 0
    message = plan_reply(template, message_id, event_at=now, tz=ZoneInfo(patient.timezone), ref=OPT_IN_REF,
                         language=patient.language)
    recipients = ["patient"] + (["caregiver"] if patient.caregiver_mobile_e164 and patient.caregiver_consent else [])
    return sum(add_if_new(session, new_row(enrolment=enrolment, patient_id=patient.id, recipient=r,
                                           message=message, now=now)) for r in recipients)

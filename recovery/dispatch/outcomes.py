"""How a row ends or goes back: final states, the order of provider statuses, releasing a claim, and
the nurse task when a patient's text did not go through."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from recovery.domain.timeline import recovery_day
from recovery.services import alerting
from recovery.store.enrolments import active_enrolment
from recovery.store import audit
from recovery.store.models import Enrolment, OutboundMessage, OutboxStatus, Patient


CHECKIN_KINDS = frozenset({"checkin_invite", "checkin_reminder"})


FINAL = frozenset({OutboxStatus.DELIVERED, OutboxStatus.UNDELIVERED, OutboxStatus.FAILED,
                   OutboxStatus.SUPPRESSED, OutboxStatus.CANCELLED})


OUTBOX_RANK = {OutboxStatus.PLANNED: 0, OutboxStatus.CLAIMED: 1, OutboxStatus.SENT: 2,
               OutboxStatus.DELIVERED: 3, OutboxStatus.UNDELIVERED: 3, OutboxStatus.FAILED: 3,
               OutboxStatus.SUPPRESSED: 3, OutboxStatus.CANCELLED: 3}


# Twilio MessageStatus → (rank, outbox status). Callbacks can arrive out of order: only a higher
# rank changes anything. Unknown statuses are tolerated and ignored.
PROVIDER_STATUS: dict[str, tuple[int, OutboxStatus]] = {
    "accepted": (1, OutboxStatus.SENT), "scheduled": (1, OutboxStatus.SENT), "queued": (1, OutboxStatus.SENT),
    "sending": (2, OutboxStatus.SENT), "sent": (3, OutboxStatus.SENT),
    "delivered": (4, OutboxStatus.DELIVERED), "partially_delivered": (4, OutboxStatus.DELIVERED),
    "undelivered": (4, OutboxStatus.UNDELIVERED), "failed": (4, OutboxStatus.FAILED),
    "canceled": (4, OutboxStatus.FAILED), "read": (5, OutboxStatus.DELIVERED),
}


def finish_row(session: Session, row: OutboundMessage, status: OutboxStatus, reason: str, now: datetime) -> None:
    row.status, row.status_reason, row.updated_at, row.final_at = status, reason, now, now
    row.claimed_by, row.lease_until = None, None
    audit.record(session, at=now, actor_type="system", actor_id=None,
                 action="sms_cancelled" if status == OutboxStatus.CANCELLED else "sms_suppressed",
                 patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                 detail={"message": row.message_id, "recipient": row.recipient, "reason": reason})


def release_row(row: OutboundMessage, send_after: datetime, reason: str, now: datetime, *, attempt_made: bool) -> None:
    """Back to planned without having sent anything (quiet hours, retry later)."""
    row.status, row.status_reason, row.send_after, row.updated_at = OutboxStatus.PLANNED, reason, send_after, now
    row.claimed_by, row.lease_until = None, None
    if not attempt_made:
        row.attempts = max(0, row.attempts - 1)


def provider_rank(status: str | None) -> int:
    return PROVIDER_STATUS.get((status or "").lower(), (0, None))[0]


def fail_row(session: Session, row: OutboundMessage, now: datetime, *, reason: str, code: int | str | None) -> None:
    row.status, row.status_reason, row.updated_at, row.final_at = OutboxStatus.FAILED, reason, now, now
    row.lease_until = None
    if code is not None:
        row.error_code = str(code)
    audit.record(session, at=now, actor_type="system", actor_id=None, action="sms_failed",
                 patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                 detail={"message": row.message_id, "recipient": row.recipient, "reason": reason,
                         "code": row.error_code})
    delivery_task(session, row, now)


def delivery_task(session: Session, row: OutboundMessage, now: datetime) -> None:
    """A text to the patient or caregiver that did not go through: nurse task M4, or M4e (URGENT)
    for the patient's own texts on days 0-2 (protocol §3.5). Staff pages only get the audit row."""
    if row.recipient not in ("patient", "caregiver") or row.patient_id is None:
        return
    patient = session.get(Patient, row.patient_id)
    enrolment = session.get(Enrolment, row.enrolment_id) if row.enrolment_id else active_enrolment(session, patient)
    rule = "M4"
    if row.recipient == "patient" and enrolment is not None and recovery_day(enrolment.procedure_end, now, patient.timezone) <= 2:
        rule = "M4e"
    alerting.raise_rules(session, patient=patient, enrolment=enrolment, rule_ids=[rule], now=now,
                         source="sms_delivery")

"""Delivery status callbacks: a row's status only moves forward; a text that did not go through opens a task."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.dispatch.outcomes import delivery_task, FINAL, OUTBOX_RANK, provider_rank, PROVIDER_STATUS
from recovery.messaging import error_kind
from recovery.services.contactability import mark_number_invalid
from recovery.store import audit
from recovery.store.db import locked_row
from recovery.store.models import OutboundMessage, OutboxStatus, Patient

OM = OutboundMessage


def apply_status(session: Session, *, outbox_id: int | None, sid: str | None, status: str | None,
                 error_code: str | None, now: datetime) -> str:
    """Apply one delivery status callback inside the caller's transaction. Idempotent and
    monotonic: a replay or a late, lower status changes nothing. Returns what happened."""
    status = (status or "").strip().lower()
    row = locked_row(session, OM, outbox_id) if outbox_id is not None else None
    if row is not None and sid and row.provider_sid and row.provider_sid != sid:
        # The callback of an earlier attempt whose SID we never stored: that attempt went out too.
        audit.record(session, at=now, actor_type="twilio", actor_id=None, action="sms_duplicate_suspected",
                     patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                     detail={"message": row.message_id, "status": status})
        return "duplicate"
    if row is None and sid:
        row = session.scalar(sa.select(OM).where(OM.provider_sid == sid).limit(1))
        if row is not None:
            row = locked_row(session, OM, row.id)
    if row is None:
        return "unknown"
    if status not in PROVIDER_STATUS:
        return "ignored"
    rank, target = PROVIDER_STATUS[status]
    changed = moved = False
    # A final state we reached without ever hearing from the provider (failed after a timeout,
    # suppressed after a release) yields to the provider's word about that very text.
    local_verdict = (row.sent_at is None and row.provider_status is None
                     and row.status in (OutboxStatus.FAILED, OutboxStatus.SUPPRESSED, OutboxStatus.CANCELLED))
    if row.provider_sid is None and sid:
        # The send went through although we never stored its SID (a crash, or a timeout being
        # retried): tie it to the row now, so the row is never sent again.
        row.provider_sid, changed = sid, True
    if rank > provider_rank(row.provider_status):
        row.provider_status, changed = status, True
    forward = (row.status not in (OutboxStatus.SUPPRESSED, OutboxStatus.CANCELLED)
               and OUTBOX_RANK[target] > OUTBOX_RANK[row.status])
    if (forward or (local_verdict and sid)) and row.status != target:
        row.status, moved, changed = target, True, True
        row.lease_until = None  # claimed_by stays: which process sent it
        row.sent_at = row.sent_at or now
        if target in FINAL:
            row.final_at = now
    if not changed:
        return "unchanged"
    row.updated_at = now
    if moved and target in (OutboxStatus.UNDELIVERED, OutboxStatus.FAILED):
        row.error_code = (error_code or "").strip()[:16] or row.error_code
        row.status_reason = "provider_" + status
        audit.record(session, at=now, actor_type="twilio", actor_id=None, action="sms_failed",
                     patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                     detail={"message": row.message_id, "recipient": row.recipient, "status": status,
                             "code": row.error_code})
        code = int(row.error_code) if (row.error_code or "").isdigit() else None
        if row.recipient == "patient" and error_kind(code, None) == "invalid_number" and row.patient_id:
            mark_number_invalid(session, session.get(Patient, row.patient_id), now, code)
        delivery_task(session, row, now)
    elif moved and target == OutboxStatus.DELIVERED:
        audit.record(session, at=now, actor_type="twilio", actor_id=None, action="sms_delivered",
                     patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                     detail={"message": row.message_id, "recipient": row.recipient})
    return "updated"

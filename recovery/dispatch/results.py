"""Recording what the provider said about a send: its SID and first status, or the error (retry or fail)."""
from __future__ import annotations

from concurrent.futures import wait
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.dispatch.outcomes import (CHECKIN_KINDS, fail_row, finish_row, provider_rank, PROVIDER_STATUS,
                                        release_row)
from recovery.dispatch.settings import DispatchSettings
from recovery.messaging import SendError, SendResult, retry_delay
from recovery.services.contactability import mark_number_invalid, mark_opted_out
from recovery.services.inbound import open_conversation
from recovery.store.db import UTCDateTime, locked_row, write_unit
from recovery.store.models import AuditEvent, OutboundMessage, OutboxStatus, Patient

OM = OutboundMessage


# After a timeout the provider may have accepted the text: wait for its status callback (which
# ties the SID to the row through ?ob=) before trying again.
MAY_HAVE_SENT_MIN_DELAY = timedelta(seconds=120)


# The hot path of every send, as plain SQL (portable SQLite >= 3.35 / PostgreSQL): SQLAlchemy walks
# a constructed statement for its cache key on every execution, which cost more than the UPDATE.
_RECORD_SENT = sa.text(
    "UPDATE outbound_message SET"
    " provider_sid = COALESCE(provider_sid, :sid),"
    " status = CASE WHEN status IN ('planned', 'claimed') THEN 'sent' ELSE status END,"
    " provider_status = CASE WHEN provider_status IS NULL OR provider_status IN :lower"
    "   THEN :provider_status ELSE provider_status END,"
    " sent_at = COALESCE(sent_at, :sent_at), lease_until = NULL, updated_at = :now, error_code = NULL"
    " WHERE id = :row_id"
    " RETURNING patient_id, message_id, recipient, kind, attempts, slot, provider_sid"
).bindparams(sa.bindparam("lower", expanding=True), sa.bindparam("sent_at", type_=UTCDateTime()),
             sa.bindparam("now", type_=UTCDateTime()))


_AUDIT = sa.insert(AuditEvent.__table__)  # Core, not the slower ORM bulk-insert path


def _audit_row(session: Session, *, at: datetime, action: str, patient_id: int | None, subject_id: int,
               detail: dict, actor_type: str = "system") -> None:
    """audit.record for the send hot path: the same append-only row, as one Core INSERT."""
    session.execute(_AUDIT, dict(at=at, actor_type=actor_type, actor_id=None, action=action, patient_id=patient_id,
                                 subject_type="outbound_message", subject_id=subject_id, detail=detail,
                                 request_id=None))


def record_sent(session: Session, row_id: int, result: SendResult, now: datetime, settings: DispatchSettings) -> None:
    """Store the provider's SID and initial status (one UPDATE ... RETURNING), never moving the
    row backwards: a status callback may have got there first."""
    rank = provider_rank(result.status)
    lower = [name for name, (r, _) in PROVIDER_STATUS.items() if r < rank] or ["-"]
    with write_unit(session):
        got = session.execute(_RECORD_SENT, dict(row_id=row_id, sid=result.provider_id, lower=lower,
                                                 provider_status=result.status, sent_at=now, now=now)).one()
        if got.provider_sid != result.provider_id:
            _audit_row(session, at=now, action="sms_duplicate_suspected", patient_id=got.patient_id,
                       subject_id=row_id, detail={"message": got.message_id})
        _audit_row(session, at=now, action="sms_sent", patient_id=got.patient_id, subject_id=row_id,
                   detail={"message": got.message_id, "recipient": got.recipient, "kind": got.kind,
                           "attempt": got.attempts})
        if got.recipient == "patient" and got.kind in CHECKIN_KINDS and got.slot:
            open_conversation(session, got.patient_id, got.slot, now, settings.reply_window)


def record_error(session: Session, row_id: int, err: SendError, now: datetime, settings: DispatchSettings) -> str:
    """Act on a refused send by its kind. Returns the outcome."""
    with write_unit(session):
        row = locked_row(session, OM, row_id)
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        row.error_code = str(err.code) if err.code is not None else row.error_code
        if err.kind == "invalid_number":
            if patient is not None and row.recipient == "patient":
                mark_number_invalid(session, patient, now, code=err.code)
            fail_row(session, row, now, reason="invalid_number", code=err.code)
            return "invalid_number"
        if err.kind == "opted_out":
            if patient is not None:
                mark_opted_out(session, patient, row.recipient, now, source="provider_21610")
            finish_row(session, row, OutboxStatus.SUPPRESSED, "opted_out", now)
            return "opted_out"
        if err.kind == "retryable":
            delay = retry_delay(err, row.attempts, rng=settings.rng, max_attempts=settings.max_attempts)
            if delay is not None:
                wait = timedelta(seconds=delay)
                if err.may_have_sent:
                    wait = max(wait, MAY_HAVE_SENT_MIN_DELAY)
                release_row(row, now + wait, "retry", now, attempt_made=True)
                return "retry"
            fail_row(session, row, now, reason="retries_exhausted", code=err.code)
            return "failed"
        fail_row(session, row, now, reason="provider_error", code=err.code)
        return "failed"

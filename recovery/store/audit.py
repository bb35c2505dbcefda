"""Append-only audit trail. Written in the same transaction as the change it records."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from recovery.store.models import AuditEvent


def record(session: Session, *, at: datetime, actor_type: str, actor_id: int | None, action: str,
           patient_id: int | None = None, subject_type: str | None = None,
           subject_id: int | None = None, detail: dict[str, Any] | None = None,
           request_id: str | None = None) -> AuditEvent:
    event = AuditEvent(at=at, actor_type=actor_type, actor_id=actor_id, action=action,
                       patient_id=patient_id, subject_type=subject_type, subject_id=subject_id,
                       detail=detail or {}, request_id=request_id)
    session.add(event)
    return event

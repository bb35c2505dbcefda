"""A patient asks for a fresh link to their recovery plan by entering their mobile number.

The answer is the same whether or not the number is enrolled (no probing); a link is only ever
texted to the number on file, through the outbox, and only to a patient who agreed to texts."""
from __future__ import annotations

from datetime import datetime
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain.timeline import PlannedMessage
from recovery.store import audit
from recovery.store.models import Enrolment, EnrolmentStatus, OutboundMessage, Patient
from recovery.store.outbox import add_if_new, new_row

LINK_TEXT = "Hi {first}, here is the link to your recovery plan: {link}"


def request_link(session: Session, mobile_e164: str, now: datetime, request_id: str | None = None,
                 may_send: Callable[[int], bool] = lambda patient_id: True) -> bool:
    """Queue a plan link for the enrolled patient with this number. True when one was queued.

    A shared family phone (services/shared_numbers.py) gets one link per patient on it, each text
    naming its patient by first name: we cannot tell which of them asked, and each link opens only
    its own patient's plan.

    `may_send(patient_id)` is asked last, only for a patient who would get a text, and counts that
    text against the caller's limit (the web's per-patient send limit)."""
    rows = session.execute(
        sa.select(Patient, Enrolment).join(Enrolment, Enrolment.patient_id == Patient.id)
        .where(Patient.mobile_e164 == mobile_e164, Enrolment.status == EnrolmentStatus.ACTIVE)
        .order_by(Enrolment.id.desc())).all()
    newest: dict[int, tuple[Patient, Enrolment]] = {}
    for patient, enrolment in rows:
        newest.setdefault(patient.id, (patient, enrolment))
    queued = [_queue(session, patient, enrolment, now, request_id, may_send) for patient, enrolment in newest.values()]
    return any(queued)


def _queue(session: Session, patient: Patient, enrolment: Enrolment, now: datetime, request_id: str | None,
           may_send: Callable[[int], bool]) -> bool:
    if patient.text_block:
        return False
    message = PlannedMessage(id="LINK", key=f"LINK:{now:%Y%m%dT%H%M%S}", kind="event_reply", send_at=now,
                             due_at=now, text_template=LINK_TEXT, urgent=True, quiet_moved=False)
    row = new_row(enrolment=enrolment, patient_id=patient.id, recipient="patient", message=message, now=now)
    if session.scalar(sa.select(OutboundMessage.id).where(OutboundMessage.dedupe_key == row.dedupe_key)):
        return False  # a double tap: one text, and it costs the patient one of their texts only once
    if not may_send(patient.id):
        return False
    added = add_if_new(session, row)
    if added:
        audit.record(session, at=now, actor_type="patient", actor_id=patient.id, action="link_requested",
                     patient_id=patient.id, request_id=request_id)
    return added

"""Shared family phones (issue 13 §2): one mobile used by two or more patients being monitored.

A mobile that another active patient of the clinic already has is allowed only after the nurse
confirms it is a shared family phone (the enrolment and edit forms); texts from a number that two
or more active patients hold go to a nurse task instead of into one patient's check-in
(services/inbound.py).

"Shared" is computed, never stored: a number is shared while two or more patients with an active
(not ended) enrolment hold it. One rule in one place, no flag to keep in step: ending one of the
two episodes or changing one mobile makes the number single again at once, and a duplicate that
reached the database without the question (a hospital feed, the demo CLI, rows older than this
rule) is treated as shared too, which is the safe reading (we cannot tell who is texting). What the
nurse's confirmation adds is the audit row on each patient, saying who confirmed it and when.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.store import audit
from recovery.store.models import Enrolment, EnrolmentStatus, Patient, StaffUser

SHARED_MESSAGE = ("Another patient being monitored by this clinic already has this mobile number. "
                  "If it is a shared family phone, tick “This is a shared family phone” and save again; "
                  "otherwise check the number.")


class NumberShared(ValueError):
    """The mobile is another active patient's and the nurse has not confirmed it is shared."""

    def __init__(self, others: list[Patient]):
        super().__init__(SHARED_MESSAGE)
        self.others = others


def _active_on(number: str):
    active = sa.select(Enrolment.id).where(Enrolment.patient_id == Patient.id,
                                           Enrolment.status == EnrolmentStatus.ACTIVE).exists()
    return sa.select(Patient).where(Patient.mobile_e164 == number, active).order_by(Patient.id)


def others_on_number(session: Session, clinic_id: int, number: str | None, *,
                     except_patient_id: int | None = None) -> list[Patient]:
    """The clinic's other patients with an active enrolment who have this mobile."""
    if not number:
        return []
    stmt = _active_on(number).where(Patient.clinic_id == clinic_id)
    if except_patient_id is not None:
        stmt = stmt.where(Patient.id != except_patient_id)
    return list(session.scalars(stmt))


def sharing(session: Session, patient: Patient) -> list[Patient]:
    """The other active patients on this patient's mobile (empty: not a shared phone). For the
    patient page; only meaningful while the patient's own episode is active."""
    return others_on_number(session, patient.clinic_id, patient.mobile_e164, except_patient_id=patient.id)


def active_holders(patients: list[Patient], session: Session) -> list[Patient]:
    """Of the patients whose mobile a text came from, those with an active enrolment when there
    are two or more (a shared number: inbound.py sends the text to a nurse task), else []."""
    if len(patients) < 2:
        return []
    ids = set(session.scalars(_active_on(patients[0].mobile_e164).with_only_columns(Patient.id)))
    holders = [p for p in patients if p.id in ids]
    return holders if len(holders) >= 2 else []


def check_number(session: Session, *, clinic_id: int, number: str, patient_id: int | None,
                 confirmed: bool | None) -> list[Patient]:
    """The other active patients on `number`. `confirmed` None: the caller cannot ask (a hospital
    feed, the demo): nothing is refused. False with others: NumberShared (nothing written)."""
    others = others_on_number(session, clinic_id, number, except_patient_id=patient_id)
    if others and confirmed is False:
        raise NumberShared(others)
    return others


def record_confirmed(session: Session, *, patient: Patient, others: list[Patient], staff: StaffUser | None,
                     now: datetime, request_id: str | None = None) -> None:
    """The nurse confirmed a shared family phone: an audit row on each patient who has it (their
    texts now go to a nurse task)."""
    everyone = [patient, *others]
    for p in everyone:
        audit.record(session, at=now, actor_type="staff" if staff else "system", actor_id=staff.id if staff else None,
                     action="shared_number_confirmed", patient_id=p.id, subject_type="patient", subject_id=p.id,
                     detail={"patients": [q.id for q in everyone]}, request_id=request_id)

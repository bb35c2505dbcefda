"""Which enrolment of a patient counts now: queries several services share (contactability,
inbound, the send pipeline). They sit below the services so none of them imports another for it."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.store.models import Enrolment, EnrolmentStatus, Patient


def active_enrolment(session: Session, patient: Patient) -> Enrolment | None:
    return session.scalar(sa.select(Enrolment).where(Enrolment.patient_id == patient.id,
                                                     Enrolment.status == EnrolmentStatus.ACTIVE)
                          .order_by(Enrolment.id.desc()).limit(1))


def latest_enrolment(session: Session, patient: Patient) -> Enrolment | None:
    return session.scalar(sa.select(Enrolment).where(Enrolment.patient_id == patient.id)
                          .order_by(Enrolment.id.desc()).limit(1))

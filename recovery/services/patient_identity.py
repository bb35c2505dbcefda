"""The one rule on a patient's medical record number: unique within the clinic (the database says
so too, uq_patient_clinic_mrn; this check turns it into words before a write). Compared without
regard to case: "ab123" and "AB123" are the same record."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.store.models import Patient

MRN_IN_USE = "Another patient of this clinic has this medical record number."


class MrnInUse(ValueError):
    def __init__(self):
        super().__init__(MRN_IN_USE)


def check_mrn(session: Session, clinic_id: int, mrn: str | None, *, patient_id: int | None = None) -> None:
    """Raise MrnInUse when another patient of the clinic holds `mrn` (None: no MRN, always fine)."""
    if not mrn:
        return
    stmt = sa.select(Patient.id).where(Patient.clinic_id == clinic_id,
                                       sa.func.lower(Patient.mrn) == mrn.lower())
    if patient_id is not None:
        stmt = stmt.where(Patient.id != patient_id)
    if session.scalar(stmt.limit(1)) is not None:
        raise MrnInUse()

"""Enrolment from the hospital's systems (a FHIR transaction Bundle, issue 15): the same use-case
as the nurse's form (recovery/services/enrolment.enrol_patient), plus the MRN, birth date and the
hospital's Procedure identifier, which makes a resent message find the enrolment it made."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain.plan.model import Template
from recovery.services.patient_identity import MrnInUse, check_mrn
from recovery.services.enrolment import EnrolmentInput, enrol_patient
from recovery.store import audit
from recovery.store.models import ApiToken, Clinic, Enrolment, Patient

MRN_TAKEN = "A patient with this medical record number is already enrolled in this clinic."


@dataclass(frozen=True)
class Result:
    enrolment: Enrolment
    created: bool  # False: this Procedure identifier had enrolled them already; nothing written


def existing(session: Session, clinic: Clinic, procedure_key: str) -> Enrolment | None:
    return session.scalar(sa.select(Enrolment).where(Enrolment.clinic_id == clinic.id,
                                                     Enrolment.source_procedure == procedure_key))


def mrn_taken(session: Session, clinic: Clinic, mrn: str) -> bool:
    """The one MRN rule (services/patient_identity.py), as the feed asks it."""
    try:
        check_mrn(session, clinic.id, mrn)
    except MrnInUse:
        return True
    return False


def enrol_from_feed(session: Session, *, clinic: Clinic, token: ApiToken, data: EnrolmentInput, mrn: str,
                    birth_date: date | None, procedure_key: str, template: Template, now: datetime,
                    request_id: str | None = None) -> Result:
    """Raises OverrideError / TimelineError as enrol_patient does (nothing written), ValueError(MRN_TAKEN)."""
    found = existing(session, clinic, procedure_key)
    if found is not None:
        return Result(found, False)
    if mrn_taken(session, clinic, mrn):
        raise ValueError(MRN_TAKEN)
    enrolment = enrol_patient(session, clinic=clinic, staff=None, data=data, template=template, now=now,
                              request_id=request_id)
    enrolment.source_procedure = procedure_key
    patient = session.get(Patient, enrolment.patient_id)
    patient.mrn, patient.birth_date = mrn, birth_date
    session.flush()
    audit.record(session, at=now, actor_type="api_token", actor_id=token.id, action="fhir_enrolled",
                 patient_id=patient.id, subject_type="enrolment", subject_id=enrolment.id,
                 detail={"token": token.id}, request_id=request_id)
    return Result(enrolment, True)

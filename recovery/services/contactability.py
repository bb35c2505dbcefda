"""Whether a patient's number may still be texted: opt-outs (STOP, in words, or the carrier's error)
and numbers that cannot take texts. Each change is audited; a patient's opt-out opens the
phone follow-up task (M5)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from recovery.services import alerting
from recovery.store.enrolments import active_enrolment
from recovery.store import audit
from recovery.store.models import Patient


def mark_number_invalid(session: Session, patient: Patient, now: datetime, code: int | str | None) -> None:
    if patient.number_status == "invalid":
        return
    patient.number_status = "invalid"
    audit.record(session, at=now, actor_type="system", actor_id=None, action="sms_number_invalid",
                 patient_id=patient.id, subject_type="patient", subject_id=patient.id,
                 detail={"code": str(code) if code is not None else None})


def mark_opted_out(session: Session, patient: Patient, recipient: str, now: datetime, source: str) -> bool:
    """Record an opt-out of the patient's or the caregiver's number. Monitoring goes on: a patient's
    opt-out opens an URGENT task to arrange phone follow-up (M5). Returns True when it changed."""
    if recipient == "caregiver":
        if patient.caregiver_opted_out:
            return False
        patient.caregiver_opted_out = True
    else:
        if patient.sms_opted_out:
            return False
        patient.sms_opted_out = True
    by_sender = source in ("sms_keyword", "sms_words")  # the patient's own text, as a keyword or in words
    audit.record(session, at=now, actor_type=(recipient if by_sender else "system"),
                 actor_id=patient.id if by_sender else None, action="sms_opted_out",
                 patient_id=patient.id, subject_type="patient", subject_id=patient.id,
                 detail={"who": recipient, "source": source})
    enrolment = active_enrolment(session, patient)
    if recipient != "caregiver" and enrolment is not None:  # monitoring ended: nobody to follow up by phone
        alerting.raise_rules(session, patient=patient, enrolment=enrolment, rule_ids=["M5"], now=now, source=source)
    return True

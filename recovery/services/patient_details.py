"""Changing a patient's details after enrolment (issue 13 §2 "Edit a patient"). A use-case: it
takes a session, the nurse and `now`, writes one audit row with each changed field's old and new
value, and leaves the commit to the caller.

What a change does to texts:
* a new mobile: texts still planned go to it (the sender reads the number at send time); a
  "number not working" flag is cleared; nothing that failed on the old number is retried. An
  opt-out stays: the patient asked us to stop, whatever their number (they can text START).
* consent to texts given: the plan's texts still ahead are planned (and the opt-in confirmation,
  if the number never had one); withdrawn: every planned text to the patient is cancelled.
* a new time zone: the texts still ahead are re-planned on the new local times.
* caregiver: a new caregiver number is a new opt-out state; copies are planned when consent is
  given and cancelled when it is withdrawn or the number removed.
* nothing is planned for an ended enrolment, and a paused one is held at send time as always.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain.identity import clean_mrn
from recovery.store import audit
from recovery.services.enrolment import replan_texts, retranslate_planned, timeline_for
from recovery.services.episodes import replan_ahead
from recovery.services.patient_identity import check_mrn
from recovery.services.worklist import SHOWN_OF_PATIENT, patient_changed
from recovery.services.shared_numbers import check_number, record_confirmed
from recovery.store.models import Enrolment, EnrolmentStatus, OutboundMessage, OutboxStatus, Patient, StaffUser
from recovery.store.outbox import OPT_IN_REF, plan_opt_in
from recovery.domain.plan.model import Template

OM = OutboundMessage


@dataclass(frozen=True)
class PatientDetails:
    mobile_e164: str
    timezone: str
    language: str
    sms_consent: bool
    caregiver_name: str | None
    caregiver_mobile_e164: str | None
    caregiver_consent: bool
    mrn: str | None = None
    birth_date: date | None = None

    @classmethod
    def of(cls, p: Patient) -> "PatientDetails":
        return cls(**{f.name: getattr(p, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Changed:
    fields: tuple[str, ...]
    cancelled: int
    planned: int


def _cancel(session: Session, enrolment: Enrolment, recipient: str, reason: str, now: datetime) -> int:
    rows = session.scalars(sa.select(OM).where(OM.enrolment_id == enrolment.id, OM.recipient == recipient,
                                               OM.status == OutboxStatus.PLANNED)).all()
    for row in rows:
        row.status, row.status_reason, row.updated_at, row.final_at = OutboxStatus.CANCELLED, reason, now, now
        row.dedupe_key = f"{row.dedupe_key}~x{row.id}"  # consent given again later plans them anew
    return len(rows)


def _plain(value):
    """A value as the audit row's JSON holds it (a day as 1950-03-07)."""
    return value.isoformat() if isinstance(value, date) else value


def change_details(session: Session, *, patient: Patient, enrolment: Enrolment | None, new: PatientDetails,
                   template: Template | None, staff: StaffUser, now: datetime,
                   request_id: str | None = None, shared_phone: bool | None = None) -> Changed:
    """Raises MrnInUse or NumberShared (a new mobile another active patient has, without the
    nurse's "shared family phone"; services/shared_numbers.py) before anything changes."""
    old = PatientDetails.of(patient)
    new = PatientDetails(**{**new.__dict__, "caregiver_consent": bool(new.caregiver_consent
                                                                        and new.caregiver_mobile_e164),
                            "mrn": clean_mrn(new.mrn)})
    changed = tuple(f.name for f in fields(PatientDetails) if getattr(old, f.name) != getattr(new, f.name))
    if not changed:
        return Changed((), 0, 0)
    if "mrn" in changed:
        check_mrn(session, patient.clinic_id, new.mrn, patient_id=patient.id)  # MrnInUse: nothing changed yet
    sharing = []
    if "mobile_e164" in changed:  # NumberShared: nothing changed yet
        sharing = check_number(session, clinic_id=patient.clinic_id, number=new.mobile_e164, patient_id=patient.id,
                               confirmed=shared_phone)
    detail: dict = {"changes": {name: {"old": _plain(getattr(old, name)), "new": _plain(getattr(new, name))}
                                for name in changed}}
    for name in changed:
        setattr(patient, name, getattr(new, name))
    if "mobile_e164" in changed and patient.number_status != "ok":
        detail["number_status"] = {"old": patient.number_status, "new": "ok"}
        patient.number_status = "ok"
    if "caregiver_mobile_e164" in changed and patient.caregiver_opted_out:
        detail["caregiver_opted_out"] = {"old": True, "new": False}
        patient.caregiver_opted_out = False
    session.flush()
    if SHOWN_OF_PATIENT & set(changed):
        patient_changed(session, patient.id, now)  # the nurses' polling worklists show it
    if sharing and shared_phone:
        record_confirmed(session, patient=patient, others=sharing, staff=staff, now=now, request_id=request_id)
        detail["shared_with"] = [o.id for o in sharing]
    cancelled = planned = 0
    live = enrolment is not None and enrolment.status == EnrolmentStatus.ACTIVE and template is not None
    if live:
        if not patient.sms_consent:
            if old.sms_consent:
                cancelled += _cancel(session, enrolment, "patient", "no_consent", now)
                cancelled += _cancel(session, enrolment, "caregiver", "no_consent", now)
        else:
            if not (patient.caregiver_consent and patient.caregiver_mobile_e164) and old.caregiver_consent:
                cancelled += _cancel(session, enrolment, "caregiver", "no_consent", now)
            if "language" in changed and template is not None:
                detail["texts_retranslated"] = retranslate_planned(session, enrolment, template, patient.language)
            if "timezone" in changed:
                moved, added = replan_texts(session, enrolment, patient, timeline_for(enrolment, patient, template),
                                            now, template=template)
                cancelled, planned = cancelled + moved, planned + added
            planned += replan_ahead(session, enrolment, patient, template, now)
            if not old.sms_consent and session.scalar(sa.select(OM.id).where(
                    OM.enrolment_id == enrolment.id, OM.occurrence_key.like(f"%:{OPT_IN_REF}")).limit(1)) is None:
                planned += plan_opt_in(session, enrolment, patient, template, now)
    detail.update(texts_cancelled=cancelled, texts_planned=planned)
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="patient_details_changed",
                 patient_id=patient.id, subject_type="patient", subject_id=patient.id, detail=detail,
                 request_id=request_id)
    return Changed(changed, cancelled, planned)


def choose_language(session: Session, *, patient: Patient, enrolment: Enrolment | None, template: Template | None,
                    language: str, now: datetime, request_id: str | None = None) -> bool:
    """The patient's own choice on their pages ("English · Español"): stored, audited like the
    nurse's change, and the texts still planned go in it. False: nothing changed."""
    if language == patient.language:
        return False
    detail: dict = {"changes": {"language": {"old": patient.language, "new": language}}}
    patient.language = language
    if enrolment is not None and template is not None:
        detail["texts_retranslated"] = retranslate_planned(session, enrolment, template, language)
    audit.record(session, at=now, actor_type="patient", actor_id=patient.id, action="patient_language",
                 patient_id=patient.id, subject_type="patient", subject_id=patient.id, detail=detail,
                 request_id=request_id)
    return True

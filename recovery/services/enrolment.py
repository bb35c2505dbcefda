"""Enrolling a patient and correcting procedure times. Use-cases: they take a session and `now`."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.services.contactability import mark_opted_out
from recovery.services.patient_identity import check_mrn
from recovery.services.worklist import patient_changed
from recovery.services.shared_numbers import check_number, record_confirmed
from recovery.store import audit
from recovery.store.enrolments import current_enrolment
from recovery.store.models import (Clinic, Enrolment, EnrolmentStatus, OutboundMessage, OutboxStatus,
                             Patient, StaffUser)
from recovery.domain.plan.model import Template
from recovery.domain.plan.overrides import Overrides
from recovery.domain.episode_rules import held_by_pause
from recovery.domain.identity import clean_mrn
from recovery.domain.timeline import Appointment, Timeline, build_timeline, fit_daily_limit, replan
from recovery.store.outbox import plan_opt_in, plan_timeline


@dataclass
class EpisodeInput:
    """One episode of care (a procedure): what a new enrolment of a known patient needs."""
    procedure_type: str
    procedure_end: datetime  # aware
    discharge_at: datetime | None = None
    baseline_back_pain: int | None = None
    baseline_leg_symptoms: list[str] = field(default_factory=list)
    working: bool = False
    brace: bool = False
    overrides: dict = field(default_factory=dict)


@dataclass
class EnrolmentInput:
    first_name: str
    last_name: str
    mobile_e164: str
    timezone: str
    procedure_type: str
    procedure_end: datetime  # aware
    discharge_at: datetime | None = None
    language: str = "en"
    sms_consent: bool = False
    caregiver_name: str | None = None
    caregiver_mobile_e164: str | None = None
    caregiver_consent: bool = False
    baseline_back_pain: int | None = None
    baseline_leg_symptoms: list[str] = field(default_factory=list)
    working: bool = False
    brace: bool = False
    overrides: dict = field(default_factory=dict)
    mrn: str | None = None
    birth_date: date | None = None
    # The nurse's answer to "this is a shared family phone" (services/shared_numbers.py): False
    # refuses a mobile another active patient of the clinic has; None: not asked (a feed, the demo).
    shared_phone: bool | None = None

    @property
    def episode(self) -> EpisodeInput:
        return EpisodeInput(procedure_type=self.procedure_type, procedure_end=self.procedure_end,
                            discharge_at=self.discharge_at, baseline_back_pain=self.baseline_back_pain,
                            baseline_leg_symptoms=list(self.baseline_leg_symptoms), working=self.working,
                            brace=self.brace, overrides=dict(self.overrides))


def appointment_of(enrolment: Enrolment) -> Appointment | None:
    """The enrolment's booked follow-up appointment, or None (the plan's own day)."""
    if enrolment.followup_at is None:
        return None
    return Appointment(at=enrolment.followup_at, place=enrolment.followup_place or "")


def overrides_for(enrolment: Enrolment) -> Overrides:
    data = dict(enrolment.overrides or {})
    data["working"], data["brace"] = enrolment.working, enrolment.brace
    return Overrides.from_dict(data)


_TIMELINES: OrderedDict[tuple, tuple[Template, Timeline]] = OrderedDict()
_TIMELINES_MAX = 4096
_timelines_lock = threading.Lock()


def timeline_for(enrolment: Enrolment, patient: Patient, template: Template,
                 now: datetime | None = None) -> Timeline:
    """The enrolment's timeline. Timelines are pure and immutable, and every page of a patient
    needs one, so they are cached on everything they depend on (a changed time or override is a
    new key; `now`-filtered timelines are not cached)."""
    followup = appointment_of(enrolment)
    if now is not None:
        return build_timeline(template, procedure_end=enrolment.procedure_end,
                              discharge=enrolment.discharge_at, tz=ZoneInfo(patient.timezone),
                              overrides=overrides_for(enrolment), now=now, language=patient.language,
                              followup=followup)
    key = (id(template), enrolment.procedure_end, enrolment.discharge_at, patient.timezone, patient.language,
           json.dumps(enrolment.overrides or {}, sort_keys=True), enrolment.working, enrolment.brace, followup)
    with _timelines_lock:
        hit = _TIMELINES.get(key)
        if hit is not None and hit[0] is template:
            _TIMELINES.move_to_end(key)
            return hit[1]
    timeline = build_timeline(template, procedure_end=enrolment.procedure_end,
                              discharge=enrolment.discharge_at, tz=ZoneInfo(patient.timezone),
                              overrides=overrides_for(enrolment), language=patient.language, followup=followup)
    with _timelines_lock:
        _TIMELINES[key] = (template, timeline)
        while len(_TIMELINES) > _TIMELINES_MAX:
            _TIMELINES.popitem(last=False)
    return timeline


def number_opted_out(session: Session, number: str | None) -> bool:
    """Whether this number opted out on any record holding it (as a patient's or a caregiver's)."""
    if not number:
        return False
    return session.scalar(sa.select(Patient.id).where(sa.or_(
        sa.and_(Patient.mobile_e164 == number, Patient.sms_opted_out.is_(True)),
        sa.and_(Patient.caregiver_mobile_e164 == number, Patient.caregiver_opted_out.is_(True)))).limit(1)) is not None


def _probe(episode: EpisodeInput, timezone: str, language: str, template: Template, now: datetime) -> Timeline:
    """The new episode's timeline, built before anything is written: a bad override or time fails
    here (OverrideError / TimelineError) and leaves the database as it was."""
    probe = Enrolment(procedure_end=episode.procedure_end, discharge_at=episode.discharge_at,
                      overrides=dict(episode.overrides), working=episode.working, brace=episode.brace)
    return timeline_for(probe, Patient(timezone=timezone, language=language), template, now=now)


def _open_episode(session: Session, *, patient: Patient, clinic: Clinic, staff: StaffUser | None,
                  episode: EpisodeInput, template: Template, timeline: Timeline, now: datetime) -> tuple[Enrolment, int]:
    """The enrolment row of a new episode and its plan's texts (when the patient agreed to texts).
    Returns (enrolment, texts planned)."""
    enrolment = Enrolment(patient=patient, clinic_id=clinic.id, procedure_type=episode.procedure_type,
                          procedure_end=episode.procedure_end, discharge_at=episode.discharge_at,
                          template_id=template.id, template_version=str(template.version),
                          plan_version_id=template.published_id,
                          overrides=dict(episode.overrides), baseline_back_pain=episode.baseline_back_pain,
                          baseline_leg_symptoms=list(episode.baseline_leg_symptoms), working=episode.working,
                          brace=episode.brace, status=EnrolmentStatus.ACTIVE, created_at=now,
                          created_by_id=staff.id if staff else None)
    session.add(enrolment)
    session.flush()
    planned = plan_timeline(session, enrolment, patient, timeline, now) if patient.sms_consent else 0
    return enrolment, planned


def enrol_patient(session: Session, *, clinic: Clinic, staff: StaffUser | None, data: EnrolmentInput,
                  template: Template, now: datetime, request_id: str | None = None) -> Enrolment:
    """Create the patient and the enrolment, plan every text into the outbox, audit it.

    Raises OverrideError / TimelineError (nothing written) when the plan cannot be built, and
    MrnInUse (nothing written) when another patient of the clinic has the MRN, and NumberShared
    (nothing written) when another active patient has the mobile and the nurse did not confirm a
    shared family phone."""
    mrn = clean_mrn(data.mrn)
    check_mrn(session, clinic.id, mrn)
    sharing = check_number(session, clinic_id=clinic.id, number=data.mobile_e164, patient_id=None,
                           confirmed=data.shared_phone)
    timeline = _probe(data.episode, data.timezone, data.language, template, now)

    # Opt-out holds per number (a carrier blocks the number, not a record): a number that texted
    # STOP stays opted out on a later enrolment, as patient or caregiver, until it texts START.
    patient_opted_out = number_opted_out(session, data.mobile_e164)
    caregiver_opted_out = bool(data.caregiver_mobile_e164) and number_opted_out(session, data.caregiver_mobile_e164)
    patient = Patient(clinic_id=clinic.id, first_name=data.first_name.strip(),
                      last_name=data.last_name.strip(), mobile_e164=data.mobile_e164,
                      timezone=data.timezone, language=data.language, sms_consent=data.sms_consent,
                      sms_opted_out=False, number_status="ok", caregiver_name=data.caregiver_name or None,
                      caregiver_mobile_e164=data.caregiver_mobile_e164 or None,
                      caregiver_consent=bool(data.caregiver_consent and data.caregiver_mobile_e164),
                      caregiver_opted_out=False, created_at=now, mrn=mrn, birth_date=data.birth_date)
    session.add(patient)
    session.flush()
    if sharing and data.shared_phone:
        record_confirmed(session, patient=patient, others=sharing, staff=staff, now=now, request_id=request_id)
    enrolment, planned = _open_episode(session, patient=patient, clinic=clinic, staff=staff, episode=data.episode,
                                       template=template, timeline=timeline, now=now)
    # after the episode opens: the phone follow-up task (M5) belongs to it
    if patient_opted_out:  # the nurse is told, as at a STOP
        mark_opted_out(session, patient, "patient", now, source="number_opted_out")
    if caregiver_opted_out:
        mark_opted_out(session, patient, "caregiver", now, source="number_opted_out")
    planned += plan_opt_in(session, enrolment, patient, template, now)
    actor = ("staff", staff.id) if staff else ("system", None)
    audit.record(session, at=now, actor_type=actor[0], actor_id=actor[1], action="patient_enrolled",
                 patient_id=patient.id, subject_type="enrolment", subject_id=enrolment.id,
                 detail={"template": template.id, "version": str(template.version),
                         "texts_planned": planned, "sms_consent": data.sms_consent},
                 request_id=request_id)
    return enrolment


class EpisodeStillActive(Exception):
    """A new episode needs the current one ended first (its texts and alerts would mix)."""


def start_new_episode(session: Session, *, patient: Patient, clinic: Clinic, staff: StaffUser,
                      episode: EpisodeInput, template: Template, now: datetime,
                      request_id: str | None = None) -> Enrolment:
    """A new enrolment of a known patient for another procedure, on the clinic's plan for new
    enrolments (`template`: clinic_plans.plan_for_new). Only once the current episode has ended:
    one active episode per patient, so texts, replies, check-ins and alerts have one home. The new
    one is the current episode from now on (store/enrolments.current_enrolment); the earlier ones
    keep their rows. The opt-in confirmation (S00) is not sent again: the number is in the
    programme already; a number that opted out stays out (its texts are suppressed as before).

    Raises EpisodeStillActive, or OverrideError / TimelineError (nothing written)."""
    previous = current_enrolment(patient)
    if previous is not None and previous.status == EnrolmentStatus.ACTIVE:
        raise EpisodeStillActive("monitoring of the current episode has not ended: end it first")
    timeline = _probe(episode, patient.timezone, patient.language, template, now)
    enrolment, planned = _open_episode(session, patient=patient, clinic=clinic, staff=staff, episode=episode,
                                       template=template, timeline=timeline, now=now)
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="episode_started",
                 patient_id=patient.id, subject_type="enrolment", subject_id=enrolment.id,
                 detail={"previous_enrolment": previous.id if previous else None,
                         "procedure_type": episode.procedure_type, "procedure_end": episode.procedure_end.isoformat(),
                         "template": template.id, "version": str(template.version),
                         "plan_version_id": template.published_id, "texts_planned": planned},
                 request_id=request_id)
    return enrolment


def correct_procedure_times(session: Session, *, enrolment: Enrolment, patient: Patient,
                            template: Template, procedure_end: datetime, discharge_at: datetime | None,
                            staff: StaffUser, reason: str, now: datetime,
                            request_id: str | None = None) -> tuple[int, int]:
    """Move T0/TD after enrolment: future planned texts are re-planned; sent ones are kept."""
    old_end, old_discharge = enrolment.procedure_end, enrolment.discharge_at
    probe = Enrolment(procedure_end=procedure_end, discharge_at=discharge_at,
                      overrides=enrolment.overrides, working=enrolment.working, brace=enrolment.brace)
    new_timeline = timeline_for(probe, patient, template)
    enrolment.procedure_end, enrolment.discharge_at = procedure_end, discharge_at
    cancelled, added = replan_texts(session, enrolment, patient, new_timeline, now, template=template)
    patient_changed(session, patient.id, now)  # the worklist's rows show the recovery day
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="procedure_time_corrected",
                 patient_id=patient.id, subject_type="enrolment", subject_id=enrolment.id,
                 detail={"old_end": old_end.isoformat(), "new_end": procedure_end.isoformat(),
                         "old_discharge": old_discharge.isoformat() if old_discharge else None,
                         "new_discharge": discharge_at.isoformat() if discharge_at else None,
                         "reason": reason, "cancelled": cancelled, "added": added},
                 request_id=request_id)
    return cancelled, added


def replan_texts(session: Session, enrolment: Enrolment, patient: Patient, new_timeline: Timeline,
                 now: datetime, *, template: Template) -> tuple[int, int]:
    """Bring the enrolment's planned texts in line with a rebuilt timeline (a corrected procedure
    time, a new time zone): pending rows that moved or went are cancelled, new ones planned; what
    was sent is kept. Returns (cancelled, added)."""
    rows = session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.enrolment_id == enrolment.id, OutboundMessage.recipient != "staff",
        OutboundMessage.kind != "event_reply")).all()
    latest: dict[str, OutboundMessage] = {}
    for row in rows:
        if row.recipient == "patient":
            prev = latest.get(row.occurrence_key)
            if prev is None or row.id > prev.id:
                latest[row.occurrence_key] = row
    to_cancel, to_add = replan([(k, r.send_after, r.status.value) for k, r in latest.items()],
                               new_timeline, now)
    cancel_keys = set(to_cancel)
    cancelled = 0
    for row in rows:
        if row.occurrence_key in cancel_keys and row.status == OutboxStatus.PLANNED:
            row.status, row.status_reason, row.updated_at, row.final_at = (
                OutboxStatus.CANCELLED, "replanned", now, now)
            # Free its dedupe key: the new plan may bring the same occurrence and due time back
            # with another send time (the daily limit, a late safety text), and must get a row.
            row.dedupe_key = f"{row.dedupe_key}~x{row.id}"
            cancelled += 1
    # The daily limit counts the routine texts that already went or stay planned: the new plan's
    # own spacing knows nothing of the texts the old one sent earlier that day.
    gone = {OutboxStatus.PLANNED, OutboxStatus.CLAIMED, OutboxStatus.SENT, OutboxStatus.DELIVERED,
            OutboxStatus.UNDELIVERED}
    taken = [r.sent_at or r.send_after for r in rows
             if r.recipient == "patient" and r.kind in ("reminder", "checkin_reminder") and not r.safety
             and (r.status in gone or r.sent_at is not None)
             and not (r.status == OutboxStatus.PLANNED and r.occurrence_key in cancel_keys)]
    to_add = fit_daily_limit(template, new_timeline, to_add, taken)
    session.flush()
    # Texts that would come due during a pause are not planned (the sender would cancel them anyway).
    to_add = [m for m in to_add if not held_by_pause(enrolment.paused_until, m.send_at, recipient="patient",
                                                     kind=m.kind)]
    added = plan_timeline(session, enrolment, patient, new_timeline, now, messages=to_add) \
        if patient.sms_consent else 0
    return cancelled, added


def retranslate_planned(session: Session, enrolment: Enrolment, template: Template, language: str) -> int:
    """A new language for the patient: the texts still planned go in it. Only a row whose text is
    one of its rule's own texts changes (a text reworded for this patient keeps its words: see
    build_timeline). Returns how many rows changed."""
    changed = 0
    rows = session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.enrolment_id == enrolment.id, OutboundMessage.status == OutboxStatus.PLANNED,
        OutboundMessage.recipient != "staff")).all()
    for row in rows:
        try:
            rule = template.message(row.message_id)
        except (KeyError, LookupError):
            continue  # not a plan text (a nurse's own text, a new-link text)
        if row.text_template in {rule.text, *dict(rule.translations).values()}:
            new = rule.text_in(language)
            if new != row.text_template:
                row.text_template, changed = new, changed + 1
    return changed

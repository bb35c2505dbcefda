"""Check-in use-cases: start, score answers as they arrive (MR2), submit, and what follows.

A submitted check-in, its alerts and its reply texts are written in one transaction: the caller
commits once, so a crash leaves either all of it or none of it.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery import alerting, audit
from recovery.enrolment import overrides_for
from recovery.models import Checkin, Enrolment, OutboundMessage, OutboxStatus, Patient
from recovery.outbox import add_if_new, new_row
from recovery.plan import Template
from recovery.questionnaire import coerce_answers, dump_answers
from recovery.timeline import plan_reply
from recovery.triage import (Acknowledgement, Assessment, Baseline, Level, PastCheckin, RULES, Ruleset,
                             assess, assess_partial)

REPLY_FOR_LEVEL = {Level.EMERGENCY: "S19", Level.URGENT: "S20", Level.WATCH: "S22", Level.OK: "S22"}


def hours_since_t0(enrolment: Enrolment, now: datetime) -> float:
    return (now - enrolment.procedure_end).total_seconds() / 3600


def recovery_day(enrolment: Enrolment, patient: Patient, now: datetime) -> int:
    tz = ZoneInfo(patient.timezone)
    return (now.astimezone(tz).date() - enrolment.procedure_end.astimezone(tz).date()).days


def _context(session: Session, enrolment: Enrolment, exclude_id: int | None):
    t0 = enrolment.procedure_end
    baseline = Baseline(back_pain=enrolment.baseline_back_pain,
                        neuro=frozenset(enrolment.baseline_leg_symptoms or ()))
    rows = session.scalars(sa.select(Checkin).where(
        Checkin.enrolment_id == enrolment.id, Checkin.status == "submitted",
        Checkin.id != (exclude_id or -1)).order_by(Checkin.submitted_at, Checkin.id)).all()
    history = [PastCheckin(hours=(c.submitted_at - t0).total_seconds() / 3600,
                           answers=coerce_answers(c.answers)) for c in rows]
    acks = [Acknowledgement(rule=r, hours=(at - t0).total_seconds() / 3600, disposition="reviewed_expected")
            for r, at in alerting.reviewed_expected_acks(session, enrolment.patient_id)]
    return baseline, history, acks


def start_checkin(session: Session, *, enrolment: Enrolment, patient: Patient, slot: str | None,
                  source: str, now: datetime, request_id: str | None = None) -> Checkin:
    """Open a check-in (or return the one already in progress for this slot)."""
    existing = session.scalar(sa.select(Checkin).where(
        Checkin.enrolment_id == enrolment.id, Checkin.status == "in_progress",
        Checkin.source == source, Checkin.slot.is_(None) if slot is None else Checkin.slot == slot)
        .order_by(Checkin.id.desc()))
    if existing is not None:
        return existing
    checkin = Checkin(enrolment_id=enrolment.id, patient_id=patient.id, slot=slot, source=source,
                      status="in_progress", answers={}, started_at=now, updated_at=now, fired_rules=[])
    session.add(checkin)
    session.flush()
    audit.record(session, at=now, actor_type="patient", actor_id=patient.id, action="checkin_started",
                 patient_id=patient.id, subject_type="checkin", subject_id=checkin.id,
                 detail={"slot": slot, "source": source}, request_id=request_id)
    return checkin


def _plan_reply(session: Session, *, template: Template, enrolment: Enrolment, patient: Patient,
                message_id: str, checkin: Checkin, now: datetime) -> bool:
    message = plan_reply(template, message_id, event_at=now, tz=ZoneInfo(patient.timezone),
                         ref=f"checkin-{checkin.id}", overrides=overrides_for(enrolment))
    return add_if_new(session, new_row(enrolment=enrolment, patient_id=patient.id, recipient="patient",
                                       message=message, now=now, checkin_id=checkin.id))


def _act_on(session: Session, *, assessment: Assessment, checkin: Checkin, enrolment: Enrolment,
            patient: Patient, template: Template, ruleset: Ruleset, now: datetime,
            request_id: str | None) -> None:
    """Open/update alerts for what fired; an EMERGENCY also gets S19 at once."""
    fired = [r for r in assessment.fired if r.scored_level > Level.OK]
    if fired:
        alerting.raise_rules(session, patient=patient, enrolment=enrolment, rule_ids=[r.id for r in fired],
                             levels={r.id: r.scored_level for r in fired}, now=now, checkin_id=checkin.id,
                             ruleset=ruleset, source="checkin_partial" if assessment.partial else "checkin",
                             request_id=request_id)
    if assessment.level == Level.EMERGENCY:
        _plan_reply(session, template=template, enrolment=enrolment, patient=patient, message_id="S19",
                    checkin=checkin, now=now)


def record_answers(session: Session, *, checkin: Checkin, enrolment: Enrolment, patient: Patient,
                   answers: dict, template: Template, ruleset: Ruleset, now: datetime,
                   request_id: str | None = None) -> Assessment:
    """Save answers given so far and score them at once (MR2): an EMERGENCY answer alerts the
    nurse now, even if the form is never submitted."""
    merged = {**coerce_answers(checkin.answers), **answers}
    checkin.answers = dump_answers(merged)
    checkin.updated_at = now
    baseline, history, acks = _context(session, enrolment, checkin.id)
    assessment = assess_partial(merged, hours=hours_since_t0(enrolment, now), baseline=baseline,
                                history=history, acknowledgements=acks, ruleset=ruleset)
    if assessment.level == Level.EMERGENCY:
        emergency_ids = [r.id for r in assessment.fired if r.scored_level == Level.EMERGENCY]
        new = [r for r in emergency_ids if r not in (checkin.fired_rules or [])]
        if new:
            checkin.fired_rules = sorted(set(checkin.fired_rules or []) | set(emergency_ids))
            checkin.level = Level.EMERGENCY.name
            audit.record(session, at=now, actor_type="patient", actor_id=patient.id,
                         action="emergency_answer", patient_id=patient.id, subject_type="checkin",
                         subject_id=checkin.id, detail={"rules": new}, request_id=request_id)
            _act_on(session, assessment=assessment, checkin=checkin, enrolment=enrolment, patient=patient,
                    template=template, ruleset=ruleset, now=now, request_id=request_id)
    return assessment


def submit_checkin(session: Session, *, checkin: Checkin, enrolment: Enrolment, patient: Patient,
                   answers: dict, template: Template, ruleset: Ruleset, now: datetime,
                   request_id: str | None = None) -> Assessment:
    """Score the completed check-in, store every fired rule and the rule-set version (MR1, MR5),
    raise alerts, plan the reply text, cancel the now-unneeded reminder."""
    if checkin.status == "submitted":
        raise ValueError("this check-in was already submitted")
    merged = {**coerce_answers(checkin.answers), **answers}
    baseline, history, acks = _context(session, enrolment, checkin.id)
    hours = hours_since_t0(enrolment, now)
    assessment = assess(merged, hours=hours, baseline=baseline, history=history, acknowledgements=acks,
                        ruleset=ruleset)
    checkin.answers = dump_answers(merged)
    checkin.status, checkin.submitted_at, checkin.updated_at, checkin.hours = "submitted", now, now, hours
    checkin.level = assessment.level.name
    checkin.fired_rules = list(assessment.rule_ids)
    checkin.ruleset_version = f"{assessment.ruleset_name} {assessment.ruleset_version}".strip()
    session.flush()
    audit.record(session, at=now, actor_type="patient", actor_id=patient.id, action="checkin_submitted",
                 patient_id=patient.id, subject_type="checkin", subject_id=checkin.id,
                 detail={"level": assessment.level.name, "rules": list(assessment.rule_ids),
                         "ruleset": checkin.ruleset_version, "source": checkin.source},
                 request_id=request_id)
    _act_on(session, assessment=assessment, checkin=checkin, enrolment=enrolment, patient=patient,
            template=template, ruleset=ruleset, now=now, request_id=request_id)
    if assessment.level != Level.EMERGENCY:
        _plan_reply(session, template=template, enrolment=enrolment, patient=patient,
                    message_id=REPLY_FOR_LEVEL[assessment.level], checkin=checkin, now=now)
    for r in assessment.fired:
        follow = RULES[r.id].follow_up_sms if r.id in RULES else None
        if follow:
            _plan_reply(session, template=template, enrolment=enrolment, patient=patient,
                        message_id=follow, checkin=checkin, now=now)
    if checkin.slot:
        cancel_for_slot(session, enrolment.id, checkin.slot, now)
    return assessment


def cancel_for_slot(session: Session, enrolment_id: int, slot: str, now: datetime) -> int:
    """A completed check-in makes the slot's unsent invitation and reminder pointless."""
    result = session.execute(
        sa.update(OutboundMessage)
        .where(OutboundMessage.enrolment_id == enrolment_id, OutboundMessage.slot == slot,
               OutboundMessage.status == OutboxStatus.PLANNED,
               OutboundMessage.kind.in_(("checkin_invite", "checkin_reminder")))
        .values(status=OutboxStatus.CANCELLED, status_reason="checkin_done", updated_at=now, final_at=now)
        .execution_options(synchronize_session=False))
    return result.rowcount or 0

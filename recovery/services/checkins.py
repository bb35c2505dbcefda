"""Check-in use-cases: start, score answers as they arrive (MR2), submit, and what follows.

A submitted check-in, its alerts and its reply texts are written in one transaction: the caller
commits once, so a crash leaves either all of it or none of it.
"""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.orm import Session

from recovery.domain.plan.model import Template
from recovery.services import alerting
from recovery.services.enrolment import overrides_for, timeline_for
from recovery.store import audit
from recovery.store.models import Checkin, CheckinStatus, Clinic, Enrolment, OutboundMessage, OutboxStatus, Patient
from recovery.store.outbox import add_if_new, new_row
from recovery.domain.questionnaire.answers import coerce_answers, dump_answers, parse_group
from recovery.domain.questionnaire.form import groups_for, items_on
from recovery.domain.questionnaire.model import FieldError, Group
from recovery.domain.timeline import PlannedCheckin, Timeline, plan_reply, recovery_day
from recovery.domain.triage import (Acknowledgement, Assessment, Baseline, Level, PastCheckin, RULES, Ruleset,
                             assess, assess_partial, patient_message)

log = logging.getLogger(__name__)

REPLY_FOR_LEVEL = {Level.EMERGENCY: "S19", Level.URGENT: "S20", Level.WATCH: "S22", Level.OK: "S22"}


def hours_since_t0(enrolment: Enrolment, now: datetime) -> float:
    """Hours since the recorded procedure end, never negative: a nurse may correct the end to a time
    still ahead of the clock (the form allows FUTURE_SLACK), and a check-in or an earlier answer
    in that hour counts as hour 0, the day of the procedure (triage refuses negative hours)."""
    return max(0.0, (now - enrolment.procedure_end).total_seconds() / 3600)


def _baseline(enrolment: Enrolment) -> Baseline:
    return Baseline(back_pain=enrolment.baseline_back_pain, neuro=frozenset(enrolment.baseline_leg_symptoms or ()))


def _context(session: Session, enrolment: Enrolment, exclude_id: int | None):
    baseline = _baseline(enrolment)
    rows = session.scalars(sa.select(Checkin).where(
        Checkin.enrolment_id == enrolment.id, Checkin.status == CheckinStatus.SUBMITTED,
        Checkin.id != (exclude_id or -1)).order_by(Checkin.submitted_at, Checkin.id)).all()
    history = [PastCheckin(hours=hours_since_t0(enrolment, c.submitted_at),
                           answers=coerce_answers(c.answers)) for c in rows]
    acks = [Acknowledgement(rule=r, hours=hours_since_t0(enrolment, at), disposition="reviewed_expected")
            for r, at in alerting.reviewed_expected_acks(session, enrolment.patient_id)]
    return baseline, history, acks


def _score(session: Session, score: Callable[..., Assessment], answers: Mapping[str, Any], *, checkin: Checkin,
           enrolment: Enrolment, patient: Patient, hours: float, ruleset: Ruleset, now: datetime,
           request_id: str | None) -> Assessment:
    """Score the answers with their history (earlier check-ins, baseline, MR3 acknowledgements).

    Nothing in the history may stop the answers just given from being scored (an emergency
    answer must show the emergency screen and alert the nurse): if reading or scoring the history
    fails, the answers are scored on their own, the fault is logged (its kind and place, never its
    text, which may quote an answer) and the check-in's audit trail says so."""
    try:
        with session.begin_nested():  # a database error here must not spoil the transaction
            baseline, history, acks = _context(session, enrolment, checkin.id)
        return score(answers, hours=hours, baseline=baseline, history=history, acknowledgements=acks,
                     ruleset=ruleset)
    except Exception as e:  # noqa: BLE001 - any fault in the history: score the answers alone
        frames = traceback.extract_tb(e.__traceback__)
        ours = [f for f in frames if f"{Path(__file__).parent.parent.name}/" in f.filename] or frames
        place = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
        error = type(e).__name__
        log.error("check-in %s: history could not be read or scored (%s at %s); scored on its own answers",
                  checkin.id, error, place)
    audit.record(session, at=now, actor_type="system", actor_id=None, action="checkin_scored_without_history",
                 patient_id=patient.id, subject_type="checkin", subject_id=checkin.id,
                 detail={"error": error}, request_id=request_id)
    try:
        return score(answers, hours=hours, baseline=_baseline(enrolment), ruleset=ruleset)
    except Exception as e:  # noqa: BLE001 - a bad stored baseline: the answers with no baseline at all
        log.error("check-in %s: baseline could not be used (%s); scored without it", checkin.id, type(e).__name__)
        return score(answers, hours=hours, baseline=Baseline(), ruleset=ruleset)


def start_from_link(session: Session, *, enrolment: Enrolment, patient: Patient, slot: str | None,
                    now: datetime, request_id: str | None = None) -> Checkin | None:
    """What pressing "Start my check-in" on a check-in link's page does (a POST; a GET only looks):
    start the link's check-in (a symptom report when the link has no slot), or nothing when that
    slot was already sent."""
    if slot is not None and slot_submitted(session, enrolment.id, slot):
        return None
    return start_checkin(session, enrolment=enrolment, patient=patient, slot=slot, source=SOURCE_WEB, now=now,
                         request_id=request_id)


def start_checkin(session: Session, *, enrolment: Enrolment, patient: Patient, slot: str | None,
                  source: str, now: datetime, request_id: str | None = None) -> Checkin:
    """Open a check-in (or return the one already in progress for this slot)."""
    existing = in_progress(session, enrolment.id, slot, source)
    if existing is not None:
        return existing
    checkin = Checkin(enrolment_id=enrolment.id, patient_id=patient.id, slot=slot, source=source,
                      status=CheckinStatus.IN_PROGRESS, answers={}, started_at=now, updated_at=now, fired_rules=[])
    session.add(checkin)
    session.flush()
    audit.record(session, at=now, actor_type="patient", actor_id=patient.id, action="checkin_started",
                 patient_id=patient.id, subject_type="checkin", subject_id=checkin.id,
                 detail={"slot": slot, "source": source}, request_id=request_id)
    return checkin


def _plan_reply(session: Session, *, template: Template, enrolment: Enrolment, patient: Patient,
                message_id: str, checkin: Checkin, now: datetime) -> bool:
    """Plan a reply text once per check-in: S19 after an answer posted before submit (MR2) must not
    go again at submit (the outbox key holds the due time, so it would not dedupe by itself)."""
    already = session.scalar(sa.select(OutboundMessage.id).where(
        OutboundMessage.checkin_id == checkin.id, OutboundMessage.message_id == message_id,
        OutboundMessage.recipient == "patient").limit(1))
    if already is not None:
        return False
    message = plan_reply(template, message_id, event_at=now, tz=ZoneInfo(patient.timezone),
                         ref=f"checkin-{checkin.id}", overrides=overrides_for(enrolment),
                         language=patient.language)
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
                   request_id: str | None = None, replace: bool = False) -> Assessment:
    """Save answers given so far and score them at once (MR2): an EMERGENCY answer alerts the
    nurse now, even if the form is never submitted.

    `replace=True` stores `answers` as the whole answer set (the web flow drops answers to
    questions no longer asked); otherwise they are merged into what is stored."""
    merged = dict(answers) if replace else {**coerce_answers(checkin.answers), **answers}
    checkin.answers = dump_answers(merged)
    checkin.updated_at = now
    assessment = _score(session, assess_partial, merged, checkin=checkin, enrolment=enrolment, patient=patient,
                        hours=hours_since_t0(enrolment, now), ruleset=ruleset, now=now, request_id=request_id)
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
    if checkin.status == CheckinStatus.SUBMITTED:
        raise ValueError("this check-in was already submitted")
    merged = {**coerce_answers(checkin.answers), **answers}
    hours = hours_since_t0(enrolment, now)
    assessment = _score(session, assess, merged, checkin=checkin, enrolment=enrolment, patient=patient,
                        hours=hours, ruleset=ruleset, now=now, request_id=request_id)
    checkin.answers = dump_answers(merged)
    checkin.status, checkin.submitted_at, checkin.updated_at, checkin.hours = CheckinStatus.SUBMITTED, now, now, hours
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


# ---------------------------------------------------------------------------------------------
# The web check-in, one screen at a time (protocol §2.1; MR2 on every screen)
# ---------------------------------------------------------------------------------------------

WEEKLY_GROUPS = frozenset({"weekly"})  # timeline check-in groups whose check-ins are "weekly" (§2.1)
SOURCE_WEB = "web"


class CheckinClosed(Exception):
    """The check-in was already submitted: its answers can no longer change."""


@dataclass(frozen=True)
class Setting:
    """What the screens of one check-in depend on, loaded once per request."""
    checkin: Checkin
    enrolment: Enrolment
    patient: Patient
    clinic: Clinic
    template: Template
    ruleset: Ruleset
    weekly: bool
    day: int  # recovery day when the check-in was started, so the questions do not shift at midnight
    first: bool = False  # no check-in was sent before this one ("compared with before the procedure")


def planned_for_slot(timeline: Timeline, slot: str | None) -> PlannedCheckin | None:
    return next((c for c in timeline.checkins if c.slot == slot), None) if slot else None


def is_weekly(timeline: Timeline, slot: str | None) -> bool:
    """A scheduled check-in of the timeline's weekly group; ad hoc check-ins are never weekly."""
    planned = planned_for_slot(timeline, slot)
    return planned is not None and planned.group in WEEKLY_GROUPS


_Earlier = so.aliased(Checkin)
# No check-in of the enrolment was sent before this one (Setting.first), as a column.
FIRST_CHECKIN = ~sa.exists().where(
    _Earlier.enrolment_id == Checkin.enrolment_id, _Earlier.status == CheckinStatus.SUBMITTED,
    _Earlier.id != Checkin.id,
    sa.or_(Checkin.submitted_at.is_(None), _Earlier.submitted_at < Checkin.submitted_at)).label("first")
# A check-in with its enrolment and FIRST_CHECKIN, in one statement (the check-in pages' first).
CHECKIN_WITH_ENROLMENT = (sa.select(Checkin, Enrolment, FIRST_CHECKIN)
                          .outerjoin(Enrolment, Enrolment.id == Checkin.enrolment_id)
                          .where(Checkin.id == sa.bindparam("checkin_id")))


def setting_for(session: Session, checkin: Checkin, *, template_for, ruleset: Ruleset,
                first: bool | None = None) -> Setting:
    """`template_for(enrolment, clinic)` finds the exact plan the enrolment was built from.
    `first`: FIRST_CHECKIN when the caller has read it already (CHECKIN_WITH_ENROLMENT)."""
    enrolment = session.get(Enrolment, checkin.enrolment_id)
    patient = session.get(Patient, checkin.patient_id)
    clinic = session.get(Clinic, patient.clinic_id)
    template = template_for(enrolment, clinic)
    weekly = is_weekly(timeline_for(enrolment, patient, template), checkin.slot)
    if first is None:
        earlier = sa.select(Checkin.id).where(Checkin.enrolment_id == enrolment.id,
                                              Checkin.status == CheckinStatus.SUBMITTED, Checkin.id != checkin.id)
        if checkin.submitted_at is not None:
            earlier = earlier.where(Checkin.submitted_at < checkin.submitted_at)
        first = session.scalar(earlier.limit(1)) is None
    return Setting(checkin, enrolment, patient, clinic, template, ruleset, weekly,
                   max(0, recovery_day(enrolment.procedure_end, checkin.started_at, patient.timezone)), first=first)


@dataclass(frozen=True)
class Flow:
    """The screens asked with the answers given so far (follow-up screens appear as answers
    arrive), plus the review screen at the end."""
    steps: tuple[Group, ...]
    answers: Mapping[str, Any]

    @property
    def total(self) -> int:
        return len(self.steps) + 1  # + the review screen

    def position(self, group_id: str) -> int | None:
        for i, g in enumerate(self.steps, start=1):
            if g.id == group_id:
                return i
        return None

    def group(self, group_id: str) -> Group | None:
        return next((g for g in self.steps if g.id == group_id), None)

    def complete(self, group: Group) -> bool:
        return all(i.id in self.answers for i in group.items if i.required)

    @property
    def next_incomplete(self) -> Group | None:
        return next((g for g in self.steps if not self.complete(g)), None)

    def next_after(self, group_id: str) -> Group | None:
        """The screen after `group_id` was answered: the next one still unanswered, an optional
        question (free text) included, so it is asked in its turn; then any earlier screen still
        incomplete."""
        pos = self.position(group_id) or 0
        for g in self.steps[pos:]:
            if not self.complete(g) or not any(i.id in self.answers for i in g.items):
                return g
        return self.next_incomplete

    def before(self, group_id: str) -> Group | None:
        pos = self.position(group_id)
        return self.steps[pos - 2] if pos and pos > 1 else None

    @property
    def last(self) -> Group | None:
        return self.steps[-1] if self.steps else None


def _steps(setting: Setting, answers: Mapping[str, Any]) -> list[Group]:
    return groups_for(setting.day, setting.weekly, answers, limits=setting.ruleset.form_limits,
                      brace_prescribed=setting.enrolment.brace, first_checkin=setting.first)


def flow_for(setting: Setting) -> Flow:
    answers = coerce_answers(setting.checkin.answers)
    return Flow(tuple(_steps(setting, answers)), answers)


def _prune(setting: Setting, answers: dict[str, Any]) -> dict[str, Any]:
    """Drop answers to questions no longer asked (e.g. leg pain after "down a leg" was unticked):
    §3.8 (14) scores every answer present, so a stale one must not stay."""
    while True:
        asked = {i.id for g in _steps(setting, answers) for i in g.items}
        kept = {k: v for k, v in answers.items() if k in asked}
        if kept == answers:
            return kept
        answers = kept


@dataclass(frozen=True)
class StepResult:
    errors: dict[str, FieldError]
    flow: Flow
    new_emergency: tuple[str, ...] = ()  # EMERGENCY rule ids first raised by this post (MR2)

    @property
    def ok(self) -> bool:
        return not self.errors


def answer_step(session: Session, setting: Setting, group_id: str, form: Mapping[str, Any], *,
                now: datetime, draft: bool = False, request_id: str | None = None) -> StepResult:
    """Read one screen of the form, store it and score everything answered so far (MR2).

    A full post (`draft=False`) stores nothing when any answer on the screen is wrong or missing.
    A draft (sent by the page as each answer changes) stores the answers that are valid and keeps
    the rest as they were, so an emergency answer counts before the screen is finished."""
    checkin = setting.checkin
    if checkin.status == CheckinStatus.SUBMITTED:
        raise CheckinClosed()
    answers = coerce_answers(checkin.answers)
    values, errors = parse_group(group_id, form, setting.day, weekly=setting.weekly, answers_so_far=answers,
                                 limits=setting.ruleset.form_limits, brace_prescribed=setting.enrolment.brace)
    if errors and not draft:
        return StepResult(errors, Flow(tuple(_steps(setting, answers)), answers))
    on_screen = set(items_on(group_id, form))
    updated = {k: v for k, v in answers.items() if k not in on_screen or k in errors}
    updated.update(values)
    if draft and ("temp_value" in updated) != ("temp_unit" in updated):
        # Drafts arrive one answer at a time: a number without its unit (or the reverse) cannot be
        # converted or scored yet, so neither is kept until both are there.
        updated.pop("temp_value", None)
        updated.pop("temp_unit", None)
    updated = _prune(setting, updated)
    if updated == answers:
        return StepResult(errors, Flow(tuple(_steps(setting, answers)), answers))
    before = set(checkin.fired_rules or [])
    record_answers(session, checkin=checkin, enrolment=setting.enrolment, patient=setting.patient,
                   answers=updated, template=setting.template, ruleset=setting.ruleset, now=now,
                   request_id=request_id, replace=True)
    new_emergency = tuple(sorted(set(checkin.fired_rules or []) - before))
    return StepResult(errors, Flow(tuple(_steps(setting, updated)), updated), new_emergency)


class Incomplete(Exception):
    """A screen still has unanswered questions; `group` is the first such screen."""

    def __init__(self, group: Group):
        super().__init__(group.id)
        self.group = group


def finish(session: Session, setting: Setting, *, now: datetime, request_id: str | None = None) -> Assessment:
    """Submit from the review screen. Raises Incomplete (nothing stored) or CheckinClosed."""
    if setting.checkin.status == CheckinStatus.SUBMITTED:
        raise CheckinClosed()
    missing = flow_for(setting).next_incomplete
    if missing is not None:
        raise Incomplete(missing)
    return submit_checkin(session, checkin=setting.checkin, enrolment=setting.enrolment,
                          patient=setting.patient, answers={}, template=setting.template,
                          ruleset=setting.ruleset, now=now, request_id=request_id)


def outcome_message(checkin: Checkin, clinic: Clinic) -> str:
    """What the patient reads about a check-in: only the neutral texts of protocol §3."""
    level = Level[checkin.level] if checkin.level else Level.OK
    return patient_message(level, emerg=clinic.emergency_number, phone=clinic.care_phone)


def slot_submitted(session: Session, enrolment_id: int, slot: str) -> bool:
    return session.scalar(sa.select(Checkin.id).where(
        Checkin.enrolment_id == enrolment_id, Checkin.slot == slot, Checkin.status == CheckinStatus.SUBMITTED)
        .limit(1)) is not None


def checkin_window(timeline: Timeline, index: int) -> tuple[datetime, datetime]:
    """When the scheduled check-in `timeline.checkins[index]` can be done: from its invitation
    until it counts as missed (the template's `missed_after`: 8 h for daily ones, 48 h for weekly
    ones), but at least to the end of the local day it was sent on ("today's check-in" is still
    today's in the evening), and never past the next invitation. After that it is not offered:
    a patient who wants to tell the team something reports a symptom."""
    planned = timeline.checkins[index]
    opens = planned.invite.send_at
    local = opens.astimezone(timeline.tz)
    day_end = datetime.combine(local.date() + timedelta(days=1), time(0), timeline.tz).astimezone(opens.tzinfo)
    closes = max(planned.missed_at, day_end)
    if index + 1 < len(timeline.checkins):
        closes = min(closes, timeline.checkins[index + 1].invite.send_at)
    return opens, closes


def open_checkin(timeline: Timeline, now: datetime) -> PlannedCheckin | None:
    """The scheduled check-in whose window (`checkin_window`) holds `now`, done or not."""
    for index, planned in enumerate(timeline.checkins):
        opens, closes = checkin_window(timeline, index)
        if opens <= now < closes:
            return planned
    return None


def next_checkin(timeline: Timeline, now: datetime) -> PlannedCheckin | None:
    """The next scheduled check-in whose invitation is still to come."""
    return next((c for c in timeline.checkins if c.invite.send_at > now), None)


def due_checkin(session: Session, enrolment: Enrolment, timeline: Timeline, now: datetime) -> PlannedCheckin | None:
    """The scheduled check-in a patient can do now: the open one, unless it was submitted."""
    current = open_checkin(timeline, now)
    if current is None or slot_submitted(session, enrolment.id, current.slot):
        return None
    return current


@dataclass(frozen=True)
class Offer:
    """What the patient can do now, for Today and the check-in start page (one rule, one place).
    `open` is the scheduled check-in whose window holds now (None when there is none, or when a
    check-in link's session may not start it); `done` says it was sent already."""
    open: PlannedCheckin | None
    done: bool
    started: Checkin | None  # that check-in, begun and not yet sent
    report: Checkin | None  # an unfinished symptom report
    next: PlannedCheckin | None

    @property
    def due(self) -> PlannedCheckin | None:
        return None if self.done else self.open


def offer_for(session: Session, enrolment: Enrolment, timeline: Timeline, now: datetime, *,
              only_slot: str | None = None, any_slot: bool = True, link_valid: bool = False) -> Offer:
    """`any_slot=False` (a check-in link's session) offers only the link's own slot, `only_slot`:
    while its window is open, or while the link from the text still works (`link_valid`), as the
    text promised."""
    current = open_checkin(timeline, now)
    if not any_slot:
        own = planned_for_slot(timeline, only_slot)
        current = own if own is not None and (own == current or link_valid) else None
    # One statement for what slot_submitted and in_progress (the slot's, and a symptom report's)
    # would each ask: the enrolment's check-ins of the open slot, and its unsent web reports.
    unsent_web = sa.and_(Checkin.status != CheckinStatus.SUBMITTED, Checkin.source == SOURCE_WEB)
    mine = unsent_web & Checkin.slot.is_(None)
    if current is not None:
        mine = mine | (Checkin.slot == current.slot)
    rows = session.scalars(sa.select(Checkin).where(Checkin.enrolment_id == enrolment.id, mine)
                           .order_by(Checkin.id.desc())).all()
    slot_rows = [c for c in rows if current is not None and c.slot == current.slot]
    done = any(c.status == CheckinStatus.SUBMITTED for c in slot_rows)
    started = None if done else next(
        (c for c in slot_rows if c.status != CheckinStatus.SUBMITTED and c.source == SOURCE_WEB), None)
    report = next((c for c in rows if c.slot is None), None)
    return Offer(open=current, done=done, started=started, report=report, next=next_checkin(timeline, now))


def in_progress(session: Session, enrolment_id: int, slot: str | None, source: str = SOURCE_WEB) -> Checkin | None:
    """The check-in begun for this slot (None: a symptom report) and not yet sent, if there is one."""
    return session.scalar(sa.select(Checkin).where(
        Checkin.enrolment_id == enrolment_id, Checkin.status != CheckinStatus.SUBMITTED, Checkin.source == source,
        Checkin.slot.is_(None) if slot is None else Checkin.slot == slot).order_by(Checkin.id.desc()).limit(1))

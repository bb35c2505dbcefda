"""The missed-check-in scan the scheduler tick runs (protocol §3.5 M1-M3 and M6).

It looks at check-in invitations that were actually sent (a patient who opted out of texts gets
no invitation, and has an M5 task instead) and that are older than the shortest `missed_after`
in the templates. For each, the enrolment's timeline (rebuilt from its stored template and cached)
gives the slot's day and its `missed_after`, counted from when the invitation really went out.
`missed_rules.decide` says what the slot comes to; a decided slot gets one audit row
("checkin_slot_closed", the processed marker) and, when missed, the nurse task.

Idempotent: a slot with a marker is never looked at again. Two scheduler processes cannot both
close a slot: SQLite has one writer at a time; on PostgreSQL the invitation row is locked
FOR UPDATE SKIP LOCKED and the marker is checked again after taking the lock.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.dispatch.settings import DispatchSettings
from recovery.domain.episode_rules import held_by_pause
from recovery.domain.missed_rules import SlotFacts, decide
from recovery.files import templates as templates_repo
from recovery.services import alerting, clinic_plans
from recovery.services.enrolment import timeline_for
from recovery.store import audit
from recovery.store.db import locked_row, write_unit
from recovery.store.models import (AuditEvent, Checkin, CheckinStatus, Clinic, Enrolment, EnrolmentStatus,
                                   OutboundMessage, OutboxStatus, Patient, TriageLevel)
from recovery.domain.timeline import Timeline

log = logging.getLogger("recovery.services.missed")

MARKER = "checkin_slot_closed"
SENT_STATES = (OutboxStatus.SENT, OutboxStatus.DELIVERED)
DEFAULT_MISSED_AFTER = timedelta(hours=8)
SCAN_LIMIT = 200

OM = OutboundMessage
_cache_lock = threading.Lock()
_min_missed: dict[str, timedelta] = {}


def min_missed_after(schedules_dir: str) -> timedelta:
    """The shortest missed_after of any check-in group in any template (nothing is due sooner)."""
    with _cache_lock:
        if schedules_dir not in _min_missed:
            values = []
            for t in templates_repo.all_templates(schedules_dir):
                cad = t.checkins
                if cad.day0:
                    values.append(cad.day0.missed_after)
                values.extend(g.missed_after for g in cad.groups)
            _min_missed[schedules_dir] = min(values, default=DEFAULT_MISSED_AFTER)
        return _min_missed[schedules_dir]


def _marker_exists(row_id_col, patient_id_col):
    return sa.exists().where(AuditEvent.action == MARKER, AuditEvent.subject_type == "outbound_message",
                             AuditEvent.subject_id == row_id_col, AuditEvent.patient_id == patient_id_col)


def scan(session: Session, now: datetime, settings: DispatchSettings) -> int:
    """Close every invited slot whose time has come. Returns the number of nurse tasks raised."""
    cut = now - min_missed_after(settings.schedules_dir)
    ids = session.scalars(
        sa.select(OM.id).where(OM.kind == "checkin_invite", OM.recipient == "patient",
                               OM.status.in_(SENT_STATES), OM.sent_at <= cut,
                               ~_marker_exists(OM.id, OM.patient_id))
        .order_by(OM.sent_at, OM.id).limit(SCAN_LIMIT)).all()
    session.commit()
    raised = 0
    for row_id in ids:
        raised += close_slot(session, row_id, now, settings)
    return raised


def _timeline(session: Session, enrolment: Enrolment, patient: Patient, schedules_dir: str) -> Timeline:
    """The enrolment's timeline, from the one timeline cache (enrolment.timeline_for)."""
    clinic = session.get(Clinic, enrolment.clinic_id)
    return timeline_for(enrolment, patient, clinic_plans.plan_for(session, schedules_dir, enrolment, clinic))


def _outcome(session: Session, row_id: int) -> str | None:
    detail = session.scalar(sa.select(AuditEvent.detail).where(
        AuditEvent.action == MARKER, AuditEvent.subject_type == "outbound_message",
        AuditEvent.subject_id == row_id).limit(1))
    return None if detail is None else (detail or {}).get("outcome", "")


def _mark(session: Session, row: OutboundMessage, now: datetime, outcome: str, rule: str | None) -> None:
    audit.record(session, at=now, actor_type="system", actor_id=None, action=MARKER,
                 patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                 detail={"slot": row.slot, "outcome": outcome, "rule": rule})


def close_slot(session: Session, row_id: int, now: datetime, settings: DispatchSettings) -> int:
    """Decide one invited slot (its own transaction). Returns 1 when a nurse task was raised."""
    with write_unit(session):
        row = locked_row(session, OM, row_id, skip_locked=True)
        if row is None or _outcome(session, row.id) is not None:
            return 0  # another scheduler has it, or closed it already
        enrolment = session.get(Enrolment, row.enrolment_id) if row.enrolment_id else None
        patient = session.get(Patient, row.patient_id)
        if enrolment is None or enrolment.status != EnrolmentStatus.ACTIVE or patient is None:
            _mark(session, row, now, "closed", None)
            return 0
        if held_by_pause(enrolment.paused_until, now, recipient="patient", kind=row.kind):
            _mark(session, row, now, "paused", None)  # a nurse paused the texts: nothing was missed
            return 0
        try:
            timeline = _timeline(session, enrolment, patient, settings.schedules_dir)
        except LookupError:
            log.error("enrolment %d: its template is no longer on disk; slot closed unchecked", enrolment.id)
            _mark(session, row, now, "closed", None)
            return 0
        index = next((i for i, c in enumerate(timeline.checkins) if c.slot == row.slot), None)
        planned = timeline.checkins[index] if index is not None else None
        missed_after = (planned.missed_at - planned.invite.send_at) if planned else DEFAULT_MISSED_AFTER
        day = planned.day if planned else timeline.day_number(row.sent_at)
        missed_at = row.sent_at + missed_after
        if now < missed_at:
            return 0
        checkins = session.scalars(sa.select(Checkin).where(
            Checkin.enrolment_id == enrolment.id,
            sa.or_(Checkin.slot == row.slot, Checkin.started_at >= row.sent_at))).all()
        completed = any(c.status == CheckinStatus.SUBMITTED and c.submitted_at is not None
                        and (c.slot == row.slot or row.sent_at <= c.submitted_at <= missed_at)
                        for c in checkins)
        started = [c for c in checkins if c.status == CheckinStatus.IN_PROGRESS
                   and (c.slot == row.slot or (c.slot is None and c.started_at >= row.sent_at))]
        previous_missed = False
        if index:
            prev_key = timeline.checkins[index - 1].invite.key
            prev_id = session.scalar(sa.select(OM.id).where(
                OM.enrolment_id == enrolment.id, OM.recipient == "patient", OM.occurrence_key == prev_key)
                .order_by(OM.id.desc()).limit(1))
            previous_missed = prev_id is not None and _outcome(session, prev_id) == "missed"
        verdict = decide(SlotFacts(
            slot=row.slot or "", day=max(0, day), invited_at=row.sent_at, missed_at=missed_at,
            completed=completed,
            last_activity=max((c.updated_at for c in started), default=None),
            red_flag=any(c.level == TriageLevel.EMERGENCY for c in started),
            previous_missed=previous_missed), now)
        if not verdict.decided:
            return 0
        _mark(session, row, now, verdict.outcome, verdict.rule)
        if verdict.rule is None:
            return 0
        alerting.raise_rules(session, patient=patient, enrolment=enrolment, rule_ids=[verdict.rule], now=now,
                             source="missed_checkin")
        log.info("check-in %s of enrolment %d missed: %s", row.slot, enrolment.id, verdict.rule)
        return 1

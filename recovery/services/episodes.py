"""A patient's episode of care: pause texts until a day, resume, end monitoring with a reason.

Use-cases: they take a session, the nurse and `now`, write one audit row each with the old and the
new values, and leave the commit to the caller. What pausing and ending mean for texts is decided
in recovery/episode_rules.py; the send pipeline enforces it again when a text is about to go
(recovery/dispatch.py), so no path can text an ended or paused enrolment.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.services import alerting
from recovery.store import audit
from recovery.domain import alerts as alert_domain
from recovery.services.enrolment import timeline_for
from recovery.domain.episode_rules import END_REASONS, MAX_PAUSE_DAYS, PAUSE_EXEMPT_KINDS, episode_status, held_by_pause
from recovery.store.models import (Alert, AlertStatus, Enrolment, EnrolmentStatus, OutboundMessage, OutboxStatus,
                             Patient, SmsConversation, StaffUser)
from recovery.store.outbox import plan_timeline
from recovery.domain.plan.model import Template
from recovery.domain.timeline import local_to_utc

OM = OutboundMessage


class EpisodeConflict(Exception):
    """The enrolment is not in a state that allows this (ending an ended one, resuming one not paused)."""


@dataclass(frozen=True)
class Ended:
    texts_cancelled: int
    alerts_closed: int


def status_of(enrolment: Enrolment, now: datetime) -> str:
    return episode_status(enrolment.status.value, enrolment.paused_until, now)


def pause_starts_over(until: date, tz: ZoneInfo) -> datetime:
    """A pause "until 12 March" holds texts until the start of 12 March in the patient's zone."""
    return local_to_utc(until, time(0, 0), tz)


def pause_problem(until: date | None, tz: ZoneInfo, now: datetime) -> str | None:
    """Why this day cannot end a pause (for the form), or None."""
    if until is None:
        return "Enter the day texts should start again."
    today = now.astimezone(tz).date()
    if until <= today:
        return "Choose a day after today."
    if until > today + timedelta(days=MAX_PAUSE_DAYS):
        return f"A pause can last up to {MAX_PAUSE_DAYS} days; end monitoring instead if it is over."
    return None


def _cancel(rows, reason: str, now: datetime) -> int:
    for row in rows:
        row.status, row.status_reason, row.updated_at, row.final_at = OutboxStatus.CANCELLED, reason, now, now
        row.lease_until = None
        # Free its dedupe key: a resume or a re-plan may bring the same occurrence back.
        row.dedupe_key = f"{row.dedupe_key}~x{row.id}"
    return len(rows)


def pause_texts(session: Session, *, enrolment: Enrolment, patient: Patient, until: date, staff: StaffUser,
                now: datetime, note: str | None = None, request_id: str | None = None) -> int:
    """Hold routine texts until the start of `until` (patient's zone). Returns texts cancelled."""
    if enrolment.status != EnrolmentStatus.ACTIVE:
        raise EpisodeConflict("monitoring has ended")
    tz = ZoneInfo(patient.timezone)
    problem = pause_problem(until, tz, now)
    if problem:
        raise ValueError(problem)
    until_at = pause_starts_over(until, tz)
    held = session.scalars(sa.select(OM).where(
        OM.enrolment_id == enrolment.id, OM.status == OutboxStatus.PLANNED, OM.recipient != "staff",
        OM.kind.not_in(PAUSE_EXEMPT_KINDS), OM.send_after < until_at)).all()
    cancelled = _cancel(held, "paused", now)
    old = enrolment.paused_until if enrolment.paused_until and enrolment.paused_until > now else None
    enrolment.paused_until = until_at
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="texts_paused",
                 patient_id=patient.id, subject_type="enrolment", subject_id=enrolment.id,
                 detail={"old_paused_until": old.isoformat() if old else None,
                         "new_paused_until": until_at.isoformat(), "until_day": until.isoformat(),
                         "texts_cancelled": cancelled, "note": note or None}, request_id=request_id)
    return cancelled


def resume_texts(session: Session, *, enrolment: Enrolment, patient: Patient, template: Template,
                 staff: StaffUser, now: datetime, request_id: str | None = None) -> int:
    """End a pause now and re-plan the plan's texts still ahead. Returns texts planned."""
    if status_of(enrolment, now) != "paused":
        raise EpisodeConflict("texts are not paused")
    old = enrolment.paused_until
    enrolment.paused_until = None
    session.flush()
    added = replan_ahead(session, enrolment, patient, template, now)
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="texts_resumed",
                 patient_id=patient.id, subject_type="enrolment", subject_id=enrolment.id,
                 detail={"old_paused_until": old.isoformat(), "new_paused_until": None, "texts_planned": added},
                 request_id=request_id)
    return added


def replan_ahead(session: Session, enrolment: Enrolment, patient: Patient, template: Template,
                 now: datetime) -> int:
    """Plan every text of the timeline still ahead that has no live row (the outbox's dedupe key
    makes the ones already planned a no-op). Nothing already due is planned late, nor anything that
    would come due during a pause."""
    if not patient.sms_consent:
        return 0
    timeline = timeline_for(enrolment, patient, template)
    ahead = [m for m in timeline.messages if m.send_at > now
             and not held_by_pause(enrolment.paused_until, m.send_at, recipient="patient", kind=m.kind)]
    return plan_timeline(session, enrolment, patient, timeline, now, messages=ahead)


def end_monitoring(session: Session, *, enrolment: Enrolment, patient: Patient, reason: str,
                   note: str | None, staff: StaffUser, now: datetime, request_id: str | None = None) -> Ended:
    """End the enrolment: cancel every planned text (and the pages about its alerts), close its open
    alerts with the reason, stop the SMS check-in conversation. The missed-check-in scan closes
    the slots of an ended enrolment without a task (recovery/missed.py)."""
    if enrolment.status != EnrolmentStatus.ACTIVE:
        raise EpisodeConflict("monitoring has already ended")
    if reason not in END_REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    old_status, old_pause = enrolment.status.value, enrolment.paused_until
    enrolment.status, enrolment.ended_at = EnrolmentStatus.ENDED, now
    enrolment.end_reason, enrolment.end_note, enrolment.paused_until = reason, note or None, None
    open_alerts = session.scalars(sa.select(Alert).where(
        Alert.patient_id == patient.id, Alert.status != AlertStatus.RESOLVED,
        sa.or_(Alert.enrolment_id == enrolment.id, Alert.enrolment_id.is_(None)))
        .with_for_update().execution_options(populate_existing=True)).all()
    words = f"Monitoring ended: {END_REASONS[reason]}." + (f" {note}" if note else "")
    for alert in open_alerts:
        alerting.resolve(session, alert, staff, now, alert_domain.MONITORING_ENDED, note=words,
                         request_id=request_id)
    alert_ids = [a.id for a in open_alerts]
    planned = session.scalars(sa.select(OM).where(
        OM.status == OutboxStatus.PLANNED,
        sa.or_(OM.enrolment_id == enrolment.id, OM.alert_id.in_(alert_ids) if alert_ids else sa.false()))).all()
    cancelled = _cancel(planned, "enrolment_ended", now)
    conversation = session.scalar(sa.select(SmsConversation).where(SmsConversation.patient_id == patient.id))
    if conversation is not None and conversation.state != "idle":
        conversation.state, conversation.checkin_id, conversation.updated_at = "idle", None, now
        conversation.expires_at = now
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="monitoring_ended",
                 patient_id=patient.id, subject_type="enrolment", subject_id=enrolment.id,
                 detail={"old_status": old_status, "new_status": EnrolmentStatus.ENDED.value, "reason": reason,
                         "note": note or None,
                         "old_paused_until": old_pause.isoformat() if old_pause else None,
                         "texts_cancelled": cancelled, "alerts_closed": len(alert_ids)},
                 request_id=request_id)
    return Ended(cancelled, len(alert_ids))

"""Alert use-cases: raise (open or update), acknowledge, resolve, escalate up the on-call ladder.

One open alert per patient and rule family: raising rules of a family that already has an
unresolved alert updates that alert (the partial unique index makes a race lose, not duplicate).
Every change writes an AlertEvent (the alert's history) and an audit row, in the same transaction.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery import alerts as domain
from recovery import audit
from recovery.models import Alert, AlertEvent, AlertStatus, Clinic, Enrolment, OnCallStep, Patient, StaffUser
from recovery.outbox import add_if_new, new_row
from recovery.timeline import PlannedMessage
from recovery.triage import Level

STAFF_PAGE_TEXT = ("Recovery Tracker: {level} alert waiting {minutes} min for a nurse. "
                   "Please open the worklist: {link}")


class AlertConflict(Exception):
    """The alert is not in a state that allows this (e.g. acknowledging a resolved alert)."""


def _event(session: Session, alert: Alert, kind: str, now: datetime, staff_id: int | None = None,
           **detail) -> None:
    session.add(AlertEvent(alert_id=alert.id, at=now, kind=kind, actor_staff_id=staff_id, detail=detail))


def _staff_action(session: Session, alert: Alert, staff: StaffUser, now: datetime, kind: str,
                  note: str | None, disposition: str | None, request_id: str | None) -> Alert:
    """The note, the alert's history and the audit row that every nurse action on an alert leaves."""
    if note:
        alert.note = ((alert.note + "\n") if alert.note else "") + note
    _event(session, alert, kind, now, staff.id, note=note or "", disposition=disposition, rules=list(alert.rules))
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action=f"alert_{kind}",
                 patient_id=alert.patient_id, subject_type="alert", subject_id=alert.id,
                 detail={"disposition": disposition}, request_id=request_id)
    return alert


def _summary(rule_ids: list[str], ruleset=None) -> str:
    return "; ".join(domain.rule_title(r, ruleset) for r in rule_ids)[:300]


def raise_rules(session: Session, *, patient: Patient, enrolment: Enrolment | None, rule_ids: list[str],
                now: datetime, checkin_id: int | None = None, ruleset=None, source: str = "checkin",
                levels: dict[str, Level] | None = None, request_id: str | None = None) -> list[Alert]:
    """Open or update one alert per family for the given rules (check-in rules or task ids).

    `levels` gives a rule's scored level when it differs from its own (MR3 downgrades)."""
    by_family: dict[str, list[str]] = defaultdict(list)
    for r in rule_ids:
        by_family[domain.rule_family(r)].append(r)
    clinic = session.get(Clinic, patient.clinic_id)
    tz = ZoneInfo(clinic.timezone)
    out = []
    for family, rules in by_family.items():
        level = max((levels or {}).get(r, domain.rule_level(r)) for r in rules)
        if level == Level.OK:
            continue
        out.append(_raise_family(session, clinic=clinic, tz=tz, patient=patient, enrolment=enrolment,
                                 family=family, rules=rules, level=level, now=now, checkin_id=checkin_id,
                                 ruleset=ruleset, source=source, request_id=request_id))
    return out


def _raise_family(session, *, clinic, tz, patient, enrolment, family, rules, level, now, checkin_id,
                  ruleset, source, request_id) -> Alert:
    alert = session.scalar(sa.select(Alert).where(Alert.patient_id == patient.id, Alert.family == family,
                                                  Alert.status != AlertStatus.RESOLVED))
    if alert is None:
        alert = Alert(clinic_id=clinic.id, patient_id=patient.id,
                      enrolment_id=enrolment.id if enrolment else None, checkin_id=checkin_id,
                      family=family, level=level.name, rules=list(rules), summary=_summary(rules, ruleset),
                      status=AlertStatus.OPEN, opened_at=now, updated_at=now,
                      respond_by=domain.respond_by(rules, level, now, tz), escalation_step=0,
                      next_escalation_at=domain.next_escalation(level, rules, now, tz))
        session.add(alert)
        session.flush()
        _event(session, alert, "opened", now, level=level.name, rules=list(rules), source=source)
        audit.record(session, at=now, actor_type="system", actor_id=None, action="alert_opened",
                     patient_id=patient.id, subject_type="alert", subject_id=alert.id,
                     detail={"level": level.name, "rules": list(rules), "source": source},
                     request_id=request_id)
        if level == Level.EMERGENCY:
            # An EMERGENCY pages the first rung of the ladder at once (protocol §3: "immediate page").
            if not _page_next(session, alert, clinic, now, reason="emergency"):
                alert.next_escalation_at = None
        return alert
    change = domain.merge(Level[alert.level], list(alert.rules), alert.status.value, level, list(rules))
    alert.updated_at = now
    if checkin_id is not None:
        alert.checkin_id = checkin_id
    if not change.worse:
        _event(session, alert, "repeated", now, rules=list(rules), source=source)
        return alert
    raised = change.level > Level[alert.level]
    alert.level, alert.rules = change.level.name, change.rules
    alert.summary = _summary(change.rules, ruleset)
    if raised or change.reopened:
        alert.status = AlertStatus.OPEN
        alert.respond_by = domain.respond_by(change.rules, change.level, now, tz)
        alert.next_escalation_at = domain.next_escalation(change.level, change.rules, now, tz)
    if change.reopened:
        # Worse news after an acknowledgement is news again: the ladder starts from its first rung.
        alert.escalation_step = 0
    _event(session, alert, "updated", now, level=change.level.name, rules=list(rules), source=source,
           reopened=change.reopened)
    audit.record(session, at=now, actor_type="system", actor_id=None, action="alert_updated",
                 patient_id=patient.id, subject_type="alert", subject_id=alert.id,
                 detail={"level": change.level.name, "rules": change.rules, "reopened": change.reopened},
                 request_id=request_id)
    if change.level == Level.EMERGENCY and (raised or change.reopened):
        if not _page_next(session, alert, clinic, now, reason="emergency"):
            alert.next_escalation_at = None
    return alert


def load_for_change(session: Session, alert_id: int, clinic_id: int) -> Alert | None:
    """The alert, row-locked for an acknowledge/resolve (PostgreSQL: FOR UPDATE, so two nurses
    cannot both resolve it; SQLite: the write transaction already serialises). None when it is not
    this clinic's."""
    return session.scalar(sa.select(Alert).where(Alert.id == alert_id, Alert.clinic_id == clinic_id)
                          .with_for_update().execution_options(populate_existing=True))


def acknowledge(session: Session, alert: Alert, staff: StaffUser, now: datetime, note: str | None = None,
                disposition: str | None = None, request_id: str | None = None) -> Alert:
    if not domain.can_acknowledge(alert.status.value):
        raise AlertConflict(f"this alert is already {alert.status.value}")
    if disposition is not None and disposition not in domain.DISPOSITIONS:
        raise ValueError(f"unknown disposition {disposition!r}")
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at, alert.acknowledged_by_id = now, staff.id
    alert.next_escalation_at = None
    if disposition:
        alert.disposition = disposition
    return _staff_action(session, alert, staff, now, "acknowledged", note, disposition, request_id)


def resolve(session: Session, alert: Alert, staff: StaffUser, now: datetime, disposition: str,
            note: str | None = None, request_id: str | None = None) -> Alert:
    if not domain.can_resolve(alert.status.value):
        raise AlertConflict(f"this alert is already {alert.status.value}")
    if disposition not in domain.DISPOSITIONS:
        raise ValueError(f"unknown disposition {disposition!r}")
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by_id = now, staff.id
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at, alert.resolved_by_id, alert.disposition = now, staff.id, disposition
    alert.next_escalation_at = None
    return _staff_action(session, alert, staff, now, "resolved", note, disposition, request_id)


def _page_next(session: Session, alert: Alert, clinic: Clinic, now: datetime, reason: str,
               base_url: str = "") -> bool:
    """Text the next rung of the on-call ladder through the outbox. A rung whose person cannot be
    texted (inactive, no mobile) is skipped on the record and the next one is paged at once.
    False when the ladder is used up."""
    ladder = session.scalars(sa.select(OnCallStep).where(OnCallStep.clinic_id == clinic.id)
                             .order_by(OnCallStep.position)).all()
    step = alert.escalation_step + 1
    person = None
    while step <= len(ladder):
        candidate = session.get(StaffUser, ladder[step - 1].staff_id)
        if candidate is not None and candidate.active and candidate.mobile_e164:
            person = candidate
            break
        _event(session, alert, "escalation_skipped", now, step=step, staff_id=ladder[step - 1].staff_id,
               why="account disabled" if candidate is None or not candidate.active else "no mobile number")
        step += 1
    if person is None:
        alert.escalation_step = len(ladder)
        _event(session, alert, "ladder_exhausted", now, step=step)
        audit.record(session, at=now, actor_type="system", actor_id=None, action="alert_ladder_exhausted",
                     patient_id=alert.patient_id, subject_type="alert", subject_id=alert.id,
                     detail={"step": step, "reason": reason})
        return False
    alert.escalation_step = step
    minutes = max(0, int((now - alert.opened_at).total_seconds() // 60))
    text = STAFF_PAGE_TEXT.replace("{level}", alert.level).replace("{minutes}", str(minutes))
    message = PlannedMessage(id="ESC", key=f"ESC:alert{alert.id}:step{step}", kind="staff_page",
                             send_at=now, due_at=now, text_template=text, urgent=True, quiet_moved=False)
    add_if_new(session, new_row(enrolment=None, patient_id=None, recipient="staff", message=message,
                                now=now, staff_id=person.id, alert_id=alert.id))
    _event(session, alert, "escalated", now, step=step, to_staff_id=person.id, reason=reason)
    audit.record(session, at=now, actor_type="system", actor_id=None, action="alert_escalated",
                 patient_id=alert.patient_id, subject_type="alert", subject_id=alert.id,
                 detail={"step": step, "to_staff_id": person.id, "reason": reason})
    return True


def escalate_due(session: Session, now: datetime) -> int:
    """Scheduler tick: page the next rung for every unacknowledged alert past its time. Idempotent:
    each step has its own outbox key and the alert's next time moves forward."""
    due = session.scalars(sa.select(Alert).where(Alert.status == AlertStatus.OPEN,
                                                 Alert.next_escalation_at.is_not(None),
                                                 Alert.next_escalation_at <= now)
                          .order_by(Alert.next_escalation_at).limit(100)).all()
    count = 0
    for alert in due:
        clinic = session.get(Clinic, alert.clinic_id)
        tz = ZoneInfo(clinic.timezone)
        paged = _page_next(session, alert, clinic, now, reason="not acknowledged in time")
        level = Level[alert.level]
        alert.next_escalation_at = domain.next_escalation(level, list(alert.rules), now, tz) if paged else None
        count += paged
    return count


def reviewed_expected_acks(session: Session, patient_id: int) -> list[tuple[str, datetime]]:
    """(rule id, time) of every acknowledgement/resolution with disposition reviewed_expected (MR3)."""
    rows = session.execute(
        sa.select(AlertEvent.detail, AlertEvent.at).join(Alert, Alert.id == AlertEvent.alert_id)
        .where(Alert.patient_id == patient_id, AlertEvent.kind.in_(("acknowledged", "resolved")))).all()
    out = []
    for detail, at in rows:
        if (detail or {}).get("disposition") == "reviewed_expected":
            out.extend((r, at) for r in detail.get("rules", []))
    return out

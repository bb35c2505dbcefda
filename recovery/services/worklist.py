"""The nurses' worklist: open alerts of one clinic, most pressing first (read-side use-case).

One SQL statement per list (alert + patient + enrolment + who acknowledged), so the page that polls
it every few seconds stays cheap. Ordering is `order_key` (over `alerts.sort_key`): level, then a
call-back whose time has come, then unacknowledged before acknowledged, then the most overdue first.
The patient page lists a patient's open alerts in the same order.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.orm import Session

from recovery.config import Config
from recovery.domain import alerts as domain
from recovery.domain.timeline import recovery_day
from recovery.domain.triage import Level, Ruleset
from recovery.files import templates as templates_repo
from recovery.store.models import Alert, AlertStatus, Enrolment, Patient, StaffUser


@dataclass(frozen=True)
class RuleLine:
    id: str
    title: str  # in words, thresholds filled in from the rule set


@dataclass(frozen=True)
class WorklistRow:
    alert: Alert
    patient: Patient
    level: str  # EMERGENCY | URGENT | WATCH
    status: str  # open | acknowledged
    rules: list[RuleLine]
    day: int | None  # the patient's recovery day now
    open_for: str  # "12 min"
    overdue: bool
    due_text: str  # "overdue by 5 min" / "due in 40 min"
    acknowledged_by: str | None
    resolved_by: str | None
    disposition: str | None  # in words
    escalation_step: int
    follow_up_at: datetime | None  # "No answer – will try again": when to call again
    follow_up_due: bool


def order_key(alert: Alert, now: datetime) -> tuple:
    """The worklist order of an unresolved alert; the one place the ordering rule is applied."""
    return (domain.sort_key(Level[alert.level], alert.status.value, alert.respond_by, now, alert.follow_up_at),
            alert.id)


def default_ruleset() -> Ruleset:
    return templates_repo.ruleset(Config.RULESET_PATH)


def rule_lines(rule_ids: list[str], ruleset: Ruleset | None) -> list[RuleLine]:
    return [RuleLine(r, domain.rule_title(r, ruleset)) for r in rule_ids]


def duration_text(minutes: int) -> str:
    """Whole minutes as a short human duration: "4 min", "2 h 5 min", "3 d 4 h"."""
    minutes = abs(minutes)
    if minutes < 60:
        return f"{minutes} min"
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _row(alert: Alert, patient: Patient, procedure_end: datetime | None, acked_by: str | None,
         resolved_by: str | None, now: datetime, ruleset: Ruleset | None) -> WorklistRow:
    overdue = domain.overdue_minutes(alert.respond_by, now)
    return WorklistRow(
        alert=alert, patient=patient, level=alert.level, status=alert.status.value,
        rules=rule_lines(list(alert.rules), ruleset),
        day=None if procedure_end is None else recovery_day(procedure_end, now, patient.timezone),
        open_for=duration_text(max(0, int((now - alert.opened_at).total_seconds() // 60))),
        overdue=overdue > 0,
        due_text=(f"overdue by {duration_text(overdue)}" if overdue > 0 else f"due in {duration_text(overdue)}"),
        acknowledged_by=acked_by, resolved_by=resolved_by,
        disposition=domain.DISPOSITIONS.get(alert.disposition, alert.disposition) if alert.disposition else None,
        escalation_step=alert.escalation_step,
        follow_up_at=alert.follow_up_at, follow_up_due=domain.follow_up_due(alert.follow_up_at, now))


def _query(clinic_id: int):
    acker, resolver = so.aliased(StaffUser), so.aliased(StaffUser)
    return (sa.select(Alert, Patient, Enrolment.procedure_end, acker.name, resolver.name)
            .join(Patient, Patient.id == Alert.patient_id)
            .outerjoin(Enrolment, Enrolment.id == Alert.enrolment_id)
            .outerjoin(acker, acker.id == Alert.acknowledged_by_id)
            .outerjoin(resolver, resolver.id == Alert.resolved_by_id)
            .where(Alert.clinic_id == clinic_id))


@dataclass(frozen=True)
class Counts:
    emergency: int
    urgent: int
    watch: int
    unacknowledged: int
    overdue: int
    follow_ups_due: int


SHOWN = 50  # a page polled every 5 s must stay small: the most pressing first, the rest on request


class Worklist(list):
    """The rows shown (the most pressing `limit`), plus counts over every open alert."""

    def __init__(self, rows: list[WorklistRow], limit: int | None = None):
        super().__init__(rows if limit is None else rows[:limit])
        self.total = len(rows)
        self._all = rows

    @property
    def hidden(self) -> int:
        return self.total - len(self)

    @property
    def counts(self) -> Counts:
        rows = self._all
        return Counts(emergency=sum(r.level == "EMERGENCY" for r in rows),
                      urgent=sum(r.level == "URGENT" for r in rows),
                      watch=sum(r.level == "WATCH" for r in rows),
                      unacknowledged=sum(r.status == "open" for r in rows),
                      overdue=sum(r.overdue and r.status == "open" for r in rows),
                      follow_ups_due=sum(r.follow_up_due for r in rows))


def worklist_rows(session: Session, clinic_id: int, now: datetime, *,
                  ruleset: Ruleset | None = None, limit: int | None = None) -> Worklist:
    """The clinic's unresolved alerts, most pressing first (the first `limit`, counts over all)."""
    ruleset = ruleset or default_ruleset()
    result = session.execute(_query(clinic_id).where(Alert.status != AlertStatus.RESOLVED)).all()
    rows = [_row(a, p, end, by, res, now, ruleset) for a, p, end, by, res in result]
    rows.sort(key=lambda r: order_key(r.alert, now))
    return Worklist(rows, limit)


def worklist_row(session: Session, alert_id: int, clinic_id: int, now: datetime, *,
                 ruleset: Ruleset | None = None) -> WorklistRow | None:
    """One alert as a worklist row (after an acknowledge), resolved or not; None if not this clinic's."""
    found = session.execute(_query(clinic_id).where(Alert.id == alert_id)).first()
    if found is None:
        return None
    a, p, end, by, res = found
    return _row(a, p, end, by, res, now, ruleset or default_ruleset())

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

from recovery.domain import alerts as domain
from recovery.domain.timeline import recovery_day
from recovery.domain.triage import Level, Ruleset
from recovery.files import templates as templates_repo
from recovery.store.models import Alert, AlertEvent, AlertStatus, Enrolment, Patient, StaffUser, TriageLevel


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
    return _order(alert.id, alert.level, alert.status.value, alert.respond_by, alert.follow_up_at, now)


def _order(alert_id: int, level: str, status: str, respond_by: datetime, follow_up_at: datetime | None,
           now: datetime) -> tuple:
    return (domain.sort_key(Level[level], status, respond_by, now, follow_up_at), alert_id)


def default_ruleset() -> Ruleset:
    return templates_repo.configured_ruleset()


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
    """The rows shown (the most pressing), plus counts over every open alert."""

    def __init__(self, rows: list[WorklistRow], counts: Counts, latest: datetime | None):
        super().__init__(rows)
        self.counts = counts
        self.total = counts.emergency + counts.urgent + counts.watch
        self._latest = latest

    def version(self, clinic_id: int, now: datetime) -> str:
        """The same tag as `version`, from what was read for the list."""
        return version_tag(clinic_id, self.total, self._latest, now)

    @property
    def hidden(self) -> int:
        return self.total - len(self)


def worklist_rows(session: Session, clinic_id: int, now: datetime, *,
                  ruleset: Ruleset | None = None, limit: int | None = None) -> Worklist:
    """The clinic's unresolved alerts, most pressing first (the first `limit`, counts over all).

    Two statements: the few columns that order and count every open alert (plain rows, cheap even
    for hundreds), then the alerts and patients of the rows shown. Building ORM objects and rows
    for every open alert cost most of the page with 700 of them (issue 17)."""
    ruleset = ruleset or default_ruleset()
    keys = session.execute(
        sa.select(Alert.id, Alert.level, Alert.status, Alert.respond_by, Alert.follow_up_at, Alert.updated_at)
        .where(Alert.clinic_id == clinic_id, Alert.status != AlertStatus.RESOLVED)).all()
    keys.sort(key=lambda k: _order(k.id, k.level, k.status.value, k.respond_by, k.follow_up_at, now))
    shown = keys if limit is None else keys[:limit]
    found = {a.id: (a, p, end, by, res) for a, p, end, by, res in session.execute(
        _query(clinic_id).where(Alert.id.in_([k.id for k in shown])))} if shown else {}
    rows = [_row(*found[k.id], now, ruleset) for k in shown if k.id in found]
    return Worklist(rows, _counts(keys, now), latest=max((k.updated_at for k in keys), default=None))


def _counts(keys, now: datetime) -> Counts:
    open_ = [k for k in keys if k.status == AlertStatus.OPEN]
    return Counts(emergency=sum(k.level == TriageLevel.EMERGENCY for k in keys),
                  urgent=sum(k.level == TriageLevel.URGENT for k in keys),
                  watch=sum(k.level == TriageLevel.WATCH for k in keys),
                  unacknowledged=len(open_),
                  overdue=sum(domain.overdue_minutes(k.respond_by, now) > 0 for k in open_),
                  follow_ups_due=sum(domain.follow_up_due(k.follow_up_at, now) for k in keys))


def version_tag(clinic_id: int, unresolved: int, latest: datetime | None, now: datetime) -> str:
    """A short tag that changes whenever the clinic's worklist would look different: an alert
    opened (the count, and its updated_at is the newest), changed (each change moves its updated_at,
    see alerting._event) or resolved (the count), or the minute turned (the rows say "open for 12
    min", "due in 40 min", the recovery day)."""
    stamp = int(latest.timestamp() * 1_000_000) if latest is not None else 0
    return f"{clinic_id:x}.{unresolved}.{stamp:x}.{int(now.timestamp() // 60):x}"


def version(session: Session, clinic_id: int, now: datetime) -> str:
    """`version_tag` of the clinic's unresolved alerts, in one statement: what a poll that brings
    the tag it was shown pays to learn that nothing changed."""
    unresolved, latest = session.execute(
        sa.select(sa.func.count(), sa.func.max(Alert.updated_at))
        .where(Alert.clinic_id == clinic_id, Alert.status != AlertStatus.RESOLVED)).one()
    return version_tag(clinic_id, unresolved, latest, now)


def worklist_row(session: Session, alert_id: int, clinic_id: int, now: datetime, *,
                 ruleset: Ruleset | None = None) -> WorklistRow | None:
    """One alert as a worklist row (after an acknowledge), resolved or not; None if not this clinic's."""
    found = session.execute(_query(clinic_id).where(Alert.id == alert_id)).first()
    if found is None:
        return None
    a, p, end, by, res = found
    return _row(a, p, end, by, res, now, ruleset or default_ruleset())


@dataclass(frozen=True)
class SharedText:
    """A text from a shared family phone, as its task (M7) holds it, with the patients on the phone."""
    at: datetime
    text: str
    candidates: list[dict]  # {"id", "name"} when the text came


def shared_phone_texts(session: Session, alert: Alert) -> list[SharedText]:
    """The texts of a shared-phone task, oldest first (empty for any other alert)."""
    if alert.family != "shared_number":
        return []
    events = session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.id))
    return [SharedText(e.at, e.detail["shared_text"], list(e.detail.get("candidates", [])))
            for e in events if "shared_text" in (e.detail or {})]

"""The nurses' worklist: open alerts of one clinic, most pressing first (read-side use-case).

Two SQL statements per list: the counts and version over every open alert (aggregates, no rows),
then the rows shown (alert + patient + enrolment + who acknowledged), ordered and cut in SQL, so a
page with 700 open alerts builds 50 rows, not 700. Ordering is `order_key` (over `alerts.sort_key`):
level, then a call-back whose time has come, then unacknowledged before acknowledged, then the most
overdue first; `_sql_order` is the same rule in SQL (tests/services/test_worklist_version.py holds
them together). The patient page lists a patient's open alerts in the same order.

A poll that brings the version it was shown pays one statement (`poll_version`: the staff session
and the version together) when nothing changed (issue 17).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.orm import Session

from recovery.domain import alerts as domain
from recovery.domain.timeline import recovery_day
from recovery.domain.triage import Level, Ruleset
from recovery.files import templates as templates_repo
from recovery.services.sessions import SessionPolicy, staff_clinic_of, staff_session_select
from recovery.services.tokens import digest
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
    """The worklist order of an unresolved alert in Python (the patient page); `_sql_order` is the
    same rule for the worklist's statement."""
    return (domain.sort_key(Level[alert.level], alert.status.value, alert.respond_by, now, alert.follow_up_at),
            alert.id)


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

    def __init__(self, rows: list[WorklistRow], counts: Counts, stamp: tuple):
        super().__init__(rows)
        self.counts = counts
        self.total = counts.emergency + counts.urgent + counts.watch
        self._stamp = stamp

    def version(self, clinic_id: int, now: datetime) -> str:
        """The same tag as `version`, from what was read for the list."""
        return version_tag(clinic_id, *self._stamp, now)

    @property
    def hidden(self) -> int:
        return self.total - len(self)


_UNRESOLVED = Alert.status != AlertStatus.RESOLVED


def _stamp_columns() -> tuple:
    """What the version is made of, over a clinic's unresolved alerts: how many, and the newest
    change (every change moves an alert's updated_at, see alerting._event). Only these two: the
    poll pays for every column it reads of every open alert (issue 17)."""
    return sa.func.count(Alert.id), sa.func.max(Alert.updated_at)


def _sum(condition) -> sa.ColumnElement:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _sql_order(now: datetime) -> tuple:
    """`order_key` in SQL: level, then a call-back that is due, then open before acknowledged, then
    the earliest due (a due call-back counts from its follow-up time), then the id."""
    rank = sa.case({level.name: int(level) for level in Level}, value=Alert.level, else_=0)
    call_back = Alert.follow_up_at <= now
    bucket = sa.case((call_back, 0), (Alert.status == AlertStatus.OPEN, 1), else_=2)
    due = sa.case((call_back, Alert.follow_up_at), else_=Alert.respond_by)
    return rank.desc(), bucket, due, Alert.id


def worklist_rows(session: Session, clinic_id: int, now: datetime, *,
                  ruleset: Ruleset | None = None, limit: int | None = None) -> Worklist:
    """The clinic's unresolved alerts, most pressing first (the first `limit`, counts over all).

    Two statements: the counts and the version over every open alert (aggregates in SQL), then
    the rows shown, ordered and cut in SQL. Building rows for every open alert, or even sorting
    them in Python, cost most of the page with 700 of them (issue 17)."""
    ruleset = ruleset or default_ruleset()
    n, latest, emergency, urgent, watch, open_, overdue, call_backs = session.execute(
        sa.select(*_stamp_columns(), _sum(Alert.level == TriageLevel.EMERGENCY),
                  _sum(Alert.level == TriageLevel.URGENT), _sum(Alert.level == TriageLevel.WATCH),
                  _sum(Alert.status == AlertStatus.OPEN),
                  # overdue_minutes > 0: a whole minute past the response time
                  _sum(sa.and_(Alert.status == AlertStatus.OPEN, Alert.respond_by <= now - timedelta(minutes=1))),
                  _sum(Alert.follow_up_at <= now))
        .where(Alert.clinic_id == clinic_id, _UNRESOLVED)).one()
    counts = Counts(emergency=emergency or 0, urgent=urgent or 0, watch=watch or 0, unacknowledged=open_ or 0,
                    overdue=overdue or 0, follow_ups_due=call_backs or 0)
    rows = []
    if n:
        stmt = _query(clinic_id).where(_UNRESOLVED).order_by(*_sql_order(now))
        rows = [_row(a, p, end, by, res, now, ruleset)
                for a, p, end, by, res in session.execute(stmt if limit is None else stmt.limit(limit))]
    return Worklist(rows, counts, stamp=(n, latest))


def version_tag(clinic_id: int, unresolved: int, latest: datetime | None, now: datetime) -> str:
    """A short tag that changes whenever the clinic's worklist would look different: an alert
    opened (the count, and its updated_at is the newest), changed (each change moves its updated_at,
    see alerting._event; what a row shows of its patient too, see `patient_changed`) or resolved
    (the count), or the minute turned (the rows say "open for 12 min", "due in 40 min", the
    recovery day). A change another process stamped a moment before the newest (clocks differ by
    milliseconds) shows when the minute turns at the latest."""
    stamp = int(latest.timestamp() * 1_000_000) if latest is not None else 0
    return f"{clinic_id:x}.{unresolved}.{stamp:x}.{int(now.timestamp() // 60):x}"


def version(session: Session, clinic_id: int, now: datetime) -> str:
    """`version_tag` of the clinic's unresolved alerts, in one statement."""
    stamp = session.execute(sa.select(*_stamp_columns()).where(Alert.clinic_id == clinic_id, _UNRESOLVED)).one()
    return version_tag(clinic_id, *stamp, now)


# The session check and the version in one statement: a poll when nothing changed pays only this.
_POLL = staff_session_select(*_stamp_columns()).outerjoin(
    Alert, sa.and_(Alert.clinic_id == StaffUser.clinic_id, _UNRESOLVED))


def poll_version(conn: Session | sa.Connection, token: str, now: datetime, policy: SessionPolicy) -> str | None:
    """The worklist version of the clinic of the live staff session `token` names, or None when
    there is none (the caller then takes the ordinary path: sign-in, the list). One Core
    statement, no objects built, nothing written (a background refresh does not touch the
    session's last_seen). `conn`: a plain Connection is cheapest (the poll uses one of its own)."""
    row = conn.execute(_POLL, {"token_hash": digest(token)}).first()
    clinic_id = staff_clinic_of(row, now, policy)
    return None if clinic_id is None else version_tag(clinic_id, *row[-2:], now)


# What a worklist row shows of its patient (services/patient_details field names); the procedure
# time (the recovery day) is the other thing, see enrolment.correct_procedure_times.
SHOWN_OF_PATIENT = frozenset({"first_name", "last_name", "mobile_e164", "timezone"})


def patient_changed(session: Session, patient_id: int, now: datetime) -> None:
    """Something a worklist row shows of this patient changed (name, number, time zone, procedure
    time): move the updated_at of their unresolved alerts, so every nurse's polling list reloads."""
    session.execute(sa.update(Alert).where(Alert.patient_id == patient_id, _UNRESOLVED, Alert.updated_at < now)
                    .values(updated_at=now).execution_options(synchronize_session=False))


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

"""The clinic dashboard (issue 16): adherence, alert handling, texts and outcomes for one period.

One statement per figure, aggregates (counts, group-bys) in SQL on both SQLite and PostgreSQL.
Recovery days are local dates in each patient's zone, computed in SQL from zoneinfo's UTC offsets
(_recovery_day), so adherence and back pain are grouped by day in the database. Medians and
percentiles are not SQL on SQLite: back pain comes as counts per day and value, alert times as one
value per alert, and recovery/domain/quantiles.py computes them. "Missed in a row" is a property of
a sequence: only the enrolments with two or more missed (chosen in SQL) are fetched row by row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session

from recovery.domain import peg as peg_rules
from recovery.domain import reports as rules
from recovery.domain.charts import DayBand, pain_band_svg
from recovery.domain.quantiles import Spread, spread
from recovery.messaging import error_kind
from recovery.services import peg
from recovery.services.missed import MARKER, SENT_STATES
from recovery.store import audit
from recovery.store.models import (Alert, AlertEvent, AuditEvent, Checkin, CheckinStatus, Enrolment, OnCallStep,
                                   OutboundMessage, OutboxStatus, Patient, StaffUser, TriageLevel)

OM = OutboundMessage
LEVELS = (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.WATCH)
# Each level's response time (recovery/domain/alerts.py respond_by): what the figures are held against.
LEVEL_TARGETS = {"EMERGENCY": "15 minutes", "URGENT": "4 hours (or the rule's own, if shorter)",
                 "WATCH": "next business day"}
TEXT_RECIPIENTS = ("patient", "caregiver")
MISSED_IN_A_ROW = 2  # the list of patients with this many missed check-ins in a row


@dataclass
class AlertLevelRow:
    level: str
    target: str
    opened: int = 0
    acknowledged: int = 0
    resolved: int = 0
    in_time: int = 0  # acknowledged by the alert's own respond_by
    escalated: int = 0
    outside_hours: int = 0  # opened outside the clinic's service hours
    hours_set: int = 0  # opened while the clinic had service hours (Alert.outside_service_hours not NULL)
    ack: Spread = field(default_factory=lambda: spread([]))  # minutes from opening to acknowledgement
    resolve: Spread = field(default_factory=lambda: spread([]))  # minutes from opening to resolution

    @property
    def outside_hours_text(self) -> str:
        return rules.outside_hours_text(self.outside_hours, self.hours_set, self.opened)


@dataclass
class TextSummary:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    by_reason: dict[str, int] = field(default_factory=lambda: {k: 0 for k in rules.FAILURE_LABELS})
    opt_outs: list[tuple[date, int]] = field(default_factory=list)


@dataclass
class Dashboard:
    period: rules.Period
    adherence_by_day: dict[int, dict[str, int]]
    adherence_total: dict[str, int]
    missed_runs: list[rules.MissedRun]
    alerts: list[AlertLevelRow]
    escalations: list[tuple[int, str, int]]  # rung, who (the ladder's current holder), alerts escalated
    texts: TextSummary
    pain: list[DayBand]
    peg: peg_rules.Cohort | None = None  # PEG change, baseline to 6 weeks (recovery/services/peg.py)

    @property
    def pain_chart(self) -> str:
        """SVG markup drawn from `pain`, the numbers of the table beneath it (recovery/domain/charts.py,
        as the patient page's chart)."""
        return pain_band_svg(self.pain, chart_id="pain-band")


def _core(session: Session):
    """The session's connection: the figures with thousands of rows skip the ORM's row loading."""
    return session.connection()


def _between(col, period: rules.Period):
    return sa.and_(col >= period.start_utc, col < period.end_utc)


@dataclass(frozen=True)
class _Enrolled:
    patient_id: int
    name: str
    zone: ZoneInfo
    procedure_end: datetime


def _enrolments(session: Session, clinic_id: int) -> dict[int, _Enrolled]:
    """The clinic's enrolments with their patient's name and zone (one statement, shared by the
    figures: the zones and the earliest procedure bound the local-date conversion in SQL)."""
    zones: dict[str, ZoneInfo] = {}
    out = {}
    for eid, pid, first, last, tz, end in session.execute(
            sa.select(Enrolment.id, Patient.id, Patient.first_name, Patient.last_name, Patient.timezone,
                      Enrolment.procedure_end)
            .join(Patient, Patient.id == Enrolment.patient_id).where(Enrolment.clinic_id == clinic_id)).all():
        out[eid] = _Enrolled(pid, f"{first} {last}", zones.setdefault(tz, ZoneInfo(tz)), end)
    return out


class epoch_seconds(sa.sql.expression.FunctionElement):
    """Whole seconds since 1970 of a UTC timestamp, computed by the database."""
    type = sa.BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element, compiler, **kw):
    return f"CAST(strftime('%s', {compiler.process(list(element.clauses)[0], **kw)}) AS INTEGER)"


@compiles(epoch_seconds)
def _epoch_default(element, compiler, **kw):
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(list(element.clauses)[0], **kw)})) AS BIGINT)"


def _recovery_day(instant, enrolled: dict[int, _Enrolled], period: rules.Period):
    """SQL for recovery.domain.timeline.recovery_day: the instant's local date minus the procedure's local date, in the
    patient's zone (Patient.timezone must be in the query). The zone's UTC offsets come from zoneinfo
    (rules.offset_spans), so SQLite, which has no zone database, and PostgreSQL count the same days."""
    start = min((e.procedure_end for e in enrolled.values()), default=period.start_utc)
    start = min(start, period.start_utc).replace(hour=0, minute=0, second=0, microsecond=0)  # cache-friendly
    zones = {e.zone.key: e.zone for e in enrolled.values()}

    def local_day(col):
        def offset(spans):
            if len(spans) == 1:
                return sa.literal(spans[0][1], sa.BigInteger())
            return sa.case(*[(col < until, off) for until, off in spans[:-1]], else_=spans[-1][1])
        per_zone = {k: offset(rules.offset_spans(z, start, period.end_utc))
                    for k, z in zones.items()}
        if len(per_zone) <= 1:  # one zone (or no enrolment: no rows either)
            off = next(iter(per_zone.values()), sa.literal(0, sa.BigInteger()))
        else:
            off = sa.case(*[(Patient.timezone == k, o) for k, o in per_zone.items()], else_=0)
        return (epoch_seconds(col) + off) // 86400

    return local_day(instant) - local_day(Enrolment.procedure_end)


def _invitations(clinic_id: int, period: rules.Period):
    """The period's sent check-in invitations (the missed scan's SENT_STATES) with the scan's verdict
    and whether their slot was submitted (both after the invitation went out: >= the start)."""
    marker = AuditEvent.detail["outcome"].as_string()
    submitted = sa.exists().where(Checkin.enrolment_id == OM.enrolment_id, Checkin.slot == OM.slot,
                                  Checkin.status == CheckinStatus.SUBMITTED, Checkin.submitted_at >= period.start_utc)
    base = (sa.select().select_from(OM).join(Enrolment, Enrolment.id == OM.enrolment_id)
            .join(Patient, Patient.id == Enrolment.patient_id)
            .outerjoin(AuditEvent, sa.and_(AuditEvent.subject_id == OM.id, AuditEvent.action == MARKER,
                                           AuditEvent.subject_type == "outbound_message",
                                           AuditEvent.at >= period.start_utc))
            .where(Enrolment.clinic_id == clinic_id, OM.kind == "checkin_invite", OM.recipient == "patient",
                   OM.status.in_(SENT_STATES), _between(OM.sent_at, period)))
    return base, marker, submitted


def adherence(session: Session, clinic_id: int, period: rules.Period, enrolled: dict[int, _Enrolled]):
    """Invitations by recovery day and outcome, counted in SQL (one statement)."""
    base, marker, submitted = _invitations(clinic_id, period)
    inner = base.add_columns(_recovery_day(OM.sent_at, enrolled, period).label("day"), marker.label("marker"),
                             submitted.label("submitted")).subquery()
    rows = session.execute(sa.select(inner.c.day, inner.c.marker, inner.c.submitted, sa.func.count())
                           .group_by(inner.c.day, inner.c.marker, inner.c.submitted)).all()
    return rules.tally_counts((int(d), rules.invite_outcome(m, bool(s)), n) for d, m, s, n in rows)


def invites(session: Session, clinic_id: int, period: rules.Period,
            enrolled: dict[int, _Enrolled] | None = None, *, missed_at_least: int | None = None) -> list[rules.Invite]:
    """Every check-in invitation sent in the period with what it came to (one statement); with
    `missed_at_least`, only those of enrolments with that many missed (the missed-in-a-row list's
    candidates, chosen in SQL). Recovery days are not computed here (`day` is 0): see adherence()."""
    enrolled = _enrolments(session, clinic_id) if enrolled is None else enrolled
    base, marker, submitted = _invitations(clinic_id, period)
    q = base.add_columns(OM.enrolment_id, OM.sent_at, marker, submitted)
    if missed_at_least is not None:
        missed = base.add_columns(OM.enrolment_id).where(marker == "missed", ~submitted) \
            .group_by(OM.enrolment_id).having(sa.func.count() >= missed_at_least)
        q = q.where(OM.enrolment_id.in_(missed.scalar_subquery()))
    out = []
    for enrolment_id, sent_at, verdict, was_submitted in session.execute(
            q.order_by(OM.enrolment_id, OM.sent_at, OM.id)).all():
        e = enrolled[enrolment_id]
        out.append(rules.Invite(enrolment_id, e.patient_id, e.name, 0, sent_at,
                                rules.invite_outcome(verdict, bool(was_submitted))))
    return out


class minutes_between(sa.sql.expression.FunctionElement):
    """Minutes from one timestamp to another, computed by the database (no datetime per row)."""
    type = sa.Float()
    inherit_cache = True


@compiles(minutes_between, "sqlite")
def _minutes_sqlite(element, compiler, **kw):
    a, b = list(element.clauses)
    return f"((julianday({compiler.process(b, **kw)}) - julianday({compiler.process(a, **kw)})) * 1440.0)"


@compiles(minutes_between)
def _minutes_default(element, compiler, **kw):
    a, b = list(element.clauses)
    return f"(EXTRACT(EPOCH FROM ({compiler.process(b, **kw)} - {compiler.process(a, **kw)})) / 60.0)"


def alert_rows(session: Session, clinic_id: int, period: rules.Period) -> list[AlertLevelRow]:
    """Alerts opened in the period by level: counts in SQL (one statement), the times to acknowledge
    and resolve from one more statement, their median and 90th percentile in the domain."""
    in_time = sa.case((Alert.acknowledged_at <= Alert.respond_by, 1), else_=0)
    outside = sa.case((Alert.outside_service_hours.is_(True), 1), else_=0)
    was_escalated = sa.exists().where(AlertEvent.alert_id == Alert.id, AlertEvent.kind == "escalated")
    where = (Alert.clinic_id == clinic_id, _between(Alert.opened_at, period))
    counts = session.execute(
        sa.select(Alert.level, sa.func.count(), sa.func.count(Alert.acknowledged_at),
                  sa.func.count(Alert.resolved_at), sa.func.coalesce(sa.func.sum(in_time), 0),
                  sa.func.coalesce(sa.func.sum(sa.case((was_escalated, 1), else_=0)), 0),
                  sa.func.coalesce(sa.func.sum(outside), 0), sa.func.count(Alert.outside_service_hours))
        .where(*where).group_by(Alert.level)).all()
    by_level = {lv: AlertLevelRow(lv, LEVEL_TARGETS.get(lv, "")) for lv in LEVELS}
    for level, n, acked, resolved, timely, escalated, out_of_hours, hours_set in counts:
        row = by_level.setdefault(level, AlertLevelRow(level, LEVEL_TARGETS.get(level, "")))
        row.opened, row.acknowledged, row.resolved, row.in_time, row.escalated = (
            n, acked, resolved, int(timely), int(escalated))
        row.outside_hours, row.hours_set = int(out_of_hours), hours_set
    times = session.execute(
        sa.select(Alert.level, minutes_between(Alert.opened_at, Alert.acknowledged_at),
                  minutes_between(Alert.opened_at, Alert.resolved_at))
        .where(*where, Alert.acknowledged_at.is_not(None))).all()
    acks: dict[str, list[float]] = {}
    res: dict[str, list[float]] = {}
    for level, to_ack, to_resolve in times:
        acks.setdefault(level, []).append(float(to_ack))
        if to_resolve is not None:
            res.setdefault(level, []).append(float(to_resolve))
    for level, row in by_level.items():
        row.ack, row.resolve = spread(acks.get(level, [])), spread(res.get(level, []))
    order = {lv: i for i, lv in enumerate(LEVELS)}
    return sorted(by_level.values(), key=lambda r: (order.get(r.level, 99), r.level))


def escalations(session: Session, clinic_id: int, period: rules.Period) -> list[tuple[int, str, int]]:
    """Alerts opened in the period that were escalated, by the ladder rung they reached (alert_event
    rows of kind "escalated"; each rung at most once per alert). One statement."""
    step = AlertEvent.detail["step"].as_integer()
    name = sa.func.coalesce(StaffUser.name, OnCallStep.name)  # a staff rung or a phone rung
    rows = session.execute(
        sa.select(step, sa.func.count(sa.distinct(AlertEvent.alert_id)), name)
        .join(Alert, Alert.id == AlertEvent.alert_id)
        .outerjoin(OnCallStep, sa.and_(OnCallStep.clinic_id == clinic_id, OnCallStep.position == step))
        .outerjoin(StaffUser, StaffUser.id == OnCallStep.staff_id)
        .where(AlertEvent.kind == "escalated", Alert.clinic_id == clinic_id, _between(Alert.opened_at, period))
        .group_by(step, name).order_by(step)).all()
    return [(int(s or 0), name or "–", n) for s, n, name in rows]


def texts(session: Session, clinic_id: int, period: rules.Period) -> TextSummary:
    """Texts to patients and caregivers that went out (or failed) in the period, grouped in SQL by
    status, reason and error code (one statement); opt-outs per local week (one more)."""
    at = sa.func.coalesce(OM.sent_at, OM.final_at)
    rows = session.execute(
        sa.select(OM.status, OM.status_reason, OM.error_code, OM.sent_at.is_not(None), sa.func.count())
        .join(Patient, Patient.id == OM.patient_id)
        .where(Patient.clinic_id == clinic_id, OM.recipient.in_(TEXT_RECIPIENTS),
               OM.status.in_((OutboxStatus.SENT, OutboxStatus.DELIVERED, OutboxStatus.UNDELIVERED,
                              OutboxStatus.FAILED, OutboxStatus.SUPPRESSED)),
               at >= period.start_utc, at < period.end_utc)
        .group_by(OM.status, OM.status_reason, OM.error_code, OM.sent_at.is_not(None))).all()
    out = TextSummary()
    for status, reason, code, was_sent, n in rows:
        status = OutboxStatus(status)
        if status == OutboxStatus.SUPPRESSED and reason != "opted_out":
            continue  # held back by our own rules (quiet hours, consent): never a failed text
        if was_sent:
            out.sent += n
        if status == OutboxStatus.DELIVERED:
            out.delivered += n
        elif status in (OutboxStatus.UNDELIVERED, OutboxStatus.FAILED, OutboxStatus.SUPPRESSED):
            out.failed += n
            kind = error_kind(int(code), None) if (code or "").isdigit() else None
            out.by_reason[rules.failure_reason(reason, kind)] += n
    opt_outs = session.scalars(
        sa.select(AuditEvent.at).join(Patient, Patient.id == AuditEvent.patient_id)
        .where(AuditEvent.action == "sms_opted_out", Patient.clinic_id == clinic_id,
               _between(AuditEvent.at, period))).all()
    out.opt_outs = rules.per_week(opt_outs, period)
    return out


def pain_bands(session: Session, clinic_id: int, period: rules.Period,
               enrolled: dict[int, _Enrolled] | None = None) -> list[DayBand]:
    """Back pain (0-10) of the check-ins submitted in the period, by recovery day: median and
    25th-75th percentiles. One statement counts the check-ins per day and value."""
    enrolled = _enrolments(session, clinic_id) if enrolled is None else enrolled
    pain = Checkin.answers["back_pain"].as_integer()
    inner = (sa.select(_recovery_day(Checkin.submitted_at, enrolled, period).label("day"), pain.label("pain"))
             .join(Enrolment, Enrolment.id == Checkin.enrolment_id).join(Patient, Patient.id == Enrolment.patient_id)
             .where(Enrolment.clinic_id == clinic_id, Checkin.status == CheckinStatus.SUBMITTED,
                    _between(Checkin.submitted_at, period), pain.between(0, 10))).subquery()
    by_day: dict[int, list[int]] = {}
    for day, value, n in session.execute(sa.select(inner.c.day, inner.c.pain, sa.func.count())
                                         .group_by(inner.c.day, inner.c.pain)).all():
        by_day.setdefault(max(0, int(day)), []).extend([int(value)] * n)
    bands = []
    for day, values in sorted(by_day.items()):
        s = spread(values)
        bands.append(DayBand(day, s.n, s.p25, s.median, s.p75))
    return bands


def dashboard(session: Session, clinic_id: int, period: rules.Period,
              peg_instrument: peg_rules.Instrument | None = None) -> Dashboard:
    """`peg_instrument`: the PEG (recovery/files/instruments.py) for its improvement threshold;
    without it the PEG figure is left out."""
    enrolled = _enrolments(session, clinic_id)
    by_day, total = adherence(session, clinic_id, period, enrolled)
    candidates = invites(session, clinic_id, period, enrolled, missed_at_least=MISSED_IN_A_ROW)
    return Dashboard(period=period, adherence_by_day=by_day, adherence_total=total,
                     missed_runs=rules.missed_runs(candidates, MISSED_IN_A_ROW), alerts=alert_rows(session, clinic_id, period),
                     escalations=escalations(session, clinic_id, period), texts=texts(session, clinic_id, period),
                     pain=pain_bands(session, clinic_id, period, enrolled),
                     peg=peg.cohort(session, clinic_id, period, peg_instrument) if peg_instrument else None)


def audit_patient_list_export(session: Session, *, staff_id: int, period: rules.Period,
                              patient_ids: list[int], now: datetime, request_id: str | None) -> None:
    """The list of patients with missed check-ins names patients: its export is a PHI read, one
    audit row per patient named (as a record view is), so each patient's trail shows it."""
    for pid in dict.fromkeys(patient_ids):
        audit.record(session, at=now, actor_type="staff", actor_id=staff_id, action="report_exported",
                     patient_id=pid, subject_type="patient", subject_id=pid,
                     detail={"table": "missed_in_a_row", "from": period.start.isoformat(),
                             "to": period.end.isoformat()}, request_id=request_id)

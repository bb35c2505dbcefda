"""Read-side use-cases for the nurse pages: the patient list and one patient's record.

Each query is written so a page costs a fixed, small number of SQL statements (no N+1): the
patient page reads the record in five (enrolments with check-ins; texts in both directions;
alerts with their history and the staff named in it; the audit trail) and writes one audit row.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from recovery.domain import alerts as alert_domain
from recovery.domain.charts import PainPoint, pain_trend_svg
from recovery.domain.identity import parse_day
from recovery.domain.missed_rules import MISSED  # a slot's outcome in the missed scan's marker
from recovery.store import audit
from recovery.store.models import (Alert, AlertEvent, AlertStatus, AuditEvent, Checkin, CheckinStatus, Enrolment,
                                   EnrolmentStatus, InboundMessage, OutboundMessage, OutboxStatus, Patient,
                                   StaffUser, TriageLevel)
from recovery.domain.questionnaire.answers import coerce_answers
from recovery.domain.questionnaire.items import ITEMS
from recovery.domain.questionnaire.model import celsius, Kind
from recovery.domain.timeline import recovery_day
from recovery.domain.triage import Ruleset
from recovery.services import peg
from recovery.services.missed import MARKER as MISSED_MARKER
from recovery.services.worklist import RuleLine, default_ruleset, order_key, rule_lines
from recovery.store.enrolments import current_enrolment


@dataclass(frozen=True)
class PatientRow:
    patient: Patient
    enrolment: Enrolment | None
    day: int | None
    open_level: str | None  # the most pressing open alert's level
    open_alerts: int = 0
    last_checkin: datetime | None = None  # the latest submitted check-in of the current episode
    missed: int = 0  # check-in slots of the current episode the missed scan closed as missed
    next_due: datetime | None = None  # the next check-in invitation still planned


ROSTER_STATUSES = ("active", "paused", "ended")
ROSTER_ONLY = {"alerts": "Has open alerts", "missed": "Missed a check-in"}
ROSTER_PAGE_SIZE = 50
_LEVEL_RANK = {TriageLevel.WATCH: 1, TriageLevel.URGENT: 2, TriageLevel.EMERGENCY: 3}


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _search(query: str, month_first: bool):
    """What the roster's search box finds, or None for an empty query.

    * a day (1950-03-07, or the clinic's 03/07/1950): the date of birth;
    * 3 or more digits (spaces, dashes, brackets ignored): the end of the mobile number, or the MRN;
    * otherwise every word must be part of the first or the last name ("Dora Day" finds Dora
      Day-Zero), or the whole query is the MRN (letters and digits: "AB-1234")."""
    query = (query or "").strip()
    if not query:
        return None
    mrn = sa.func.lower(Patient.mrn) == query.lower()
    day = parse_day(query, month_first=month_first)
    if day is not None:
        return Patient.birth_date == day
    digits = re.sub(r"[\s().+-]", "", query)
    if digits.isdigit() and len(digits) >= 3 and digits.isascii():
        return sa.or_(Patient.mobile_e164.like(f"%{digits}"), mrn)
    words = [sa.or_(sa.func.lower(Patient.last_name).like(_like(w), escape="\\"),
                    sa.func.lower(Patient.first_name).like(_like(w), escape="\\"))
             for w in query.lower().split()[:4]]
    return sa.or_(sa.and_(*words), mrn)


def _status_filter(status: str, now: datetime):
    """`status`: active | paused | ended | "" (all)."""
    active = Enrolment.status == EnrolmentStatus.ACTIVE
    paused = sa.and_(active, Enrolment.paused_until.is_not(None), Enrolment.paused_until > now)
    return {"active": sa.and_(active, sa.not_(paused)), "paused": paused,
            "ended": sa.and_(Enrolment.id.is_not(None), sa.not_(active))}.get(status)


@dataclass(frozen=True)
class RosterPage:
    rows: list[PatientRow]
    total: int  # patients matching, over every page
    page: int  # 1-based, clamped to the pages there are
    pages: int
    per_page: int

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)


def _roster_columns(clinic_id: int, pids: list[int] | None = None, eids: list[int] | None = None):
    """Per enrolment or patient, grouped in SQL: open alerts (count, highest level), last check-in,
    missed check-ins, next invitation due; with `pids`/`eids`, only those patients' and enrolments'
    (the page shown: grouping every row of the clinic's check-ins, texts and audit for a page of 50
    was most of the roster's time with 500 patients, issue 17)."""
    def only(stmt, column, ids):
        return stmt if ids is None else stmt.where(column.in_(ids))

    rank = sa.case(*((Alert.level == level, n) for level, n in _LEVEL_RANK.items()), else_=0)
    alerts = only(sa.select(Alert.patient_id.label("pid"), sa.func.count().label("n"), sa.func.max(rank).label("rank"))
                  .where(Alert.clinic_id == clinic_id, Alert.status != AlertStatus.RESOLVED), Alert.patient_id, pids)
    alerts = alerts.group_by(Alert.patient_id).subquery()
    last = only(sa.select(Checkin.enrolment_id.label("eid"), sa.func.max(Checkin.submitted_at).label("at"))
                .join(Enrolment, Enrolment.id == Checkin.enrolment_id)
                .where(Enrolment.clinic_id == clinic_id, Checkin.status == CheckinStatus.SUBMITTED),
                Checkin.enrolment_id, eids).group_by(Checkin.enrolment_id).subquery()
    # the scan's markers carry the patient: their index finds a page's without reading the whole audit
    missed = only(sa.select(OutboundMessage.enrolment_id.label("eid"), sa.func.count().label("n"))
                  .select_from(AuditEvent)
                  .join(OutboundMessage, OutboundMessage.id == AuditEvent.subject_id)
                  .join(Enrolment, Enrolment.id == OutboundMessage.enrolment_id)
                  .where(AuditEvent.action == MISSED_MARKER, AuditEvent.subject_type == "outbound_message",
                         AuditEvent.detail["outcome"].as_string() == MISSED, Enrolment.clinic_id == clinic_id),
                  AuditEvent.patient_id, pids)
    missed = only(missed, OutboundMessage.enrolment_id, eids).group_by(OutboundMessage.enrolment_id).subquery()
    # the conditions inside the min(): in the WHERE clause SQLite took the (status, send_after) index
    # and read every planned text of every clinic (7 ms of 9,500 rows) instead of the page's
    invite = sa.and_(OutboundMessage.kind == "checkin_invite", OutboundMessage.recipient == "patient",
                     OutboundMessage.status == OutboxStatus.PLANNED)
    due = only(sa.select(OutboundMessage.enrolment_id.label("eid"),
                         sa.func.min(sa.case((invite, OutboundMessage.send_after))).label("at"))
               .join(Enrolment, Enrolment.id == OutboundMessage.enrolment_id).where(Enrolment.clinic_id == clinic_id),
               OutboundMessage.enrolment_id, eids).group_by(OutboundMessage.enrolment_id).subquery()
    return alerts, last, missed, due


def patient_list(session: Session, clinic_id: int, now: datetime, query: str = "", status: str = "", *,
                 only: str = "", page: int = 1, per_page: int | None = None,
                 month_first: bool = True) -> RosterPage:
    """One page of the clinic's roster: each patient's current episode with its figures. Three
    statements whatever the page size: the count, the page's patients and episodes, then their
    figures aggregated in SQL for that page only. `only`: "alerts" (has open alerts) | "missed"
    (missed a check-in) | "" ; a page past the last is the last."""
    per_page = per_page or ROSTER_PAGE_SIZE
    latest = (sa.select(Enrolment.patient_id, sa.func.max(Enrolment.id).label("eid"))
              .where(Enrolment.clinic_id == clinic_id).group_by(Enrolment.patient_id).subquery())
    base = (sa.select(Patient.id)
            .outerjoin(latest, latest.c.patient_id == Patient.id)
            .outerjoin(Enrolment, Enrolment.id == latest.c.eid)
            .where(Patient.clinic_id == clinic_id))
    if only in ("alerts", "missed"):  # grouped rows exist only where the count is above 0
        alerts, _, missed, _ = _roster_columns(clinic_id)
        base = (base.join(alerts, alerts.c.pid == Patient.id) if only == "alerts"
                else base.join(missed, missed.c.eid == Enrolment.id))
    for condition in (_search(query, month_first), _status_filter(status, now)):
        if condition is not None:
            base = base.where(condition)
    total = session.scalar(sa.select(sa.func.count()).select_from(base.subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    shown = session.execute(base.with_only_columns(Patient, Enrolment)
                            .order_by(Enrolment.procedure_end.desc().nullslast(), Patient.last_name, Patient.id)
                            .limit(per_page).offset((page - 1) * per_page)).all()
    figures: dict[int, tuple] = {}
    if shown:
        pids = [p.id for p, _ in shown]
        eids = [e.id for _, e in shown if e is not None]
        alerts, last, missed, due = _roster_columns(clinic_id, pids, eids)
        current = so.aliased(Enrolment)
        figures = {pid: rest for pid, *rest in session.execute(
            sa.select(Patient.id, alerts.c.n, alerts.c.rank, last.c.at, missed.c.n, due.c.at)
            .outerjoin(current, sa.and_(current.patient_id == Patient.id, current.id.in_(eids or [-1])))
            .outerjoin(alerts, alerts.c.pid == Patient.id)
            .outerjoin(last, last.c.eid == current.id).outerjoin(missed, missed.c.eid == current.id)
            .outerjoin(due, due.c.eid == current.id)
            .where(Patient.id.in_(pids)))}
    levels = {n: level.value for level, n in _LEVEL_RANK.items()}
    rows = []
    for p, e in shown:
        n_alerts, rank, last_at, n_missed, due_at = figures.get(p.id, (None,) * 5)
        rows.append(PatientRow(p, e, recovery_day(e.procedure_end, now, p.timezone) if e else None, levels.get(rank),
                               open_alerts=n_alerts or 0, last_checkin=last_at, missed=n_missed or 0,
                               next_due=due_at))
    return RosterPage(rows, total, page, pages, per_page)


# ---------------------------------------------------------------------------------------------
# Answers in words (the patient's review screen and the nurse's record)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnswerLine:
    item_id: str
    question: str
    answer: str


def _temperature_words(value: Decimal, unit: str) -> str:
    entered = f"{value.normalize():f} °{unit}"
    if unit == "C":
        return entered
    return f"{entered} ({celsius(value, unit):f} °C)"


def _same(words: str) -> str:
    return words


# Words answer_words builds itself (besides the questionnaire's labels), for a translator `say`.
OUT_OF = "{value} out of {maximum}"


def answer_words(item_id: str, value: Any, say: Callable[[str], str] = _same) -> str:
    """The answer in words; `say` translates the questionnaire's words (the patient's own review
    page reads them in the patient's language; nurses' pages in English)."""
    item = ITEMS[item_id]
    if item.kind is Kind.MULTI:
        return ", ".join(say(o.label) for o in item.options if o.value in value)
    if item.kind is Kind.ENUM:
        return say(item.label_for(value))
    if item.kind is Kind.BOOL:
        return say("Yes" if value else "No")
    if item.kind is Kind.INT:
        return say(OUT_OF).format(value=value, maximum=item.maximum) if item.maximum == 10 else str(value)
    return str(value)


def answer_lines(answers: Mapping[str, Any], item_ids: tuple[str, ...] | None = None,
                 say: Callable[[str], str] = _same) -> list[AnswerLine]:
    """Typed answers as (question, answer in words), in questionnaire order. A temperature reads as
    entered plus its °C value (rounded as the rules use it)."""
    lines = []
    for item_id in item_ids or tuple(ITEMS):
        if item_id not in answers or item_id == "temp_unit":
            continue
        value = answers[item_id]
        if item_id == "temp_value":
            unit = answers.get("temp_unit")
            words = _temperature_words(value, unit) if unit else f"{value} (no unit)"
        else:
            words = answer_words(item_id, value, say)
        lines.append(AnswerLine(item_id, ITEMS[item_id].question, words))
    return lines


# ---------------------------------------------------------------------------------------------
# One patient's record
# ---------------------------------------------------------------------------------------------

_LINK_TOKEN = re.compile(r"(/l/)[A-Za-z0-9_-]{8,}")


def mask_links(text: str) -> str:
    """A sent text holds the patient's link token, which opens their session: never show it."""
    return _LINK_TOKEN.sub(r"\1[link]", text)


@dataclass(frozen=True)
class TextLine:
    direction: str  # out | in
    id: int
    at: datetime  # planned send time (out) or received time (in)
    code: str  # S06 … (out) or how it was handled (in)
    party: str  # recipient (out) or sender role (in)
    status: str
    reason: str | None
    error: str | None
    text: str
    sent_at: datetime | None
    key: str | None = None  # occurrence key of an outbound text ("S02:TD+1h")
    segments: int | None = None  # SMS segments as sent (out): more than 1 costs more and may arrive split
    encoding: str | None = None  # GSM-7 | UCS-2 (a name outside GSM-7 makes a text UCS-2)


# The views below are plain snapshots, not ORM rows: the page renders after the request commits,
# and nothing in them may go back to the database (one refresh per row would be an N+1).

@dataclass(frozen=True)
class CheckinView:
    id: int
    status: str  # in_progress | submitted | abandoned
    slot: str | None
    source: str
    started_at: datetime
    submitted_at: datetime | None
    level: str | None
    rules: list[RuleLine]
    ruleset_version: str | None
    answers: list[AnswerLine]
    back_pain: int | None


@dataclass(frozen=True)
class EventLine:
    at: datetime
    kind: str
    who: str | None
    words: str
    answers: list[AnswerLine] = field(default_factory=list)  # the check-in the patient finished


@dataclass(frozen=True)
class AlertView:
    id: int
    level: str
    status: str  # open | acknowledged | resolved
    opened_at: datetime
    respond_by: datetime
    rules: list[RuleLine]
    events: list[EventLine]
    disposition: str | None  # in words
    note: str | None
    follow_up_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.status != AlertStatus.RESOLVED.value


@dataclass(frozen=True)
class AuditLine:
    at: datetime
    who: str
    action: str


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
    enrolment: Enrolment | None
    checkins: list[CheckinView]
    messages: list[TextLine]  # texts sent or planned, oldest first
    inbound: list[TextLine]  # texts from the patient or caregiver (the nurse inbox), newest first
    alerts: list[AlertView]  # newest first
    audit: list[AuditLine]  # newest first
    pain_points: list[PainPoint]  # the chart's numbers, also the table beneath it
    pain_baseline: int | None
    open_alerts: list[AlertView] = field(default_factory=list)  # in the worklist's order
    past_alerts: list[AlertView] = field(default_factory=list)  # newest first
    peg: Any = None  # the PEG card's figures (services/peg.summary) when an instrument was given
    episodes: list[Enrolment] = field(default_factory=list)  # every enrolment of the patient, oldest first
    current: bool = True  # `enrolment` is the current episode (False: an earlier one, read only)

    @property
    def pain_chart(self) -> str:
        """SVG markup drawn from `pain_points` (recovery/domain/charts.py, as the dashboard's chart)."""
        return pain_trend_svg(self.pain_points, baseline=self.pain_baseline,
                              title=f"Back pain at each check-in, {self.patient.first_name} {self.patient.last_name}",
                              chart_id=f"pain-{self.patient.id}")


def _event_words(kind: str, detail: Mapping[str, Any], target: str | None, tz: ZoneInfo) -> str:
    words = _plain_event_words(kind, detail, target, tz)
    d = detail or {}
    if "shared_text" in d:  # a text from a shared family phone (task M7): what it said, and who may have sent it
        who = ", ".join(f"{c.get('name', '')} (#{c.get('id')})" for c in d.get("candidates", []))
        words += f". Text from the shared phone: “{d['shared_text']}”. On this phone: {who}"
    return words


def _plain_event_words(kind: str, detail: Mapping[str, Any], target: str | None, tz: ZoneInfo) -> str:
    d = detail or {}
    if kind == "opened":
        after = (f", after alert #{d['follows_alert_id']} of the same check-in was resolved"
                 if d.get("follows_alert_id") else "")
        return f"Opened: {d.get('level', '')} ({', '.join(d.get('rules', []))}) from {d.get('source', '')}{after}"
    if kind == "updated":
        return (f"Updated: now {d.get('level', '')} with {', '.join(d.get('rules', []))}"
                + (" (back on the list)" if d.get("reopened") else ""))
    if kind == "repeated":
        return f"Same rules again ({', '.join(d.get('rules', []))})"
    if kind in ("checkin_completed", "answers_added"):
        head = ("The patient finished the check-in after this alert was resolved" if kind == "checkin_completed"
                else "More answers after this alert was resolved")
        new = d.get("new_rules") or []
        tail = (f"; new: {', '.join(new)}, on alert #{d.get('new_rules_alert_id')}" if new
                else "; nothing new, nobody paged")
        return f"{head} ({', '.join(d.get('rules', []))}){tail}"
    if kind == "follow_up":
        when = datetime.fromisoformat(d["follow_up_at"]).astimezone(tz).strftime("%H:%M") if d.get("follow_up_at") else "?"
        label = alert_domain.DISPOSITIONS.get(d.get("disposition"), d.get("disposition") or "")
        return f"{label}: call again at {when}" + (f". Note: {d['note']}" if d.get("note") else "")
    if kind == "acknowledged":
        return "Acknowledged" + (f": {d['note']}" if d.get("note") else "")
    if kind == "resolved":
        label = alert_domain.DISPOSITIONS.get(d.get("disposition"), d.get("disposition") or "")
        return f"Resolved: {label}" + (f". Note: {d['note']}" if d.get("note") else "")
    if kind == "escalated":
        why = d.get("reason", "")
        target = target or d.get("to_name")  # a phone rung has no account
        return f"Paged on-call rung {d.get('step')}" + (f" ({target})" if target else "") + (f": {why}" if why else "")
    if kind == "escalation_skipped":
        return f"On-call rung {d.get('step')} skipped: {d.get('why', '')}"
    if kind == "ladder_exhausted":
        return "Nobody left on the on-call ladder to page"
    return kind.replace("_", " ")


def _texts(session: Session, patient_id: int, episode=None) -> tuple[list[TextLine], list[TextLine]]:
    """Texts in both directions in one statement. `episode`: (enrolment id, its current flag, received
    from, received until): the texts of that episode (outbound by their enrolment, and the current
    episode also those of none; inbound by when they came, between its start and the next one's)."""
    out_q = sa.select(
        sa.literal("out").label("direction"), OutboundMessage.id.label("id"),
        OutboundMessage.send_after.label("at"), OutboundMessage.message_id.label("code"),
        OutboundMessage.recipient.label("party"), sa.cast(OutboundMessage.status, sa.String).label("status"),
        OutboundMessage.status_reason.label("reason"), OutboundMessage.error_code.label("error"),
        sa.func.coalesce(OutboundMessage.body, OutboundMessage.text_template).label("text"),
        OutboundMessage.sent_at.label("sent_at"), OutboundMessage.occurrence_key.label("key"),
        OutboundMessage.segments.label("segments"), OutboundMessage.encoding.label("encoding"),
    ).where(OutboundMessage.patient_id == patient_id)
    if episode is not None:
        eid, is_current, _, _ = episode
        out_q = out_q.where(sa.or_(OutboundMessage.enrolment_id == eid,
                                   OutboundMessage.enrolment_id.is_(None) if is_current else sa.false()))
    in_q = sa.select(
        sa.literal("in"), InboundMessage.id, InboundMessage.received_at, InboundMessage.handled_as,
        InboundMessage.sender_role, sa.case((InboundMessage.read_at.is_(None), "unread"), else_="read"),
        sa.cast(sa.null(), sa.String), sa.cast(sa.null(), sa.String), InboundMessage.body,
        InboundMessage.read_at, sa.cast(sa.null(), sa.String), sa.cast(sa.null(), sa.SmallInteger),
        sa.cast(sa.null(), sa.String),
    ).where(InboundMessage.patient_id == patient_id)
    if episode is not None:
        _, _, since, until = episode
        if since is not None:
            in_q = in_q.where(InboundMessage.received_at >= since)
        if until is not None:
            in_q = in_q.where(InboundMessage.received_at < until)
    rows = session.execute(sa.union_all(out_q, in_q)).all()
    lines = [TextLine(r.direction, r.id, r.at, r.code, r.party, r.status, r.reason, r.error,
                      mask_links(r.text or ""), r.sent_at, r.key, r.segments, r.encoding) for r in rows]
    outbound = sorted((t for t in lines if t.direction == "out"), key=lambda t: (t.at, t.id))
    inbound = sorted((t for t in lines if t.direction == "in"), key=lambda t: (t.at, t.id), reverse=True)
    return outbound, inbound


def _alerts(session: Session, patient: Patient, ruleset: Ruleset, answers_of: Mapping[int, list[AnswerLine]],
            now: datetime, episode=None) -> tuple[list[AlertView], list[AlertView]]:
    """Every alert of the patient with its history: (open ones in the worklist's order, all newest
    first). `answers_of` gives a check-in's answers, shown where the history says the patient
    finished it."""
    actor, target = so.aliased(StaffUser), so.aliased(StaffUser)
    stmt = (sa.select(Alert, AlertEvent, actor.name, target.name)
            .outerjoin(AlertEvent, AlertEvent.alert_id == Alert.id)
            .outerjoin(actor, actor.id == AlertEvent.actor_staff_id)
            .outerjoin(target, target.id == AlertEvent.detail["to_staff_id"].as_integer())
            .where(Alert.patient_id == patient.id)
            .order_by(Alert.opened_at.desc(), Alert.id.desc(), AlertEvent.id))
    if episode is not None:  # the episode's alerts (the current one's also those of no enrolment)
        eid, is_current = episode[0], episode[1]
        stmt = stmt.where(sa.or_(Alert.enrolment_id == eid, Alert.enrolment_id.is_(None) if is_current else sa.false()))
    rows = session.execute(stmt).all()
    tz = ZoneInfo(patient.timezone)
    views: dict[int, tuple[Alert, list[EventLine]]] = {}
    for alert, event, who, to in rows:
        _, events = views.setdefault(alert.id, (alert, []))
        if event is not None:
            finished = (answers_of.get((event.detail or {}).get("checkin_id"), [])
                        if event.kind == "checkin_completed" else [])
            events.append(EventLine(event.at, event.kind, who, _event_words(event.kind, event.detail, to, tz),
                                    finished))

    def view(a: Alert, ev: list[EventLine]) -> AlertView:
        return AlertView(a.id, a.level, a.status.value, a.opened_at, a.respond_by, rule_lines(list(a.rules), ruleset),
                         ev, alert_domain.DISPOSITIONS.get(a.disposition, a.disposition) if a.disposition else None,
                         a.note, a.follow_up_at if a.status != AlertStatus.RESOLVED else None)

    unresolved = sorted((a for a, _ in views.values() if a.status != AlertStatus.RESOLVED),
                        key=lambda a: order_key(a, now))
    return [view(a, views[a.id][1]) for a in unresolved], [view(a, ev) for a, ev in views.values()]


def _pain_points(checkins: list[Checkin], t0: datetime, tz: ZoneInfo) -> list[PainPoint]:
    points = []
    for c in checkins:
        pain = (c.answers or {}).get("back_pain")
        if c.status != CheckinStatus.SUBMITTED or pain is None or c.submitted_at is None:
            continue
        hours = c.hours if c.hours is not None else (c.submitted_at - t0).total_seconds() / 3600
        points.append(PainPoint(max(0.0, hours / 24), int(pain),
                                c.submitted_at.astimezone(tz).strftime("%a %-d %b %H:%M")))
    return points


def patient_record(session: Session, patient: Patient, *, staff_id: int, now: datetime,
                   request_id: str | None = None, ruleset: Ruleset | None = None,
                   peg_instrument=None, page: str | None = None,
                   enrolment_id: int | None = None) -> PatientRecord:
    """Everything the nurse page shows; viewing a record writes an audit row (HIPAA audit controls),
    whose detail names the `page` when it is not the patient page (the PDF: "pdf").

    The record is of one episode: the current one, or the earlier one `enrolment_id` names (its
    check-ins, texts, alerts and timeline; LookupError when the patient has no such enrolment).
    The audit trail is the patient's, whole."""
    ruleset = ruleset or default_ruleset()
    tz = ZoneInfo(patient.timezone)
    enrolments: dict[int, Enrolment] = {}
    checkins: list[Checkin] = []
    for enrolment, checkin in session.execute(
            sa.select(Enrolment, Checkin).outerjoin(Checkin, Checkin.enrolment_id == Enrolment.id)
            .where(Enrolment.patient_id == patient.id)
            .order_by(Enrolment.id, Checkin.started_at.desc(), Checkin.id.desc())):
        enrolments[enrolment.id] = enrolment
        if checkin is not None:
            checkins.append(checkin)
    # Fill the relationship from this query so current_enrolment() costs no extra statement.
    set_committed_value(patient, "enrolments", list(enrolments.values()))
    current = current_enrolment(patient)
    if enrolment_id is not None and enrolment_id not in enrolments:
        raise LookupError(f"patient {patient.id} has no enrolment {enrolment_id}")
    enrolment = enrolments[enrolment_id] if enrolment_id is not None else current
    is_current = enrolment is current
    episode = None
    if enrolment is not None:
        order = list(enrolments)
        i = order.index(enrolment.id)
        since = enrolment.created_at if i > 0 else None
        until = enrolments[order[i + 1]].created_at if i + 1 < len(order) else None
        episode = (enrolment.id, is_current, since, until)
        checkins = [c for c in checkins if c.enrolment_id == enrolment.id]
    checkins.sort(key=lambda c: (c.started_at, c.id), reverse=True)
    checkin_views = []
    for c in checkins:
        answers = coerce_answers(c.answers or {})
        checkin_views.append(CheckinView(
            c.id, c.status, c.slot, c.source, c.started_at, c.submitted_at, c.level,
            rule_lines(list(c.fired_rules or []), ruleset), c.ruleset_version, answer_lines(answers),
            answers.get("back_pain")))
    outbound, inbound = _texts(session, patient.id, episode)
    open_alerts, alert_views = _alerts(session, patient, ruleset, {v.id: v.answers for v in checkin_views}, now,
                                       episode)
    staff = so.aliased(StaffUser)
    trail = [AuditLine(e.at, name or (f"{e.actor_type} #{e.actor_id}" if e.actor_id else e.actor_type), e.action)
             for e, name in session.execute(
                 sa.select(AuditEvent, staff.name)
                 .outerjoin(staff, sa.and_(AuditEvent.actor_type == "staff", staff.id == AuditEvent.actor_id))
                 .where(AuditEvent.patient_id == patient.id).order_by(AuditEvent.id.desc()).limit(200))]
    points = _pain_points(list(reversed(checkins)), enrolment.procedure_end, tz) if enrolment else []
    peg_card = (peg.summary(session, enrolment, peg_instrument)
                if peg_instrument is not None and enrolment is not None else None)
    audit.record(session, at=now, actor_type="staff", actor_id=staff_id, action="record_viewed",
                 patient_id=patient.id, subject_type="patient", subject_id=patient.id,
                 detail=({"page": page} if page else {}) | ({} if is_current else {"enrolment": enrolment.id}),
                 request_id=request_id)
    return PatientRecord(patient, enrolment, checkin_views, outbound, inbound, alert_views, trail, points,
                         enrolment.baseline_back_pain if enrolment else None,
                         open_alerts=open_alerts, past_alerts=[a for a in alert_views if not a.open], peg=peg_card,
                         episodes=list(enrolments.values()), current=is_current)

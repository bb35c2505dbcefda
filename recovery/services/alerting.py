"""Alert use-cases: raise (open or update), acknowledge, resolve or try again later, escalate up
the on-call ladder.

Grouping (issue 10 item 4): everything one check-in raises, from its first emergency answer (MR2)
to its submission, and a "Y" to the red-flag question by text, is ONE alert, at its highest level
with all its rules. A check-in's alert is never merged with another check-in's: a later check-in is
a new report and gets its own alert (and an EMERGENCY its own page), which MR3 already keeps from
repeating what a nurse reviewed as expected. When the check-in's alert was resolved before the
check-in ends, the rest of it is added to that alert's history; rules it did not have open one new
alert with just those rules. Nurse tasks from the schedule and the SMS side (M1–M6, M4e, R1 without
a check-in) keep one open alert per patient and task family. Partial unique indexes make a race
lose, not duplicate.

Paging: an alert pages the next rung of the ladder at once when it first becomes EMERGENCY; after
that only the escalation tick pages, one rung at a time, each rung at most once per alert, and
never while the alert is acknowledged. Outside the clinic's service hours (services/clinic_settings.py;
a clinic without them set behaves as before) an URGENT alert is due for its first page at once, so
the next tick pages rung 1 instead of waiting for a response time nobody is watching; the alert
records `outside_service_hours` when it opens. Every change writes an AlertEvent (the alert's history) and
an audit row, in the same transaction.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain import alerts as domain
from recovery.domain.triage import RULES, Level, Ruleset
from recovery.files import templates as templates_repo
from recovery.store import audit
from recovery.services import on_call
from recovery.services.clinic_settings import outside_service_hours
from recovery.store.models import Alert, AlertEvent, AlertStatus, Clinic, Enrolment, Patient, StaffUser

STAFF_PAGE_TEXT = ("Recovery Tracker: {level} alert waiting {minutes} min for a nurse. "
                   "Please open the worklist: {link}")
SUBMITTED_SOURCES = frozenset({"checkin"})  # a submitted check-in (not a draft, not a text reply)


class AlertConflict(Exception):
    """The alert is not in a state that allows this (e.g. acknowledging a resolved alert)."""


def _event(session: Session, alert: Alert, kind: str, now: datetime, staff_id: int | None = None,
           **detail) -> None:
    session.add(AlertEvent(alert_id=alert.id, at=now, kind=kind, actor_staff_id=staff_id, detail=detail))
    # Every change to an alert leaves an event, so updated_at moves with each one: the worklist's
    # version (worklist.version) reads it to tell a poll that nothing changed.
    if alert.updated_at is None or now > alert.updated_at:
        alert.updated_at = now


def _system_audit(session: Session, alert: Alert, now: datetime, action: str, detail: dict,
                  request_id: str | None = None) -> None:
    audit.record(session, at=now, actor_type="system", actor_id=None, action=action,
                 patient_id=alert.patient_id, subject_type="alert", subject_id=alert.id, detail=detail,
                 request_id=request_id)


def _staff_action(session: Session, alert: Alert, staff: StaffUser, now: datetime, kind: str,
                  note: str | None, disposition: str | None, request_id: str | None, **extra) -> Alert:
    """The note, the alert's history and the audit row that every nurse action on an alert leaves."""
    if note:
        alert.note = ((alert.note + "\n") if alert.note else "") + note
    _event(session, alert, kind, now, staff.id, note=note or "", disposition=disposition, rules=list(alert.rules),
           **extra)
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action=f"alert_{kind}",
                 patient_id=alert.patient_id, subject_type="alert", subject_id=alert.id,
                 detail={"disposition": disposition, **extra}, request_id=request_id)
    return alert


def _summary(rule_ids: list[str], ruleset=None) -> str:
    return "; ".join(domain.rule_title(r, ruleset) for r in rule_ids)[:300]


@dataclass(frozen=True)
class _Raise:
    """What every raise needs besides the rules."""
    clinic: Clinic
    tz: ZoneInfo
    patient: Patient
    enrolment: Enrolment | None
    now: datetime
    checkin_id: int | None
    ruleset: Ruleset  # the check-in's, else the configured one: titles and response times
    source: str
    request_id: str | None
    outside: bool | None  # outside the clinic's service hours now (None: none set)
    detail: dict | None = None  # more for the alert's history (a shared phone's text and its patients)


def raise_rules(session: Session, *, patient: Patient, enrolment: Enrolment | None, rule_ids: list[str],
                now: datetime, checkin_id: int | None = None, ruleset=None, source: str = "checkin",
                levels: dict[str, Level] | None = None, request_id: str | None = None,
                detail: dict | None = None) -> list[Alert]:
    """Open or update alerts for the given rules (check-in rules or task ids): with a `checkin_id`,
    the check-in's one alert; without, one per task family.

    `levels` gives a rule's scored level when it differs from its own (MR3 downgrades); `detail`
    goes into the history event this raise writes (opened, updated or repeated). Returns the
    alerts opened or updated (for a check-in whose alert was already resolved and that brought
    nothing new, that resolved alert)."""
    scored = {r: (levels or {}).get(r, domain.rule_level(r)) for r in dict.fromkeys(rule_ids)}
    scored = {r: level for r, level in scored.items() if level > Level.OK}
    if not scored:
        return []
    clinic = session.get(Clinic, patient.clinic_id)
    ctx = _Raise(clinic, ZoneInfo(clinic.timezone), patient, enrolment, now, checkin_id,
                 ruleset or templates_repo.configured_ruleset(), source, request_id, outside_service_hours(clinic, now),
                 detail)
    if checkin_id is not None:
        return [_raise_for_checkin(session, ctx, scored)]
    by_family: dict[str, dict[str, Level]] = defaultdict(dict)
    for r, level in scored.items():
        by_family[domain.rule_family(r)][r] = level
    out = []
    for family, rules in by_family.items():
        alert = session.scalar(sa.select(Alert).where(Alert.patient_id == patient.id, Alert.family == family,
                                                      Alert.status != AlertStatus.RESOLVED))
        out.append(_open(session, ctx, family, rules) if alert is None else _update(session, ctx, alert, rules))
    return out


def _raise_for_checkin(session: Session, ctx: _Raise, scored: dict[str, Level]) -> Alert:
    """The check-in's alert: open it, update it, or (after it was resolved) add to its history and
    open one alert with whatever it did not have."""
    mine = session.scalars(sa.select(Alert).where(Alert.checkin_id == ctx.checkin_id)
                           .order_by(Alert.id).with_for_update()).all()
    current = mine[-1] if mine else None
    handled = {r for a in mine if a.status == AlertStatus.RESOLVED for r in a.rules}
    if current is None:
        return _open(session, ctx, domain.CHECKIN_FAMILY, scored)
    if current.status != AlertStatus.RESOLVED:
        # rules a nurse already closed in an earlier alert of this check-in are not news again
        fresh = {r: level for r, level in scored.items() if r not in handled or r in current.rules}
        if not fresh:
            _event(session, current, "repeated", ctx.now, rules=list(scored), source=ctx.source,
                   checkin_id=ctx.checkin_id)
            return current
        return _update(session, ctx, current, fresh)
    new = {r: level for r, level in scored.items() if r not in handled}
    follow_on = _open(session, ctx, domain.CHECKIN_FAMILY, new, follows=current.id) if new else None
    submitted = ctx.source in SUBMITTED_SOURCES
    detail = {"checkin_id": ctx.checkin_id, "source": ctx.source, "rules": list(scored),
              "new_rules": list(new), "new_rules_alert_id": follow_on.id if follow_on else None}
    _event(session, current, "checkin_completed" if submitted else "answers_added", ctx.now, **detail)
    _system_audit(session, current, ctx.now, "alert_checkin_completed" if submitted else "alert_answers_added",
                  detail, ctx.request_id)
    current.updated_at = ctx.now
    return follow_on or current


def _open(session: Session, ctx: _Raise, family: str, rules: dict[str, Level], follows: int | None = None) -> Alert:
    level = max(rules.values())
    rule_ids = list(rules)
    now = ctx.now
    alert = Alert(clinic_id=ctx.clinic.id, patient_id=ctx.patient.id,
                  enrolment_id=ctx.enrolment.id if ctx.enrolment else None, checkin_id=ctx.checkin_id,
                  family=family, level=level.name, rules=rule_ids, summary=_summary(rule_ids, ctx.ruleset),
                  status=AlertStatus.OPEN, opened_at=now, updated_at=now,
                  respond_by=domain.respond_by(rule_ids, level, now, ctx.tz, ctx.ruleset.response), escalation_step=0,
                  next_escalation_at=domain.next_escalation(level, rule_ids, now, ctx.tz, ctx.ruleset.response,
                                                            outside_service_hours=ctx.outside),
                  outside_service_hours=ctx.outside)
    session.add(alert)
    session.flush()
    extra = {"follows_alert_id": follows} if follows else {}
    _event(session, alert, "opened", now, level=level.name, rules=rule_ids, source=ctx.source,
           checkin_id=ctx.checkin_id, **extra, **(ctx.detail or {}))
    _system_audit(session, alert, now, "alert_opened",
                  {"level": level.name, "rules": rule_ids, "source": ctx.source, **extra}, ctx.request_id)
    if level == Level.EMERGENCY:
        # An EMERGENCY pages the first rung of the ladder at once (protocol §3: "immediate page").
        if not _page_next(session, alert, ctx.clinic, now, reason="emergency"):
            alert.next_escalation_at = None
    return alert


def _update(session: Session, ctx: _Raise, alert: Alert, rules: dict[str, Level]) -> Alert:
    now = ctx.now
    change = domain.merge(Level[alert.level], list(alert.rules), alert.status.value, rules)
    alert.updated_at = now
    if not change.worse:
        _event(session, alert, "repeated", now, rules=list(rules), source=ctx.source, checkin_id=ctx.checkin_id,
               **(ctx.detail or {}))
        return alert
    alert.level, alert.rules = change.level.name, change.rules
    alert.summary = _summary(change.rules, ctx.ruleset)
    if change.raised or change.reopened:
        alert.status = AlertStatus.OPEN
        alert.respond_by = domain.respond_by(change.rules, change.level, now, ctx.tz, ctx.ruleset.response)
        # The ladder goes on from the rung it had reached: each rung is paged at most once per alert.
        alert.next_escalation_at = domain.next_escalation(change.level, change.rules, now, ctx.tz,
                                                          ctx.ruleset.response, outside_service_hours=ctx.outside)
    _event(session, alert, "updated", now, level=change.level.name, rules=list(rules), added=change.added,
           source=ctx.source, checkin_id=ctx.checkin_id, reopened=change.reopened, **(ctx.detail or {}))
    _system_audit(session, alert, now, "alert_updated",
                  {"level": change.level.name, "rules": change.rules, "reopened": change.reopened},
                  ctx.request_id)
    if change.level == Level.EMERGENCY and change.raised:
        if not _page_next(session, alert, ctx.clinic, now, reason="emergency"):
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
    if not domain.resolves(disposition):
        raise ValueError(f"{disposition!r} does not resolve an alert")
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by_id = now, staff.id
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at, alert.resolved_by_id, alert.disposition = now, staff.id, disposition
    alert.next_escalation_at = alert.follow_up_at = None
    return _staff_action(session, alert, staff, now, "resolved", note, disposition, request_id)


def try_again(session: Session, alert: Alert, staff: StaffUser, now: datetime, follow_up_at: datetime,
              note: str | None = None, disposition: str = "no_answer", request_id: str | None = None) -> Alert:
    """The nurse could not reach the patient: the alert stays open, in hand (acknowledged, so nobody
    is paged), and comes back to the top of the worklist at `follow_up_at`."""
    if not domain.can_resolve(alert.status.value):
        raise AlertConflict(f"this alert is already {alert.status.value}")
    if disposition not in domain.TRY_AGAIN:
        raise ValueError(f"{disposition!r} is not a try-again outcome")
    if follow_up_at <= now:
        raise ValueError("the follow-up time must be in the future")
    if alert.acknowledged_at is None or alert.status == AlertStatus.OPEN:
        alert.acknowledged_at, alert.acknowledged_by_id = now, staff.id
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.next_escalation_at = None
    alert.follow_up_at = follow_up_at
    alert.updated_at = now
    return _staff_action(session, alert, staff, now, "follow_up", note, disposition, request_id,
                         follow_up_at=follow_up_at.isoformat())


def record_outcome(session: Session, alert: Alert, staff: StaffUser, now: datetime, disposition: str,
                   note: str | None = None, follow_up_minutes: int = domain.DEFAULT_FOLLOW_UP_MINUTES,
                   request_id: str | None = None) -> Alert:
    """What the nurse did: resolves the alert, unless the outcome means "try again later"."""
    if disposition not in domain.DISPOSITIONS:
        raise ValueError(f"unknown disposition {disposition!r}")
    if domain.resolves(disposition):
        return resolve(session, alert, staff, now, disposition, note=note, request_id=request_id)
    return try_again(session, alert, staff, now, now + timedelta(minutes=follow_up_minutes), note=note,
                     disposition=disposition, request_id=request_id)


def _page_next(session: Session, alert: Alert, clinic: Clinic, now: datetime, reason: str,
               base_url: str = "") -> bool:
    """Text the next rung of the on-call ladder through the outbox (services/on_call.py). A rung
    that cannot be texted (a disabled account, no mobile) is skipped on the record and the next
    one is paged at once. False when the ladder is used up."""
    ladder = on_call.ladder(session, clinic.id)
    step = alert.escalation_step + 1
    rung = None
    while step <= len(ladder):
        candidate = on_call.describe(session, ladder[step - 1])
        if candidate.number is not None:
            rung = candidate
            break
        _event(session, alert, "escalation_skipped", now, step=step, staff_id=candidate.staff_id,
               why=candidate.problem)
        step += 1
    if rung is None:
        alert.escalation_step = len(ladder)
        _event(session, alert, "ladder_exhausted", now, step=step)
        audit.record(session, at=now, actor_type="system", actor_id=None, action="alert_ladder_exhausted",
                     patient_id=alert.patient_id, subject_type="alert", subject_id=alert.id,
                     detail={"step": step, "reason": reason})
        return False
    alert.escalation_step = step
    minutes = max(0, int((now - alert.opened_at).total_seconds() // 60))
    text = STAFF_PAGE_TEXT.replace("{level}", alert.level).replace("{minutes}", str(minutes))
    on_call.queue_page(session, clinic=clinic, rung=rung, message_id="ESC", key=f"ESC:alert{alert.id}:step{step}",
                       kind="staff_page", text=text, now=now, alert_id=alert.id)
    # A phone rung has no account: its name is on the record (never its number).
    target = {"to_staff_id": rung.staff_id} if rung.staff_id is not None else {"to_rung_id": rung.id,
                                                                               "to_name": rung.name}
    _event(session, alert, "escalated", now, step=step, reason=reason, **target)
    audit.record(session, at=now, actor_type="system", actor_id=None, action="alert_escalated",
                 patient_id=alert.patient_id, subject_type="alert", subject_id=alert.id,
                 detail={"step": step, "reason": reason, **target})
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
        # Paged before its response time ran out: it opened (or got worse) outside service hours.
        reason = "outside service hours" if now < alert.respond_by else "not acknowledged in time"
        paged = _page_next(session, alert, clinic, now, reason=reason)
        level = Level[alert.level]
        times = templates_repo.configured_ruleset().response
        alert.next_escalation_at = domain.next_escalation(level, list(alert.rules), now, tz, times) if paged else None
        count += paged
    return count


def reviewed_expected_acks(session: Session, patient_id: int) -> list[tuple[str, datetime]]:
    """(rule id, time) of every acknowledgement/resolution with disposition reviewed_expected, for
    MR3. Only triage rules (E/U/W) mean anything to MR3: a nurse task (M1–M6, M4e, R1) reviewed as
    expected is left out, as the rule engine does not know it."""
    rows = session.execute(
        sa.select(AlertEvent.detail, AlertEvent.at).join(Alert, Alert.id == AlertEvent.alert_id)
        .where(Alert.patient_id == patient_id, AlertEvent.kind.in_(("acknowledged", "resolved")))
        .order_by(AlertEvent.at, AlertEvent.id)).all()
    out = []
    for detail, at in rows:
        if (detail or {}).get("disposition") == "reviewed_expected":
            out.extend((r, at) for r in detail.get("rules", []) if r in RULES)
    return out

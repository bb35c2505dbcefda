"""Alert state for the nurse worklist: levels, response times, transitions, escalation timing.

Pure domain code (standard library only, `now` passed in). The persistence use-cases are in
recovery/services/alerting.py.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from recovery.domain.triage import RULES, Level, ResponseTimes

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"

DISPOSITIONS = {
    "reviewed_expected": "Reviewed – expected",
    "called_patient": "Called the patient, advice given",
    "sent_to_ed": "Sent to the emergency department",
    "emergency_services": "Emergency services already called",
    "appointment_booked": "Earlier appointment booked",
    "no_answer": "No answer – will try again",
    "other": "Other (see note)",
}
# An outcome that is not an ending: the nurse could not reach the patient, so the alert stays open
# (acknowledged: it is in hand, nobody is paged) and comes back to the top of the worklist at the
# follow-up time. Every other disposition says the nurse has dealt with it and resolves the alert.
TRY_AGAIN = frozenset({"no_answer"})
# Not on the resolve form: what closes a patient's open alerts when a nurse ends their monitoring
# (recovery/episodes.py); the reason is in the alert's note.
MONITORING_ENDED = "monitoring_ended"
FOLLOW_UP_MINUTES = (15, 30, 60, 120, 240)
DEFAULT_FOLLOW_UP_MINUTES = 30

# Alerts that come from a check-in (its answers, and a "Y" to the red-flag question by text) are
# grouped per check-in under this family; nurse tasks from the schedule and the SMS side keep their
# own family (one open task per patient and family).
CHECKIN_FAMILY = "checkin"


def resolves(disposition: str) -> bool:
    return (disposition in DISPOSITIONS and disposition not in TRY_AGAIN) or disposition == MONITORING_ENDED


@dataclass(frozen=True)
class TaskRule:
    """A nurse task that comes from the schedule or the SMS side rather than from answers."""
    id: str
    level: Level
    family: str
    title: str  # its response time is its level's, from the rule set (R1 is one of URGENT_SOON_RULES)


TASKS = {t.id: t for t in (
    TaskRule("M1", Level.URGENT, "missed_checkin", "No check-in in the first days: call the patient"),
    TaskRule("M2", Level.WATCH, "missed_checkin", "Missed a daily check-in (days 3–7)"),
    TaskRule("M2x2", Level.URGENT, "missed_checkin", "Missed two daily check-ins in a row: call the patient"),
    TaskRule("M3", Level.WATCH, "missed_checkin", "Weekly check-in not answered in 48 h"),
    TaskRule("M3x2", Level.URGENT, "missed_checkin", "Two weekly check-ins missed in a row: call the patient"),
    TaskRule("M4", Level.WATCH, "sms_delivery", "A text could not be delivered: check the number"),
    TaskRule("M4e", Level.URGENT, "sms_delivery", "A text could not be delivered in the first days: call the patient"),
    TaskRule("M5", Level.URGENT, "opt_out", "Patient stopped texts (STOP or in their own words): arrange phone follow-up"),
    TaskRule("R1", Level.URGENT, "sms_red_flag", "Replied Y to the red-flag question by text: call now"),
    # issue 13 §2: the text is in the task's history with the patients who share the phone [CJ: URGENT,
    # as it may be a red-flag "Y" or a pain score, and the reply tells the sender the team will call]
    TaskRule("M7", Level.URGENT, "shared_number", "Text from a shared family phone: call to find out who sent it"),
)}


def rule_title(rule_id: str, ruleset=None) -> str:
    if rule_id in TASKS:
        return TASKS[rule_id].title
    info = RULES.get(rule_id)
    if info is None:
        return rule_id
    return info.title(ruleset) if ruleset is not None else info.title_template


def rule_level(rule_id: str) -> Level:
    return TASKS[rule_id].level if rule_id in TASKS else RULES[rule_id].level


def rule_family(rule_id: str) -> str:
    return TASKS[rule_id].family if rule_id in TASKS else RULES[rule_id].family




def next_business_day(at: datetime, tz: ZoneInfo) -> datetime:
    """The same local time on the next weekday (Mon–Fri) in the clinic's zone."""
    local = at.astimezone(tz) + timedelta(days=1)
    while local.weekday() >= 5:
        local += timedelta(days=1)
    wall = local.replace(tzinfo=None)
    return wall.replace(tzinfo=tz).astimezone(at.tzinfo)


def respond_by(rule_ids: list[str], level: Level, opened_at: datetime, clinic_tz: ZoneInfo,
               times: ResponseTimes) -> datetime:
    """The response deadline: the shortest response time (the rule set's `times`) among the rules
    at the alert's level; a rule scored lower than its own level (MR3) counts at the alert's."""
    minutes = [times.minutes(r, level) for r in rule_ids if rule_level(r) == level] or [times.minutes("", level)]
    timed = [m for m in minutes if m is not None]
    if timed:
        return opened_at + timedelta(minutes=min(timed))
    return next_business_day(opened_at, clinic_tz)


@dataclass(frozen=True)
class Change:
    """What raising rules on an unresolved alert does to it."""
    level: Level
    rules: list[str]
    added: list[str]  # rules the alert did not have
    raised: bool  # the level went up
    reopened: bool  # an acknowledged alert goes back to the queue: things got worse
    worse: bool  # the level went up or new rules appeared


def merge(current_level: Level, current_rules: list[str], status: str, new: Mapping[str, Level]) -> Change:
    """`new`: the raised rules with their scored levels. The level never goes down. An acknowledged
    alert is reopened when its level rises or a rule arrives at its level or above; rules below its
    level (the rest of a check-in whose emergency a nurse already has in hand) are added to it
    without taking it off that nurse."""
    added = [r for r in new if r not in current_rules]
    level = max(current_level, max(new.values(), default=Level.OK))
    raised = level > current_level
    added_level = max((new[r] for r in added), default=Level.OK)
    reopened = status == ACKNOWLEDGED and (raised or (bool(added) and added_level >= current_level))
    return Change(level=level, rules=current_rules + added, added=added, raised=raised, reopened=reopened,
                  worse=raised or bool(added))


def can_acknowledge(status: str) -> bool:
    return status == OPEN


def can_resolve(status: str) -> bool:
    return status in (OPEN, ACKNOWLEDGED)


def escalates(level: Level) -> bool:
    return level >= Level.URGENT


def next_escalation(level: Level, rule_ids: list[str], at: datetime, clinic_tz: ZoneInfo, times: ResponseTimes,
                    *, outside_service_hours: bool | None = None) -> datetime | None:
    """When the next rung of the on-call ladder is texted if nobody has acknowledged.

    `outside_service_hours` (given when an alert opens or gets worse, None when the clinic set no
    hours): an URGENT alert then pages at once, since nobody watches the worklist to meet its
    response time (issue 13 decision); EMERGENCY pages at once anyway, WATCH never."""
    if not escalates(level):
        return None
    if level == Level.URGENT and outside_service_hours:
        return at
    return respond_by(rule_ids, level, at, clinic_tz, times)


def overdue_minutes(respond_by_at: datetime, now: datetime) -> int:
    """Positive when past the response time, negative while there is time left."""
    return int((now - respond_by_at).total_seconds() // 60)


def follow_up_due(follow_up_at: datetime | None, now: datetime) -> bool:
    return follow_up_at is not None and follow_up_at <= now


def sort_key(level: Level, status: str, respond_by_at: datetime, now: datetime,
             follow_up_at: datetime | None = None) -> tuple:
    """Worklist order (the one ordering rule, used wherever open alerts are listed): level first;
    within a level, a call-back whose time has come, then unacknowledged, then acknowledged; then
    the most overdue first, i.e. the earliest due (a call-back counts from its follow-up time). The
    worklist applies it in SQL (services/worklist._sql_order); callers break ties by alert id."""
    if follow_up_due(follow_up_at, now):
        bucket, due = 0, follow_up_at
    else:
        bucket, due = (1 if status == OPEN else 2), respond_by_at
    return (-int(level), bucket, due)

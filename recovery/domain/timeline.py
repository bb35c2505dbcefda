"""The recovery timeline for one patient: milestone times and the planned texts. Pure (stdlib only).

`build_timeline` turns a template (recovery.domain.plan) plus the patient's times into concrete instants:

* T0 is the end of the procedure; TD is discharge. `discharge=None` means TD = T0 + 2 h (the middle
  of the "about T0 + 1-4 h" same-day discharge in protocol.md).
* Hour offsets are ELAPSED time: "T0+48h" is 48 real hours, also across a DST change.
* "HH:MM day N" is wall-clock time in the patient's zone on the local calendar date of the procedure
  plus N days (day 0 = the local date on which the procedure ended). "HH:MM first at or after X" is
  the first such wall-clock time at or after the instant X. "date T0+42d" keeps T0's local wall time
  on the local date 42 days later.
* A wall time that does not exist (spring-forward gap) moves forward by the gap (02:30 → 03:30);
  one that happens twice (fall-back) means the first occurrence.
* Nothing is planned before discharge: an occurrence due before TD is left out (the patient is
  still with the team). Quiet hours (template, default 21:00-08:00 local) move a non-urgent text to
  the next 08:00 (`next_allowed_send`, also used by the sender at send time).
* Safety texts (template `safety`, e.g. S01 and the discharge-day S02) have their own quiet hours,
  from the template's safety_start (23:00) to 08:00, are never dropped as repeats, and with `now`
  given go at once when their time has passed (up to SAFETY_LATE_WINDOW after discharge).
* A text moved by quiet hours is dropped when the same text is also sent later that local day
  (a late procedure would otherwise repeat S02 at 08:00 and 09:00), and so is a routine occurrence
  on the day a safety occurrence of the same text goes. A check-in reminder is dropped when it would
  go at or after the next check-in invite.
* The template's daily limit (`[daily_limit]`, template v2) spaces the routine texts of each local
  day (reminders and check-in reminders that are not safety texts): at most `per_day`, `min_gap`
  apart, ranked by its `order`; one moved later that day is `spaced`, one that cannot fit goes to
  `Timeline.held` (the patient reads the same advice on the Today page).

Every datetime in the results is aware UTC (so same-zone fold comparisons cannot mislead);
convert with `.astimezone(timeline.tz)` for display.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

from recovery.domain.plan.errors import OverrideError
from recovery.domain.plan.model import DailyLimit, MessageRule, Template
from recovery.domain.plan.offsets import CalendarDate, DayAt, DaysFrom, Elapsed, FirstAt, Offset, parse_clock
from recovery.domain.plan.overrides import Overrides

UTC = timezone.utc
DEFAULT_DISCHARGE_AFTER = timedelta(hours=2)
# With `now` given, a text whose send time passed more than this long ago is not planned (a late
# enrolment or a corrected procedure time must not fire a burst of stale texts).
LATE_GRACE = timedelta(hours=2)
# A safety text (template `safety`) is never left out for being late: when enrolment (or a corrected
# procedure time) comes after its time, it goes at once, up to this long after discharge. Later than
# that its words ("tonight") no longer fit; the nurse's patient page says it was not sent.
SAFETY_LATE_WINDOW = timedelta(hours=24)
QUIET_HOURS = (time(21, 0), time(8, 0))
PENDING_STATUSES = frozenset({"planned", "pending"})  # outbox rows not yet claimed: may be moved
# Statuses of rows that may be planned again when a later correction brings their key back. Empty by
# default: "cancelled" also means "check-in already done", so a caller opts in with a status of its own
# for rows that only an earlier replan cancelled (e.g. map reason "replanned" to "replanned").
REVIVABLE_STATUSES: frozenset[str] = frozenset()
# The follow-up visit: the milestone a booked appointment (date, time, place) puts at its real time.
# Its texts (S16, S17, S18) and the milestones that start or end at it (TL08, TL15, TL18) follow.
FOLLOW_UP = "TL16"


class TimelineError(ValueError):
    """The inputs cannot give a sensible timeline (names the milestone and field where it can)."""

    def __init__(self, problem: str, milestone: str | None = None, field: str | None = None):
        self.problem, self.milestone, self.field = problem, milestone, field
        super().__init__(f"milestone {milestone}: {problem}" if milestone else problem)


@dataclass(frozen=True)
class MilestoneInstance:
    id: str
    title: str
    detail: str
    starts_at: datetime  # aware UTC
    ends_at: datetime  # aware UTC; equal to starts_at for a single-moment milestone
    restriction: bool
    short: str  # countdown label ("No driving")
    point: bool
    all_day: bool
    sms: tuple[str, ...]
    place: str | None = None  # the follow-up visit's place once an appointment is booked


@dataclass(frozen=True)
class Appointment:
    """A booked follow-up visit: its instant (aware) and where it is, in the clinic's words
    ("Spine clinic, 2nd floor"). It replaces the plan's "about 6 weeks" day of FOLLOW_UP."""
    at: datetime
    place: str


@dataclass(frozen=True)
class PlannedMessage:
    id: str  # "S06"
    key: str  # stable occurrence key, e.g. "S06:day3", "S02:TD+1h" (outbox dedupe per enrolment)
    kind: str  # reminder | checkin_invite | checkin_reminder | event_reply
    send_at: datetime  # aware UTC, after quiet hours
    due_at: datetime  # aware UTC, the rule's own time
    text_template: str
    urgent: bool
    quiet_moved: bool
    safety: bool = False  # a safety text (template `safety`): never dropped, 23:00 rule, at once when late
    spaced: bool = False  # moved later that day by the template's daily limit on routine texts


@dataclass(frozen=True)
class PlannedCheckin:
    slot: str  # "day3": the check-in occurrence (Checkin.slot, link scope)
    day: int
    group: str  # day0 | daily | day10 | weekly | optional …
    invite: PlannedMessage
    reminder: PlannedMessage | None
    missed_at: datetime  # no completed check-in by then → missed-check-in rules (§3.5)


@dataclass(frozen=True)
class Timeline:
    template_id: str
    template_version: str
    tz: ZoneInfo
    procedure_end: datetime  # T0, aware UTC
    discharge: datetime  # TD, aware UTC
    procedure_date: date  # local date of T0 = "day 0"
    horizon_end: datetime  # end of monitoring (the template's horizon milestone)
    milestones: list[MilestoneInstance]
    messages: list[PlannedMessage]  # sorted by send_at
    checkins: list[PlannedCheckin]  # sorted by invite send time
    quiet_hours: tuple[time, time] = QUIET_HOURS
    held: tuple[PlannedMessage, ...] = ()  # routine texts the daily limit left to the Today page

    def safety_messages(self) -> list[PlannedMessage]:
        return [m for m in self.messages if m.safety]

    def milestone(self, milestone_id: str) -> MilestoneInstance:
        for m in self.milestones:
            if m.id == milestone_id:
                return m
        raise KeyError(f"no milestone {milestone_id} in this timeline")

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz)

    def day_number(self, instant: datetime) -> int:
        """Recovery day of an instant: local date minus the procedure's local date."""
        return recovery_day(self.procedure_end, instant, self.tz)


def recovery_day(procedure_end: datetime, instant: datetime, tz: ZoneInfo | str) -> int:
    """The recovery day of an instant (day 0 = the procedure's local date), in the patient's zone.
    The one place this is counted: pages, texts, tasks and the worklist all ask here."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return (instant.astimezone(zone).date() - procedure_end.astimezone(zone).date()).days


# ---------------------------------------------------------------------------------------------
# Local wall time ↔ instants
# ---------------------------------------------------------------------------------------------

def local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant of local wall time `at` on `day` in `tz`, resolving DST explicitly."""
    naive = datetime.combine(day, at.replace(tzinfo=None, fold=0))
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first.astimezone(UTC)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
        # Fold: the wall time happens twice; fold=0 is the first occurrence.
        return first.astimezone(UTC)
    # Gap: the wall time is skipped. Read with the offset in force before the jump, it lands the
    # length of the gap later on the new clock (02:30 → 03:30 for a one-hour spring-forward).
    return first.astimezone(UTC)


def _clock(value: time | str) -> time:
    return parse_clock(value) if isinstance(value, str) else value


def in_quiet_hours(local_time: time, quiet: tuple[time | str, time | str] = QUIET_HOURS) -> bool:
    start, end = _clock(quiet[0]), _clock(quiet[1])
    t = local_time.replace(tzinfo=None, fold=0)
    if start > end:  # wraps midnight, e.g. 21:00-08:00
        return t >= start or t < end
    return start <= t < end


def next_allowed_send(due: datetime, tz: ZoneInfo,
                      quiet: tuple[time | str, time | str] = QUIET_HOURS) -> datetime:
    """`due` if it is outside quiet hours in `tz`, else the end of the quiet period (next 08:00).
    Aware UTC in, aware UTC out. The sender calls this again at send time."""
    if due.tzinfo is None or due.utcoffset() is None:
        raise ValueError("next_allowed_send needs an aware datetime")
    start, end = _clock(quiet[0]), _clock(quiet[1])
    local = due.astimezone(tz)
    t = local.time()
    if not in_quiet_hours(t, (start, end)):
        return due.astimezone(UTC)
    if start > end and t >= start:
        return local_to_utc(local.date() + timedelta(days=1), end, tz)
    return local_to_utc(local.date(), end, tz)


# ---------------------------------------------------------------------------------------------
# Building the timeline
# ---------------------------------------------------------------------------------------------

class _Resolver:
    def __init__(self, t0: datetime, td: datetime, tz: ZoneInfo, offsets: dict[str, tuple[Offset, Offset]],
                 fixed: dict[str, datetime] | None = None):
        self.t0, self.td, self.tz, self.offsets = t0, td, tz, offsets
        self.day0 = t0.astimezone(tz).date()
        # milestones at a known instant (a booked appointment), whatever their offset says
        self._memo: dict[str, tuple[datetime, datetime]] = {k: (v, v) for k, v in (fixed or {}).items()}

    def anchor(self, name: str, edge: str) -> datetime:
        if name == "T0":
            return self.t0
        if name == "TD":
            return self.td
        start, end = self.milestone(name)
        return end if edge == "end" else start

    def milestone(self, mid: str) -> tuple[datetime, datetime]:
        if mid not in self._memo:
            start_off, end_off = self.offsets[mid]
            start = self.at(start_off)
            self._memo[mid] = (start, start if end_off is start_off else self.at(end_off))
        return self._memo[mid]

    def at(self, off: Offset) -> datetime:
        tz = self.tz
        if isinstance(off, Elapsed):
            return self.anchor(off.anchor.name, off.anchor.edge) + off.delta
        if isinstance(off, DayAt):
            return local_to_utc(self.day0 + timedelta(days=off.day), off.at, tz)
        if isinstance(off, FirstAt):
            after = self.at(off.after)
            day = after.astimezone(tz).date()
            candidate = local_to_utc(day, off.at, tz)
            while candidate < after:
                day += timedelta(days=1)
                candidate = local_to_utc(day, off.at, tz)
            return candidate
        if isinstance(off, DaysFrom):
            base = self.anchor(off.anchor.name, off.anchor.edge).astimezone(tz).date()
            return local_to_utc(base + timedelta(days=off.days), off.at, tz)
        if isinstance(off, CalendarDate):
            base = self.anchor(off.anchor.name, off.anchor.edge).astimezone(tz)
            return local_to_utc(base.date() + timedelta(days=off.days), base.time(), tz)
        raise TypeError(f"unknown offset {off!r}")


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TimelineError(f"{name} must be a datetime, not {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise TimelineError(f"{name} must be timezone-aware (got {value.isoformat()})")
    return value.astimezone(UTC)


def build_timeline(template: Template, *, procedure_end: datetime, discharge: datetime | None,
                   tz: ZoneInfo, overrides: Overrides, now: datetime | None = None,
                   language: str | None = None, followup: Appointment | None = None) -> Timeline:
    """All milestones and planned texts for one patient (see the module docstring for the rules).

    `now` (aware) is optional: when given, the timeline is the plan of a patient enrolled (or
    re-planned) at that moment: a routine text due more than LATE_GRACE before it is left out and
    one due less long ago goes at once; a safety text that is due goes at once (23:00 rule) when
    `now` is at most SAFETY_LATE_WINDOW after discharge, and is left out after that.
    `language`: the texts in the patient's language where the template has one (`text_es`); a text
    reworded for this patient (their own length of a restriction) stays in the English it was
    reworded in: a translation saying the template's length would change its medical meaning.
    `followup`: a booked follow-up appointment: FOLLOW_UP is at its time (not all day) with its
    place, and everything timed from FOLLOW_UP moves with it; it must be after the procedure.
    Raises TimelineError for bad inputs and OverrideError for overrides that do not fit the template.
    """
    if not isinstance(tz, ZoneInfo):
        raise TimelineError(f"tz must be a zoneinfo.ZoneInfo, not {tz!r}")
    t0 = _aware(procedure_end, "procedure_end")
    td = t0 + DEFAULT_DISCHARGE_AFTER if discharge is None else _aware(discharge, "discharge")
    if td < t0:
        raise TimelineError(f"discharge ({td.isoformat()}) is before the end of the procedure ({t0.isoformat()})")
    now_utc = _aware(now, "now") if now is not None else None
    overrides.validate(template)
    quiet, safety_quiet = template.quiet_hours, template.safety_quiet_hours
    fixed = {}
    if followup is not None and any(m.id == FOLLOW_UP for m in template.milestones):
        at = _aware(followup.at, "followup")
        if at <= t0:
            raise TimelineError(f"the follow-up appointment ({at.isoformat()}) must be after the end of the "
                                f"procedure ({t0.isoformat()})", milestone=FOLLOW_UP, field="at")
        fixed[FOLLOW_UP] = at
    r = _Resolver(t0, td, tz, overrides.milestone_offsets(template), fixed)
    new_texts, new_details = overrides.reworded(template)

    milestones = []
    for m in template.milestones:
        start, end = r.milestone(m.id)
        if end < start:
            raise TimelineError(f"ends ({end.isoformat()}) before it starts ({start.isoformat()})",
                                milestone=m.id, field="end")
        if not overrides.flag(m.only_if):
            continue
        title, short, detail = m.words_in(language)
        booked = m.id in fixed
        milestones.append(MilestoneInstance(
            id=m.id, title=title, detail=new_details.get(m.id, detail), starts_at=start, ends_at=end,
            restriction=m.restriction, short=short, point=m.point, all_day=m.all_day and not booked, sms=m.sms,
            place=followup.place if booked and followup is not None else None))
    horizon_end = r.milestone(template.horizon)[1]

    def enabled(rule: MessageRule) -> bool:
        return overrides.messages.get(rule.id, rule.enabled) and overrides.flag(rule.only_if)

    def plan(rule: MessageRule, key: str, due: datetime, safety: bool = False) -> PlannedMessage:
        base = due if now_utc is None else max(due, now_utc)  # a text already due goes at once
        send_at = base if rule.urgent else next_allowed_send(base, tz, safety_quiet if safety else quiet)
        return PlannedMessage(id=rule.id, key=key, kind=rule.kind, send_at=send_at, due_at=due,
                              text_template=overrides.texts.get(rule.id, new_texts.get(rule.id, rule.text_in(language))),
                              urgent=rule.urgent, quiet_moved=send_at != base, safety=safety)

    def wanted(due: datetime, safety: bool) -> bool:
        """With `now`: is an occurrence due at `due` still sent (see the docstring)?"""
        if now_utc is None or due >= now_utc:
            return True
        if safety:
            return now_utc - td <= SAFETY_LATE_WINDOW
        return due >= now_utc - LATE_GRACE

    order = {m.id: i for i, m in enumerate(template.messages)}
    reminders: list[PlannedMessage] = []
    for rule in template.messages:
        if rule.kind != "reminder" or not enabled(rule):
            continue
        for off in rule.send:
            due = r.at(off)
            if due >= td:
                safety = rule.is_safety(off.key)
                if wanted(next_allowed_send(due, tz, safety_quiet if safety else quiet), safety):
                    reminders.append(plan(rule, f"{rule.id}:{off.key}", due, safety))

    cad = template.checkins
    slots: list[tuple[str, int, str, PlannedMessage, timedelta, timedelta]] = []
    d0 = cad.day0
    if d0 and overrides.checkins.get("day0", d0.enabled):
        not_before = r.at(d0.not_before)
        due = max(r.at(d0.at), not_before)
        local = due.astimezone(tz)
        if in_quiet_hours(local.time(), quiet):
            evening = local.date() if local.time() >= quiet[0] else local.date() - timedelta(days=1)
            fallback = local_to_utc(evening, d0.evening_fallback, tz)
            if not_before <= fallback <= due and not in_quiet_hours(fallback.astimezone(tz).time(), quiet):
                due = fallback
        if wanted(next_allowed_send(due, tz, quiet), False):
            slots.append(("day0", 0, "day0", plan(template.message(d0.invite), f"{d0.invite}:day0", due),
                          d0.reminder_after, d0.missed_after))
    for g in cad.groups:
        if not overrides.checkins.get(g.name, g.enabled):
            continue
        for day in g.days:
            due = local_to_utc(r.day0 + timedelta(days=day), g.at, tz)
            if due >= td and wanted(next_allowed_send(due, tz, quiet), False):
                slots.append((f"day{day}", day, g.name, plan(template.message(g.invite), f"{g.invite}:day{day}", due),
                              g.reminder_after, g.missed_after))
    slots.sort(key=lambda s: (s[3].send_at, s[1]))

    kept = _drop_quiet_repeats(reminders + [s[3] for s in slots], tz)
    kept_keys = {m.key for m in kept}
    reminders = [m for m in reminders if m.key in kept_keys]
    slots = [s for s in slots if s[3].key in kept_keys]

    reminder_rule = template.message(cad.reminder)
    checkins: list[PlannedCheckin] = []
    deadlines: dict[str, datetime] = {}  # a check-in reminder must go before the check-in is missed
    for i, (slot, day, group, invite, reminder_after, missed_after) in enumerate(slots):
        nxt = slots[i + 1][3].send_at if i + 1 < len(slots) else None
        missed_at = invite.send_at + missed_after
        reminder = None
        if enabled(reminder_rule):
            reminder = plan(reminder_rule, f"{reminder_rule.id}:{slot}", invite.send_at + reminder_after)
            if nxt is not None and reminder.send_at >= nxt:
                reminder = None
            elif reminder is not None:
                deadlines[reminder.key] = min(missed_at, nxt) if nxt is not None else missed_at
        checkins.append(PlannedCheckin(slot=slot, day=day, group=group, invite=invite, reminder=reminder,
                                       missed_at=missed_at))
    rem_kept = {m.key for m in _drop_quiet_repeats([c.reminder for c in checkins if c.reminder], tz)}
    checkins = [c if c.reminder is None or c.reminder.key in rem_kept else _without_reminder(c) for c in checkins]

    held: list[PlannedMessage] = []
    if template.daily_limit is not None:
        routine = [m for m in reminders if not m.safety] + [c.reminder for c in checkins if c.reminder]
        paced, held = _daily_limit(template.daily_limit, routine, deadlines, tz, quiet)
        reminders = [m if m.safety else paced[m.key] for m in reminders if m.safety or m.key in paced]
        checkins = [c if c.reminder is None else replace(c, reminder=paced.get(c.reminder.key)) for c in checkins]

    messages = reminders + [c.invite for c in checkins] + [c.reminder for c in checkins if c.reminder]
    messages.sort(key=lambda m: (m.send_at, order[m.id], m.key))
    held.sort(key=lambda m: (m.send_at, order[m.id], m.key))
    return Timeline(template_id=template.id, template_version=template.version, tz=tz, procedure_end=t0,
                    discharge=td, procedure_date=r.day0, horizon_end=horizon_end, milestones=milestones,
                    messages=messages, checkins=checkins, quiet_hours=quiet, held=tuple(held))


def is_routine(m: PlannedMessage) -> bool:
    """A text the template's daily limit spaces: reminders and check-in reminders, not safety texts."""
    return m.kind in ("reminder", "checkin_reminder") and not m.safety


def fit_daily_limit(template: Template, timeline: Timeline, messages: list[PlannedMessage],
                    taken: Iterable[datetime]) -> list[PlannedMessage]:
    """The daily limit again for a re-plan (a corrected procedure time): `messages` to be planned now,
    with `taken` the times of the routine texts that already went or stay planned. Routine ones that
    no longer fit their day move later that day or are left to the Today page; the rest are kept."""
    if template.daily_limit is None:
        return messages
    deadlines: dict[str, datetime] = {}
    for i, c in enumerate(timeline.checkins):
        if c.reminder is not None:
            nxt = timeline.checkins[i + 1].invite.send_at if i + 1 < len(timeline.checkins) else None
            deadlines[c.reminder.key] = min(c.missed_at, nxt) if nxt is not None else c.missed_at
    routine = [m for m in messages if is_routine(m)]
    paced, _ = _daily_limit(template.daily_limit, routine, deadlines, timeline.tz, timeline.quiet_hours,
                            taken=taken)
    return [paced.get(m.key, m) if is_routine(m) else m for m in messages
            if not is_routine(m) or m.key in paced]


def _without_reminder(c: PlannedCheckin) -> PlannedCheckin:
    return replace(c, reminder=None)


def _drop_quiet_repeats(messages: list[PlannedMessage], tz: ZoneInfo) -> list[PlannedMessage]:
    """Of the occurrences of one text on one local date, drop those moved there by quiet hours when
    another one is due that day (if all were moved, keep the earliest). A safety occurrence is never
    dropped; a routine repeat of it on the same date is (S02 at 08:00 after a night discharge makes
    S02 at 09:00 that day pointless)."""
    groups: dict[tuple[str, date], list[PlannedMessage]] = {}
    for m in messages:
        groups.setdefault((m.id, m.send_at.astimezone(tz).date()), []).append(m)
    keep: set[str] = set()
    for group in groups.values():
        safety = [m for m in group if m.safety]
        unmoved = [m for m in group if not m.quiet_moved]
        chosen = safety or unmoved or [min(group, key=lambda m: (m.due_at, m.key))]
        keep.update(m.key for m in chosen)
    return [m for m in messages if m.key in keep]


def _daily_limit(limit: DailyLimit, routine: list[PlannedMessage], deadlines: dict[str, datetime],
                 tz: ZoneInfo, quiet: tuple[time, time],
                 taken: Iterable[datetime] = ()) -> tuple[dict[str, PlannedMessage], list[PlannedMessage]]:
    """Space the routine texts of each local day: at most `per_day`, `min_gap` apart, in the order of
    `limit.order`. A text keeps its time when it fits, else takes the first later time that day that
    fits (outside quiet hours, before its deadline); one that does not fit is held back (returned
    second; the Today page carries the same advice). `taken` are the times of routine texts that
    already went or stay planned (a re-plan): they count towards their day's limit and gap."""
    by_day: dict[date, list[PlannedMessage]] = {}
    for m in routine:
        by_day.setdefault(m.send_at.astimezone(tz).date(), []).append(m)
    taken_by_day: dict[date, list[datetime]] = {}
    for t in taken:
        taken_by_day.setdefault(t.astimezone(tz).date(), []).append(t)
    paced: dict[str, PlannedMessage] = {}
    held: list[PlannedMessage] = []
    for day, group in by_day.items():
        placed: list[datetime] = list(taken_by_day.get(day, ()))
        for m in sorted(group, key=lambda m: (limit.rank(m.id), m.send_at, m.key)):
            at = None
            if len(placed) < limit.per_day:
                candidates = sorted({m.send_at, *(p + limit.min_gap for p in placed if p + limit.min_gap > m.send_at)})
                deadline = deadlines.get(m.key)
                at = next((t for t in candidates
                           if t.astimezone(tz).date() == day and not in_quiet_hours(t.astimezone(tz).time(), quiet)
                           and (deadline is None or t < deadline)
                           and all(abs(t - p) >= limit.min_gap for p in placed)), None)
            if at is None:
                held.append(m)
                continue
            placed.append(at)
            paced[m.key] = m if at == m.send_at else replace(m, send_at=at, spaced=True)
    return paced, held


def plan_reply(template: Template, message_id: str, *, event_at: datetime, tz: ZoneInfo, ref: str,
               overrides: Overrides | None = None, language: str | None = None) -> PlannedMessage:
    """The planned event reply (S19 after an EMERGENCY answer, S23 4 h after a 37.5-37.9 °C reading…).
    `ref` makes the key unique, e.g. the check-in id: key "S23:checkin-42"."""
    rule = template.message(message_id)
    if rule.kind != "event_reply":
        raise ValueError(f"{message_id} is a {rule.kind}, not an event_reply")
    due = _aware(event_at, "event_at") + rule.delay
    send_at = due if rule.urgent else next_allowed_send(due, tz, template.quiet_hours)
    text = (overrides.texts.get(message_id, rule.text_in(language)) if overrides else rule.text_in(language))
    return PlannedMessage(id=rule.id, key=f"{rule.id}:{ref}", kind=rule.kind, send_at=send_at, due_at=due,
                          text_template=text, urgent=rule.urgent, quiet_moved=send_at != due)


# ---------------------------------------------------------------------------------------------
# Re-planning after the procedure time is corrected
# ---------------------------------------------------------------------------------------------

def replan(old: Iterable[tuple[str, datetime, object]], new: Timeline, now: datetime,
           pending_statuses: frozenset[str] = PENDING_STATUSES,
           revivable_statuses: frozenset[str] = REVIVABLE_STATUSES) -> tuple[list[str], list[PlannedMessage]]:
    """Compare the stored plan (key, send_at, status) with a rebuilt timeline.

    `old` is the latest row per key; status may be a string or a str-valued enum. Returns
    (to_cancel, to_add). Only pending ("planned") rows are ever cancelled or moved; anything already
    claimed/sent/delivered/failed/suppressed is kept and never re-sent. A key in both lists is a move:
    cancel (or update) the old row and plan the new time. A row whose status is in
    `revivable_statuses` is planned again if the new timeline has its key. New times more than
    LATE_GRACE in the past are not planned and their pending rows are cancelled, except safety texts:
    one whose new time has passed is planned for that time (the sender sends it at once, under the
    23:00 rule) while `now` is at most SAFETY_LATE_WINDOW after the new discharge time. A pending row
    already due whose new time has come too is left as it is: both mean "now".
    """
    now_utc = _aware(now, "now")
    cutoff = now_utc - LATE_GRACE
    fresh = {m.key: m for m in new.messages}
    safety_open = now_utc - new.discharge <= SAFETY_LATE_WINDOW

    def current(m: PlannedMessage) -> bool:
        return m.send_at >= cutoff or (m.safety and (m.send_at >= now_utc or safety_open))

    seen: set[str] = set()
    to_cancel: list[str] = []
    to_add: list[PlannedMessage] = []
    for key, send_at, status in old:
        seen.add(key)
        state = str(getattr(status, "value", status))
        m = fresh.get(key)
        if state in revivable_statuses:
            if m is not None and current(m):
                to_add.append(m)
            continue
        if state not in pending_statuses:
            continue
        if m is None or not current(m):
            to_cancel.append(key)
        elif max(m.send_at, now_utc) != max(_aware(send_at, f"send_at of {key}"), now_utc):
            to_cancel.append(key)
            to_add.append(m)
    for key, m in fresh.items():
        if key not in seen and current(m):
            to_add.append(m)
    to_add.sort(key=lambda m: (m.send_at, m.key))
    return to_cancel, to_add


# ---------------------------------------------------------------------------------------------
# The patient's Today page (pure; `now` passed in)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    fraction: float  # 0.0-1.0 of T0 → horizon_end, elapsed time
    day: int  # recovery day (local date − procedure date); 0 on the day of the procedure
    total_days: int  # recovery day on which monitoring ends
    finished: bool


def active_restrictions(timeline: Timeline, now: datetime) -> list[MilestoneInstance]:
    """Restrictions in force at `now`, the one ending soonest first."""
    now_utc = _aware(now, "now")
    live = [m for m in timeline.milestones if m.restriction and m.starts_at <= now_utc < m.ends_at]
    return sorted(live, key=lambda m: (m.ends_at, m.id))


def next_milestones(timeline: Timeline, now: datetime, n: int = 3) -> list[MilestoneInstance]:
    """The next `n` milestones that start after `now`."""
    now_utc = _aware(now, "now")
    upcoming = [m for m in timeline.milestones if m.starts_at > now_utc]
    return sorted(upcoming, key=lambda m: (m.starts_at, m.id))[:max(0, n)]


def progress(timeline: Timeline, now: datetime) -> Progress:
    now_utc = _aware(now, "now")
    span = (timeline.horizon_end - timeline.procedure_end).total_seconds()
    done = (now_utc - timeline.procedure_end).total_seconds()
    fraction = 1.0 if span <= 0 else min(1.0, max(0.0, done / span))
    return Progress(fraction=fraction, day=timeline.day_number(now_utc),
                    total_days=timeline.day_number(timeline.horizon_end), finished=now_utc >= timeline.horizon_end)


__all__ = [
    "Appointment", "FOLLOW_UP", "DEFAULT_DISCHARGE_AFTER", "LATE_GRACE", "SAFETY_LATE_WINDOW", "MilestoneInstance", "OverrideError", "PlannedCheckin",
    "PENDING_STATUSES", "PlannedMessage", "Progress", "QUIET_HOURS", "REVIVABLE_STATUSES", "Timeline", "TimelineError", "active_restrictions",
    "build_timeline", "in_quiet_hours", "local_to_utc",
    "next_allowed_send", "next_milestones", "plan_reply", "progress", "replan",
]

"""Recovery-plan templates: data classes, the offset grammar, and every check on a template's fields.

Pure: standard library only; no clock, no files. Reading schedules/*.toml (with line numbers for the
messages), merging clinic files and the dry run are in recovery.files.plans.

Files
-----
`schedules/<id>_v<version>.toml` is a template; `schedules/clinics/<name>.toml` is a clinic override
file (`based_on` + `based_on_version`; earlier versions stay as `clinics/<name>_v<version>.toml` for
the patients enrolled on them) that may change ANY field of an existing milestone, message,
check-in group, the contact numbers or the quiet hours. The merged result is a new effective template
with id "<base id>+<clinic>" and version "<base version>+<clinic file version>", so an enrolment records
both. Every problem is reported as ``file:line: entry: problem``.

Offset grammar (times are relative to two anchors: T0 = end of the procedure, TD = discharge)
---------------------------------------------------------------------------------------------
ELAPSED (real time; "48h" across a DST change is 48 real hours)::

    T0+48h   TD+1h   T0+30m   T0+14d   TL16-7d   TL03.end   T0+1d+12h

    units m, h, d (= 24 h), w (= 7 × 24 h). An anchor is T0, TD or a milestone id (its start;
    "TLnn.end" is its end).

WALL CLOCK (in the patient's time zone)::

    09:00 day 1                          09:00 on the local calendar date <procedure's local date> + 1
                                         ("day N" is a calendar date, not floor(hours / 24): for a
                                         procedure ending 23:50 on 7 March, "day 1" is 8 March)
    09:00 first at or after T0+48h       the first local 09:00 at or after that instant
    09:00 7 days before TL16             09:00 on the local date of TL16 minus 7 days
    18:00 2 days after TD                18:00 on the local date of TD plus 2 days

CALENDAR::

    date T0+42d                          the local wall time of T0 on the local date 42 days later

A wall time that does not exist (spring-forward gap) is moved forward by the length of the gap
(02:30 → 03:30); a wall time that happens twice (fall-back fold) means its first occurrence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta, timezone
from typing import Any, Iterable, Mapping, Protocol, Union

from recovery.domain import texts

UTC = timezone.utc

KINDS = ("reminder", "checkin_invite", "checkin_reminder", "event_reply")
FLAGS = ("working", "brace")  # per-patient profile flags a message or milestone may depend on
# What an event_reply answers (the use-case that sees the event asks for the reply).
EVENTS = ("emergency_result", "urgent_result", "inbound_sms", "ok_or_watch_result", "temperature_recheck",
          "enrolled", "opted_out")  # enrolled: the opt-in confirmation; opted_out: its one reply (CTIA)

_ID_MILESTONE = re.compile(r"^TL\d{2,3}$")
_ID_MESSAGE = re.compile(r"^S\d{2,3}$")
_ID_TEMPLATE = re.compile(r"^[a-z][a-z0-9_-]{1,40}$")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

class TemplateError(ValueError):
    """A template or clinic file is wrong. str() is ``file:line: entry: problem``."""

    def __init__(self, path: str, line: int, entry: str, problem: str):
        self.path, self.line, self.entry, self.problem = str(path), line, entry, problem
        super().__init__(f"{self.path}:{line}: {entry}: {problem}" if entry else f"{self.path}:{line}: {problem}")


class OffsetError(ValueError):
    """An offset string cannot be read."""


class OverrideError(ValueError):
    """Per-patient overrides are wrong. The message starts with the field path, e.g. ``milestones.TL03.end``."""


# ---------------------------------------------------------------------------------------------
# Offsets
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Anchor:
    name: str  # "T0", "TD" or a milestone id
    edge: str = "start"  # "start" | "end" (milestones only)

    def __str__(self) -> str:
        return self.name if self.edge == "start" else f"{self.name}.end"

    @property
    def milestone(self) -> str | None:
        return None if self.name in ("T0", "TD") else self.name


@dataclass(frozen=True)
class Elapsed:
    anchor: Anchor
    delta: timedelta
    text: str

    @property
    def key(self) -> str:
        return self.text

    def refs(self) -> set[str]:
        return {self.anchor.milestone} - {None}


@dataclass(frozen=True)
class DayAt:
    day: int
    at: time
    text: str

    @property
    def key(self) -> str:
        return f"day{self.day}"

    def refs(self) -> set[str]:
        return set()


@dataclass(frozen=True)
class FirstAt:
    at: time
    after: Elapsed
    text: str

    @property
    def key(self) -> str:
        return f"first>={self.after.text}"

    def refs(self) -> set[str]:
        return self.after.refs()


@dataclass(frozen=True)
class DaysFrom:
    at: time
    days: int  # negative: before the anchor
    anchor: Anchor
    text: str

    @property
    def key(self) -> str:
        return f"{self.anchor}{self.days:+d}d"

    def refs(self) -> set[str]:
        return {self.anchor.milestone} - {None}


@dataclass(frozen=True)
class CalendarDate:
    anchor: Anchor
    days: int
    text: str

    @property
    def key(self) -> str:
        return f"date:{self.anchor}{self.days:+d}d"

    def refs(self) -> set[str]:
        return {self.anchor.milestone} - {None}


Offset = Union[Elapsed, DayAt, FirstAt, DaysFrom, CalendarDate]

_ANCHOR_RE = r"(T0|TD|TL\d{2,3})(?:\.(start|end))?"
_TERM_RE = re.compile(r"([+-])(\d+)([mhdw])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_FORMS = ('"T0+48h", "TD+1h", "TL16-7d", "TL03.end", "09:00 day 1", "09:00 first at or after T0+48h", '
          '"09:00 7 days before TL16", "date T0+42d"')


def parse_clock(text: str) -> time:
    """"09:00" → time(9, 0). 24-hour clock, minutes required."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip()) if isinstance(text, str) else None
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise OffsetError(f"{text!r} is not a 24-hour time like \"09:00\"")
    return time(int(m.group(1)), int(m.group(2)))


def parse_duration(text: str) -> timedelta:
    """"4h", "30m", "2d", "1w", "1d12h" → a positive timedelta (elapsed time)."""
    s = text.replace(" ", "") if isinstance(text, str) else ""
    if not s or not re.fullmatch(r"(\d+[mhdw])+", s):
        raise OffsetError(f"{text!r} is not a duration like \"4h\", \"30m\" or \"2d\"")
    total = sum((int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([mhdw])", s)), timedelta())
    if total <= timedelta(0):
        raise OffsetError(f"{text!r}: a duration must be longer than zero")
    return total


def _parse_elapsed(s: str, original: str) -> Elapsed:
    m = re.fullmatch(_ANCHOR_RE + r"((?:[+-]\d+[mhdw])*)", s.replace(" ", ""))
    if not m:
        raise OffsetError(f"cannot read offset {original!r}; write one of {_FORMS}")
    if m.group(2) and m.group(1) in ("T0", "TD"):
        raise OffsetError(f"cannot read offset {original!r}: .start/.end only follow a milestone id")
    anchor = Anchor(m.group(1), m.group(2) or "start")
    delta = timedelta()
    terms = []
    for sign, n, unit in _TERM_RE.findall(m.group(3)):
        delta += (1 if sign == "+" else -1) * int(n) * _UNITS[unit]
        terms.append(f"{sign}{int(n)}{unit}")
    return Elapsed(anchor, delta, str(anchor) + "".join(terms))


def parse_offset(text: str) -> Offset:
    """Read one offset string (grammar in the module docstring). Raises OffsetError."""
    if not isinstance(text, str):
        raise OffsetError(f"an offset must be a string like \"T0+48h\", not {text!r}")
    s = " ".join(text.split())
    if not s:
        raise OffsetError(f"empty offset; write one of {_FORMS}")
    m = re.fullmatch(r"date " + _ANCHOR_RE + r"(?: ?([+-]) ?(\d+) ?([dw]))?", s)
    if m:
        if m.group(2) and m.group(1) in ("T0", "TD"):
            raise OffsetError(f"cannot read offset {text!r}: .start/.end only follow a milestone id")
        anchor = Anchor(m.group(1), m.group(2) or "start")
        days = int(m.group(4) or 0) * (7 if m.group(5) == "w" else 1) * (-1 if m.group(3) == "-" else 1)
        return CalendarDate(anchor, days, f"date {anchor}{days:+d}d")
    if s.startswith("date"):
        raise OffsetError(f"cannot read offset {text!r}: a calendar offset is \"date T0+42d\" "
                          "(whole days or weeks only)")
    m = re.fullmatch(r"(\d{1,2}:\d{2}) (.*)", s)
    if not m:
        return _parse_elapsed(s, text)
    at = parse_clock(m.group(1))
    hhmm = at.strftime("%H:%M")
    rest = m.group(2)
    d = re.fullmatch(r"day (\d+)", rest)
    if d:
        return DayAt(int(d.group(1)), at, f"{hhmm} day {int(d.group(1))}")
    f = re.fullmatch(r"first at or after (.+)", rest)
    if f:
        after = _parse_elapsed(f.group(1), text)
        return FirstAt(at, after, f"{hhmm} first at or after {after.text}")
    r = re.fullmatch(r"(?:(\d+) days?|the day) (before|after) " + _ANCHOR_RE, rest)
    if r:
        n = int(r.group(1) or 1) * (-1 if r.group(2) == "before" else 1)
        if r.group(4) and r.group(3) in ("T0", "TD"):
            raise OffsetError(f"cannot read offset {text!r}: .start/.end only follow a milestone id")
        anchor = Anchor(r.group(3), r.group(4) or "start")
        word = "before" if n < 0 else "after"
        return DaysFrom(at, n, anchor, f"{hhmm} {abs(n)} day{'s' if abs(n) != 1 else ''} {word} {anchor}")
    raise OffsetError(f"cannot read offset {text!r}; write one of {_FORMS}")


# ---------------------------------------------------------------------------------------------
# Template data classes
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Milestone:
    id: str
    title: str  # patient wording
    detail: str  # patient-facing explanation
    start: Offset
    end: Offset  # the same object as `start` for a single-moment milestone (`at` in the file)
    point: bool
    restriction: bool  # shown with a countdown and exported to the calendar
    short: str  # countdown label: "No driving" → "No driving until Mon 9 Mar, 11:30"
    sms: tuple[str, ...]  # message ids that go with it
    only_if: str | None = None  # a profile flag (FLAGS) the milestone needs, else shown to all
    all_day: bool = False  # the time of day is not meaningful (a visit booked separately)
    # How long it lasts, in the words its detail and the texts that restate it use ("48 hours").
    # A per-patient change of its length puts the new length in their place (reworded()).
    lasts: str = ""


@dataclass(frozen=True)
class MessageRule:
    id: str
    kind: str  # KINDS
    text: str  # template with {first} {link} {emerg} {phone}
    urgent: bool  # exempt from quiet hours (only replies to something the patient just did)
    send: tuple[Offset, ...] = ()  # kind "reminder": one planned occurrence per offset
    on: str | None = None  # kind "event_reply": the event it answers (EVENTS)
    delay: timedelta = timedelta(0)  # event_reply: how long after the event
    only_if: str | None = None  # FLAGS: sent only when the patient's profile has it
    enabled: bool = True  # default; per-patient overrides may switch non-urgent texts on/off
    restates: tuple[str, ...] = ()  # milestones whose timing the text repeats ("for 48 hours")
    note: str = ""  # for the clinician reviewing the file
    # Keys (Offset.key) of the occurrences that are safety texts: never dropped, sent until the
    # template's safety_start (23:00) instead of the start of quiet hours, at once on a late enrolment.
    safety: tuple[str, ...] = ()

    def is_safety(self, offset_key: str) -> bool:
        return offset_key in self.safety


@dataclass(frozen=True)
class CheckinGroup:
    name: str
    days: tuple[int, ...]
    at: time  # local wall time on each "day N"
    invite: str  # message id (kind checkin_invite)
    reminder_after: timedelta  # after the invite is sent
    missed_after: timedelta  # no check-in by then → the missed-check-in rules (protocol §3.5)
    enabled: bool = True


@dataclass(frozen=True)
class Day0Checkin:
    invite: str
    at: Offset  # T0+6h
    not_before: Offset  # TD+2h
    evening_fallback: time  # 20:00, used when the time falls in quiet hours
    reminder_after: timedelta
    missed_after: timedelta
    enabled: bool = True


@dataclass(frozen=True)
class CheckinCadence:
    reminder: str  # message id (kind checkin_reminder)
    day0: Day0Checkin | None
    groups: tuple[CheckinGroup, ...]

    def group_names(self) -> tuple[str, ...]:
        return (("day0",) if self.day0 else ()) + tuple(g.name for g in self.groups)


@dataclass(frozen=True)
class DailyLimit:
    """Routine texts (reminders and check-in reminders that are not safety texts) per local day:
    at most `per_day`, at least `min_gap` apart. `order` ranks them: earlier ones keep their time,
    later ones move later that day or, when they cannot fit, are left to the Today page."""
    per_day: int
    min_gap: timedelta
    order: tuple[str, ...]

    def rank(self, message_id: str) -> int:
        return self.order.index(message_id) if message_id in self.order else len(self.order)


@dataclass(frozen=True)
class Template:
    id: str  # "kyphoplasty", or "kyphoplasty+demo-clinic" for a clinic's effective template
    version: str  # "1", or "1+2" (base version + clinic file version)
    title: str
    base_id: str
    base_version: int
    clinic: str | None
    clinic_version: int | None
    clinic_title: str | None
    sources: tuple[str, ...]  # files it was read from
    status: str
    emerg: str  # default {emerg}
    phone: str  # default {phone}
    quiet_start: time
    quiet_end: time
    horizon: str  # the milestone whose end closes monitoring
    milestones: tuple[Milestone, ...]
    messages: tuple[MessageRule, ...]
    checkins: CheckinCadence
    safety_start: time | None = None  # safety texts may go until then (None: same as quiet_start)
    daily_limit: DailyLimit | None = None  # None: no limit on routine texts (templates before v2)
    sms_name: str = ""  # {clinic}: how texts name the sender ([contact] name)
    budget: texts.Budget = texts.DEFAULT_BUDGET  # first-name and link lengths the texts were checked with
    # Texts of a frozen version (one kept only for the patients enrolled on it) that do not fit one
    # SMS within `budget`: reported at start-up, never an error (see load_template).
    warnings: tuple[str, ...] = ()

    def milestone(self, milestone_id: str) -> Milestone:
        for m in self.milestones:
            if m.id == milestone_id:
                return m
        raise KeyError(f"template {self.id} v{self.version} has no milestone {milestone_id}")

    def message(self, message_id: str) -> MessageRule:
        for m in self.messages:
            if m.id == message_id:
                return m
        raise KeyError(f"template {self.id} v{self.version} has no message {message_id}")

    @property
    def quiet_hours(self) -> tuple[time, time]:
        return (self.quiet_start, self.quiet_end)

    @property
    def safety_quiet_hours(self) -> tuple[time, time]:
        """The quiet hours of a safety text: from safety_start (23:00) to the usual end (08:00)."""
        return (self.safety_start or self.quiet_start, self.quiet_end)



class SourceMap(Protocol):
    """Where a table or key of the raw template was written (recovery.files.plans gives the real one)."""

    def where(self, table: tuple[str, ...], key: str | None = None) -> tuple[str, int]: ...

    def fail(self, table: tuple[str, ...], key: str | None, problem: str) -> TemplateError: ...


# ---------------------------------------------------------------------------------------------
# Building a Template from raw TOML (every field checked)
# ---------------------------------------------------------------------------------------------

_TEMPLATE_KEYS = {"id", "version", "title", "status", "approved_by", "horizon", "contact", "quiet_hours",
                  "milestones", "messages", "checkins", "daily_limit"}
_MILESTONE_KEYS = {"title", "detail", "start", "end", "at", "restriction", "short", "sms", "only_if", "all_day",
                   "lasts"}
_MESSAGE_KEYS = {"kind", "text", "urgent", "send", "on", "delay", "only_if", "enabled", "restates", "note",
                 "safety"}
_GROUP_KEYS = {"days", "time", "invite", "reminder_after", "missed_after", "enabled"}
_DAY0_KEYS = {"invite", "at", "not_before", "evening_fallback", "reminder_after", "missed_after", "enabled"}


class TemplateBuilder:
    def __init__(self, raw: dict, src: SourceMap, budget: texts.Budget | None = None,
                 frozen: bool | frozenset[str] = False):
        self.raw, self.src, self.budget = raw, src, budget or texts.DEFAULT_BUDGET
        # Texts kept exactly as published for the patients enrolled on them (True: every text): one
        # that does not fit one SMS within the budget is a warning, not an error (see load_template).
        self.frozen = frozen
        self.warnings: list[str] = []

    def _frozen(self, message_id: str) -> bool:
        return self.frozen is True or (bool(self.frozen) and message_id in self.frozen)

    # -- small typed getters ------------------------------------------------------------------
    def _get(self, table: tuple[str, ...], key: str, kind: type | tuple, required: bool = True,
             default: Any = None) -> Any:
        node = self._node(table)
        if key not in node:
            if required:
                raise self.src.fail(table, None, f"missing required field '{key}'")
            return default
        value = node[key]
        ok = isinstance(value, kind) and not (kind in (int, (int,)) and isinstance(value, bool))
        if not ok:
            want = {str: "text", bool: "true or false", int: "a whole number", list: "a list"}.get(kind, str(kind))
            raise self.src.fail(table, key, f"'{key}' must be {want}, not {value!r}")
        return value

    def _text(self, table, key, required=True, default="", max_len=600) -> str:
        value = self._get(table, key, str, required, default)
        if required and not value.strip():
            raise self.src.fail(table, key, f"'{key}' is empty")
        if len(value) > max_len:
            raise self.src.fail(table, key, f"'{key}' is {len(value)} characters (max {max_len})")
        return value.strip()

    def _node(self, table: tuple[str, ...]) -> dict:
        node: Any = self.raw
        for part in table:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if not isinstance(node, dict):
            raise self.src.fail(table, None, "must be a table")
        return node

    def _unknown(self, table: tuple[str, ...], allowed: set[str]) -> None:
        for key in self._node(table):
            if key not in allowed:
                raise self.src.fail(table, key, f"unknown field '{key}' (allowed: {', '.join(sorted(allowed))})")

    def _offset(self, table, key, required=True) -> Offset | None:
        value = self._node(table).get(key)
        if value is None:
            if required:
                raise self.src.fail(table, None, f"missing required field '{key}'")
            return None
        try:
            return parse_offset(value)
        except OffsetError as e:
            raise self.src.fail(table, key, f"'{key}': {e}") from None

    def _duration(self, table, key) -> timedelta:
        value = self._get(table, key, str)
        try:
            return parse_duration(value)
        except OffsetError as e:
            raise self.src.fail(table, key, f"'{key}': {e}") from None

    def _clock(self, table, key) -> time:
        value = self._get(table, key, str)
        try:
            return parse_clock(value)
        except OffsetError as e:
            raise self.src.fail(table, key, f"'{key}': {e}") from None

    def _flag(self, table, key="only_if") -> str | None:
        value = self._get(table, key, str, required=False)
        if value is not None and value not in FLAGS:
            raise self.src.fail(table, key, f"'{key}' must be one of {', '.join(FLAGS)}, not {value!r}")
        return value

    # -- the template -------------------------------------------------------------------------
    def build(self, *, clinic: str | None, clinic_version: int | None, clinic_title: str | None) -> Template:
        self._unknown((), _TEMPLATE_KEYS)
        tid = self._get((), "id", str)
        if not _ID_TEMPLATE.match(tid):
            raise self.src.fail((), "id", f"id {tid!r} must be lower-case letters, digits, '-' or '_'")
        version = self._get((), "version", int)
        if version < 1:
            raise self.src.fail((), "version", "version must be 1 or more")
        title = self._text((), "title", max_len=120)
        status = self._text((), "status", required=False, default="draft", max_len=200)
        self._text((), "approved_by", required=False, max_len=120)

        self._unknown(("contact",), {"emerg", "phone", "name"})
        emerg = self._get(("contact",), "emerg", str)
        if not re.fullmatch(r"\d{2,4}", emerg):
            raise self.src.fail(("contact",), "emerg", f"emergency number must be 2-4 digits, not {emerg!r}")
        phone = self._text(("contact",), "phone", max_len=20)
        if not texts.is_gsm7(phone):
            raise self.src.fail(("contact",), "phone", f"phone {phone!r} has characters that are not GSM-7")
        sms_name = self._get(("contact",), "name", str, required=False, default="").strip()
        name_problems = texts.check_name(sms_name) if "name" in self._node(("contact",)) else []
        if name_problems:
            raise self.src.fail(("contact",), "name", f"name {sms_name!r}: {name_problems[0]}")

        self._unknown(("quiet_hours",), {"start", "end", "safety_start"})
        quiet_start = self._clock(("quiet_hours",), "start")
        quiet_end = self._clock(("quiet_hours",), "end")
        if quiet_start == quiet_end:
            raise self.src.fail(("quiet_hours",), "end", "quiet hours start and end at the same time")
        safety_start = None
        if "safety_start" in self._node(("quiet_hours",)):
            safety_start = self._clock(("quiet_hours",), "safety_start")
            inside = quiet_start < safety_start < quiet_end if quiet_start < quiet_end else (
                safety_start > quiet_start or safety_start < quiet_end)
            if safety_start != quiet_start and not inside:
                raise self.src.fail(("quiet_hours",), "safety_start",
                                    f"safety_start {safety_start:%H:%M} must lie within the quiet hours "
                                    f"{quiet_start:%H:%M}-{quiet_end:%H:%M} (safety texts may go later, not earlier)")

        milestones = self._milestones()
        messages = self._messages(emerg, phone, clinic_title, clinic, sms_name)
        checkins = self._checkins(messages)
        daily_limit = self._daily_limit(messages)
        ids = {m.id for m in milestones}
        msg_ids = {m.id for m in messages}

        horizon = self._get((), "horizon", str)
        if horizon not in ids:
            raise self.src.fail((), "horizon", f"horizon names unknown milestone {horizon!r}")
        for m in milestones:
            for sid in m.sms:
                if sid not in msg_ids:
                    raise self.src.fail(("milestones", m.id), "sms", f"unknown message id {sid!r} in 'sms'")
            for key, off in (("start", m.start), ("end", m.end)):
                for ref in off.refs():
                    if ref not in ids:
                        raise self.src.fail(("milestones", m.id), "at" if m.point else key,
                                            f"unknown milestone id {ref!r} in {off.text!r}")
        for msg in messages:
            for off in msg.send:
                for ref in off.refs():
                    if ref not in ids:
                        raise self.src.fail(("messages", msg.id), "send", f"unknown milestone id {ref!r} in {off.text!r}")
            for ref in msg.restates:
                if ref not in ids:
                    raise self.src.fail(("messages", msg.id), "restates", f"unknown milestone id {ref!r} in 'restates'")
        for off_key in ("at", "not_before") if checkins.day0 else ():
            for ref in getattr(checkins.day0, off_key).refs():
                if ref not in ids:
                    raise self.src.fail(("checkins", "day0"), off_key, f"unknown milestone id {ref!r}")
        cycle = find_cycle({m.id: (m.start, m.end) for m in milestones})
        if cycle:
            raise self.src.fail(("milestones", cycle[0]), None,
                                "offsets refer to each other in a circle: " + " -> ".join(cycle))
        by_id = {m.id: m for m in milestones}
        for m in milestones:
            if m.lasts and m.lasts not in m.detail:
                raise self.src.fail(("milestones", m.id), "detail",
                                    f"its detail must say how long it lasts in the words of 'lasts' ({m.lasts!r})")
        for msg in messages:
            for ref in msg.restates:
                lasts = by_id[ref].lasts
                if lasts and lasts not in msg.text:
                    raise self.src.fail(("messages", msg.id), "text",
                                        f"restates milestone {ref}, which lasts {lasts!r}, but the text does not "
                                        "say so; use the same words as the milestone's 'lasts'")
        if any(msg.safety for msg in messages) and safety_start is None:
            raise self.src.fail(("quiet_hours",), None, "a template with safety texts must set [quiet_hours] "
                                                        "safety_start (until when a safety text may still go)")

        base_id, base_version = tid, version
        return Template(
            id=f"{tid}+{clinic}" if clinic else tid,
            version=f"{version}+{clinic_version}" if clinic else str(version),
            title=title, base_id=base_id, base_version=base_version, clinic=clinic,
            clinic_version=clinic_version, clinic_title=clinic_title,
            sources=tuple(layer.path for layer in self.src.layers), status=status,
            emerg=emerg, phone=phone, quiet_start=quiet_start, quiet_end=quiet_end, horizon=horizon,
            milestones=milestones, messages=messages, checkins=checkins, safety_start=safety_start,
            daily_limit=daily_limit, sms_name=sms_name, budget=self.budget, warnings=tuple(self.warnings))

    def _milestones(self) -> tuple[Milestone, ...]:
        table = self._node(("milestones",))
        if not table:
            raise self.src.fail((), "milestones", "no milestones")
        out = []
        for mid in table:
            t = ("milestones", mid)
            if not _ID_MILESTONE.match(mid):
                raise self.src.fail(t, None, f"milestone id {mid!r} must look like TL01")
            if not isinstance(table[mid], dict):
                raise self.src.fail(t, None, "must be a table")
            self._unknown(t, _MILESTONE_KEYS)
            node = table[mid]
            if "at" in node and ("start" in node or "end" in node):
                raise self.src.fail(t, "at", "give either 'at' (one moment) or 'start' and 'end', not both")
            if "at" in node:
                start = end = self._offset(t, "at")
                point = True
            else:
                start, end = self._offset(t, "start"), self._offset(t, "end")
                point = False
            sms = self._get(t, "sms", list)
            if not all(isinstance(s, str) for s in sms):
                raise self.src.fail(t, "sms", "'sms' must be a list of message ids like [\"S01\"]")
            if len(set(sms)) != len(sms):
                raise self.src.fail(t, "sms", "'sms' lists a message twice")
            title = self._text(t, "title", max_len=80)
            restriction = self._get(t, "restriction", bool)
            out.append(Milestone(
                id=mid, title=title, detail=self._text(t, "detail", max_len=600),
                start=start, end=end, point=point, restriction=restriction,
                short=self._text(t, "short", required=False, default="", max_len=60) or title,
                sms=tuple(sms), only_if=self._flag(t),
                all_day=self._get(t, "all_day", bool, required=False, default=False),
                lasts=self._text(t, "lasts", required=False, default="", max_len=30)))
            if out[-1].lasts and point:
                raise self.src.fail(t, "lasts", "a single-moment milestone ('at') does not last: remove 'lasts'")
            if restriction and point:
                raise self.src.fail(t, "restriction", "a restriction needs a 'start' and an 'end', not 'at'")
        return tuple(out)

    def _messages(self, emerg: str, phone: str, clinic_title: str | None, clinic: str | None,
                  sms_name: str = "") -> tuple[MessageRule, ...]:
        table = self._node(("messages",))
        if not table:
            raise self.src.fail((), "messages", "no messages")
        forbidden = tuple(n for n in (clinic_title, clinic.replace("-", " ") if clinic else None) if n)
        out = []
        for sid in table:
            t = ("messages", sid)
            if not _ID_MESSAGE.match(sid):
                raise self.src.fail(t, None, f"message id {sid!r} must look like S01")
            if not isinstance(table[sid], dict):
                raise self.src.fail(t, None, "must be a table")
            self._unknown(t, _MESSAGE_KEYS)
            node = table[sid]
            kind = self._get(t, "kind", str)
            if kind not in KINDS:
                raise self.src.fail(t, "kind", f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
            text = self._get(t, "text", str)
            check = texts.check_text(text, emerg=emerg, phone=phone, clinic=sms_name, budget=self.budget,
                                     forbidden_names=forbidden)
            problems = [p for p in check.problems if not (p == check.too_long and self._frozen(sid))]
            if problems:
                raise self.src.fail(t, "text", problems[0])
            if check.too_long:  # a frozen text: it goes as it always has, in more than one segment
                self.warnings.append(str(self.src.fail(t, "text", check.too_long + FROZEN_TOO_LONG)))
            urgent = self._get(t, "urgent", bool)
            if urgent and kind != "event_reply":
                raise self.src.fail(t, "urgent", "only an event_reply (answering something the patient just "
                                                 "did) may be urgent and ignore quiet hours")
            send: tuple[Offset, ...] = ()
            on, delay = None, timedelta(0)
            if kind == "reminder":
                raw_send = node.get("send")
                if raw_send is None:
                    raise self.src.fail(t, None, "missing required field 'send' (when to send it)")
                if isinstance(raw_send, str):
                    raw_send = [raw_send]
                if not isinstance(raw_send, list) or not raw_send:
                    raise self.src.fail(t, "send", "'send' must be an offset or a non-empty list of offsets")
                parsed = []
                for item in raw_send:
                    try:
                        parsed.append(parse_offset(item))
                    except OffsetError as e:
                        raise self.src.fail(t, "send", f"'send': {e}") from None
                keys = [p.key for p in parsed]
                dup = next((k for k in keys if keys.count(k) > 1), None)
                if dup:
                    raise self.src.fail(t, "send", f"'send' has two occurrences with the same key {dup!r}")
                send = tuple(parsed)
            elif "send" in node:
                raise self.src.fail(t, "send", f"a {kind} is not sent on a timetable: remove 'send'"
                                    + (" (the [checkins] cadence sends it)" if kind.startswith("checkin") else ""))
            if kind == "event_reply":
                on = self._get(t, "on", str)
                if on not in EVENTS:
                    raise self.src.fail(t, "on", f"'on' must be one of {', '.join(EVENTS)}, not {on!r}")
                delay = self._duration(t, "delay") if "delay" in node else timedelta(0)
            else:
                for key in ("on", "delay"):
                    if key in node:
                        raise self.src.fail(t, key, f"'{key}' is only for kind event_reply")
            restates = self._get(t, "restates", list, required=False, default=[])
            if not all(isinstance(r, str) for r in restates):
                raise self.src.fail(t, "restates", "'restates' must be a list of milestone ids")
            safety = self._safety(t, node, kind, send)
            out.append(MessageRule(
                id=sid, kind=kind, text=text, urgent=urgent, send=send, on=on, delay=delay,
                only_if=self._flag(t), enabled=self._get(t, "enabled", bool, required=False, default=True),
                restates=tuple(restates), note=self._text(t, "note", required=False, max_len=400),
                safety=safety))
            if urgent and not out[-1].enabled:
                raise self.src.fail(t, "enabled", "an urgent safety reply cannot be switched off")
            if safety and (not out[-1].enabled or out[-1].only_if):
                raise self.src.fail(t, "safety", "a safety text goes to every patient: it cannot be "
                                                 "switched off (enabled = false) or depend on 'only_if'")
        return tuple(out)

    def _safety(self, t: tuple[str, ...], node: dict, kind: str, send: tuple[Offset, ...]) -> tuple[str, ...]:
        """`safety = true` (every occurrence) or a list of the `send` offsets that are safety texts."""
        value = node.get("safety", False)
        if value is False:
            return ()
        if kind != "reminder":
            raise self.src.fail(t, "safety", "only a reminder (a text on a timetable) can be a safety text; "
                                             "replies that must go at night are 'urgent' instead")
        if value is True:
            return tuple(off.key for off in send)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.src.fail(t, "safety", "'safety' must be true, false or a list of offsets from 'send' "
                                             "(e.g. [\"TD+1h\"])")
        keys = {off.key: off.text for off in send}
        out = []
        for item in value:
            try:
                key = parse_offset(item).key
            except OffsetError as e:
                raise self.src.fail(t, "safety", f"'safety': {e}") from None
            if key not in keys:
                raise self.src.fail(t, "safety", f"'safety' names {item!r}, which is not one of its 'send' "
                                                 f"times ({', '.join(keys.values())})")
            out.append(key)
        return tuple(dict.fromkeys(out))

    def _daily_limit(self, messages: tuple[MessageRule, ...]) -> DailyLimit | None:
        t = ("daily_limit",)
        node = self._node(t)
        if not node:
            return None
        self._unknown(t, {"per_day", "min_gap", "order"})
        per_day = self._get(t, "per_day", int)
        if per_day < 1:
            raise self.src.fail(t, "per_day", "per_day must be 1 or more")
        min_gap = self._duration(t, "min_gap")
        if min_gap > timedelta(hours=12):
            raise self.src.fail(t, "min_gap", "min_gap longer than 12 hours would leave one text a day")
        order = self._get(t, "order", list)
        if not all(isinstance(v, str) for v in order):
            raise self.src.fail(t, "order", "'order' must be a list of message ids like [\"S02\", \"S07\"]")
        by_id = {m.id: m for m in messages}
        routine = [m.id for m in messages if _is_routine_rule(m)]
        seen: set[str] = set()
        for sid in order:
            if sid in seen:
                raise self.src.fail(t, "order", f"'order' lists {sid} twice")
            seen.add(sid)
            m = by_id.get(sid)
            if m is None:
                raise self.src.fail(t, "order", f"'order' names unknown message {sid!r}")
            if sid not in routine:
                why = ("a safety text is never held back" if m.kind == "reminder" else
                       f"{'an' if m.kind[0] in 'aeiou' else 'a'} {m.kind} does not count towards the limit")
                raise self.src.fail(t, "order", f"'order' lists {sid}, but {why}; remove it")
        missing = [sid for sid in routine if sid not in seen]
        if missing:
            raise self.src.fail(t, "order", f"'order' must rank every routine text; add {', '.join(missing)}")
        return DailyLimit(per_day=per_day, min_gap=min_gap, order=tuple(order))

    def _checkins(self, messages: tuple[MessageRule, ...]) -> CheckinCadence:
        by_id = {m.id: m for m in messages}
        base = ("checkins",)
        node = self._node(base)
        if not node:
            raise self.src.fail((), "checkins", "missing the [checkins] cadence")
        reminder = self._get(base, "reminder", str)
        if by_id.get(reminder) is None or by_id[reminder].kind != "checkin_reminder":
            raise self.src.fail(base, "reminder", f"'reminder' must name a message of kind checkin_reminder, not {reminder!r}")

        def invite_of(t):
            invite = self._get(t, "invite", str)
            if by_id.get(invite) is None or by_id[invite].kind != "checkin_invite":
                raise self.src.fail(t, "invite", f"'invite' must name a message of kind checkin_invite, not {invite!r}")
            return invite

        def windows(t):
            reminder_after = self._duration(t, "reminder_after")
            missed_after = self._duration(t, "missed_after")
            if reminder_after >= missed_after:
                raise self.src.fail(t, "reminder_after", "the reminder must come before the check-in counts as missed")
            return reminder_after, missed_after

        day0 = None
        groups = []
        seen_days: dict[int, str] = {}
        for name, value in node.items():
            if name == "reminder":
                continue
            t = base + (name,)
            if not isinstance(value, dict):
                raise self.src.fail(base, name, f"unknown field '{name}' (a check-in group is a table)")
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name):
                raise self.src.fail(t, None, f"group name {name!r} must be lower-case letters, digits or '_'")
            if name == "day0":
                self._unknown(t, _DAY0_KEYS)
                invite = invite_of(t)
                reminder_after, missed_after = windows(t)
                day0 = Day0Checkin(invite=invite, at=self._offset(t, "at"), not_before=self._offset(t, "not_before"),
                                   evening_fallback=self._clock(t, "evening_fallback"),
                                   reminder_after=reminder_after, missed_after=missed_after,
                                   enabled=self._get(t, "enabled", bool, required=False, default=True))
                seen_days[0] = name
                continue
            self._unknown(t, _GROUP_KEYS)
            days = self._get(t, "days", list)
            if not days or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 366 for d in days):
                raise self.src.fail(t, "days", "'days' must be a non-empty list of day numbers 0-366")
            for d in days:
                if d in seen_days:
                    raise self.src.fail(t, "days", f"day {d} already has a check-in (group {seen_days[d]})")
                seen_days[d] = name
            invite = invite_of(t)
            reminder_after, missed_after = windows(t)
            groups.append(CheckinGroup(name=name, days=tuple(sorted(days)), at=self._clock(t, "time"),
                                       invite=invite, reminder_after=reminder_after, missed_after=missed_after,
                                       enabled=self._get(t, "enabled", bool, required=False, default=True)))
        used = {g.invite for g in groups} | ({day0.invite} if day0 else set())
        for m in messages:
            if m.kind == "checkin_invite" and m.id not in used:
                raise self.src.fail(("messages", m.id), "kind", "a checkin_invite that no [checkins] group sends")
            if m.kind == "checkin_reminder" and m.id != reminder:
                raise self.src.fail(("messages", m.id), "kind", "a checkin_reminder that [checkins] does not use")
        return CheckinCadence(reminder=reminder, day0=day0, groups=tuple(groups))


def _is_routine_rule(m: MessageRule) -> bool:
    """Counts towards [daily_limit]: a reminder with an occurrence that is not a safety text, or
    the check-in reminder. Replies, safety texts and check-in invitations never count."""
    if m.kind == "checkin_reminder":
        return True
    return m.kind == "reminder" and any(off.key not in m.safety for off in m.send)


def find_cycle(offsets: Mapping[str, tuple[Offset, Offset]]) -> list[str] | None:
    """A list like ["TL08", "TL16", "TL08"] if milestone offsets refer to each other in a circle."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mid: str) -> list[str] | None:
        state[mid] = 1
        stack.append(mid)
        for off in offsets.get(mid, ()):
            for ref in sorted(off.refs()):
                if ref not in offsets:
                    continue
                if state.get(ref) == 1:
                    return stack[stack.index(ref):] + [ref]
                if ref not in state:
                    found = visit(ref)
                    if found:
                        return found
        stack.pop()
        state[mid] = 2
        return None

    for mid in offsets:
        if mid not in state:
            found = visit(mid)
            if found:
                return found
    return None


# Appended to the too-long warning of a text that a replaced (frozen) version keeps.
FROZEN_TOO_LONG = ("; kept as it is: this version is replaced by a newer one and stays unchanged for the "
                   "patients enrolled on it, so the text still goes, in more than one SMS segment")


# ---------------------------------------------------------------------------------------------
# Per-patient overrides (chosen at enrolment, stored as JSON on the enrolment)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MilestoneOverride:
    start: Offset | None = None
    end: Offset | None = None
    at: Offset | None = None  # for a single-moment milestone (e.g. the follow-up visit)

    def to_value(self) -> str | dict[str, str]:
        if self.at is not None and self.start is None and self.end is None:
            return self.at.text
        return {k: v.text for k, v in (("start", self.start), ("end", self.end), ("at", self.at)) if v is not None}


@dataclass(frozen=True)
class Overrides:
    """Per-patient changes to a template. JSON shape (every key optional)::

        {"working": true, "brace": false,
         "milestones": {"TL03": {"end": "T0+14d"}, "TL16": "date T0+14d"},
         "messages": {"S03": false},
         "texts": {"S01": "Hi {first}, welcome home. ... for 2 weeks."},
         "checkins": {"optional": true}}

    `milestones`: a string is the moment of a single-moment milestone (`at`); a table gives start/end.
    `messages`: switch a text off (false) or on (true, for one that is off by default); urgent safety
    replies cannot be switched off, and S12/S15-style texts still need their profile flag.
    `texts`: replacement wording, checked like template texts (GSM-7, ≤ 160, no PHI).
    `checkins`: switch a check-in group on/off by name (day0, daily, day10, weekly, optional).
    """
    working: bool = False
    brace: bool = False
    milestones: Mapping[str, MilestoneOverride] = field(default_factory=dict)
    messages: Mapping[str, bool] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)
    checkins: Mapping[str, bool] = field(default_factory=dict)

    def flag(self, name: str | None) -> bool:
        return True if name is None else bool(getattr(self, name))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Overrides:
        """Parse the stored JSON. Raises OverrideError naming the field (``milestones.TL03.end: …``)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise OverrideError(f"overrides must be an object, not {type(data).__name__}")
        allowed = {"working", "brace", "milestones", "messages", "texts", "checkins"}
        for key in data:
            if key not in allowed:
                raise OverrideError(f"{key}: unknown override (allowed: {', '.join(sorted(allowed))})")
        flags = {}
        for key in FLAGS:
            value = data.get(key, False)
            if not isinstance(value, bool):
                raise OverrideError(f"{key}: must be true or false, not {value!r}")
            flags[key] = value
        milestones: dict[str, MilestoneOverride] = {}
        for mid, value in _mapping(data, "milestones").items():
            if isinstance(value, str):
                milestones[mid] = MilestoneOverride(at=_override_offset(f"milestones.{mid}", value))
                continue
            if not isinstance(value, Mapping) or not value:
                raise OverrideError(f"milestones.{mid}: give an offset string or {{\"start\": ..., \"end\": ...}}")
            for k in value:
                if k not in ("start", "end", "at"):
                    raise OverrideError(f"milestones.{mid}.{k}: unknown (use start, end or at)")
            if "at" in value and ("start" in value or "end" in value):
                raise OverrideError(f"milestones.{mid}: give either 'at' or 'start'/'end', not both")
            milestones[mid] = MilestoneOverride(**{k: _override_offset(f"milestones.{mid}.{k}", v)
                                                   for k, v in value.items()})
        messages = {}
        for sid, value in _mapping(data, "messages").items():
            if not isinstance(value, bool):
                raise OverrideError(f"messages.{sid}: must be true or false, not {value!r}")
            messages[sid] = value
        texts_ = {}
        for sid, value in _mapping(data, "texts").items():
            if not isinstance(value, str):
                raise OverrideError(f"texts.{sid}: must be text, not {value!r}")
            check = texts.check_text(value)
            if check.problems:
                raise OverrideError(f"texts.{sid}: {check.problems[0]}")
            texts_[sid] = value
        checkins = {}
        for name, value in _mapping(data, "checkins").items():
            if not isinstance(value, bool):
                raise OverrideError(f"checkins.{name}: must be true or false, not {value!r}")
            checkins[name] = value
        return cls(milestones=milestones, messages=messages, texts=texts_, checkins=checkins, **flags)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable; `from_dict(to_dict())` gives an equal object. Empty parts are left out."""
        out: dict[str, Any] = {"working": self.working, "brace": self.brace}
        if self.milestones:
            out["milestones"] = {k: v.to_value() for k, v in self.milestones.items()}
        if self.messages:
            out["messages"] = dict(self.messages)
        if self.texts:
            out["texts"] = dict(self.texts)
        if self.checkins:
            out["checkins"] = dict(self.checkins)
        return out

    def validate(self, template: Template) -> None:
        """Check these overrides against a template. Raises OverrideError naming the field."""
        ids = {m.id for m in template.milestones}
        for mid, o in self.milestones.items():
            if mid not in ids:
                raise OverrideError(f"milestones.{mid}: unknown milestone (known: {', '.join(sorted(ids))})")
            m = template.milestone(mid)
            if m.point and (o.start or o.end):
                raise OverrideError(f"milestones.{mid}: is a single moment; give \"at\" (or just the offset string)")
            if not m.point and o.at:
                raise OverrideError(f"milestones.{mid}: has a start and an end; give {{\"start\": ...}} "
                                    "and/or {\"end\": ...}")
            for k, off in (("start", o.start), ("end", o.end), ("at", o.at)):
                for ref in off.refs() if off else ():
                    if ref not in ids:
                        raise OverrideError(f"milestones.{mid}.{k}: unknown milestone id {ref!r} in {off.text!r}")
        effective = self.milestone_offsets(template)
        cycle = find_cycle(effective)
        if cycle:
            raise OverrideError(f"milestones.{cycle[0]}: offsets refer to each other in a circle: "
                                + " -> ".join(cycle))
        msg_ids = [m.id for m in template.messages]
        for sid, on in self.messages.items():
            if sid not in msg_ids:
                raise OverrideError(f"messages.{sid}: unknown message (known: {', '.join(msg_ids)})")
            rule = template.message(sid)
            if rule.kind == "checkin_invite":
                groups_ = ", ".join(template.checkins.group_names())
                raise OverrideError(f"messages.{sid}: is a check-in invitation; switch check-in groups on or off "
                                    f"with checkins.<group> ({groups_})")
            if not on and rule.urgent:
                raise OverrideError(f"messages.{sid}: is an urgent safety reply and cannot be switched off")
            if not on and rule.safety:
                raise OverrideError(f"messages.{sid}: is a safety text and cannot be switched off "
                                    f"(change its wording with texts.{sid})")
            if on and rule.only_if and not self.flag(rule.only_if):
                raise OverrideError(f"messages.{sid}: is only for patients with '{rule.only_if}'; set "
                                    f"{rule.only_if} = true instead")
        for sid in self.texts:
            if sid not in msg_ids:
                raise OverrideError(f"texts.{sid}: unknown message (known: {', '.join(msg_ids)})")
            rule = template.message(sid)
            check = texts.check_text(self.texts[sid], emerg=template.emerg, phone=template.phone,
                                     clinic=template.sms_name, budget=template.budget)
            if check.problems:
                raise OverrideError(f"texts.{sid}: {check.problems[0]}")
            missing = [p for p in ("link",) if "{" + p + "}" in rule.text and "{" + p + "}" not in self.texts[sid]]
            if missing:
                raise OverrideError(f"texts.{sid}: must keep {{link}} (the original text has it)")
        groups = template.checkins.group_names()
        for name in self.checkins:
            if name not in groups:
                raise OverrideError(f"checkins.{name}: unknown check-in group (known: {', '.join(groups)})")
        for mid, o in self.milestones.items():
            m = template.milestone(mid)
            if not _changes(m, o) or m.lasts:  # a milestone with 'lasts' is reworded (reworded())
                continue
            for rule in template.messages:
                if mid in rule.restates and rule.id not in self.texts and self.messages.get(rule.id, True) \
                        and rule.enabled and self.flag(rule.only_if):
                    raise OverrideError(
                        f"milestones.{mid}: message {rule.id} repeats this timing in its text "
                        f"({rule.text!r}); give texts.{rule.id} with the new wording or switch "
                        f"messages.{rule.id} off")
        new_texts, _ = self.reworded(template)
        for sid, text in new_texts.items():
            check = texts.check_text(text, emerg=template.emerg, phone=template.phone, clinic=template.sms_name,
                                     budget=template.budget)
            if check.problems:
                raise OverrideError(f"texts.{sid}: reworded for the patient's own length, {check.problems[0]}")

    def reworded(self, template: Template) -> tuple[dict[str, str], dict[str, str]]:
        """(texts, details) after a per-patient change of a milestone that says how long it lasts
        (`lasts = "48 hours"`): its detail and every text restating it say the patient's own length,
        in the template's or clinic's own wording. Texts given in `texts` are left as given."""
        out_texts: dict[str, str] = {}
        details: dict[str, str] = {}
        effective = self.milestone_offsets(template)
        for m in template.milestones:
            o = self.milestones.get(m.id)
            if not m.lasts or o is None or not _changes(m, o):
                continue
            start, end = effective[m.id]
            if not (isinstance(start, Elapsed) and isinstance(end, Elapsed) and start.anchor == end.anchor):
                raise OverrideError(f"milestones.{m.id}: its texts say how long it lasts ({m.lasts!r}); give its "
                                    f"end as a length after {start.text if isinstance(start, Elapsed) else 'its start'}"
                                    f", e.g. \"T0+21d\"")
            try:
                words = duration_words(end.delta - start.delta)
            except ValueError as e:
                raise OverrideError(f"milestones.{m.id}: {e}") from None
            details[m.id] = m.detail.replace(m.lasts, words)
            for rule in template.messages:
                if m.id in rule.restates and rule.id not in self.texts:
                    out_texts[rule.id] = out_texts.get(rule.id, rule.text).replace(m.lasts, words)
        return out_texts, details

    def milestone_offsets(self, template: Template) -> dict[str, tuple[Offset, Offset]]:
        """(start, end) of every milestone after these overrides."""
        out = {}
        for m in template.milestones:
            o = self.milestones.get(m.id)
            if o is None:
                out[m.id] = (m.start, m.end)
            elif o.at is not None:
                out[m.id] = (o.at, o.at)
            else:
                out[m.id] = (o.start or m.start, o.end or m.end)
        return out


def _changes(m: Milestone, o: MilestoneOverride) -> bool:
    return (o.at is not None and o.at.text != m.start.text) or \
           (o.start is not None and o.start.text != m.start.text) or \
           (o.end is not None and o.end.text != m.end.text)


def duration_words(length: timedelta) -> str:
    """A length as the texts write it: up to 48 h in hours ("48 hours", as protocol.md words the
    sedation rule), whole weeks as weeks ("3 weeks"), other whole days as days ("10 days")."""
    hours, rest = divmod(length, timedelta(hours=1))
    if rest or hours < 1:
        raise ValueError(f"a length of {length} cannot be put in words; give whole hours or days")
    if hours <= 48 or hours % 24:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    days = hours // 24
    if days % 7 == 0:
        return f"{days // 7} week{'s' if days != 7 else ''}"
    return f"{days} days"


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise OverrideError(f"{key}: must be an object, not {value!r}")
    return value


def _override_offset(where: str, value: Any) -> Offset:
    try:
        return parse_offset(value)
    except OffsetError as e:
        raise OverrideError(f"{where}: {e}") from None


__all__ = [
    "Anchor", "CalendarDate", "Catalog", "CheckinCadence", "CheckinGroup", "DailyLimit", "Day0Checkin", "DayAt",
    "DaysFrom", "duration_words",
    "Elapsed", "FirstAt", "MessageRule", "Milestone", "MilestoneOverride", "Offset", "OffsetError", "OverrideError",
    "Overrides", "Template", "TemplateError", "find_cycle", "load_all", "load_clinic_template", "load_template",
    "parse_clock", "parse_duration", "parse_offset", "EVENTS", "FLAGS", "KINDS", "UTC",
]

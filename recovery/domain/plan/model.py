"""A plan template as data: milestones, texts, check-in cadence, daily limit (frozen data classes)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta, timezone
from typing import Protocol

from recovery.domain import texts
from recovery.domain.plan.errors import TemplateError
from recovery.domain.plan.offsets import Offset


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
    # (language, (title, short, detail)) from title_es / short_es / detail_es in the file
    translations: tuple[tuple[str, tuple[str, str, str]], ...] = ()

    def words_in(self, language: str | None) -> tuple[str, str, str]:
        """(title, short, detail) in the language, or the English ones."""
        return dict(self.translations).get(language or "", (self.title, self.short, self.detail))


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

    # The text in other languages, (language, text) pairs ("text_es" in the file); a language
    # without one gets the English `text`.
    translations: tuple[tuple[str, str], ...] = ()

    def text_in(self, language: str | None) -> str:
        return dict(self.translations).get(language or "", self.text)

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
    # The database row of a clinic plan version published at /admin/plan that this was read from
    # (the enrolment records it); None: read from the files in schedules/.
    published_id: int | None = None

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

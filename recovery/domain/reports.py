"""The clinic dashboard's rules (issue 16): the reporting period, what an invited check-in came
to, runs of missed check-ins, weeks, and failure reasons. Pure: standard library only, `today` given.

What a check-in invitation came to reuses the missed-check-in scan's own verdict (the audit marker
"checkin_slot_closed" that recovery/services/missed.py writes from missed_rules.decide), so the
dashboard and the nurse tasks can never disagree:

* done: the scan found it completed, or it was submitted before the scan looked;
* late: the scan declared it missed (a nurse task was raised) and the patient submitted it after;
* missed: the scan declared it missed and nothing was submitted for it;
* red_flag: a started check-in had an EMERGENCY answer, acted on at once (M6: not "missed");
* closed: the enrolment had ended when the scan looked;
* pending: not decided yet (its missed_after has not passed, or the scan has not run).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

OUTCOMES = ("done", "late", "missed", "red_flag", "closed", "pending")
OUTCOME_LABELS = {"done": "Done", "late": "Late", "missed": "Missed", "red_flag": "Red flag (acted on)",
                  "closed": "Enrolment ended", "pending": "Not yet due"}
DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    start: date  # first local day, inclusive
    end: date  # last local day, inclusive
    tz: ZoneInfo

    @property
    def start_utc(self) -> datetime:
        return datetime.combine(self.start, time(0), self.tz).astimezone(ZoneInfo("UTC"))

    @property
    def end_utc(self) -> datetime:  # exclusive: the first instant after the last day
        return datetime.combine(self.end + timedelta(days=1), time(0), self.tz).astimezone(ZoneInfo("UTC"))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass
class PeriodInput:
    period: Period | None
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


def default_period(today: date, tz: ZoneInfo) -> Period:
    return Period(today - timedelta(days=DEFAULT_DAYS - 1), today, tz)


def parse_period(start_text: str | None, end_text: str | None, *, today: date, tz: ZoneInfo) -> PeriodInput:
    """The period from the form's `from`/`to` (YYYY-MM-DD, the clinic's local days). Both empty: the
    last 30 days. Errors are per field, in words a nurse can act on."""
    start_text, end_text = (start_text or "").strip()[:32], (end_text or "").strip()[:32]
    values = {"from": start_text, "to": end_text}
    if not start_text and not end_text:
        p = default_period(today, tz)
        return PeriodInput(p, values={"from": p.start.isoformat(), "to": p.end.isoformat()})
    errors: dict[str, str] = {}
    parsed: dict[str, date] = {}
    for name, text in values.items():
        if not text:
            errors[name] = "Enter a date (year-month-day, e.g. 2026-03-01)."
            continue
        try:
            parsed[name] = date.fromisoformat(text)
        except ValueError:
            errors[name] = "Enter a real date as year-month-day, e.g. 2026-03-01."
    if not errors:
        start, end = parsed["from"], parsed["to"]
        if end < start:
            errors["to"] = "The end date must be on or after the start date."
        elif (end - start).days + 1 > MAX_DAYS:
            errors["to"] = f"Choose a period of at most {MAX_DAYS} days."
        elif start > today:
            errors["from"] = "The start date is in the future."
    if errors:
        return PeriodInput(None, errors, values)
    return PeriodInput(Period(parsed["from"], parsed["to"], tz), values=values)


def invite_outcome(marker: str | None, submitted: bool) -> str:
    """What one sent invitation came to (see the module docstring)."""
    if marker == "missed":
        return "late" if submitted else "missed"
    if marker in ("completed", "red_flag", "closed"):
        return "done" if marker == "completed" else marker
    if marker is None and submitted:
        return "done"
    if marker is not None:  # an outcome this code does not know yet: never silently "done"
        return "closed"
    return "pending"


@dataclass(frozen=True)
class Invite:
    enrolment_id: int
    patient_id: int
    name: str
    day: int
    sent_at: datetime
    outcome: str


@dataclass(frozen=True)
class MissedRun:
    patient_id: int
    name: str
    longest: int  # the longest run of missed invitations in a row within the period
    current: int  # how many of the latest invitations in a row were missed
    last_missed: datetime


def tally_counts(rows: Iterable[tuple[int, str, int]]) -> tuple[dict[int, dict[str, int]], dict[str, int]]:
    """Counts per recovery day and overall, by outcome (with "invited" = all), from (recovery day,
    outcome, count) rows, e.g. as the database grouped them; a day before 0 (sent before the
    procedure ended) counts as day 0."""
    by_day: dict[int, dict[str, int]] = {}
    total = {k: 0 for k in ("invited", *OUTCOMES)}
    for day, outcome, n in rows:
        row = by_day.setdefault(max(0, day), {k: 0 for k in ("invited", *OUTCOMES)})
        for target in (row, total):
            target["invited"] += n
            target[outcome] += n
    return dict(sorted(by_day.items())), total


def tally(invites: Iterable[Invite]) -> tuple[dict[int, dict[str, int]], dict[str, int]]:
    return tally_counts((inv.day, inv.outcome, 1) for inv in invites)


def missed_runs(invites: Sequence[Invite], at_least: int = 2) -> list[MissedRun]:
    """Patients with `at_least` missed invitations in a row (ordered by send time per enrolment;
    a pending, late or done invitation ends a run, as "consecutive" does in missed_rules)."""
    by_enrolment: dict[int, list[Invite]] = {}
    for inv in invites:
        by_enrolment.setdefault(inv.enrolment_id, []).append(inv)
    found = []
    for rows in by_enrolment.values():
        rows = sorted(rows, key=lambda r: r.sent_at)
        longest = run = 0
        last = None
        for r in rows:
            if r.outcome == "missed":
                run += 1
                longest = max(longest, run)
                last = r.sent_at
            elif r.outcome != "pending":
                run = 0
        # a pending invitation after a run does not end "currently missing": it is not decided yet
        if longest >= at_least:
            found.append(MissedRun(rows[0].patient_id, rows[0].name, longest, run, last))
    return sorted(found, key=lambda m: (-m.current, -m.longest, m.name, m.patient_id))


def week_start(instant: datetime, tz: ZoneInfo) -> date:
    """The Monday of the local week holding the instant."""
    d = instant.astimezone(tz).date()
    return d - timedelta(days=d.weekday())


def per_week(instants: Iterable[datetime], period: Period) -> list[tuple[date, int]]:
    """Counts per local week (Monday first) over the whole period, empty weeks included."""
    counts: dict[date, int] = {}
    first = period.start - timedelta(days=period.start.weekday())
    w = first
    while w <= period.end:
        counts[w] = 0
        w += timedelta(days=7)
    for at in instants:
        key = week_start(at, period.tz)
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items())


FAILURE_LABELS = {"landline": "Landline or not a mobile number", "opted_out": "Opted out",
                  "unreachable": "Unreachable (carrier could not deliver)", "other": "Other provider error"}


def failure_reason(status_reason: str | None, code_kind: str | None) -> str:
    """landline | opted_out | unreachable | other, from the outbox row's reason and the Twilio
    error code's kind (recovery.messaging.error_kind: invalid_number, opted_out, retryable, permanent)."""
    if status_reason == "invalid_number" or code_kind == "invalid_number":
        return "landline"
    if status_reason == "opted_out" or code_kind == "opted_out":
        return "opted_out"
    if status_reason in ("provider_undelivered", "retries_exhausted") or code_kind == "retryable":
        return "unreachable"
    return "other"


NO_SERVICE_HOURS = "no service hours set"


def outside_hours_text(outside: int, hours_set: int, opened: int) -> str:
    """How many alerts opened outside service hours, in words that never pass "unknown" off as 0:
    an alert opened while the clinic had no service hours has none recorded (NULL)."""
    if opened and not hours_set:
        return NO_SERVICE_HOURS
    if hours_set < opened:
        return f"{outside} of {hours_set} ({opened - hours_set} opened with {NO_SERVICE_HOURS})"
    return str(outside)


@lru_cache(maxsize=256)
def offset_spans(tz: ZoneInfo, start: datetime, end: datetime) -> tuple[tuple[datetime | None, int], ...]:
    """The zone's UTC offset (seconds) from `start` to `end`, as (until, offset) spans in order, the
    last one's `until` None: what a database needs to turn UTC instants into the patient's local
    dates exactly (zoneinfo's transitions) without a time zone database of its own (SQLite)."""
    utc = ZoneInfo("UTC")
    start, end = start.astimezone(utc), end.astimezone(utc)

    def off(t: datetime) -> int:
        return int(t.astimezone(tz).utcoffset().total_seconds())

    spans: list[tuple[datetime | None, int]] = []
    t, current = start, off(start)
    while t < end:
        nxt = min(t + timedelta(days=1), end)
        if off(nxt) != current:
            lo, hi = t, nxt  # the change is in (lo, hi]: bisect to the second
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if off(mid) == current else (lo, mid)
            spans.append((hi.replace(microsecond=0), current))
            current = off(hi)
        t = nxt
    spans.append((None, current))
    return tuple(spans)

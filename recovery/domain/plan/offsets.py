"""The offset grammar: when a milestone or a text happens, relative to T0, TD or another milestone.

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
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Union

from recovery.domain.plan.errors import OffsetError


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

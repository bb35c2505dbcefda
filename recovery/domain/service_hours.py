"""A clinic's service hours: when a nurse watches the worklist (issue 13 §1).

Hours are wall-clock times in the clinic's zone, per weekday (Monday 0 … Sunday 6), each day at most
one window open <= t < close on the same day (an overnight window is two days' windows). A day
without a window is closed. No hours at all means the clinic has not set any: callers then behave as
before the setting existed (`outside_service_hours` gives None).

Stored as JSON: {"0": ["08:00", "17:00"], ...}; `parse`/`to_json` convert.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from zoneinfo import ZoneInfo

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

ServiceHours = Mapping[int, tuple[time, time]]


class HoursError(ValueError):
    """A window that cannot be used, with the weekday it is on (None: the whole value)."""

    def __init__(self, weekday: int | None, message: str):
        super().__init__(message)
        self.weekday = weekday


def clock(text: str) -> time:
    """'08:00' -> time(8, 0); ValueError for anything else than HH:MM on a 24-hour clock."""
    parts = text.strip().split(":") if isinstance(text, str) else []
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) == 2 for p in parts):
        raise ValueError("Enter a time as HH:MM on a 24-hour clock, e.g. 08:00 or 17:30.")
    hour, minute = int(parts[0]), int(parts[1])
    if hour > 23 or minute > 59:
        raise ValueError("Enter a time as HH:MM on a 24-hour clock, e.g. 08:00 or 17:30.")
    return time(hour, minute)


def window(weekday: int, opens: time, closes: time) -> tuple[time, time]:
    if closes <= opens:
        raise HoursError(weekday, f"{WEEKDAYS[weekday]}: closing time must be after opening time "
                                  "(a window past midnight is two days' windows).")
    return opens, closes


def parse(stored: Mapping[str, object] | None) -> dict[int, tuple[time, time]]:
    """The stored JSON as windows by weekday; HoursError for anything malformed."""
    out: dict[int, tuple[time, time]] = {}
    for key, value in (stored or {}).items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < 7):
            raise HoursError(None, f"not a weekday: {key!r}")
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise HoursError(int(key), f"{WEEKDAYS[int(key)]}: expected [open, close]")
        try:
            opens, closes = clock(value[0]), clock(value[1])
        except ValueError as e:
            raise HoursError(int(key), f"{WEEKDAYS[int(key)]}: {e}") from None
        out[int(key)] = window(int(key), opens, closes)
    return out


def to_json(hours: ServiceHours) -> dict[str, list[str]] | None:
    """What is stored; None when no day has a window (no service hours set)."""
    if not hours:
        return None
    return {str(d): [o.strftime("%H:%M"), c.strftime("%H:%M")] for d, (o, c) in sorted(hours.items())}


def in_service_hours(hours: ServiceHours, tz: ZoneInfo, instant: datetime) -> bool:
    """True when `instant` (aware) falls in that local weekday's window, read on the wall clock of
    `tz` at that instant (so 09:00 is 09:00 on either side of a DST change; a wall time skipped by
    the spring change never happens, one repeated in autumn is in the window both times)."""
    if instant.tzinfo is None:
        raise ValueError("in_service_hours needs an aware instant")
    local = instant.astimezone(tz)
    found = hours.get(local.weekday())
    if found is None:
        return False
    opens, closes = found
    return opens <= local.time().replace(tzinfo=None) < closes


def outside_service_hours(hours: ServiceHours, tz: ZoneInfo, instant: datetime) -> bool | None:
    """None when no service hours are set (everything as before), else whether `instant` is outside them."""
    if not hours:
        return None
    return not in_service_hours(hours, tz, instant)


def describe(hours: ServiceHours) -> list[tuple[str, str]]:
    """(weekday, 'HH:MM–HH:MM' or 'closed') for each day, Monday first."""
    return [(name, f"{hours[d][0]:%H:%M}–{hours[d][1]:%H:%M}" if d in hours else "closed")
            for d, name in enumerate(WEEKDAYS)]

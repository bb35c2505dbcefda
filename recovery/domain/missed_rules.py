"""Missed check-ins (protocol §3.5 M1-M3, M6): what one invited check-in slot comes to. Pure.

A slot is decided once `missed_at` (the invitation's send time + the cadence's `missed_after`)
has passed:

* completed: a check-in was submitted for it (or any check-in between the invitation and
  `missed_at`);
* red_flag: a started check-in had an EMERGENCY answer; that was acted on at once (MR2), so it is
  not also a missed check-in (M6);
* missed: otherwise, once any started-but-unsubmitted check-in has been idle for more than 2 h (M6).
  The rule depends on the window: days 0-2 → M1 (URGENT); days 3-7 → M2 (WATCH), or M2x2
  (URGENT) when the slot before it was missed too; day 10, weekly and optional → M3 (WATCH), or
  M3x2 (URGENT) after a missed slot. "Consecutive" means the immediately preceding invited slot,
  whatever its window (a missed day 2 followed by a missed day 3 is two in a row) [CJ].

Until then the verdict is `waiting` and nothing is recorded, so the scan can ask again later.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["ABANDONED_AFTER", "SlotFacts", "Verdict", "decide", "window"]

ABANDONED_AFTER = timedelta(hours=2)  # M6
EARLY_LAST_DAY = 2  # M1: days 0-2
DAILY_LAST_DAY = 7  # M2: days 3-7

COMPLETED, RED_FLAG, MISSED, WAITING = "completed", "red_flag", "missed", "waiting"


@dataclass(frozen=True)
class SlotFacts:
    slot: str
    day: int  # recovery day of the slot
    invited_at: datetime  # when the invitation actually went out (aware)
    missed_at: datetime  # invited_at + the cadence's missed_after (aware)
    completed: bool
    last_activity: datetime | None  # latest update of a started, unsubmitted check-in
    red_flag: bool  # that started check-in had an EMERGENCY answer (acted on already)
    previous_missed: bool  # the invited slot before this one was missed


@dataclass(frozen=True)
class Verdict:
    outcome: str  # completed | red_flag | missed | waiting
    rule: str | None = None  # M1 | M2 | M2x2 | M3 | M3x2 when missed

    @property
    def decided(self) -> bool:
        return self.outcome != WAITING


def window(day: int) -> str:
    """early (days 0-2, M1), daily (days 3-7, M2) or sparse (later, M3)."""
    if day < 0:
        raise ValueError(f"a check-in day cannot be negative, not {day}")
    if day <= EARLY_LAST_DAY:
        return "early"
    if day <= DAILY_LAST_DAY:
        return "daily"
    return "sparse"


def decide(facts: SlotFacts, now: datetime) -> Verdict:
    for name in ("invited_at", "missed_at"):
        value = getattr(facts, name)
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if facts.completed:
        return Verdict(COMPLETED)
    if now < facts.missed_at:
        return Verdict(WAITING)
    if facts.last_activity is not None:
        if facts.red_flag:
            return Verdict(RED_FLAG)
        if now - facts.last_activity <= ABANDONED_AFTER:
            return Verdict(WAITING)  # still being filled in (or only just left): not yet missed
    w = window(facts.day)
    if w == "early":
        return Verdict(MISSED, "M1")
    if w == "daily":
        return Verdict(MISSED, "M2x2" if facts.previous_missed else "M2")
    return Verdict(MISSED, "M3x2" if facts.previous_missed else "M3")

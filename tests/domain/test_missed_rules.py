"""Missed check-in verdicts (protocol §3.5 M1-M3, M6), pure."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from recovery.domain.missed_rules import SlotFacts, Verdict, decide, window

UTC = timezone.utc
SENT = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)


def facts(day=1, missed_after=timedelta(hours=8), **kw) -> SlotFacts:
    base = dict(slot=f"day{day}", day=day, invited_at=SENT, missed_at=SENT + missed_after, completed=False,
                last_activity=None, red_flag=False, previous_missed=False)
    base.update(kw)
    return SlotFacts(**base)


@pytest.mark.parametrize("day, previous, rule", [
    (0, False, "M1"), (1, False, "M1"), (2, True, "M1"),
    (3, False, "M2"), (3, True, "M2x2"), (7, False, "M2"), (7, True, "M2x2"),
    (10, False, "M3"), (14, True, "M3x2"), (42, False, "M3"), (60, True, "M3x2"),
])
def test_the_rule_depends_on_the_window_and_the_slot_before(day, previous, rule):
    f = facts(day=day, previous_missed=previous)
    assert decide(f, f.missed_at) == Verdict("missed", rule)


def test_not_before_missed_at_and_never_when_done():
    f = facts()
    assert decide(f, f.missed_at - timedelta(seconds=1)) == Verdict("waiting")
    assert not decide(f, f.missed_at - timedelta(seconds=1)).decided
    assert decide(facts(completed=True), SENT) == Verdict("completed")
    assert decide(facts(completed=True), SENT + timedelta(days=3)) == Verdict("completed")


def test_m6_a_started_form_counts_as_missed_only_after_two_idle_hours():
    f = facts(day=4, last_activity=SENT + timedelta(hours=7, minutes=30))
    assert decide(f, f.missed_at) == Verdict("waiting")
    assert decide(f, SENT + timedelta(hours=9, minutes=30)) == Verdict("waiting")
    assert decide(f, SENT + timedelta(hours=9, minutes=31)) == Verdict("missed", "M2")


def test_m6_a_red_flag_was_acted_on_already_so_it_is_not_a_missed_checkin():
    f = facts(day=1, last_activity=SENT + timedelta(hours=1), red_flag=True)
    assert decide(f, f.missed_at + timedelta(hours=5)) == Verdict("red_flag")


def test_windows_and_bad_input():
    assert [window(d) for d in (0, 2, 3, 7, 8, 10, 90)] == ["early", "early", "daily", "daily", "sparse",
                                                            "sparse", "sparse"]
    with pytest.raises(ValueError, match="cannot be negative"):
        window(-1)
    with pytest.raises(ValueError, match="invited_at must be timezone-aware"):
        decide(facts(invited_at=SENT.replace(tzinfo=None)), SENT)

"""Alert state (recovery/domain/alerts.py, pure): response times, business days, merging raised rules into
an open alert, the allowed transitions, escalation timing and the worklist order."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from recovery.domain import alerts
from recovery.domain.triage import RULES, Level
from recovery.files.rulesets import load_ruleset

NY = ZoneInfo("America/New_York")
TIMES = load_ruleset(Path(__file__).resolve().parents[2] / "schedules" / "rulesets" / "va-recovery.toml").response
T = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)  # Monday 11:00 in New York


@pytest.mark.parametrize(("rules", "level", "minutes"), [
    (["E1"], Level.EMERGENCY, 15),
    (["E6", "U1"], Level.EMERGENCY, 15),  # the rules at the alert's level decide
    (["U5"], Level.URGENT, 60),  # neuro and cardiac: 1 h
    (["U6"], Level.URGENT, 60),
    (["U16"], Level.URGENT, 60),
    (["U1"], Level.URGENT, 240),
    (["U1", "U16"], Level.URGENT, 60),  # the shortest wins
    (["R1"], Level.URGENT, 60),  # a "Y" reply to the red-flag text
    (["M5"], Level.URGENT, 240),
])
def test_respond_by(rules, level, minutes):
    assert alerts.respond_by(rules, level, T, NY, TIMES) == T + timedelta(minutes=minutes)


def test_watch_and_downgraded_rules_get_one_business_day():
    assert alerts.respond_by(["W8"], Level.WATCH, T, NY, TIMES) == T + timedelta(days=1)
    # an URGENT rule downgraded to WATCH by MR3 is reviewed like a WATCH one
    assert alerts.respond_by(["U8"], Level.WATCH, T, NY, TIMES) == T + timedelta(days=1)


@pytest.mark.parametrize(("local", "expected"), [
    (datetime(2026, 3, 13, 16, 0), datetime(2026, 3, 16, 16, 0)),  # Friday → Monday
    (datetime(2026, 3, 14, 10, 0), datetime(2026, 3, 16, 10, 0)),  # Saturday → Monday
    (datetime(2026, 3, 15, 10, 0), datetime(2026, 3, 16, 10, 0)),  # Sunday → Monday
    (datetime(2026, 3, 9, 10, 0), datetime(2026, 3, 10, 10, 0)),  # Monday → Tuesday
    (datetime(2026, 3, 6, 16, 0), datetime(2026, 3, 9, 16, 0)),  # across the spring DST change: same wall time
    (datetime(2026, 10, 30, 9, 0), datetime(2026, 11, 2, 9, 0)),  # across the autumn one
])
def test_next_business_day_keeps_the_local_time(local, expected):
    at = local.replace(tzinfo=NY).astimezone(timezone.utc)
    result = alerts.next_business_day(at, NY)
    assert result.astimezone(NY).replace(tzinfo=None) == expected
    assert result.tzinfo == timezone.utc


def test_merge():
    U, E, W = Level.URGENT, Level.EMERGENCY, Level.WATCH
    same = alerts.merge(U, ["U1"], alerts.OPEN, {"U1": U})
    assert not same.worse and same.rules == ["U1"] and not same.reopened and same.added == []
    added = alerts.merge(U, ["U1"], alerts.OPEN, {"U3": U, "U1": U})
    assert added.worse and added.rules == ["U1", "U3"] and added.level == U and not added.reopened
    raised = alerts.merge(U, ["U16"], alerts.ACKNOWLEDGED, {"E5": E})
    assert raised.level == E and raised.raised and raised.reopened and raised.rules == ["U16", "E5"]
    lower = alerts.merge(E, ["E1"], alerts.ACKNOWLEDGED, {"E1": U})
    assert lower.level == E and not lower.worse and not lower.reopened  # never goes down
    # a new rule at the alert's level is news again for an acknowledged alert ...
    news = alerts.merge(E, ["E1"], alerts.ACKNOWLEDGED, {"E2": E})
    assert news.reopened and not news.raised and news.level == E
    # ... the rest of a check-in below it is added without taking it off the nurse who has it
    rest = alerts.merge(E, ["E1"], alerts.ACKNOWLEDGED, {"E1": E, "U1": U, "W8": W})
    assert rest.worse and not rest.reopened and rest.rules == ["E1", "U1", "W8"] and rest.added == ["U1", "W8"]
    # an MR3-downgraded rule counts at its scored level
    downgraded = alerts.merge(U, ["U1"], alerts.ACKNOWLEDGED, {"U8": W})
    assert downgraded.worse and not downgraded.reopened and downgraded.level == U


def test_transitions():
    assert alerts.can_acknowledge(alerts.OPEN)
    assert not alerts.can_acknowledge(alerts.ACKNOWLEDGED) and not alerts.can_acknowledge(alerts.RESOLVED)
    assert alerts.can_resolve(alerts.OPEN) and alerts.can_resolve(alerts.ACKNOWLEDGED)
    assert not alerts.can_resolve(alerts.RESOLVED)


def test_escalation_timing():
    assert alerts.next_escalation(Level.EMERGENCY, ["E1"], T, NY, TIMES) == T + timedelta(minutes=15)
    assert alerts.next_escalation(Level.URGENT, ["U5"], T, NY, TIMES) == T + timedelta(hours=1)
    assert alerts.next_escalation(Level.WATCH, ["W1"], T, NY, TIMES) is None
    assert alerts.next_escalation(Level.OK, [], T, NY, TIMES) is None


def test_overdue_and_worklist_order():
    assert alerts.overdue_minutes(T, T + timedelta(minutes=5)) == 5
    assert alerts.overdue_minutes(T, T - timedelta(minutes=5)) == -5
    now = T
    items = {
        "watch_very_late": (Level.WATCH, alerts.OPEN, now - timedelta(days=3)),
        "urgent_acked_late": (Level.URGENT, alerts.ACKNOWLEDGED, now - timedelta(hours=3)),
        "urgent_late": (Level.URGENT, alerts.OPEN, now - timedelta(minutes=30)),
        "urgent_due_later": (Level.URGENT, alerts.OPEN, now + timedelta(minutes=30)),
        "emergency": (Level.EMERGENCY, alerts.OPEN, now + timedelta(minutes=10)),
        "emergency_acked": (Level.EMERGENCY, alerts.ACKNOWLEDGED, now - timedelta(hours=1)),
    }
    order = sorted(items, key=lambda k: alerts.sort_key(*items[k], now))
    assert order == ["emergency", "emergency_acked", "urgent_late", "urgent_due_later", "urgent_acked_late",
                     "watch_very_late"]


def test_a_call_back_comes_back_to_the_top_of_its_level_at_its_time():
    now = T
    calls = {
        "urgent_late": (Level.URGENT, alerts.OPEN, now - timedelta(hours=2), None),
        "call_back_due": (Level.URGENT, alerts.ACKNOWLEDGED, now + timedelta(hours=3), now - timedelta(minutes=1)),
        "call_back_older": (Level.URGENT, alerts.ACKNOWLEDGED, now, now - timedelta(minutes=20)),
        "call_back_later": (Level.URGENT, alerts.ACKNOWLEDGED, now - timedelta(hours=5), now + timedelta(minutes=5)),
        "emergency": (Level.EMERGENCY, alerts.OPEN, now + timedelta(minutes=10), None),
        "watch_call_back_due": (Level.WATCH, alerts.ACKNOWLEDGED, now, now - timedelta(minutes=1)),
    }
    order = sorted(calls, key=lambda k: alerts.sort_key(*calls[k][:3], now, follow_up_at=calls[k][3]))
    # level first (an EMERGENCY is never below a call-back); within URGENT the call-backs that are due,
    # longest waiting first; one not due yet waits with the acknowledged ones
    assert order == ["emergency", "call_back_older", "call_back_due", "urgent_late", "call_back_later",
                     "watch_call_back_due"]
    assert alerts.follow_up_due(now, now) and not alerts.follow_up_due(now + timedelta(seconds=1), now)
    assert not alerts.follow_up_due(None, now)


def test_every_rule_and_task_has_a_level_family_and_title():
    ruleset = load_ruleset(Path(__file__).resolve().parents[2] / "schedules" / "rulesets" / "va-recovery.toml")
    for rule_id in list(RULES) + list(alerts.TASKS):
        assert alerts.rule_level(rule_id) in (Level.EMERGENCY, Level.URGENT, Level.WATCH)
        assert alerts.rule_family(rule_id)
        title = alerts.rule_title(rule_id, ruleset)
        assert title and "{" not in title, rule_id
    assert alerts.rule_title("U1", ruleset) == "Fever 38.0 °C or higher"
    assert alerts.rule_title("M5") == "Patient stopped texts (STOP or in their own words): arrange phone follow-up"
    assert alerts.rule_title("nonsense") == "nonsense"


def test_dispositions_include_the_issue_examples():
    for key in ("reviewed_expected", "called_patient", "sent_to_ed"):
        assert key in alerts.DISPOSITIONS


def test_only_no_answer_keeps_an_alert_open():
    assert [d for d in alerts.DISPOSITIONS if not alerts.resolves(d)] == ["no_answer"]
    assert not alerts.resolves("teleported")
    assert alerts.DEFAULT_FOLLOW_UP_MINUTES == 30 and 30 in alerts.FOLLOW_UP_MINUTES

"""Service hours (recovery/domain/service_hours.py, pure): the local weekday's window on the wall
clock of the clinic's zone, across DST changes; and the decision it drives (an URGENT alert outside
service hours pages at once)."""
from __future__ import annotations

from pathlib import Path
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from recovery.domain import service_hours as sh
from recovery.domain.alerts import next_escalation
from recovery.domain.triage import Level
from recovery.files.rulesets import load_ruleset

NY, SYD = ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")
TIMES = load_ruleset(Path(__file__).resolve().parents[2] / "schedules" / "rulesets" / "va-recovery.toml").response
WEEKDAYS_9_TO_5 = {d: (time(9), time(17)) for d in range(5)}


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_the_window_is_read_on_the_local_wall_clock_on_both_sides_of_dst_changes():
    # New York springs forward on Sun 8 Mar 2026 and falls back on Sun 1 Nov 2026.
    friday_before, monday_after = utc(2026, 3, 6, 14, 0), utc(2026, 3, 9, 13, 0)  # 09:00 EST, 09:00 EDT
    assert sh.in_service_hours(WEEKDAYS_9_TO_5, NY, friday_before)
    assert sh.in_service_hours(WEEKDAYS_9_TO_5, NY, monday_after)
    assert not sh.in_service_hours(WEEKDAYS_9_TO_5, NY, monday_after - timedelta(seconds=1))  # 08:59:59 EDT
    assert not sh.in_service_hours(WEEKDAYS_9_TO_5, NY, friday_before - timedelta(seconds=1))
    assert not sh.in_service_hours(WEEKDAYS_9_TO_5, NY, utc(2026, 3, 9, 21, 0))  # 17:00 EDT: closed
    assert sh.in_service_hours(WEEKDAYS_9_TO_5, NY, utc(2026, 3, 9, 20, 59))
    assert sh.in_service_hours(WEEKDAYS_9_TO_5, NY, utc(2026, 11, 2, 14, 0))  # Mon 09:00 EST after fall back
    assert not sh.in_service_hours(WEEKDAYS_9_TO_5, NY, utc(2026, 11, 2, 13, 0))  # 08:00 EST
    # Sunday is closed whatever the UTC date says: Sun 8 Mar 23:30 EDT is Mon 03:30 UTC.
    assert not sh.in_service_hours(WEEKDAYS_9_TO_5, NY, utc(2026, 3, 9, 3, 30))
    # Sydney falls back on Sun 5 Apr 2026 (AEDT -> AEST): Monday 09:00 is 23:00 UTC, not 22:00.
    assert sh.in_service_hours(WEEKDAYS_9_TO_5, SYD, utc(2026, 4, 5, 23, 0))
    assert not sh.in_service_hours(WEEKDAYS_9_TO_5, SYD, utc(2026, 4, 5, 22, 30))


def test_a_window_in_the_hours_a_dst_change_skips_or_repeats():
    sunday_night = {6: (time(1), time(3))}  # 01:00-03:00 on Sundays
    # spring: 02:00-03:00 does not exist; 01:59 EST is in, the next minute is 03:00 EDT, out
    assert sh.in_service_hours(sunday_night, NY, utc(2026, 3, 8, 6, 59))
    assert not sh.in_service_hours(sunday_night, NY, utc(2026, 3, 8, 7, 0))
    # autumn: 01:30 happens twice (EDT then EST); both are in the window, 03:00 EST is out
    assert sh.in_service_hours(sunday_night, NY, utc(2026, 11, 1, 5, 30))
    assert sh.in_service_hours(sunday_night, NY, utc(2026, 11, 1, 6, 30))
    assert not sh.in_service_hours(sunday_night, NY, utc(2026, 11, 1, 8, 0))


def test_stored_hours_round_trip_and_bad_ones_name_their_day():
    stored = {"0": ["08:00", "17:30"], "5": ["09:00", "12:00"]}
    hours = sh.parse(stored)
    assert hours == {0: (time(8), time(17, 30)), 5: (time(9), time(12))}
    assert sh.to_json(hours) == stored and sh.to_json({}) is None
    assert sh.describe(hours)[0] == ("Monday", "08:00–17:30") and sh.describe(hours)[6] == ("Sunday", "closed")
    for bad, day in (({"2": ["17:00", "08:00"]}, 2), ({"1": ["8am", "17:00"]}, 1), ({"9": ["08:00", "09:00"]}, None)):
        with pytest.raises(sh.HoursError) as err:
            sh.parse(bad)
        assert err.value.weekday == day
    for text in ("24:00", "7:00", "08:60", "", "٠٨:٠٠"):
        with pytest.raises(ValueError):
            sh.clock(text)
    assert sh.outside_service_hours({}, NY, utc(2026, 3, 9, 3)) is None  # none set: as before
    with pytest.raises(ValueError):
        sh.in_service_hours(WEEKDAYS_9_TO_5, NY, datetime(2026, 3, 9, 12))


def test_an_urgent_alert_outside_service_hours_pages_at_once_and_nothing_else_changes():
    at = utc(2026, 3, 10, 3, 0)  # Mon 22:00 in New York
    outside = sh.outside_service_hours(WEEKDAYS_9_TO_5, NY, at)
    assert outside is True
    assert next_escalation(Level.URGENT, ["U1"], at, NY, TIMES, outside_service_hours=outside) == at
    assert next_escalation(Level.URGENT, ["U1"], at, NY, TIMES, outside_service_hours=False) == at + timedelta(hours=4)
    assert next_escalation(Level.URGENT, ["U1"], at, NY, TIMES, outside_service_hours=None) == at + timedelta(hours=4)
    assert next_escalation(Level.EMERGENCY, ["E1"], at, NY, TIMES, outside_service_hours=True) == at + timedelta(minutes=15)
    assert next_escalation(Level.WATCH, ["W1"], at, NY, TIMES, outside_service_hours=True) is None

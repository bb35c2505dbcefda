"""The Today page's view (recovery/domain/today.py): what is in force, coming up and done, and how times
are rounded for the patient: a restriction never reads as ending earlier (or starting later) than
it does."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.domain.plan.overrides import Overrides
from recovery.files.plans import load_template
from recovery.domain.timeline import build_timeline
from recovery.domain.today import shown, today_view

TEMPLATE = load_template(Path(__file__).resolve().parents[2] / "schedules" / "kyphoplasty_v2.toml")  # TL22 is new in v2
NY = ZoneInfo("America/New_York")
ZONES = [NY, ZoneInfo("Australia/Sydney"), ZoneInfo("Asia/Kathmandu"), ZoneInfo("Australia/Lord_Howe"),
         ZoneInfo("Europe/London"), ZoneInfo("UTC")]


def build(end_local: datetime):
    return build_timeline(TEMPLATE, procedure_end=end_local.astimezone(UTC), discharge=None, tz=NY,
                          overrides=Overrides())


@settings(max_examples=300, deadline=None)
@given(instant=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1),
                            timezones=st.just(UTC)),
       tz=st.sampled_from(ZONES))
def test_rounding_moves_to_a_half_hour_in_the_safe_direction(instant, tz):
    later = shown(instant, tz, instant, later=True)
    earlier = shown(instant, tz, instant, later=False)
    for m in (later, earlier):
        local = m.at.astimezone(tz)
        assert local.minute in (0, 30) and local.second == 0 and local.microsecond == 0, (instant, tz, m)
    # an end (or a permission) never reads earlier, a restriction's start never later
    assert instant <= later.at < instant + timedelta(minutes=31)
    assert instant - timedelta(minutes=30) < earlier.at <= instant
    assert later.approx == earlier.approx == (later.at != instant)


def test_a_time_on_the_half_hour_is_shown_as_it_is():
    at = datetime(2026, 3, 11, 10, 30, tzinfo=NY)
    m = shown(at, NY, at, later=True)
    assert m.at == at and not m.approx
    assert shown(at, NY, datetime(2025, 12, 31, tzinfo=NY), later=True).with_year


def test_no_driving_from_10_48_reads_about_11_and_stays_until_then():
    tl = build(datetime(2026, 3, 9, 10, 48, tzinfo=NY))  # driving ends Wed 11 Mar 10:48
    view = today_view(tl, datetime(2026, 3, 10, 9, 0, tzinfo=NY))
    driving = next(c for c in view.restrictions if c.milestone.id == "TL03")
    assert driving.until.at == datetime(2026, 3, 11, 11, 0, tzinfo=NY) and driving.until.approx
    assert driving.minutes_left == 26 * 60  # to 11:00, the time shown
    # 10:50: past the real end, before the shown one: still shown (never earlier than it reads)
    view = today_view(tl, datetime(2026, 3, 11, 10, 50, tzinfo=NY))
    driving = next(c for c in view.restrictions if c.milestone.id == "TL03")
    assert driving.minutes_left == 10
    view = today_view(tl, datetime(2026, 3, 11, 11, 0, tzinfo=NY))
    assert "TL03" not in {c.milestone.id for c in view.restrictions}
    done = [line.milestone.id for line in view.done]
    assert "TL03" in done and "TL22" in done
    assert next(x for x in view.done if x.milestone.id == "TL03").when == driving.until


def test_a_restriction_that_starts_later_reads_as_starting_no_later_than_it_does():
    tl = build(datetime(2026, 3, 9, 10, 48, tzinfo=NY))
    starts = datetime(2026, 3, 20, 10, 48, tzinfo=NY)
    tl = replace(tl, milestones=[replace(m, starts_at=starts.astimezone(UTC)) if m.id == "TL14" else m
                                 for m in tl.milestones])
    view = today_view(tl, datetime(2026, 3, 19, 9, 0, tzinfo=NY))
    line = next(x for x in view.ahead if x.milestone.id == "TL14")
    assert line.state == "next" and line.when.at == datetime(2026, 3, 20, 10, 30, tzinfo=NY) and line.when.approx
    # a milestone that is not a restriction (may do from then on) is rounded the other way
    bandage = next(x for x in today_view(tl, datetime(2026, 3, 9, 12, 0, tzinfo=NY)).ahead
                   if x.milestone.id == "TL07")
    assert bandage.when.at == datetime(2026, 3, 10, 11, 0, tzinfo=NY)


def test_day_40_done_ahead_and_coming_up():
    tl = build(datetime(2026, 1, 28, 10, 48, tzinfo=ZoneInfo("America/New_York")))
    now = datetime(2026, 3, 9, 11, 0, tzinfo=NY)
    view = today_view(tl, now, next_checkin_at=datetime(2026, 3, 11, 9, 0, tzinfo=NY))
    assert view.day == 40
    assert [c.milestone.id for c in view.restrictions] == ["TL08", "TL14"]
    done = [x.milestone.id for x in view.done]
    assert {"TL01", "TL02", "TL03", "TL04", "TL05", "TL06", "TL07", "TL09", "TL13", "TL17", "TL22"} == set(done)
    assert [x.when.at for x in view.done] == sorted((x.when.at for x in view.done), reverse=True)  # latest first
    assert not {x.milestone.id for x in view.ahead} & set(done)
    assert [x.milestone.id for x in view.coming_up] == ["TL16"]
    assert view.follow_up.date_only and view.follow_up.at.date().isoformat() == "2026-03-11"
    assert view.next_checkin.at == datetime(2026, 3, 11, 9, 0, tzinfo=NY) and not view.next_checkin.approx
    # the follow-up visit stays "coming up" all through its day
    assert "TL16" in {x.milestone.id for x in today_view(tl, datetime(2026, 3, 11, 20, 0, tzinfo=NY)).ahead}


@pytest.mark.parametrize("tz", ["America/New_York", "Australia/Sydney"])
def test_rounding_across_a_dst_change(tz):
    zone = ZoneInfo(tz)
    # 01:50 on the night the clocks go back (NY: 1 Nov 2026; Sydney: 5 Apr 2026), first pass
    first = {"America/New_York": datetime(2026, 11, 1, 1, 50, tzinfo=zone),
             "Australia/Sydney": datetime(2026, 4, 5, 2, 50, tzinfo=zone)}[tz]
    m = shown(first, zone, first, later=True)
    assert m.at - first.astimezone(UTC) == timedelta(minutes=10)

"""The dashboard's pure rules: percentiles against `statistics`, the period form, what an invitation
came to, runs of missed check-ins, weeks, failure reasons, and the pain band chart."""
from __future__ import annotations

import statistics
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery.domain import reports as rules
from recovery.domain.charts import DayBand, pain_band_svg
from recovery.domain.quantiles import quantile, spread

NY = ZoneInfo("America/New_York")
UTC = timezone.utc


@given(st.lists(st.integers(0, 10) | st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=60))
def test_quantiles_are_statistics_inclusive_percentiles(values):
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for p in (10, 25, 50, 75, 90):
        assert quantile(values, p / 100) == pytest.approx(cuts[p - 1], rel=1e-9, abs=1e-9)
    assert quantile(values, 0.5) == pytest.approx(statistics.median(values))


def test_quantile_edges():
    assert quantile([], 0.5) is None and spread([]).median is None and spread([]).n == 0
    assert quantile([7], 0.9) == 7
    assert quantile([1, 2, 3, 4], 0) == 1 and quantile([1, 2, 3, 4], 1) == 4
    assert quantile([4, 9, 12, 20], 0.9) == pytest.approx(17.6)  # 12 + 0.7 * (20 - 12)
    with pytest.raises(ValueError):
        quantile([1], 1.5)
    with pytest.raises(ValueError):
        quantile([1, float("nan")], 0.5)


def test_the_period_defaults_to_the_last_30_local_days_and_bad_input_says_why():
    today = date(2026, 3, 9)
    p = rules.parse_period(None, "", today=today, tz=NY)
    assert (p.period.start, p.period.end, p.period.days) == (date(2026, 2, 8), today, 30)
    assert p.period.start_utc == datetime(2026, 2, 8, 5, 0, tzinfo=UTC)  # EST
    assert p.period.end_utc == datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # EDT from 8 Mar
    cases = {("2026-02-30", "2026-03-01"): "from", ("2026-03-02", "2026-03-01"): "to",
             ("", "2026-03-01"): "from", ("2024-01-01", "2026-03-01"): "to", ("2026-04-01", "2026-04-02"): "from",
             ("x" * 10_000, "\x00"): "from"}
    for (a, b), field in cases.items():
        got = rules.parse_period(a, b, today=today, tz=NY)
        assert got.period is None and field in got.errors, (a, b, got.errors)
        assert all(len(v) <= 32 for v in got.values.values())


def test_what_an_invitation_came_to():
    assert rules.invite_outcome("completed", True) == "done"
    assert rules.invite_outcome(None, True) == "done"  # submitted before the scan looked
    assert rules.invite_outcome("missed", False) == "missed"
    assert rules.invite_outcome("missed", True) == "late"
    assert rules.invite_outcome("red_flag", False) == "red_flag"
    assert rules.invite_outcome("closed", False) == "closed"
    assert rules.invite_outcome(None, False) == "pending"
    assert rules.invite_outcome("something_new", False) == "closed"


def _inv(enrolment, day, outcome):
    return rules.Invite(enrolment, enrolment, f"P{enrolment}", day,
                        datetime(2026, 3, 10, tzinfo=UTC) + timedelta(days=day), outcome)


def test_runs_of_missed_check_ins():
    invites = [_inv(1, d, o) for d, o in enumerate(["done", "missed", "missed", "done", "missed"])]
    invites += [_inv(2, d, o) for d, o in enumerate(["missed", "late", "missed", "done"])]
    invites += [_inv(3, d, o) for d, o in enumerate(["missed", "missed", "missed", "pending"])]
    runs = rules.missed_runs(list(reversed(invites)))  # order of the rows does not matter
    assert [(r.patient_id, r.longest, r.current) for r in runs] == [(3, 3, 3), (1, 2, 1)]
    by_day, total = rules.tally(invites)
    assert total["invited"] == 13 and total["missed"] == 8 and total["late"] == 1 and total["pending"] == 1
    assert by_day[0] == {**by_day[0], "invited": 3, "missed": 2, "done": 1}


def test_weeks_start_on_monday_in_the_clinics_zone_and_empty_weeks_show():
    period = rules.Period(date(2026, 3, 1), date(2026, 3, 20), NY)
    # Sunday 15 Mar 23:30 New York is Monday 16 Mar in UTC: it counts in the week of Monday 9 Mar
    got = dict(rules.per_week([datetime(2026, 3, 16, 3, 30, tzinfo=UTC)], period))
    assert got == {date(2026, 2, 23): 0, date(2026, 3, 2): 0, date(2026, 3, 9): 1, date(2026, 3, 16): 0}


def test_failure_reasons():
    assert rules.failure_reason("invalid_number", None) == "landline"
    assert rules.failure_reason("provider_undelivered", "invalid_number") == "landline"
    assert rules.failure_reason("opted_out", None) == "opted_out"
    assert rules.failure_reason("provider_undelivered", "retryable") == "unreachable"
    assert rules.failure_reason("provider_error", "permanent") == "other"


def test_the_band_chart_is_an_accessible_image_without_inline_styles():
    svg = pain_band_svg([DayBand(0, 3, 6, 7, 8), DayBand(2, 2, 5.5, 6, 6.5)], chart_id="b")
    assert 'role="img"' in svg and 'aria-labelledby="b-title b-desc"' in svg
    assert "day 2: median 6, middle half 5.5 to 6.5 (2 check-ins)" in svg
    assert "style" not in svg and "<script" not in svg and "<polygon" in svg
    assert "No submitted check-ins in this period" in pain_band_svg([])
    with pytest.raises(ValueError):
        pain_band_svg([DayBand(1, 2, 7, 6, 8)])  # median below the 25th percentile
    with pytest.raises(ValueError):
        pain_band_svg([DayBand(1, 2, 6, 7, 11)])


def test_offset_spans_give_zoneinfos_local_dates_across_a_dst_change():
    ny = ZoneInfo("America/New_York")
    start, end = datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 20, tzinfo=timezone.utc)
    spans = rules.offset_spans(ny, start, end)
    assert spans == ((datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc), -5 * 3600), (None, -4 * 3600))
    t = start
    while t < end:  # every 53 minutes: the offset the spans give is zoneinfo's
        off = next(o for until, o in spans if until is None or t < until)
        assert (t + timedelta(seconds=off)).date() == t.astimezone(ny).date(), t
        t += timedelta(minutes=53)

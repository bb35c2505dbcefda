"""A booked follow-up appointment in the timeline (issue 13 §2): TL16 is at its minute with its
place, not all day; everything timed from TL16 follows (S16 / S17 / S18, TL18's start, the ends of
TL08 and TL15); an appointment not after the procedure, or one the plan cannot take, is refused."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from recovery.domain.plan.overrides import Overrides
from recovery.domain.timeline import FOLLOW_UP, Appointment, TimelineError, build_timeline
from recovery.domain.today import today_view
from recovery.files.plans import load_template

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
T0 = datetime(2026, 6, 10, 10, 0, tzinfo=NY)
FLAGS = Overrides(working=True, brace=True)


@pytest.fixture(scope="module", params=["kyphoplasty_v1.toml", "kyphoplasty_v2.toml"])
def template(request):
    return load_template(SCHEDULES / request.param)


def build(template, followup=None, overrides=FLAGS):
    return build_timeline(template, procedure_end=T0, discharge=None, tz=NY, overrides=overrides, followup=followup)


def send_of(tl, message_id):
    return [m.send_at.astimezone(NY) for m in tl.messages if m.id == message_id]


def test_the_visit_and_what_hangs_on_it_move_to_the_appointment(template):
    at = datetime(2026, 7, 2, 14, 15, tzinfo=NY)  # day 22, a Thursday afternoon
    plain, booked = build(template), build(template, Appointment(at, "Spine clinic, 2nd floor"))
    visit = booked.milestone(FOLLOW_UP)
    assert (visit.starts_at, visit.ends_at) == (at.astimezone(UTC), at.astimezone(UTC))
    assert visit.place == "Spine clinic, 2nd floor" and not visit.all_day
    assert plain.milestone(FOLLOW_UP).all_day and plain.milestone(FOLLOW_UP).place is None
    assert plain.milestone(FOLLOW_UP).starts_at.astimezone(NY).date() == (T0 + timedelta(days=42)).date()
    for mid in ("TL08", "TL15", "TL18"):
        assert booked.milestone(mid).ends_at == at.astimezone(UTC), mid
    assert booked.milestone("TL18").starts_at.astimezone(NY) == datetime(2026, 6, 25, 9, 0, tzinfo=NY)
    (s16,), (s17,), (s18,) = send_of(booked, "S16"), send_of(booked, "S17"), send_of(booked, "S18")
    assert s16.date() == s18.date() == datetime(2026, 6, 25).date() and s17.date() == datetime(2026, 7, 1).date()
    assert 9 <= s17.hour < 21  # 09:00, or later that day under the daily limit: never in quiet hours
    # nothing else moved
    others = lambda tl: sorted((m.key, m.send_at) for m in tl.messages if m.id not in ("S16", "S17", "S18"))  # noqa: E731
    assert others(plain) == others(booked) or template.daily_limit is not None


def test_the_appointment_wins_over_a_follow_up_day_override(template):
    at = datetime(2026, 7, 20, 8, 40, tzinfo=NY)
    overrides = Overrides.from_dict({"working": True, "brace": True, "milestones": {"TL16": "date T0+14d"}})
    tl = build(template, Appointment(at, "Room 4"), overrides)
    assert tl.milestone(FOLLOW_UP).starts_at == at.astimezone(UTC)


def test_the_today_page_shows_the_appointment_at_its_own_minute(template):
    at = datetime(2026, 7, 2, 14, 15, tzinfo=NY)
    view = today_view(build(template, Appointment(at, "Spine clinic, 2nd floor")), T0 + timedelta(days=3))
    assert view.follow_up.at == at and not view.follow_up.approx and not view.follow_up.date_only
    assert view.follow_up_place == "Spine clinic, 2nd floor"
    plain = today_view(build(template), T0 + timedelta(days=3))
    assert plain.follow_up.date_only and plain.follow_up_place is None


@pytest.mark.parametrize("at", [T0, T0 - timedelta(days=1)])
def test_an_appointment_not_after_the_procedure_is_refused(template, at):
    with pytest.raises(TimelineError, match="after the end of the procedure"):
        build(template, Appointment(at, "Room 4"))


def test_an_appointment_before_discharge_is_a_timeline_error(template):
    with pytest.raises(TimelineError):  # TL15 (brace) runs from discharge to the visit
        build(template, Appointment(T0 + timedelta(hours=1), "Room 4"))

"""What the patient's Today page shows, computed from the timeline and `now` (no decisions in
Jinja). The words, and how a time reads ("Thursday 3 Dec, about 11 am"), are in the templates and
in `recovery/web/filters.py`: one place to translate."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from recovery.domain import timeline as tl
from recovery.domain.timeline import FOLLOW_UP, MilestoneInstance, Timeline

STEP = timedelta(minutes=30)  # times are shown on the hour or the half hour


@dataclass(frozen=True)
class Moment:
    """A time as the patient reads it: `at` (in the patient's zone) is on the hour or half hour,
    moved from the real time in the direction that is safe to act on (`shown`); `approx` when it
    was moved, so it reads "about 11 am"."""
    at: datetime
    approx: bool = False
    date_only: bool = False
    with_year: bool = False


def shown(instant: datetime, tz: ZoneInfo, now: datetime, *, later: bool, date_only: bool = False) -> Moment:
    """`instant` as shown. `later=True` moves it to the next half hour: for anything the patient
    may do only from that time on (the end of a restriction, a permission, a check-in opening), so
    it never reads earlier than it is: a no-driving end of 10:48 reads "about 11 am", never "10:30".
    `later=False` moves it back: for the start of a restriction, which then never reads later."""
    local = instant.astimezone(tz)
    exact = date_only or (local.minute % 30 == 0 and local.second == 0 and local.microsecond == 0)
    at = local
    if not exact:
        # Back to the half hour on the wall clock, then forward in real time (a DST change can
        # fall in between).
        floor = local.replace(minute=local.minute - local.minute % 30, second=0, microsecond=0)
        at = (floor.astimezone(UTC) + STEP).astimezone(tz) if later else floor
    return Moment(at=at, approx=not exact, date_only=date_only,
                  with_year=at.year != now.astimezone(tz).year)


@dataclass(frozen=True)
class Countdown:
    milestone: MilestoneInstance
    until: Moment  # "No driving or public transport until {until}"
    minutes_left: int  # to `until`, rounded up: never fewer than there are


@dataclass(frozen=True)
class MilestoneLine:
    milestone: MilestoneInstance
    when: Moment  # when it starts (done lines: when it ended)
    state: str  # done | now | next


@dataclass(frozen=True)
class TodayView:
    day: int
    total_days: int
    percent: int
    finished: bool
    restrictions: list[Countdown]  # in force now, ending soonest first
    coming_up: list[MilestoneLine]  # the next three to start
    ahead: list[MilestoneLine]  # everything not finished, in order (the rest of the plan)
    done: list[MilestoneLine]  # finished, the most recent first
    follow_up: Moment | None
    follow_up_place: str | None  # where, once an appointment is booked (None: the plan's "about" day)
    next_checkin: Moment | None


def _bounds(m: MilestoneInstance, tz: ZoneInfo, now: datetime) -> tuple[Moment, Moment]:
    """Start and end as shown: a restriction starts no later and ends no earlier than it does. A
    booked appointment (it has a place) is shown at its own minute: the patient must be there then."""
    if m.place is not None:
        local = m.starts_at.astimezone(tz)
        at = Moment(at=local, with_year=local.year != now.astimezone(tz).year)
        return at, at
    start = shown(m.starts_at, tz, now, later=not m.restriction, date_only=m.all_day)
    end = shown(m.starts_at if m.point else m.ends_at, tz, now, later=True, date_only=m.all_day)
    return start, end


def today_view(timeline: Timeline, now: datetime, *, next_checkin_at: datetime | None = None) -> TodayView:
    """`next_checkin_at`: when the next scheduled check-in opens (checkins.next_checkin)."""
    tz = timeline.tz
    prog = tl.progress(timeline, now)
    restrictions, lines = [], []
    for m in sorted(timeline.milestones, key=lambda m: (m.starts_at, m.id)):
        start, end = _bounds(m, tz, now)
        # An all-day milestone (the follow-up visit) is done once its day is over.
        ends = end.at + timedelta(days=1) if m.all_day else end.at
        if ends <= now:
            lines.append(MilestoneLine(m, end, "done"))
        elif start.at <= now:
            lines.append(MilestoneLine(m, start, "now"))
            if m.restriction:
                left = int(-(-(end.at - now).total_seconds() // 60))
                restrictions.append(Countdown(m, end, max(1, left)))
        else:
            lines.append(MilestoneLine(m, start, "next"))
    restrictions.sort(key=lambda c: (c.until.at, c.milestone.id))
    done = sorted((x for x in lines if x.state == "done"), key=lambda x: (x.when.at, x.milestone.id), reverse=True)
    follow = next((m for m in timeline.milestones if m.id == FOLLOW_UP), None)
    return TodayView(
        day=prog.day, total_days=prog.total_days, percent=round(prog.fraction * 100), finished=prog.finished,
        restrictions=restrictions,
        coming_up=[x for x in lines if x.state == "next"][:3],
        ahead=[x for x in lines if x.state != "done"],
        done=done,
        follow_up=_bounds(follow, tz, now)[0] if follow else None,
        follow_up_place=follow.place if follow else None,
        next_checkin=checkin_opens(next_checkin_at, tz, now),
    )


def checkin_opens(at: datetime | None, tz: ZoneInfo, now: datetime) -> Moment | None:
    """When a check-in opens, as shown: never before its invitation goes out."""
    return shown(at, tz, now, later=True) if at is not None else None

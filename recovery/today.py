"""What the patient's Today page shows, computed from the timeline and `now` (no decisions in Jinja)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from recovery import timeline as tl
from recovery.timeline import MilestoneInstance, Timeline


@dataclass(frozen=True)
class Countdown:
    milestone: MilestoneInstance
    until_text: str  # "No driving until Mon 9 Mar, 11:30"
    remaining: str  # "1 day 20 hours left"


@dataclass(frozen=True)
class MilestoneLine:
    milestone: MilestoneInstance
    when: str
    state: str  # done | now | next


@dataclass(frozen=True)
class TodayView:
    day: int
    total_days: int
    percent: int
    finished: bool
    restrictions: list[Countdown]
    coming_up: list[MilestoneLine]
    all_milestones: list[MilestoneLine]
    follow_up: str | None


def today_view(timeline: Timeline, now: datetime) -> TodayView:
    tz = timeline.tz
    prog = tl.progress(timeline, now)
    restrictions = [Countdown(m, tl.format_until(m, tz, now), tl.format_remaining(m.ends_at, now))
                    for m in tl.active_restrictions(timeline, now)]
    coming = [MilestoneLine(m, tl.format_when(m.starts_at, tz, with_time=not m.all_day, now=now), "next")
              for m in tl.next_milestones(timeline, now, 3)]
    lines = []
    for m in sorted(timeline.milestones, key=lambda m: (m.starts_at, m.id)):
        end = m.ends_at if not m.point else m.starts_at
        state = "done" if end <= now else ("now" if m.starts_at <= now else "next")
        lines.append(MilestoneLine(m, tl.format_when(m.starts_at, tz, with_time=not m.all_day, now=now), state))
    follow = next((m for m in timeline.milestones if m.id == "TL16"), None)
    return TodayView(day=prog.day, total_days=prog.total_days, percent=round(prog.fraction * 100),
                     finished=prog.finished, restrictions=restrictions, coming_up=coming,
                     all_milestones=lines,
                     follow_up=tl.format_when(follow.starts_at, tz, with_time=not follow.all_day, now=now)
                     if follow else None)

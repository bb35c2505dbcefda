"""The patient's .ics: the follow-up visit and the end of each restriction (icalendar library).

Times are wall-clock times in the patient's zone, to the minute, with the VTIMEZONE that RFC 5545
requires for every TZID (built by icalendar from zoneinfo, covering just the plan's dates)."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from icalendar import Alarm, Calendar, Event

from recovery.domain.timeline import FOLLOW_UP as FOLLOW_UP_ID, Timeline


def _span(ev: Event, at: datetime, all_day: bool, length: timedelta) -> None:
    at = at.replace(second=0, microsecond=0)
    if all_day:
        ev.add("dtstart", at.date())
        ev.add("dtend", at.date() + timedelta(days=1))
    else:
        ev.add("dtstart", at)
        ev.add("dtend", at + length)


def build_ics(timeline: Timeline, *, enrolment_id: int, now: datetime, clinic_name: str) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Recovery Tracker//recovery-plan//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", _("My recovery plan"))
    days: list[date] = []
    for m in timeline.milestones:
        if m.id == FOLLOW_UP_ID:
            ev = Event()
            ev.add("summary", _("Follow-up visit"))
            if m.place is not None:  # a booked appointment: its own time and place
                ev.add("location", m.place)
                ev.add("description", _("Your follow-up appointment with your care team (%(clinic)s).",
                                        clinic=clinic_name))
            else:
                ev.add("description", m.detail + "\n" + _("Your care team (%(clinic)s) will confirm the time.",
                                                          clinic=clinic_name))
            _span(ev, m.starts_at.astimezone(timeline.tz), m.all_day, timedelta(hours=1))
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", _("Follow-up visit tomorrow"))
            alarm.add("trigger", timedelta(days=-1))
            ev.add_component(alarm)
        elif m.restriction:
            ev = Event()
            ev.add("summary", _("%(what)s: ends", what=m.short))
            ev.add("description", f"{m.title}. {m.detail}")
            _span(ev, m.ends_at.astimezone(timeline.tz), m.all_day, timedelta(minutes=15))
        else:
            continue
        ev.add("uid", f"enrolment-{enrolment_id}-{m.id}@recovery-tracker")
        ev.add("dtstamp", now.replace(microsecond=0))
        cal.add_component(ev)
        days.append(m.starts_at.date() if m.id == FOLLOW_UP_ID else m.ends_at.date())
    if days:
        cal.add_missing_timezones(first_date=min(days) - timedelta(days=1), last_date=max(days) + timedelta(days=1))
    return cal.to_ical()

"""Jinja filters that format (never decide): times in a given zone, relative durations."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Flask, url_for

from babel.dates import format_date, format_time
from flask_babel import gettext, ngettext

from recovery.domain.today import Moment
from recovery.web.i18n import DEFAULT, page_language
from recovery.services.phones import readable


def local(dt: datetime | None, tz: str, fmt: str = "%a %-d %b, %H:%M") -> str:
    """Nurses' pages: the exact time."""
    if dt is None:
        return ""
    return dt.astimezone(ZoneInfo(tz)).strftime(fmt)


# ---- how a time reads on a patient's page ---------------------------------------------------
# The one place that turns a time into patient words (Flask-Babel will take these over); which
# way a time is rounded is decided in recovery/domain/today.py (`shown`), never here.

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date(day, with_year: bool) -> str:
    text = f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}"
    return f"{text} {day.year}" if with_year else text


def when(moment: Moment | None) -> str:
    """"Thursday 3 Dec, about 11 am", "Monday 9 Mar, 9 am", "Friday 4 Dec, 12:30 pm", "noon";
    midnight belongs to the day it ends ("Thursday 3 Dec, midnight"). Other languages: Babel's
    CLDR data ("jueves, 3 de diciembre, 11:00")."""
    if moment is None:
        return ""
    language = page_language()
    if language != DEFAULT:
        return _when_in(moment, language)
    at = moment.at
    if moment.date_only:
        return _date(at, moment.with_year)
    about = "about " if moment.approx else ""
    if at.hour == 0 and at.minute == 0:
        return f"{_date(at - timedelta(days=1), moment.with_year)}, {about}midnight"
    if at.hour == 12 and at.minute == 0:
        clock = "noon"
    else:
        hour = at.hour % 12 or 12
        clock = f"{hour}{'' if at.minute == 0 else f':{at.minute:02d}'} {'am' if at.hour < 12 else 'pm'}"
    return f"{_date(at, moment.with_year)}, {about}{clock}"


def _when_in(moment: Moment, language: str) -> str:
    """`when` in another language: the date pattern is the catalog's (msgid "EEEE d MMM": each
    language gives its own, "EEEE, d 'de' MMMM"), the clock Babel's short time for the locale."""
    at = moment.at
    day_at = at - timedelta(days=1) if (not moment.date_only and at.hour == 0 and at.minute == 0) else at
    pattern = gettext("EEEE d MMM") + (gettext(" y") if moment.with_year else "")
    day = format_date(day_at, pattern, locale=language)
    if moment.date_only:
        return day
    if at.hour == 0 and at.minute == 0:
        clock = gettext("midnight")
    elif at.hour == 12 and at.minute == 0:
        clock = gettext("noon")
    else:
        clock = format_time(at, "short", locale=language)
    return f"{day}, {gettext('about %(time)s', time=clock) if moment.approx else clock}"


def time_left(minutes: int) -> str:
    """"2 days 4 hours left", "3 hours 5 minutes left", "25 minutes left", rounded up (never
    less time than there is)."""
    if page_language() != DEFAULT:
        return _time_left_in(minutes)
    if minutes <= 0:
        return "ended"

    def unit(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    if minutes < 60:
        return f"{unit(minutes, 'minute')} left"
    if minutes < 24 * 60:
        hours, mins = divmod(minutes, 60)
        return " ".join([unit(hours, "hour")] + ([unit(mins, "minute")] if mins else [])) + " left"
    days, rest = divmod(minutes, 24 * 60)
    hours = -(-rest // 60)
    if hours == 24:
        days, hours = days + 1, 0
    return " ".join([unit(days, "day")] + ([unit(hours, "hour")] if hours else [])) + " left"


def _time_left_in(minutes: int) -> str:
    """`time_left` through the catalog (plural forms by ngettext), for every language but English."""
    if minutes <= 0:
        return gettext("ended")
    if minutes < 60:
        parts = [ngettext("%(num)s minute", "%(num)s minutes", minutes)]
    elif minutes < 24 * 60:
        hours, mins = divmod(minutes, 60)
        parts = [ngettext("%(num)s hour", "%(num)s hours", hours)] + (
            [ngettext("%(num)s minute", "%(num)s minutes", mins)] if mins else [])
    else:
        days, rest = divmod(minutes, 24 * 60)
        hours = -(-rest // 60)
        if hours == 24:
            days, hours = days + 1, 0
        parts = [ngettext("%(num)s day", "%(num)s days", days)] + (
            [ngettext("%(num)s hour", "%(num)s hours", hours)] if hours else [])
    return gettext("%(time)s left", time=" ".join(parts))


@lru_cache(maxsize=64)
def _digest(path: str, mtime: float) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def init_app(app: Flask) -> None:
    # Static files are cached for a year (static_files.py); the content hash in the URL changes
    # when the file does.
    def asset(filename: str) -> str:
        path = Path(app.static_folder) / filename
        return url_for("static", filename=filename, v=_digest(str(path), path.stat().st_mtime))
    app.jinja_env.globals["asset"] = asset

    app.jinja_env.filters["local"] = local
    app.jinja_env.filters["localdate"] = lambda dt, tz: local(dt, tz, "%a %-d %b %Y")
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["time_left"] = time_left
    app.jinja_env.filters["phone"] = readable
    app.jinja_env.globals["field_attrs"] = field_attrs


def field_attrs(f, hint=None, autocomplete=None, inputmode=None) -> dict:
    """aria-describedby/aria-invalid and input hints for a WTForms field."""
    attrs: dict = {}
    described = ([f"{f.id}-hint"] if hint else []) + ([f"{f.id}-error"] if f.errors else [])
    if described:
        attrs["aria-describedby"] = " ".join(described)
    if f.errors:
        attrs["aria-invalid"] = "true"
    if autocomplete:
        attrs["autocomplete"] = autocomplete
    if inputmode:
        attrs["inputmode"] = inputmode
    return attrs

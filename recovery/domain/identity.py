"""Who a patient is, as a nurse types it: a date of birth and a medical record number (issue 13 §2).

Pure: standard library only. A day is written the ISO way (2026-03-07, what a date input sends)
or the clinic's usual way: month first in the US (3/7/1950), day first elsewhere (7/3/1950)."""
from __future__ import annotations

import re
from datetime import date

_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_LOCAL = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
EARLIEST_BIRTH_YEAR = 1900
MRN_MAX = 64


def parse_day(text: str | None, *, month_first: bool) -> date | None:
    """The day written in `text`, or None when it is not a day (never raises)."""
    text = (text or "").strip()
    if m := _ISO.match(text):
        y, mo, d = (int(x) for x in m.groups())
    elif m := _LOCAL.match(text):
        a, b, y = (int(x) for x in m.groups())
        mo, d = (a, b) if month_first else (b, a)
    else:
        return None
    try:
        return date(y, mo, d)
    except ValueError:
        return None


def birth_date_problem(day: date, today: date) -> str | None:
    if day > today:
        return "A date of birth cannot be in the future."
    if day.year < EARLIEST_BIRTH_YEAR:
        return f"Enter a date of birth after {EARLIEST_BIRTH_YEAR}."
    return None


def clean_mrn(text: str | None) -> str | None:
    """The MRN as stored: blanks around it dropped; empty is no MRN. Case is kept (some systems
    print letters), but two MRNs that differ only in case are the same record (see records.py)."""
    text = (text or "").strip()
    return text or None


def month_first(region: str) -> bool:
    """Whether the clinic's region writes the month before the day (the US does)."""
    return region == "US"

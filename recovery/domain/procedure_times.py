"""The procedure end and discharge times a nurse may enter (pure: `now` is passed in).

One range check for enrolment and for "correct the times": a time a calendar cannot hold
(year 1, year 9999 in a zone behind UTC) is refused like any other out-of-range time, never an
OverflowError. Recovery Tracker follows the first 90 days after a procedure; an older one is a
typo (2024 for 2026) far more often than a real enrolment, and would be shown as "Day 1051" with
texts planned."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

MAX_AGE = timedelta(days=90)
FUTURE_SLACK = timedelta(hours=1)  # a ward clock a little ahead
DISCHARGE_AHEAD = timedelta(hours=24)  # a discharge planned for later today or tomorrow morning

TOO_OLD = ("The procedure ended more than 90 days ago. Check the year; Recovery Tracker follows the "
           "first 90 days after a procedure.")
IN_FUTURE = "The procedure end time is in the future. Enter when the procedure ended."
DISCHARGE_BEFORE_END = "Discharge cannot be before the end of the procedure."
DISCHARGE_TOO_LATE = "Discharge is more than a day from now. Check the date."


@dataclass(frozen=True)
class CheckedTimes:
    procedure_end: datetime | None  # aware UTC when there are no errors
    discharge_at: datetime | None
    errors: dict[str, str] = field(default_factory=dict)  # form field name -> message

    @property
    def ok(self) -> bool:
        return not self.errors


def local_to_utc(value: datetime, tz: ZoneInfo) -> datetime | None:
    """Wall-clock time in `tz` as aware UTC; None when UTC cannot hold it (years 1 and 9999).

    fold=0: in an autumn repeated hour, the first occurrence; a spring-gap time moves forward."""
    try:
        return value.replace(tzinfo=tz).astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def check_times(procedure_end: datetime | None, discharge_at: datetime | None, tz: ZoneInfo,
                now: datetime) -> CheckedTimes:
    """Check naive local times entered for a patient in zone `tz`."""
    errors: dict[str, str] = {}
    end = discharge = None
    if procedure_end is not None:
        end = local_to_utc(procedure_end, tz)
        if end is None:
            errors["procedure_end"] = TOO_OLD if procedure_end.year < 5000 else IN_FUTURE
        elif end < now - MAX_AGE:
            errors["procedure_end"] = TOO_OLD
        elif end > now + FUTURE_SLACK:
            errors["procedure_end"] = IN_FUTURE
    if discharge_at is not None:
        discharge = local_to_utc(discharge_at, tz)
        if (discharge is None and discharge_at.year < 5000) or (
                discharge is not None and end is not None and discharge < end):
            errors["discharge_at"] = DISCHARGE_BEFORE_END
        elif discharge is None or discharge > now + DISCHARGE_AHEAD:
            errors["discharge_at"] = DISCHARGE_TOO_LATE
    return CheckedTimes(end, discharge, errors)

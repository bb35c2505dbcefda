"""The PEG outcome score (Krebs et al., J Gen Intern Med 2009;24(6):733-738): its content, read from
data (schedules/instruments/peg_v<n>.toml, versioned, unapproved until signed off), its scoring,
when it is asked, and the cohort's change from baseline to 6 weeks.

Pure module: standard library only, no clock, no I/O (recovery/files/instruments.py reads the file).

PEG answers are an outcome measure and never reach triage: they are not questionnaire items, are
stored in their own table and are never passed to recovery/domain/triage.py.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from recovery.domain.questionnaire.model import field_error

ITEM_IDS = ("pain", "enjoyment", "activity")  # P, E, G: fixed by the instrument (and the table's columns)
POINTS = ("baseline", "day14", "week6")
SCREEN_PREFIX = "peg_"  # screen ids: peg_pain, peg_enjoyment, peg_activity
DEFAULT_LANGUAGE = "en"


class InstrumentError(ValueError):
    """The PEG data file is not usable; the message names the key."""


@dataclass(frozen=True)
class Wording:
    question: str
    low: str  # what 0 means
    high: str  # what 10 means
    short: str  # for nurses' tables


@dataclass(frozen=True)
class Point:
    id: str
    label: str
    checkin_day: int | None = None  # day14 / week6: the scheduled check-in of (or nearest to) this day
    until_day: int | None = None  # baseline: asked by the patient only in a check-in started by this day


@dataclass(frozen=True)
class Instrument:
    version: int
    status: str
    approved_by: str
    source: str
    languages: tuple[str, ...]
    minimum: int
    maximum: int
    improved_fraction: Fraction
    points: Mapping[str, Point]
    items: Mapping[str, Mapping[str, Wording]]  # item id -> language -> wording
    screens: Mapping[str, Mapping[str, str]]  # language -> caption, intro

    @property
    def approved(self) -> bool:
        return bool(self.approved_by) and not self.approved_by.upper().startswith("UNAPPROVED")

    def language(self, wanted: str | None) -> str:
        """The patient's language if this version has it, else English (the languages issue adds more)."""
        return wanted if wanted in self.languages else DEFAULT_LANGUAGE

    def wording(self, item_id: str, language: str | None = None) -> Wording:
        return self.items[item_id][self.language(language)]

    def screen_text(self, key: str, language: str | None = None) -> str:
        return self.screens[self.language(language)][key]


def _need(data: Mapping[str, Any], key: str, kind: type, where: str = "") -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise InstrumentError(f"{where}{key}: expected {kind.__name__}, got {value!r}")
    if isinstance(value, str) and not value.strip():
        raise InstrumentError(f"{where}{key}: must not be empty")
    return value


def parse_instrument(data: Mapping[str, Any]) -> Instrument:
    """The PEG content from the parsed TOML file. Raises InstrumentError naming the key."""
    if data.get("instrument") != "PEG":
        raise InstrumentError(f"instrument: expected \"PEG\", got {data.get('instrument')!r}")
    version = _need(data, "version", int)
    approved_by = data.get("approved_by", "")
    if not isinstance(approved_by, str):
        raise InstrumentError("approved_by: expected text")
    languages = tuple(_need(data, "languages", list))
    if DEFAULT_LANGUAGE not in languages:
        raise InstrumentError(f"languages: must include {DEFAULT_LANGUAGE!r}")
    minimum, maximum = _need(data, "minimum", int), _need(data, "maximum", int)
    if (minimum, maximum) != (0, 10):
        raise InstrumentError("minimum/maximum: the PEG items are 0-10")
    fraction = data.get("improved_fraction")
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction < 1:
        raise InstrumentError(f"improved_fraction: expected a fraction between 0 and 1, got {fraction!r}")
    points_data = _need(data, "points", dict)
    if set(points_data) != set(POINTS):
        raise InstrumentError(f"points: expected exactly {', '.join(POINTS)}")
    points = {}
    for pid in POINTS:
        p = points_data[pid]
        day_key = "until_day" if pid == "baseline" else "checkin_day"
        day = _need(p, day_key, int, f"points.{pid}.")
        if day < 0:
            raise InstrumentError(f"points.{pid}.{day_key}: must be 0 or more")
        points[pid] = Point(pid, _need(p, "label", str, f"points.{pid}."), **{day_key: day})
    items_data = _need(data, "items", dict)
    if tuple(items_data) != ITEM_IDS:
        raise InstrumentError(f"items: expected {', '.join(ITEM_IDS)} in that order")
    items = {}
    for iid in ITEM_IDS:
        by_lang = {}
        for lang in languages:
            w = items_data[iid].get(lang)
            if not isinstance(w, dict):
                raise InstrumentError(f"items.{iid}.{lang}: missing (every language needs every item)")
            by_lang[lang] = Wording(*(_need(w, k, str, f"items.{iid}.{lang}.") for k in ("question", "low", "high", "short")))
        items[iid] = by_lang
    screens_data = _need(data, "screens", dict)
    screens = {}
    for lang in languages:
        s = screens_data.get(lang)
        if not isinstance(s, dict):
            raise InstrumentError(f"screens.{lang}: missing")
        screens[lang] = {k: _need(s, k, str, f"screens.{lang}.") for k in ("caption", "intro")}
    return Instrument(version=version, status=str(data.get("status", "")), approved_by=approved_by,
                      source=_need(data, "source", str), languages=languages, minimum=minimum, maximum=maximum,
                      improved_fraction=Fraction(str(fraction)), points=points, items=items, screens=screens)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------

def total(answers: Mapping[str, int | None]) -> int | None:
    """The sum of the three items (0-30), None until all three are answered. Sums, not means, are
    compared and stored: a mean of thirds is not exact in binary."""
    values = [answers.get(i) for i in ITEM_IDS]
    if any(v is None for v in values):
        return None
    return sum(values)  # type: ignore[arg-type]


def score(answers: Mapping[str, int | None]) -> float | None:
    """The PEG score: the mean of the three items (0-10), None until all three are answered."""
    t = total(answers)
    return None if t is None else t / len(ITEM_IDS)


def improved(baseline_total: int, later_total: int, fraction: Fraction) -> bool | None:
    """Did the score fall by at least `fraction` of the baseline? None when the baseline is 0 (no
    relative change can be measured). Exact: (b - l) >= fraction * b in integers."""
    if baseline_total <= 0:
        return None
    return (baseline_total - later_total) * fraction.denominator >= fraction.numerator * baseline_total


def percent_change(baseline_total: int, later_total: int) -> float | None:
    return None if baseline_total <= 0 else 100.0 * (later_total - baseline_total) / baseline_total


# ---------------------------------------------------------------------------------------------
# When it is asked
# ---------------------------------------------------------------------------------------------

def nearest_checkin_day(planned_days: Sequence[int], day: int) -> int | None:
    """The scheduled check-in day nearest to `day` (the earlier one on a tie); None without any."""
    if not planned_days:
        return None
    return min(planned_days, key=lambda d: (abs(d - day), d))


def point_for_checkin(instrument: Instrument, *, scheduled_day: int | None, planned_days: Sequence[int],
                      started_day: int, done: frozenset[str] | set[str]) -> str | None:
    """Which PEG time point a web check-in asks, if any.

    `scheduled_day`: the plan day of the check-in's slot (None: a symptom report, never asked);
    `planned_days`: every scheduled check-in day of the patient's plan; `started_day`: the
    recovery day the check-in was started on; `done`: the points already answered in full (by the
    nurse or in another check-in).

    day14 / week6: the scheduled check-in nearest to that day. Baseline: a scheduled check-in
    started by the baseline's `until_day` (day 0: the first check-in of the plan, whose "past
    week" is the week before the procedure), when no nurse entered it."""
    if scheduled_day is None:
        return None
    for pid in ("day14", "week6"):
        p = instrument.points[pid]
        if pid not in done and scheduled_day == nearest_checkin_day(planned_days, p.checkin_day):
            return pid
    base = instrument.points["baseline"]
    if "baseline" not in done and started_day <= (base.until_day or 0):
        return "baseline"
    return None


# ---------------------------------------------------------------------------------------------
# Answers from a form
# ---------------------------------------------------------------------------------------------

_INT_RE = re.compile(r"\d{1,2}")


def screen_id(item_id: str) -> str:
    return SCREEN_PREFIX + item_id


def item_of_screen(screen: str) -> str | None:
    item = screen[len(SCREEN_PREFIX):] if screen.startswith(SCREEN_PREFIX) else None
    return item if item in ITEM_IDS else None


def parse_answer(raw: str | list[str] | None, instrument: Instrument) -> tuple[int | None, str | None]:
    """(value, None) or (None, a patient-facing message). A list (a form's getlist) must hold one value."""
    # The check-in's own messages (one msgid each in the catalog, translated by the web layer)
    message = field_error("Please choose a number from {minimum} to {maximum}.", minimum=instrument.minimum,
                          maximum=instrument.maximum)
    if isinstance(raw, (list, tuple)):
        values = [v for v in raw if isinstance(v, str) and v.strip()]
        if len(values) > 1:
            return None, field_error("Please choose only one answer.")
        raw = values[0] if values else None
    value = (raw or "").strip()
    if not _INT_RE.fullmatch(value) or not instrument.minimum <= int(value) <= instrument.maximum:
        return None, message
    return int(value), None


# ---------------------------------------------------------------------------------------------
# The cohort's change, baseline to 6 weeks
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cohort:
    """Patients with a complete baseline and a complete 6-week PEG (the 6-week one in the period)."""
    patients: int
    median_baseline: float | None
    median_week6: float | None
    median_change: float | None  # score points, 6 weeks minus baseline: negative is better
    measurable: int  # patients whose baseline is above 0 (a relative change exists)
    improved: int  # of those, the score fell by at least the instrument's fraction
    threshold_percent: float = 30.0  # that fraction, in %

    @property
    def improved_share(self) -> float | None:
        return None if not self.measurable else self.improved / self.measurable

"""Triage rules engine (protocol.md §3): pure, standard library only, no clock.

``assess`` scores one completed check-in against its context (baseline, earlier completed
check-ins, nurse acknowledgements) with a versioned ``Ruleset`` (MR5). The sketch in §3.7 and the
clarifications in §3.8 are normative and are what the rule functions below implement; every
threshold comes from the rule set, none is written in a rule.

Readings of the protocol
------------------------
Where §3.7/§3.8 still leave a choice, this module reads it as follows.

1. ``P_first`` is ``back_pain`` at the earliest check-in with ``h >= 12`` that answered it, this
   check-in included (the same "earliest that answered it" reading §3.8 (10) gives for W5).
   ``P_min`` also includes this check-in (§3.8 (10)).
2. Complementary thresholds are written as complements of the configured ones, so a change to a
   constant cannot open a gap between two rules: "mild" (U11 ``P_min <= 3``, W2 ``<= 3``) is
   ``< MODERATE``; W1's ``P <= B + 1`` is ``P < B + MCID`` (the complement of U13); W5's
   ``site_pain <= 6`` is ``< SEVERE`` (the complement of U3b). With the draft constants these are
   exactly the sketch's numbers.
3. ``U7``'s ``P == 10`` is the top of the 0-10 scale, not a configurable threshold.
4. MR3: a rule is downgraded when *any* qualifying acknowledgement of it (``a <= h < a + 72``,
   disposition ``reviewed_expected``) passes the comparison with its own reference check-in. With
   no completed check-in at or before ``a`` there is nothing to compare with, so no downgrade.
   The "nothing" options (``none``, ``normal``) are not symptoms, so they never count as newly
   ticked. "Every number in R's own condition" also covers ``leg_pain`` for U5 (its condition reads
   leg pain) besides the numbers §3.8 (9) lists; a number absent now passes, a number present now
   but absent at the reference blocks the downgrade (the rule §3.8 (9) gives for P and temp_c).
5. ``assess_partial`` (MR2) scores the answers given so far with the same rules; unanswered items
   take the §3.8 (3) defaults, so a rule only fires on what the patient has said (or, for U5/W1,
   on a number not yet given, as §3.8 (3) says). It is for early action on what is already known;
   a later answer can change it (U5 can become E9 once leg pain is given), so the submitted
   check-in is always scored again with ``assess``.
6. History must be in time order and not after this check-in; acknowledgements after this
   check-in are ignored (MR3 needs ``a <= h``).
7. A check-in whose temperature is present is scored on it whatever ``temp_status`` says
   (§3.8 (14)); U2 reads ``temp_status`` as submitted (§3.8 (11)).
8. U4 follows the sketch (``redness_small`` only); the table's "or site_pain >= 1 with redness"
   adds nothing the sketch does not already require.
9. Response times come from the rule-set file's [response_times] (``Ruleset.response``): EMERGENCY
   15 min; URGENT 60 min for U5, U6, U16 and R1, else 240 min; WATCH ``response_business_day``
   (one business day is a calendar question for the alert layer, not a fixed number of minutes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from enum import IntEnum
from types import MappingProxyType
from typing import Any

from recovery.domain.questionnaire.answers import coerce_answers
from recovery.domain.questionnaire.form import with_defaults
from recovery.domain.questionnaire.items import ITEMS
from recovery.domain.questionnaire.model import celsius, FormLimits

__all__ = [
    "Acknowledgement",
    "Assessment",
    "Baseline",
    "Constants",
    "FiredRule",
    "Level",
    "PATIENT_MESSAGES",
    "PastCheckin",
    "REVIEWED_EXPECTED",
    "RULES",
    "ResponseTimes",
    "RuleInfo",
    "Ruleset",
    "RulesetError",
    "TriageInputError",
    "assess",
    "assess_partial",
    "ruleset_from_mapping",
    "patient_message",
]


class Level(IntEnum):
    OK = 0
    WATCH = 1
    URGENT = 2
    EMERGENCY = 3


REVIEWED_EXPECTED = "reviewed_expected"
PAIN_SCALE_MAX = 10

# ---------------------------------------------------------------------------------------------
# Rule set (MR5): versioned thresholds loaded from TOML
# ---------------------------------------------------------------------------------------------


class RulesetError(ValueError):
    """A rule-set file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Constants:
    """Thresholds, named as in the protocol §3.7 sketch. Temperatures in °C (Decimal), hours float."""

    FEVER_C: Decimal
    LOW_TEMP_C: Decimal
    WATCH_TEMP_LO: Decimal
    TEMP_PLAUSIBLE_MIN_C: Decimal
    TEMP_PLAUSIBLE_MAX_C: Decimal
    SEVERE: int
    MODERATE: int
    MCID: int
    JUMP: int
    REBOUND: int
    PERSIST_H: float
    PAIN_CHECK_H: float
    PAIN_WINDOW_FROM_H: float  # P_min / P_first ignore the first hours (local anaesthetic)
    NAUSEA_FROM_H: float
    SITE_CHECK_DAY: int  # U3b, U4, W5: from this day on
    CONSTIPATION_DAYS: int
    MR3_WINDOW_H: float
    TEMP_RECHECK_H: float  # W3: S23 re-measure prompt after this many hours


_TEMP_KEYS = ("FEVER_C", "LOW_TEMP_C", "WATCH_TEMP_LO", "TEMP_PLAUSIBLE_MIN_C", "TEMP_PLAUSIBLE_MAX_C")
_PAIN_KEYS = ("SEVERE", "MODERATE", "MCID", "JUMP", "REBOUND")
_HOUR_KEYS = ("PERSIST_H", "PAIN_CHECK_H", "PAIN_WINDOW_FROM_H", "NAUSEA_FROM_H", "MR3_WINDOW_H", "TEMP_RECHECK_H")
_DAY_KEYS = ("SITE_CHECK_DAY", "CONSTIPATION_DAYS")


@dataclass(frozen=True)
class ResponseTimes:
    """Minutes to act on an alert, from the rule-set file's [response_times]."""
    emergency: int
    urgent: int
    urgent_soon: int
    urgent_soon_rules: frozenset[str]

    def minutes(self, rule_id: str, level: Level) -> int | None:
        """A rule's response time at the level it was scored at; None for WATCH (next business day)."""
        if level >= Level.EMERGENCY:
            return self.emergency
        if level == Level.URGENT:
            return self.urgent_soon if rule_id in self.urgent_soon_rules else self.urgent
        return None


@dataclass(frozen=True)
class Ruleset:
    name: str
    version: str
    approved_by: str
    approved_on: date | None
    constants: Constants
    response: ResponseTimes
    source: str = ""  # the file it was loaded from

    @property
    def approved(self) -> bool:
        """True only with a sign-off date; the draft rule set is not clinically approved."""
        return self.approved_on is not None

    @property
    def form_limits(self) -> FormLimits:
        c = self.constants
        return FormLimits(
            fever_c=c.FEVER_C, plausible_min_c=c.TEMP_PLAUSIBLE_MIN_C, plausible_max_c=c.TEMP_PLAUSIBLE_MAX_C
        )


def ruleset_from_mapping(data: Mapping[str, Any], where: str) -> Ruleset:
    """A rule set from a parsed TOML mapping (recovery.files.rulesets reads the file); `where` names
    the source in every error."""
    def fail(key: str, problem: str) -> RulesetError:
        return RulesetError(f"{where}: {key}: {problem}")

    allowed_top = {"ruleset", "version", "approved_by", "approved_on", "protocol", "constants", "response_times"}
    for key in data:
        if key not in allowed_top:
            raise fail(key, f"unknown key (allowed: {', '.join(sorted(allowed_top))})")

    def text(key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise fail(key, "required, must be non-empty text")
        return value.strip()

    name, version, approved_by = text("ruleset"), text("version"), text("approved_by")
    approved_on = data.get("approved_on")
    if approved_on is not None and (not isinstance(approved_on, date) or hasattr(approved_on, "hour")):
        raise fail("approved_on", f"must be a TOML date like 2026-01-31, got {approved_on!r}")
    if approved_on is not None and approved_by.upper().startswith("UNAPPROVED"):
        raise fail("approved_on", "a sign-off date was given but approved_by says UNAPPROVED")

    raw = data.get("constants")
    if not isinstance(raw, Mapping):
        raise fail("constants", "required table [constants] is missing")
    expected = [f.name for f in fields(Constants)]
    for key in raw:
        if key not in expected:
            raise fail(f"constants.{key}", "unknown constant")
    for key in expected:
        if key not in raw:
            raise fail(f"constants.{key}", "missing")

    values: dict[str, Any] = {}
    for key in _TEMP_KEYS:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
            raise fail(f"constants.{key}", f"must be a temperature in °C like 38.0, got {value!r}")
        value = Decimal(value)
        if value != value.quantize(Decimal("0.1")):
            raise fail(f"constants.{key}", f"temperatures are compared to 0.1 °C; {value} has more decimals")
        if not Decimal(30) <= value <= Decimal(45):
            raise fail(f"constants.{key}", f"{value} °C is not a body temperature")
        values[key] = value.quantize(Decimal("0.1"))
    for key in _PAIN_KEYS:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= PAIN_SCALE_MAX:
            raise fail(f"constants.{key}", f"must be a whole number from 1 to {PAIN_SCALE_MAX}, got {value!r}")
        values[key] = value
    for key in _HOUR_KEYS:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or not value > 0:
            raise fail(f"constants.{key}", f"must be a positive number of hours, got {value!r}")
        values[key] = float(value)
    for key in _DAY_KEYS:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail(f"constants.{key}", f"must be a whole number of days from 0, got {value!r}")
        values[key] = value

    order = ("TEMP_PLAUSIBLE_MIN_C", "LOW_TEMP_C", "WATCH_TEMP_LO", "FEVER_C", "TEMP_PLAUSIBLE_MAX_C")
    for lower, upper in zip(order, order[1:]):
        if not values[lower] < values[upper]:
            raise fail(f"constants.{upper}", f"must be above {lower} ({values[lower]}), got {values[upper]}")
    if not values["MODERATE"] < values["SEVERE"]:
        raise fail("constants.SEVERE", f"must be above MODERATE ({values['MODERATE']}), got {values['SEVERE']}")

    return Ruleset(
        name=name,
        version=version,
        approved_by=approved_by,
        approved_on=approved_on,
        constants=Constants(**values),
        response=_response_times(data.get("response_times"), fail),
        source=where,
    )


_RESPONSE_KEYS = ("EMERGENCY", "URGENT", "URGENT_SOON", "URGENT_SOON_RULES")


def _response_times(raw: Any, fail: Callable[[str, str], RulesetError]) -> ResponseTimes:
    if not isinstance(raw, Mapping):
        raise fail("response_times", "required table [response_times] is missing")
    for key in raw:
        if key not in _RESPONSE_KEYS:
            raise fail(f"response_times.{key}", f"unknown key (allowed: {', '.join(_RESPONSE_KEYS)})")
    minutes = {}
    for key in _RESPONSE_KEYS[:3]:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 7 * 24 * 60:
            raise fail(f"response_times.{key}", f"must be a whole number of minutes from 1, got {value!r}")
        minutes[key] = value
    if not minutes["EMERGENCY"] <= minutes["URGENT_SOON"] <= minutes["URGENT"]:
        raise fail("response_times", "must be EMERGENCY <= URGENT_SOON <= URGENT "
                   f"(got {minutes['EMERGENCY']}, {minutes['URGENT_SOON']}, {minutes['URGENT']})")
    rules = raw.get("URGENT_SOON_RULES")
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise fail("response_times.URGENT_SOON_RULES", f"must be a list of rule ids, got {rules!r}")
    return ResponseTimes(emergency=minutes["EMERGENCY"], urgent=minutes["URGENT"],
                         urgent_soon=minutes["URGENT_SOON"], urgent_soon_rules=frozenset(rules))


# ---------------------------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------------------------


class TriageInputError(ValueError):
    """Inputs the engine cannot score (bad answers, history out of order); names the place."""


@dataclass(frozen=True)
class Baseline:
    back_pain: int | None = None  # B: usual back pain in the week before the procedure
    neuro: frozenset[str] = frozenset()  # leg symptoms before the procedure (shown to the nurse only)


@dataclass(frozen=True)
class PastCheckin:
    hours: float
    answers: Mapping[str, Any]


@dataclass(frozen=True)
class Acknowledgement:
    rule: str
    hours: float
    disposition: str


@dataclass(frozen=True)
class FiredRule:
    id: str
    level: Level  # the rule's own level
    scored_level: Level  # after MR3

    @property
    def downgraded(self) -> bool:
        return self.scored_level < self.level


@dataclass(frozen=True)
class Assessment:
    level: Level  # MR1: the highest scored level, OK when nothing fired
    fired: tuple[FiredRule, ...]  # every fired rule, in RULES order
    ruleset_version: str
    ruleset_name: str = ""
    partial: bool = False  # scored from a form not yet submitted (MR2)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.fired)


@dataclass(frozen=True)
class RuleInfo:
    id: str
    level: Level
    family: str  # one open alert per patient and family
    title_template: str  # nurse-facing; {CONSTANT} placeholders come from the rule set
    response_business_day: bool = False  # WATCH: review within one business day (minutes: Ruleset.response)
    follow_up_sms: str | None = None  # e.g. W3 -> S23 re-measure prompt

    def title(self, ruleset: Ruleset) -> str:
        c = ruleset.constants
        values = {f.name: getattr(c, f.name) for f in fields(Constants)}
        values = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in values.items()}
        return self.title_template.format(**values)


_E, _U, _W = Level.EMERGENCY, Level.URGENT, Level.WATCH


def _info(rule_id: str, family: str, title: str, follow_up_sms: str | None = None) -> RuleInfo:
    level = {"E": _E, "U": _U, "W": _W}[rule_id[0]]
    return RuleInfo(rule_id, level, family, title, level is _W, follow_up_sms)


RULES: Mapping[str, RuleInfo] = MappingProxyType(
    {
        r.id: r
        for r in (
            _info("E1", "cardioresp", "Chest pain"),
            _info("E2", "cardioresp", "Short of breath"),
            _info("E3", "cardioresp", "Coughing up blood"),
            _info("E4", "cardioresp", "Fainted / passed out"),
            _info("E5", "cardioresp", "Heart racing or irregular with severe dizziness or chest/breathing symptoms"),
            _info("E6", "bladder_bowel", "New bladder/bowel problem or saddle numbness"),
            _info("E7", "neuro", "Cannot move a leg"),
            _info("E8", "neuro", "New leg weakness or legs giving way"),
            _info("E9", "neuro", "New numbness/tingling in legs with severe leg pain ({SEVERE}+/10)"),
            _info("E10", "infection", "Fever or chills with a sepsis warning sign"),
            _info("E11", "confusion", "New confusion or much sleepier than usual"),
            _info("E12", "bleeding", "Bleeding soaks the dressing after 10 min firm pressure"),
            _info("U1", "infection", "Fever {FEVER_C} °C or higher"),
            _info("U2", "infection", "Feels hot or shivery (not measured), or chills"),
            _info("U3", "infection", "Needle site: possible infection, oozing or opened"),
            _info("U3b", "infection", "Needle-site pain {SEVERE}+/10 on day {SITE_CHECK_DAY} or later"),
            _info("U4", "infection", "Small redness at needle site for {PERSIST_H} h or more"),
            _info("U5", "neuro", "New numbness or tingling in legs/feet"),
            _info("U6", "neuro", "New shooting pain down a leg"),
            _info("U7", "pain", "Severe back pain (10/10, or {SEVERE}+ after {PAIN_CHECK_H} h)"),
            _info("U8", "pain", "Back pain not better by {PAIN_CHECK_H} h"),
            _info("U9", "pain", "Sudden worsening of back pain"),
            _info("U10", "pain", "Back pain rising over 3 check-ins to {MODERATE}+/10"),
            _info("U11", "pain", "Back pain rebound after improvement (possible new fracture)"),
            _info("U12", "pain", "New rib or side pain {MODERATE}+/10"),
            _info("U13", "pain", "Back pain {MCID}+ points above pre-procedure level (first {PAIN_CHECK_H} h)"),
            _info("U14", "headache", "Headache worse sitting up or standing (possible spinal fluid leak)"),
            _info("U15", "gi", "Vomiting, cannot keep fluids down, or nausea at 2 check-ins"),
            _info("U16", "cardioresp", "Heart racing or irregular"),
            _info("U17", "dizziness", "Very dizzy or faint"),
            _info("U18", "fall_mobility", "Cannot stand or walk"),
            _info("U19", "medicines", "Took more pain medicine than told, or pain not controlled"),
            _info("U20", "contact_request", "Patient asked for a nurse call"),
            _info("U21", "fall_mobility", "Fall with more back pain or new nerve symptoms"),
            _info("U22", "infection", "Low temperature {LOW_TEMP_C} °C or lower"),
            _info("U23", "infection",
                  "Temperature outside {TEMP_PLAUSIBLE_MIN_C}-{TEMP_PLAUSIBLE_MAX_C} °C after re-check"),
            _info("W1", "pain", "Severe back pain in the first {PAIN_CHECK_H} h, not above usual"),
            _info("W2", "pain", "Back pain rising over 3 check-ins, still mild"),
            _info("W3", "infection", "Temperature {WATCH_TEMP_LO} °C to below {FEVER_C} °C: re-measure", "S23"),
            _info("W4", "infection", "Small redness at needle site"),
            _info("W5", "infection", "Needle-site soreness not easing"),
            _info("W6", "gi", "No bowel movement for {CONSTIPATION_DAYS}+ days on opioid"),
            _info("W7", "gi", "Nausea"),
            _info("W8", "dizziness", "A little dizzy"),
            _info("W9", "fall_mobility", "Fall"),
            _info("W10", "fall_mobility", "Getting about less at 2 check-ins in a row"),
        )
    }
)

# §3 "Patient sees". Placeholders: {emerg} (local emergency number), {phone} (care team).
# Never "you are fine": WATCH and OK only confirm the answers were saved.
PATIENT_MESSAGES: Mapping[Level, str] = MappingProxyType(
    {
        Level.EMERGENCY: "Call {emerg} now. Do not drive yourself. Your care team has been told.",
        Level.URGENT: "A nurse will call you today. If you get worse, call {phone} or {emerg}.",
        Level.WATCH: "Thank you, your check-in is saved. If anything changes, check in again.",
        Level.OK: "Thank you, your check-in is saved. If anything changes, check in again.",
    }
)


def patient_message(level: Level, *, emerg: str, phone: str) -> str:
    return PATIENT_MESSAGES[level].format(emerg=emerg, phone=phone)


# ---------------------------------------------------------------------------------------------
# Derived values (§3.1)
# ---------------------------------------------------------------------------------------------

_NOTHING = frozenset({"none", "normal"})


@dataclass(frozen=True)
class _Checkin:
    """One check-in with defaults applied and temperature converted."""

    hours: float
    given: Mapping[str, Any]  # answers actually present
    a: Mapping[str, Any]  # with §3.8 (3) defaults
    temp_c: Decimal | None

    @property
    def p(self) -> int | None:
        return self.a["back_pain"]


def _checkin(hours: float, answers: Mapping[str, Any], where: str) -> _Checkin:
    try:
        given = coerce_answers(answers)
    except ValueError as exc:
        item = getattr(exc, "item", None)
        problem = getattr(exc, "problem", str(exc))
        raise TriageInputError(f"{where}.{item}: {problem}" if item else f"{where}: {problem}") from None
    full = with_defaults(given)
    temp_c = celsius(full["temp_value"], full["temp_unit"]) if full["temp_value"] is not None else None
    return _Checkin(hours, given, full, temp_c)


def _hours(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TriageInputError(f"{where}: hours must be a number, got {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        text = repr(value)
        raise TriageInputError(f"{where}: hours must be a number, got {text if len(text) < 40 else text[:20] + '…'}")
    if value < 0:
        raise TriageInputError(f"{where}: hours since the procedure cannot be negative, got {value}")
    return float(value)


class _Ctx:
    """Everything a rule may read for one check-in (§3.1 names)."""

    def __init__(
        self,
        now: _Checkin,
        history: Sequence[_Checkin],
        baseline: Baseline,
        ruleset: Ruleset,
    ) -> None:
        self.now = now
        self.history = history
        self.k = ruleset.constants
        self.h = now.hours
        self.day = math.floor(now.hours / 24)
        self.B = baseline.back_pain
        self.P = now.p
        self.a = now.a
        self.temp_c = now.temp_c
        self.prev = history[-1] if history else None
        self.P_prev = self.prev.p if self.prev else None  # §3.8 (15)
        window = [c.p for c in (*history, now) if c.hours >= self.k.PAIN_WINDOW_FROM_H and c.p is not None]
        self.P_min = min(window) if window else None
        self.P_first = window[0] if window else None
        site = [c.a["site_pain"] for c in (*history, now) if c.a["site_pain"] is not None]
        self.site_pain_first = site[0] if site else None  # §3.8 (10)
        last3 = [c.p for c in (*history[-2:], now)] if len(history) >= 2 else []
        self.last3: list[int] | None = last3 if last3 and all(p is not None for p in last3) else None  # type: ignore[assignment]

    # new(x) with MR4: neuro not_sure counts as numb_or_tingling_legs_feet ticked.
    def new(self, option: str) -> bool:
        neuro = self.a["neuro"]
        if option == "numb_or_tingling_legs_feet" and "not_sure" in neuro:
            return True
        return option in neuro

    def cardio(self, option: str) -> bool:
        return option in self.a["cardioresp"]

    def rising3(self) -> bool:
        p = self.last3
        return p is not None and p[0] <= p[1] <= p[2] and p[2] - p[0] >= self.k.MCID

    def cond_u1(self) -> bool:
        return self.temp_c is not None and self.temp_c >= self.k.FEVER_C

    def cond_u2(self) -> bool:
        return self.a["temp_status"] == "feel_hot_or_shivery_not_measured" or self.a["chills"]

    def cond_u4(self) -> bool:
        if "redness_small" not in self.a["wound"] or self.day < self.k.SITE_CHECK_DAY:
            return False
        start = self.h
        for past in reversed(self.history):  # §3.8 (5): the current unbroken run
            if "redness_small" not in past.a["wound"]:
                break
            start = past.hours
        return self.h - start >= self.k.PERSIST_H


def _ge(value: int | None, threshold: int) -> bool:
    return value is not None and value >= threshold


# ---------------------------------------------------------------------------------------------
# The rules (§3.7 sketch + §3.8)
# ---------------------------------------------------------------------------------------------

_URGENT_WOUND = frozenset(
    {"redness_spreading", "swelling", "warm", "more_painful", "pus_or_cloudy_fluid", "red_streaks",
     "wound_opened", "bleeding_oozing"}
)


def _e5(c: _Ctx) -> bool:
    return c.cardio("heart_racing_or_irregular") and (
        c.a["dizzy"] == "very_dizzy_or_faint"
        or any(c.cardio(x) for x in ("chest_pain", "short_of_breath", "coughing_blood", "fainted"))
    )


def _u8(c: _Ctx) -> bool:
    if c.h < c.k.PAIN_CHECK_H or not _ge(c.P, c.k.MODERATE):
        return False
    if c.B is not None:
        return c.P > c.B - c.k.MCID  # type: ignore[operator]
    return c.P_first is not None and c.P >= c.P_first  # type: ignore[operator]


def _u15(c: _Ctx) -> bool:
    later = c.h >= c.k.NAUSEA_FROM_H
    nausea = c.a["nausea"]
    repeat = (
        nausea == "nausea"
        and later
        and c.prev is not None
        and c.prev.a["nausea"] in ("nausea", "vomiting")
        and c.prev.hours >= c.k.NAUSEA_FROM_H
    )
    return (nausea == "vomiting" and later) or c.a["cannot_keep_fluids"] or repeat


def _u21(c: _Ctx) -> bool:
    if not c.a["fall"]:
        return False
    pain_rose = c.P_prev is not None and c.P is not None and c.P >= c.P_prev + c.k.MCID
    return pain_rose or bool(c.a["neuro"] - {"none"})  # §3.8 (12): not_sure counts


def _w5(c: _Ctx) -> bool:
    s = c.a["site_pain"]
    return (
        c.day >= c.k.SITE_CHECK_DAY
        and s is not None
        and 1 <= s < c.k.SEVERE
        and c.site_pain_first is not None
        and s >= c.site_pain_first
    )


def _w10(c: _Ctx) -> bool:
    less = ("less_than_yesterday", "need_more_help")
    return c.a["mobility"] in less and c.prev is not None and c.prev.a["mobility"] in less


_CONDITIONS: Mapping[str, Callable[[_Ctx], bool]] = MappingProxyType(
    {
        "E1": lambda c: c.cardio("chest_pain"),
        "E2": lambda c: c.cardio("short_of_breath"),
        "E3": lambda c: c.cardio("coughing_blood"),
        "E4": lambda c: c.cardio("fainted"),
        "E5": _e5,
        "E6": lambda c: c.a["bladder_bowel"] != "no_change" or c.new("numb_between_legs_or_bottom"),
        "E7": lambda c: "cannot_move_a_leg" in c.a["neuro"],
        "E8": lambda c: c.new("legs_weak_or_giving_way"),
        "E9": lambda c: c.new("numb_or_tingling_legs_feet") and _ge(c.a["leg_pain"], c.k.SEVERE),
        "E10": lambda c: (c.cond_u1() or c.cond_u2()) and bool(c.a["sepsis_screen"] - {"none"}),
        "E11": lambda c: c.a["confused_or_very_sleepy"],
        "E12": lambda c: "bleeding_soaks_dressing" in c.a["wound"],
        "U1": lambda c: c.cond_u1(),
        "U2": lambda c: c.cond_u2(),
        "U3": lambda c: bool(c.a["wound"] & _URGENT_WOUND),
        "U3b": lambda c: c.day >= c.k.SITE_CHECK_DAY and _ge(c.a["site_pain"], c.k.SEVERE),
        "U4": lambda c: c.cond_u4(),
        "U5": lambda c: (
            c.new("numb_or_tingling_legs_feet")
            and not c.new("legs_weak_or_giving_way")
            and (c.a["leg_pain"] or 0) < c.k.SEVERE
        ),
        "U6": lambda c: "down_leg" in c.a["new_pain_sites"],
        "U7": lambda c: c.P == PAIN_SCALE_MAX or (_ge(c.P, c.k.SEVERE) and c.h >= c.k.PAIN_CHECK_H),
        "U8": _u8,
        "U9": lambda c: (
            (c.P_prev is not None and _ge(c.P, c.P_prev + c.k.JUMP))
            or c.a["pain_change"] == "much_worse"
            or "sudden_severe_back" in c.a["new_pain_sites"]
        ),
        "U10": lambda c: c.rising3() and c.last3[-1] >= c.k.MODERATE,  # type: ignore[index]
        "U11": lambda c: (
            c.P_min is not None
            and c.P_min < c.k.MODERATE
            and _ge(c.P, c.P_min + c.k.REBOUND)
            and _ge(c.P, c.k.MODERATE)
        ),
        "U12": lambda c: "ribs_or_side" in c.a["new_pain_sites"] and _ge(c.a["rib_pain"], c.k.MODERATE),
        "U13": lambda c: c.h < c.k.PAIN_CHECK_H and c.B is not None and _ge(c.P, c.B + c.k.MCID),
        "U14": lambda c: c.a["headache_upright"],
        "U15": _u15,
        "U16": lambda c: c.cardio("heart_racing_or_irregular"),
        "U17": lambda c: c.a["dizzy"] == "very_dizzy_or_faint",
        "U18": lambda c: c.a["mobility"] == "cannot_stand_or_walk",
        "U19": lambda c: c.a["meds_more_than_told"] or (
            c.a["meds_control"] == "no" and _ge(c.P, c.k.SEVERE) and c.h < c.k.PAIN_CHECK_H
        ),
        "U20": lambda c: c.a["call_request"],
        "U21": _u21,
        "U22": lambda c: c.temp_c is not None and c.temp_c <= c.k.LOW_TEMP_C,
        "U23": lambda c: c.temp_c is not None
        and (c.temp_c < c.k.TEMP_PLAUSIBLE_MIN_C or c.temp_c > c.k.TEMP_PLAUSIBLE_MAX_C),
        "W1": lambda c: (
            _ge(c.P, c.k.SEVERE) and c.h < c.k.PAIN_CHECK_H and (c.B is None or c.P < c.B + c.k.MCID)  # type: ignore[operator]
        ),
        "W2": lambda c: c.rising3() and c.last3[-1] < c.k.MODERATE,  # type: ignore[index]
        "W3": lambda c: c.temp_c is not None and c.k.WATCH_TEMP_LO <= c.temp_c < c.k.FEVER_C,
        "W4": lambda c: c.a["wound"] == {"redness_small"} and not c.cond_u4(),
        "W5": _w5,
        "W6": lambda c: "prescribed_opioid" in c.a["meds_taken"] and _ge(c.a["bowel_days"], c.k.CONSTIPATION_DAYS),
        "W7": lambda c: c.a["nausea"] == "nausea" and c.h >= c.k.NAUSEA_FROM_H,
        "W8": lambda c: c.a["dizzy"] == "a_little",
        "W9": lambda c: c.a["fall"],
        "W10": _w10,
    }
)
if set(_CONDITIONS) != set(RULES):  # pragma: no cover - guards edits to the rule tables
    raise RuntimeError("every rule needs a condition and an entry in RULES")

# MR3: numbers in a rule's own condition besides P and temp_c, and which direction is worse.
_OWN_NUMBERS: Mapping[str, tuple[tuple[str, int], ...]] = MappingProxyType(
    {
        "U22": (("temp_c", -1),),  # lower is worse
        "U3b": (("site_pain", 1),),
        "U5": (("leg_pain", 1),),
        "U6": (("leg_pain", 1),),
        "U12": (("rib_pain", 1),),
    }
)


def _number(c: _Checkin, key: str) -> Any:
    return c.temp_c if key == "temp_c" else c.a[key]


def _not_worse(now: Any, ref: Any, worse_direction: int) -> bool:
    """§3.8 (9): absent now passes; present now needs a value at the reference to compare with."""
    if now is None:
        return True
    if ref is None:
        return False
    return now <= ref if worse_direction > 0 else now >= ref


def _mr3_downgrades(rule_id: str, ctx: _Ctx, acks: Iterable[Acknowledgement]) -> bool:
    if RULES[rule_id].level is not Level.URGENT:
        return False  # EMERGENCY is never downgraded; WATCH has nothing to downgrade to
    window = ctx.k.MR3_WINDOW_H
    for ack in acks:
        if ack.rule != rule_id or ack.disposition != REVIEWED_EXPECTED:
            continue
        if not ack.hours <= ctx.h < ack.hours + window:
            continue
        reference = next((p for p in reversed(ctx.history) if p.hours <= ack.hours), None)
        if reference is None:
            continue
        if _same_or_better(rule_id, ctx.now, reference):
            return True
    return False


def _same_or_better(rule_id: str, now: _Checkin, ref: _Checkin) -> bool:
    if not _not_worse(now.p, ref.p, 1) or not _not_worse(now.temp_c, ref.temp_c, 1):
        return False
    for item in ("wound", "neuro"):  # not_sure compared as itself
        if (now.a[item] - _NOTHING) - ref.a[item]:
            return False
    return all(
        _not_worse(_number(now, key), _number(ref, key), direction)
        for key, direction in _OWN_NUMBERS.get(rule_id, ())
    )


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def _prepare(
    answers: Mapping[str, Any],
    hours: float,
    history: Sequence[PastCheckin],
    acknowledgements: Sequence[Acknowledgement],
) -> tuple[_Checkin, list[_Checkin], list[Acknowledgement]]:
    h = _hours(hours, "hours")
    now = _checkin(h, answers, "answers")
    past: list[_Checkin] = []
    for i, item in enumerate(history):
        where = f"history[{i}]"
        ph = _hours(item.hours, f"{where}.hours")
        if ph > h:
            raise TriageInputError(f"{where}.hours: {ph:g} is after this check-in ({h:g})")
        if past and ph < past[-1].hours:
            raise TriageInputError(f"{where}.hours: {ph:g} is before the check-in listed before it; "
                                   "history must be oldest first")
        past.append(_checkin(ph, item.answers, f"{where}.answers"))
    acks: list[Acknowledgement] = []
    for i, ack in enumerate(acknowledgements):
        if ack.rule not in RULES:
            raise TriageInputError(f"acknowledgements[{i}].rule: unknown rule {ack.rule!r}")
        _hours(ack.hours, f"acknowledgements[{i}].hours")
        acks.append(ack)
    return now, past, acks


def _validate_baseline(baseline: Baseline) -> None:
    b = baseline.back_pain
    if b is not None and (isinstance(b, bool) or not isinstance(b, int) or not 0 <= b <= PAIN_SCALE_MAX):
        raise TriageInputError(f"baseline.back_pain: expected a whole number 0-10, got {b!r}")
    unknown = set(baseline.neuro) - set(ITEMS["neuro"].option_values())
    if unknown:
        raise TriageInputError(f"baseline.neuro: unknown option(s) {sorted(unknown)}")


def _score(
    answers: Mapping[str, Any],
    *,
    hours: float,
    baseline: Baseline,
    history: Sequence[PastCheckin],
    acknowledgements: Sequence[Acknowledgement],
    ruleset: Ruleset,
    partial: bool,
) -> Assessment:
    _validate_baseline(baseline)
    now, past, acks = _prepare(answers, hours, history, acknowledgements)
    ctx = _Ctx(now, past, baseline, ruleset)
    fired: list[FiredRule] = []
    for rule_id, info in RULES.items():
        if not _CONDITIONS[rule_id](ctx):
            continue
        scored = Level.WATCH if _mr3_downgrades(rule_id, ctx, acks) else info.level
        fired.append(FiredRule(rule_id, info.level, scored))
    level = max((r.scored_level for r in fired), default=Level.OK)  # MR1
    return Assessment(level, tuple(fired), ruleset.version, ruleset.name, partial)


def assess(
    answers: Mapping[str, Any],
    *,
    hours: float,
    baseline: Baseline,
    history: Sequence[PastCheckin] = (),
    acknowledgements: Sequence[Acknowledgement] = (),
    ruleset: Ruleset,
) -> Assessment:
    """Score a completed check-in (typed answers, see ``questionnaire.coerce_answers``).

    ``hours`` is hours since T0; ``history`` holds the earlier completed check-ins, oldest first;
    ``acknowledgements`` are nurse acknowledgements for MR3. Raises ``TriageInputError`` naming the
    offending field for answers or context the engine cannot score.
    """
    return _score(
        answers, hours=hours, baseline=baseline, history=history,
        acknowledgements=acknowledgements, ruleset=ruleset, partial=False,
    )


def assess_partial(
    answers_so_far: Mapping[str, Any],
    *,
    hours: float,
    baseline: Baseline = Baseline(),
    history: Sequence[PastCheckin] = (),
    acknowledgements: Sequence[Acknowledgement] = (),
    ruleset: Ruleset,
) -> Assessment:
    """MR2: score a check-in that is still being filled in (e.g. only the emergency screen).

    Only what has been answered can fire a rule; an EMERGENCY result must be acted on at once,
    even if the form is never submitted. The result has ``partial=True``.
    """
    return _score(
        answers_so_far, hours=hours, baseline=baseline, history=history,
        acknowledgements=acknowledgements, ruleset=ruleset, partial=True,
    )

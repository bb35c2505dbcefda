"""The symptom check-in questionnaire (protocol.md §2.1) as data, plus form parsing.

Pure module: standard library only, no clock, no I/O.

Two kinds of input are handled here, and they get different error messages:

* ``parse_group`` reads raw HTML form input for one screen and answers with patient-friendly
  messages ("Please choose a number from 0 to 10.").
* ``coerce_answers`` checks answers that are already typed (case files, stored check-ins) and
  raises ``AnswerError`` naming the item id, for clinicians and developers.

Typed answers use: ``int`` (0-10 scales, ``bowel_days``), ``str`` (single choice), ``frozenset[str]``
(multi-select), ``bool``, ``Decimal`` (``temp_value``) and ``str`` (``free_text``).

Readings of the protocol
------------------------
* Sections: emergency items first (MR2), then pain, pain details, temperature, sepsis questions,
  needle site, how you feel, medicines, bowel, other. Each question has a screen of its own (a
  patient in pain reads one short question at a time); the section's title is shown above it.
  Follow-up items that depend on an earlier answer (``leg_pain``/``rib_pain``, ``sepsis_screen``,
  ``bowel_days``, and ``temp_value``/``temp_unit``, which share one screen, once ``temp_status`` is
  ``measured``) appear once that answer is known, so ``groups_for`` decides them from answers
  already given. Screen ids are item ids (``temp_value`` for the temperature and its unit).
* A whole section can still be posted at once (``parse_group("pain", ...)``): a page rendered
  before the screens were split, still open on a phone, must not lose its answers. There the
  temperature reading is read only when ``temp_status`` is ``measured`` in the same post.
* Splitting screens changes no item id, answer coding or scoring: the triage rules see the same
  answers. ``Item.ask`` is a shorter wording for the screen; ``Item.question`` stays the record's.
* "Every check-in until day 14" and "days 0-14" include day 14; "days 0-7" and "days 0-3" include
  the last day. ``temp_status`` is asked on every check-in up to day 14 and on weekly check-ins
  after that (ad hoc check-ins after day 14 do not ask it).
* ``brace_ok`` is asked on weekly check-ins only when the caller says a brace was prescribed
  (the word "brace" is opt-in, TL15); ``restrictions_ok`` on every weekly check-in.
* A multi-select must have at least one tick; its "nothing" option (``none``, or ``normal`` for
  ``wound``) cannot be combined with another tick. ``neuro``: ``not_sure`` may be ticked with a
  symptom (MR4 still sees the symptom) but not with ``none``.
* Implausible temperatures (outside 34.0-43.0 °C after conversion): the first entry is refused with
  a request to re-check; the caller renders the hidden field ``temp_confirmed`` (value from
  ``pending_temp_confirmation``). A second entry that is still outside the range, whether or not it
  is the same number, is accepted (protocol §3.1: "if it is still outside, raise URGENT") and rule
  U23 then applies in the rules engine.
* Booleans are Yes/No radio buttons, so "not answered" can be told apart from "No".
* ``free_text`` is optional (blank is allowed); every other asked item must be answered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum
from fractions import Fraction
from types import MappingProxyType
from typing import Any

__all__ = [
    "AnswerError",
    "DEFAULTS",
    "EMERGENCY_SECTION",
    "FieldError",
    "FormLimits",
    "Group",
    "ITEMS",
    "Item",
    "Kind",
    "Option",
    "QuestionnaireError",
    "SCREENS",
    "SECTIONS",
    "TEMP_CONFIRM_FIELD",
    "celsius",
    "field_error",
    "coerce_answers",
    "dump_answers",
    "groups_for",
    "items_on",
    "parse_group",
    "pending_temp_confirmation",
    "with_defaults",
]


class Kind(Enum):
    INT = "int"  # whole number in [minimum, maximum]
    ENUM = "enum"  # exactly one option
    MULTI = "multi"  # one or more options
    BOOL = "bool"  # yes / no
    DECIMAL = "decimal"  # a number with decimals (temperature)
    TEXT = "text"  # free text, max_length characters


@dataclass(frozen=True)
class Option:
    value: str
    label: str  # what the patient reads; plain words, large-print friendly


@dataclass(frozen=True)
class FormLimits:
    """Numbers the form needs from the rule set (pass ``Ruleset.form_limits``)."""

    fever_c: Decimal = Decimal("38.0")
    plausible_min_c: Decimal = Decimal("34.0")
    plausible_max_c: Decimal = Decimal("43.0")


# Conditions on earlier answers: (answers_so_far, limits) -> asked?
AskedIf = Callable[[Mapping[str, Any], FormLimits], bool]


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    kind: Kind
    asked: str  # the protocol's "Asked" column, in words (shown to reviewers)
    options: tuple[Option, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    hint: str | None = None
    # The option that means "nothing to report"; it cannot be ticked with another option.
    nothing_option: str | None = None
    first_day: int = 0
    last_day: int | None = None  # inclusive; None = no limit
    weekly_after_last_day: bool = False  # still asked on weekly check-ins after last_day
    weekly_only: bool = False
    asked_if: AskedIf | None = None  # depends on an answer from an earlier screen
    # Shown on the same screen and only read when another item on it has this value.
    shown_when: tuple[str, str] | None = None
    required: bool = True
    # What the patient reads on the screen when it is shorter than ``question`` (which stays the
    # record's wording, as nurses read it); ``ask_first`` at the first check-in, when there is
    # no earlier check-in to compare with.
    ask: str | None = None
    ask_first: str | None = None

    @property
    def prompt(self) -> str:
        return self.ask or self.question

    def option_values(self) -> tuple[str, ...]:
        return tuple(o.value for o in self.options)

    def label_for(self, value: str) -> str:
        for option in self.options:
            if option.value == value:
                return option.label
        raise KeyError(f"{self.id}: no option {value!r}")


@dataclass(frozen=True)
class Group:
    """One screen of the check-in (``SCREENS``: one question each), or a section of screens
    (``SECTIONS``: "Your pain"), whose title the screens show above their question."""

    id: str
    title: str
    items: tuple[Item, ...]
    intro: str | None = None
    emergency: bool = False  # the emergency questions, asked first (MR2)
    section: str = ""  # the section a screen belongs to (a section: its own id)

    def item_ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items)


class QuestionnaireError(ValueError):
    """A programming error in how the questionnaire is called (unknown group, group not asked)."""


class AnswerError(ValueError):
    """A typed answer that does not fit the questionnaire; ``item`` is the item id."""

    def __init__(self, item: str, problem: str) -> None:
        super().__init__(f"{item}: {problem}")
        self.item = item
        self.problem = problem


class FieldError(str):
    """A patient-facing error message. ``code`` lets the caller react (e.g. a re-check prompt).
    ``msgid`` and ``params`` are the message before its ``{placeholders}`` were filled: the web
    layer translates the msgid and fills it again (``label`` is an option label, translated too)."""

    code: str
    confirm_value: str | None
    msgid: str
    params: Mapping[str, Any]

    def __new__(cls, message: str, code: str = "invalid", confirm_value: str | None = None,
                msgid: str | None = None, params: Mapping[str, Any] | None = None) -> FieldError:
        obj = super().__new__(cls, message)
        obj.code = code
        obj.confirm_value = confirm_value
        obj.msgid = msgid or message
        obj.params = MappingProxyType(dict(params or {}))
        return obj


def field_error(msgid: str, code: str = "invalid", confirm_value: str | None = None, **params: Any) -> FieldError:
    """A FieldError from a message with ``{placeholders}`` (``pybabel extract`` reads the ``field_error`` calls)."""
    return FieldError(msgid.format(**params), code, confirm_value, msgid, params)


TEMP_CONFIRM_FIELD = "temp_confirmed"

# ---------------------------------------------------------------------------------------------
# Temperature (protocol §3.1, §3.8.4)
# ---------------------------------------------------------------------------------------------

_TENTH = Decimal("0.1")
MAX_TEMPERATURE = 1000  # °C or °F; the check-in form takes at most 3 digits before the point


def celsius(value: Decimal | int | float | str, unit: str) -> Decimal:
    """Convert to °C and round half-up to 0.1 °C (100.4 F -> 38.0; 100.31 F = 37.95 -> 38.0).

    Exact arithmetic (Fraction) so that values exactly on a .x5 boundary round up as the
    protocol says, whatever the binary float representation would have been.
    """
    number = _exact_decimal(value)
    if unit == "C":
        exact = Fraction(number)
    elif unit == "F":
        exact = (Fraction(number) - 32) * Fraction(5, 9)
    else:
        raise ValueError(f"temperature unit must be 'C' or 'F', got {unit!r}")
    sign = -1 if exact < 0 else 1
    tenths = abs(exact) * 10
    whole = tenths.numerator // tenths.denominator
    if tenths - whole >= Fraction(1, 2):  # half-up: ties move away from zero
        whole += 1
    return (Decimal(sign * whole) * _TENTH).quantize(_TENTH, rounding=ROUND_HALF_UP)


def _exact_decimal(value: Decimal | int | float | str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("a temperature must be a number, not true/false")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))  # the shortest repr is what was typed: 100.31, not 100.3099…
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"a temperature must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    if abs(result) >= MAX_TEMPERATURE:
        # No thermometer shows this in °C or °F; larger numbers would only overflow the rounding.
        raise ValueError(f"not a temperature: {str(value)[:20]!r} (expected a number below {MAX_TEMPERATURE})")
    return result


# ---------------------------------------------------------------------------------------------
# Items (protocol §2.1)
# ---------------------------------------------------------------------------------------------

_YES_NO = (Option("yes", "Yes"), Option("no", "No"))


def _multi_has(item_id: str, option: str) -> AskedIf:
    def check(answers: Mapping[str, Any], limits: FormLimits) -> bool:
        ticked = answers.get(item_id)
        return ticked is not None and not isinstance(ticked, str) and option in ticked

    return check


def _sepsis_trigger(answers: Mapping[str, Any], limits: FormLimits) -> bool:
    """Fever (U1), feeling hot or shivery without a measurement (U2), or chills (U2)."""
    if answers.get("chills") is True:
        return True
    status = answers.get("temp_status")
    if status == "feel_hot_or_shivery_not_measured":
        return True
    value, unit = answers.get("temp_value"), answers.get("temp_unit")
    if status == "measured" and value is not None and unit in ("C", "F"):
        return celsius(value, unit) >= limits.fever_c
    return False


_PAIN_SCALE = "0 = no pain, 10 = worst pain you can imagine"

_ITEM_LIST: tuple[Item, ...] = (
    # --- emergency screen (asked first, MR2) -------------------------------------------------
    Item(
        "cardioresp",
        "Do you have any of these right now or since your last check-in?",
        Kind.MULTI,
        "Every check-in; asked first",
        options=(
            Option("chest_pain", "Chest pain or tightness (also if you are not sure it is your ribs)"),
            Option("short_of_breath", "Short of breath or hard to breathe"),
            Option("coughing_blood", "Coughing up blood"),
            Option("heart_racing_or_irregular", "Heart racing, pounding or beating unevenly"),
            Option("fainted", "Fainted or passed out"),
            Option("none", "None of these"),
        ),
        hint="Tick all that apply.",
        nothing_option="none",
    ),
    Item(
        "neuro",
        "Any NEW or WORSE numbness, tingling or weakness?",
        Kind.MULTI,
        "Every check-in",
        options=(
            Option("numb_or_tingling_legs_feet", "Numbness or tingling in my legs or feet"),
            Option("numb_between_legs_or_bottom", "Numbness between my legs or around my bottom"),
            Option("legs_weak_or_giving_way", "My legs feel weak or give way"),
            Option("cannot_move_a_leg", "I cannot move a leg at all"),
            Option("none", "None of these"),
            Option("not_sure", "I am not sure"),
        ),
        hint="Tick all that apply.",
        nothing_option="none",
    ),
    Item(
        "bladder_bowel",
        "Any NEW problem with your bladder or bowels?",
        Kind.ENUM,
        "Every check-in",
        options=(
            Option("no_change", "No, nothing new"),
            Option("leaking_or_cannot_hold", "I leak or cannot hold my pee or poo"),
            Option("cannot_pass_urine", "I cannot pee"),
            Option("cannot_feel_when_going", "I cannot feel when I pee or poo"),
            Option("not_sure", "I am not sure"),
        ),
    ),
    # --- pain ----------------------------------------------------------------------------------
    Item(
        "back_pain",
        f"Right now, how bad is your back pain? {_PAIN_SCALE}",
        Kind.INT,
        "Every check-in",
        minimum=0,
        maximum=10,
        ask="How bad is your back pain right now?",
        hint=_PAIN_SCALE,
    ),
    Item(
        "pain_change",
        "Compared with your last check-in (or with before the procedure, at the first check-in), "
        "your back pain is...",
        Kind.ENUM,
        "Every check-in",
        ask="Is your back pain better or worse than at your last check-in?",
        ask_first="Is your back pain better or worse than before the procedure?",
        options=(
            Option("much_better", "Much better"),
            Option("better", "Better"),
            Option("same", "About the same"),
            Option("worse", "Worse"),
            Option("much_worse", "Much worse"),
        ),
    ),
    Item(
        "new_pain_sites",
        "Since your last check-in, do you have NEW pain in any of these?",
        Kind.MULTI,
        "Every check-in",
        options=(
            Option("sudden_severe_back", "Bad back pain that came on suddenly"),
            Option("ribs_or_side", "Over the ribs or side, worse when moving or pressing"),
            Option("down_leg", "Shooting down a leg"),
            Option("belly", "Belly (tummy)"),
            Option("buttocks", "Buttocks (bottom)"),
            Option("none", "None of these"),
        ),
        hint="Tick all that apply.",
        nothing_option="none",
    ),
    Item(
        "leg_pain",
        f"How bad is the leg pain? {_PAIN_SCALE}",
        Kind.INT,
        "Only if down_leg",
        minimum=0,
        maximum=10,
        asked_if=_multi_has("new_pain_sites", "down_leg"),
        ask="How bad is the pain down your leg?",
        hint=_PAIN_SCALE,
    ),
    Item(
        "rib_pain",
        f"How bad is the rib or side pain? {_PAIN_SCALE}",
        Kind.INT,
        "Only if ribs_or_side",
        minimum=0,
        maximum=10,
        asked_if=_multi_has("new_pain_sites", "ribs_or_side"),
        ask="How bad is the pain over your ribs or side?",
        hint=_PAIN_SCALE,
    ),
    # --- temperature ---------------------------------------------------------------------------
    Item(
        "temp_status",
        "Have you checked your temperature?",
        Kind.ENUM,
        "Every check-in, days 0-14, then weekly",
        options=(
            Option("measured", "Yes, I checked it"),
            Option("feel_hot_or_shivery_not_measured", "No, but I feel hot or shivery"),
            Option("feel_normal_not_measured", "No, and I feel normal"),
        ),
        last_day=14,
        weekly_after_last_day=True,
    ),
    Item(
        "temp_value",
        "Your highest temperature since the last check-in",
        Kind.DECIMAL,
        "If measured",
        hint="For example 37.8 or 100.1",
        ask="What was your highest temperature since your last check-in?",
        last_day=14,
        weekly_after_last_day=True,
        shown_when=("temp_status", "measured"),
    ),
    Item(
        "temp_unit",
        "Is that in °C or °F?",
        Kind.ENUM,
        "If measured",
        options=(Option("C", "°C (Celsius)"), Option("F", "°F (Fahrenheit)")),
        last_day=14,
        weekly_after_last_day=True,
        shown_when=("temp_status", "measured"),
    ),
    Item(
        "chills",
        "Have you had shivering or shaking chills?",
        Kind.BOOL,
        "Every check-in, days 0-14",
        options=_YES_NO,
        last_day=14,
    ),
    Item(
        "sepsis_screen",
        "Do any of these apply now?",
        Kind.MULTI,
        "Only if fever (U1), U2, or chills",
        options=(
            Option("confused_or_slurred_speech", "Confused, or speech is slurred or does not make sense"),
            Option("extreme_shivering_or_muscle_pain", "Very bad shivering or muscle pain"),
            Option("no_urine_today", "Have not peed all day"),
            Option("severe_breathlessness", "Very short of breath"),
            Option("skin_mottled_blue_or_pale", "Skin is blotchy, blue or very pale"),
            Option("feel_like_going_to_die", "Feel like you are going to die"),
            Option("none", "None of these"),
        ),
        hint="Tick all that apply.",
        nothing_option="none",
        asked_if=_sepsis_trigger,
    ),
    # --- needle site ---------------------------------------------------------------------------
    Item(
        "wound",
        "How does the needle site look?",
        Kind.MULTI,
        "Every check-in until day 14",
        options=(
            Option("normal", "It looks normal"),
            Option("redness_small", "A little red around it"),
            Option("redness_spreading", "Redness that is spreading"),
            Option("swelling", "Swollen"),
            Option("warm", "Warm to touch"),
            Option("more_painful", "More painful than before"),
            Option("pus_or_cloudy_fluid", "Pus or cloudy fluid coming out"),
            Option("red_streaks", "Red lines spreading from it"),
            Option("bleeding_oozing", "Bleeding or oozing a little"),
            Option("bleeding_soaks_dressing", "Still bleeding through the bandage after pressing for 10 minutes"),
            Option("wound_opened", "The wound has opened"),
        ),
        hint="Tick all that apply. If it is bleeding, press firmly on it with a clean cloth for "
        "10 minutes before you answer.",
        nothing_option="normal",
        last_day=14,
    ),
    Item(
        "site_pain",
        "How sore is the spot where the needle went in? 0 = not sore, 10 = worst pain you can imagine",
        Kind.INT,
        "Every check-in until day 14",
        minimum=0,
        maximum=10,
        last_day=14,
        ask="How sore is the spot where the needle went in?",
        hint="0 = not sore, 10 = worst pain you can imagine",
    ),
    # --- how you feel --------------------------------------------------------------------------
    Item(
        "dizzy",
        "Have you felt dizzy or faint?",
        Kind.ENUM,
        "Every check-in",
        options=(
            Option("no", "No"),
            Option("a_little", "A little"),
            Option("very_dizzy_or_faint", "Very dizzy or faint"),
        ),
    ),
    Item(
        "confused_or_very_sleepy",
        "(You or your helper) Is there any new confusion, or are you much sleepier than usual?",
        Kind.BOOL,
        "Every check-in, days 0-7",
        options=_YES_NO,
        last_day=7,
        ask="Are you newly confused, or much sleepier than usual?",
        hint="Someone helping you can answer this for you.",
    ),
    Item(
        "headache_upright",
        "Do you have a headache that gets worse when you sit up or stand and eases when you lie down?",
        Kind.BOOL,
        "Days 0-7",
        options=_YES_NO,
        last_day=7,
    ),
    Item(
        "nausea",
        "Sick to your stomach?",
        Kind.ENUM,
        "Days 0-3",
        options=(
            Option("none", "No"),
            Option("nausea", "I feel sick but have not thrown up"),
            Option("vomiting", "I have thrown up"),
        ),
        last_day=3,
    ),
    Item(
        "cannot_keep_fluids",
        "Are you unable to keep drinks down?",
        Kind.BOOL,
        "Days 0-3",
        options=_YES_NO,
        last_day=3,
    ),
    Item(
        "mobility",
        "How are you getting about today?",
        Kind.ENUM,
        "Every check-in",
        options=(
            Option("as_usual_or_better", "As usual or better"),
            Option("less_than_yesterday", "Less than yesterday"),
            Option("need_more_help", "I need more help than before"),
            Option("cannot_stand_or_walk", "I cannot stand or walk"),
        ),
    ),
    # --- medicines -----------------------------------------------------------------------------
    Item(
        "meds_taken",
        "What pain medicine did you take in the last 24 hours?",
        Kind.MULTI,
        "Every check-in",
        options=(
            Option("none", "None"),
            Option("paracetamol_acetaminophen", "Paracetamol (acetaminophen, Tylenol)"),
            Option("ibuprofen_or_other_nsaid", "Ibuprofen or a similar anti-inflammatory (like naproxen)"),
            Option("prescribed_opioid", "A strong prescribed painkiller (like codeine, tramadol or oxycodone)"),
            Option("other", "Something else"),
        ),
        hint="Tick all that apply.",
        nothing_option="none",
    ),
    Item(
        "meds_more_than_told",
        "Did you take more than the label or your team said?",
        Kind.BOOL,
        "Every check-in",
        options=_YES_NO,
    ),
    Item(
        "meds_control",
        "Is your pain medicine controlling your pain?",
        Kind.ENUM,
        "Every check-in",
        options=(Option("yes", "Yes"), Option("partly", "Partly"), Option("no", "No")),
    ),
    Item(
        "bowel_days",
        "How many days since you last opened your bowels (had a poo)?",
        Kind.INT,
        "Days 2-14, only if prescribed_opioid",
        minimum=0,
        maximum=14,
        hint="Enter 0 if it was today.",
        first_day=2,
        last_day=14,
        asked_if=_multi_has("meds_taken", "prescribed_opioid"),
    ),
    # --- other ---------------------------------------------------------------------------------
    Item(
        "fall",
        "Have you fallen or hurt your back since the last check-in?",
        Kind.BOOL,
        "Every check-in",
        options=_YES_NO,
    ),
    Item(
        "brace_ok",
        "Are you able to wear your brace the way your team told you?",
        Kind.BOOL,
        "Weekly check-ins (only if a brace was prescribed)",
        options=_YES_NO,
        weekly_only=True,
    ),
    Item(
        "restrictions_ok",
        "Are you able to follow your lifting and activity instructions?",
        Kind.BOOL,
        "Weekly check-ins",
        options=_YES_NO,
        weekly_only=True,
    ),
    Item(
        "call_request",
        "Would you like a nurse to call you?",
        Kind.BOOL,
        "Every check-in",
        options=_YES_NO,
    ),
    Item(
        "free_text",
        "Anything else your nurse should know?",
        Kind.TEXT,
        "Every check-in",
        hint="Optional. Up to 500 characters. If this is an emergency, call for help now instead.",
        max_length=500,
        required=False,
    ),
)

ITEMS: Mapping[str, Item] = MappingProxyType({item.id: item for item in _ITEM_LIST})


def _section(section_id: str, title: str, item_ids: tuple[str, ...], **kwargs: Any) -> Group:
    return Group(section_id, title, tuple(ITEMS[i] for i in item_ids), section=section_id, **kwargs)


EMERGENCY_SECTION = _section(
    "emergency",
    "First, some important questions",
    ("cardioresp", "neuro", "bladder_bowel"),
    intro="If you tick any of these, we will tell you what to do straight away.",
    emergency=True,
)

SECTIONS: tuple[Group, ...] = (
    EMERGENCY_SECTION,
    _section("pain", "Your pain", ("back_pain", "pain_change", "new_pain_sites")),
    _section("pain_detail", "More about the new pain", ("leg_pain", "rib_pain")),
    _section("temperature", "Your temperature", ("temp_status", "temp_value", "temp_unit", "chills")),
    _section("sepsis", "A few more questions", ("sepsis_screen",)),
    _section("wound", "The needle site", ("wound", "site_pain")),
    _section(
        "feel",
        "How you feel",
        ("dizzy", "confused_or_very_sleepy", "headache_upright", "nausea", "cannot_keep_fluids", "mobility"),
    ),
    _section("medicines", "Your pain medicine", ("meds_taken", "meds_more_than_told", "meds_control")),
    _section("bowels", "Your bowels", ("bowel_days",)),
    _section("other", "Anything else", ("fall", "brace_ok", "restrictions_ok", "call_request", "free_text")),
)


def _screens(section: Group) -> list[Group]:
    """One question per screen. Items ``shown_when`` the same answer share one screen (the
    temperature and its unit), which comes after the screen of the answer it depends on."""
    screens: list[Group] = []
    for item in section.items:
        joins = next((sc for sc in screens if item.shown_when is not None
                      and sc.items[0].shown_when == item.shown_when), None)
        if joins is not None:
            screens[screens.index(joins)] = replace(joins, items=joins.items + (item,))
            continue
        screens.append(Group(item.id, section.title, (item,), intro=section.intro if not screens else None,
                             emergency=section.emergency, section=section.id))
    return screens


SCREENS: tuple[Group, ...] = tuple(screen for section in SECTIONS for screen in _screens(section))

_SECTIONS_BY_ID: Mapping[str, Group] = MappingProxyType({g.id: g for g in SECTIONS})
_SCREENS_BY_ID: Mapping[str, Group] = MappingProxyType({g.id: g for g in SCREENS})


def _page(group_id: str, form: Mapping[str, Any] | None = None) -> Group:
    """The screen, or the whole section (a page from before screens held one question each still
    posts its section's answers together). "wound" is both; the form's fields tell which."""
    screen, section = _SCREENS_BY_ID.get(group_id), _SECTIONS_BY_ID.get(group_id)
    if screen is not None and section is not None and form is not None:
        return section if set(form) & (set(section.item_ids()) - set(screen.item_ids())) else screen
    page = screen or section
    if page is None:
        raise QuestionnaireError(f"unknown question group {group_id!r}")
    return page


def items_on(group_id: str, form: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The item ids of the screen (or whole section) that `form` was posted from."""
    return _page(group_id, form).item_ids()


# §3.8 (3): what a left-out answer means. Numbers (and temp_unit, free_text) are absent (None).
DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        **{i.id: frozenset({i.nothing_option}) for i in _ITEM_LIST if i.kind is Kind.MULTI},
        **{i.id: False for i in _ITEM_LIST if i.kind is Kind.BOOL},
        **{i.id: None for i in _ITEM_LIST if i.kind in (Kind.INT, Kind.DECIMAL, Kind.TEXT)},
        "pain_change": "same",
        "temp_status": "feel_normal_not_measured",
        "temp_unit": None,
        "meds_control": "yes",
        "dizzy": "no",
        "nausea": "none",
        "bladder_bowel": "no_change",
        "mobility": "as_usual_or_better",
    }
)
if set(DEFAULTS) != set(ITEMS):  # pragma: no cover - guards edits to the item table
    raise RuntimeError("every questionnaire item needs a default (§3.8 (3))")


def with_defaults(answers: Mapping[str, Any]) -> dict[str, Any]:
    """Typed answers with every left-out item filled in as §3.8 (3) says."""
    full = dict(DEFAULTS)
    full.update(answers)
    return full


# ---------------------------------------------------------------------------------------------
# Which items are asked (§2.1 "Asked")
# ---------------------------------------------------------------------------------------------


def _asked_on_day(item: Item, day: int, weekly: bool) -> bool:
    if item.weekly_only:
        return weekly
    if day < item.first_day:
        return False
    if item.last_day is not None and day > item.last_day:
        return weekly and item.weekly_after_last_day
    return True


def _asked(
    item: Item,
    day: int,
    weekly: bool,
    answers: Mapping[str, Any],
    limits: FormLimits,
    brace_prescribed: bool,
    together: tuple[str, ...] = (),
) -> bool:
    """``together``: the item ids on the same page as ``item``."""
    if not _asked_on_day(item, day, weekly):
        return False
    if item.id == "brace_ok" and not brace_prescribed:
        return False
    if item.asked_if is not None and not item.asked_if(answers, limits):
        return False
    if item.shown_when is not None:
        controller, value = item.shown_when
        if controller in together:
            # On the same page: keep it until the controlling answer rules it out.
            if controller in answers and answers[controller] != value:
                return False
        elif answers.get(controller) != value:
            return False  # its own screen, once the controlling answer is given
    return True


def _asked_items(group: Group, day: int, weekly: bool, answers: Mapping[str, Any], limits: FormLimits,
                 brace_prescribed: bool, first_checkin: bool) -> tuple[Item, ...]:
    together = group.item_ids()
    return tuple(replace(i, ask=i.ask_first) if first_checkin and i.ask_first else i
                 for i in group.items
                 if _asked(i, day, weekly, answers, limits, brace_prescribed, together))


def groups_for(
    day: int,
    weekly: bool,
    answers_so_far: Mapping[str, Any],
    *,
    limits: FormLimits = FormLimits(),
    brace_prescribed: bool = True,
    first_checkin: bool = False,
) -> list[Group]:
    """The screens for this check-in, in order, one question each (the temperature with its
    unit), holding only what is asked.

    ``answers_so_far`` are typed answers from earlier screens (the output of ``parse_group``).
    Screens that depend on them (pain details, the temperature reading, sepsis questions,
    bowels) appear once the controlling answer is known, so call this again after each screen.
    ``first_checkin`` words comparisons with "before the procedure" (``Item.ask_first``).
    """
    _check_day(day)
    result: list[Group] = []
    for screen in SCREENS:
        items = _asked_items(screen, day, weekly, answers_so_far, limits, brace_prescribed, first_checkin)
        if items:
            result.append(replace(screen, items=items))
    return result


def _check_day(day: int) -> None:
    if isinstance(day, bool) or not isinstance(day, int) or day < 0:
        raise QuestionnaireError(f"day must be a whole number of days from 0, got {day!r}")


# ---------------------------------------------------------------------------------------------
# Parsing one screen of raw form input (patient-facing messages)
# ---------------------------------------------------------------------------------------------

_INT_RE = re.compile(r"\d{1,3}")
_DECIMAL_RE = re.compile(r"\d{1,3}(?:[.,]\d{1,3})?")
_TRUE = {"yes", "true"}
_FALSE = {"no", "false"}


def _single(raw: str | list[str] | None) -> str | None | FieldError:
    """One value from a form field; lists (MultiDict.getlist style) must hold at most one."""
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)):
        values = [v for v in raw if v.strip()]
        if not values:
            return None
        if len(values) > 1:
            return field_error("Please choose only one answer.")
        raw = values[0]
    value = raw.strip()
    return value or None


def _fmt_temp(value: Decimal, unit: str) -> str:
    return f"{value.normalize():f} °{unit}"


def _parse_item(item: Item, raw: str | list[str] | None) -> tuple[Any, FieldError | None]:
    """Returns (typed value or None when not answered, error)."""
    if item.kind is Kind.MULTI:
        if raw is None:
            values: list[str] = []
        elif isinstance(raw, str):
            values = [raw]
        else:
            values = list(raw)
        ticked = frozenset(v.strip() for v in values if v.strip())
        if not ticked:
            nothing = item.label_for(item.nothing_option) if item.nothing_option else "None of these"
            return None, field_error("Please tick at least one answer. If none apply, tick “{label}”.", label=nothing)
        if not ticked <= set(item.option_values()):
            return None, field_error("Please choose from the answers shown.")
        if item.nothing_option in ticked and len(ticked) > 1:
            nothing = item.label_for(item.nothing_option)
            return None, field_error("You ticked “{label}” and another answer. Please untick one of them.", label=nothing)
        if item.id == "neuro" and {"none", "not_sure"} <= ticked:
            return None, field_error("You ticked “{label}” and another answer. Please untick one of them.", label="None of these")
        return ticked, None

    value = _single(raw)
    if isinstance(value, FieldError):
        return None, value

    if item.kind is Kind.TEXT:
        text = "" if value is None else value
        if item.max_length is not None and len(text) > item.max_length:
            return None, field_error("Please keep this to {maximum} characters or fewer (you have {count}).",
                                maximum=item.max_length, count=len(text))
        return (text or None), None

    if item.kind is Kind.INT:
        message = (
            field_error("Please choose a number from {minimum} to {maximum}.", minimum=item.minimum, maximum=item.maximum)
            if item.maximum is not None and item.maximum <= 10
            else field_error("Please enter a whole number from {minimum} to {maximum}.", minimum=item.minimum,
                      maximum=item.maximum)
        )
        if value is None or not _INT_RE.fullmatch(value):
            return None, message
        number = int(value)
        if not (item.minimum is not None and item.maximum is not None and item.minimum <= number <= item.maximum):
            return None, message
        return number, None

    if item.kind is Kind.BOOL:
        if value is not None and value.lower() in _TRUE:
            return True, None
        if value is not None and value.lower() in _FALSE:
            return False, None
        return None, field_error("Please choose Yes or No.")

    if item.kind is Kind.ENUM:
        if item.id == "temp_unit" and value is not None:
            value = value.upper().lstrip("°")
        if value is None:
            if item.id == "temp_unit":
                return None, field_error("Please choose °C or °F.")
            return None, field_error("Please choose one answer.")
        if value not in item.option_values():
            return None, field_error("Please choose from the answers shown.")
        return value, None

    if item.kind is Kind.DECIMAL:
        if value is None:
            return None, field_error("Please enter your highest temperature, for example 37.8.")
        if not _DECIMAL_RE.fullmatch(value):
            return None, field_error("Please enter the temperature as a number, for example 37.8 or 100.2.")
        return Decimal(value.replace(",", ".")), None

    raise AssertionError(f"unhandled kind {item.kind}")  # pragma: no cover


def parse_group(
    group_id: str,
    form: Mapping[str, str | list[str]],
    day: int,
    *,
    weekly: bool = False,
    answers_so_far: Mapping[str, Any] | None = None,
    limits: FormLimits = FormLimits(),
    brace_prescribed: bool = True,
) -> tuple[dict[str, Any], dict[str, FieldError]]:
    """Validate one screen of raw form input into typed answers.

    Returns ``(answers, errors)``; ``errors`` maps item id to a patient-facing message and is empty
    when the screen is complete. Only the items asked on this screen today are read.

    Temperature re-check: when the value converts to outside the plausible range and the form has
    no ``temp_confirmed`` field, ``errors["temp_value"]`` has ``code == "temp_recheck"``; render the
    form again with a hidden ``temp_confirmed`` field set to ``pending_temp_confirmation(errors)``.
    The next entry is then accepted even if still outside the range (rule U23 applies).
    """
    answers_so_far = answers_so_far or {}
    _check_day(day)
    page = _page(group_id, form)
    items = _asked_items(page, day, weekly, answers_so_far, limits, brace_prescribed, False)
    if not items:
        raise QuestionnaireError(f"question group {group_id!r} is not asked on day {day} with these answers")
    group = replace(page, items=items)

    answers: dict[str, Any] = {}
    errors: dict[str, FieldError] = {}
    for item in group.items:
        if item.shown_when is not None:
            continue  # read below, once the controlling answer is known
        value, error = _parse_item(item, form.get(item.id))
        if error is not None:
            errors[item.id] = error
        elif value is not None:
            answers[item.id] = value

    shown = [i for i in group.items if i.shown_when is not None]
    for item in shown:
        controller, wanted = item.shown_when  # type: ignore[misc]
        if answers.get(controller, answers_so_far.get(controller)) != wanted:
            continue  # e.g. a stale temperature box when "not measured" was chosen
        value, error = _parse_item(item, form.get(item.id))
        if error is not None:
            errors[item.id] = error
        elif value is not None:
            answers[item.id] = value

    if "temp_value" in answers and "temp_unit" in answers:
        _check_plausible(answers, errors, form, limits)
    return answers, errors


def _check_plausible(
    answers: dict[str, Any],
    errors: dict[str, FieldError],
    form: Mapping[str, str | list[str]],
    limits: FormLimits,
) -> None:
    value, unit = answers["temp_value"], answers["temp_unit"]
    temp_c = celsius(value, unit)
    if limits.plausible_min_c <= temp_c <= limits.plausible_max_c:
        return
    if _single(form.get(TEMP_CONFIRM_FIELD)):
        return  # asked once already; keep the value and let rule U23 raise it to a nurse
    del answers["temp_value"]
    errors["temp_value"] = field_error(
        "{temperature} is an unusual temperature. Please check your thermometer and "
        "enter the number again. If it is right, enter the same number again.",
        code="temp_recheck",
        confirm_value=_fmt_temp(value, unit),
        temperature=_fmt_temp(value, unit),
    )


def pending_temp_confirmation(errors: Mapping[str, str]) -> str | None:
    """The value for the hidden ``temp_confirmed`` field when the form must ask for a re-check."""
    error = errors.get("temp_value")
    if isinstance(error, FieldError) and error.code == "temp_recheck":
        return error.confirm_value
    return None


# ---------------------------------------------------------------------------------------------
# Typed answers (case files, stored check-ins): strict checks, technical messages
# ---------------------------------------------------------------------------------------------


def _coerce_one(item: Item, value: Any) -> Any:
    options = item.option_values()
    if item.kind is Kind.MULTI:
        if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
            raise AnswerError(item.id, f"expected a list of options, got {value!r}")
        if not value:
            raise AnswerError(item.id, f"empty list; write [{item.nothing_option}] when nothing applies")
        for option in value:
            if option not in options:
                raise AnswerError(item.id, f"unknown option {option!r} (options: {', '.join(options)})")
        ticked = frozenset(value)
        if item.nothing_option in ticked and len(ticked) > 1:
            raise AnswerError(item.id, f"{item.nothing_option!r} cannot be ticked with other options")
        if item.id == "neuro" and {"none", "not_sure"} <= ticked:
            raise AnswerError(item.id, "'none' cannot be ticked with 'not_sure'")
        return ticked
    if item.kind is Kind.ENUM:
        if not isinstance(value, str):
            raise AnswerError(item.id, f"expected one of {', '.join(options)}; got {value!r}")
        if value not in options:
            raise AnswerError(item.id, f"unknown option {value!r} (options: {', '.join(options)})")
        return value
    if item.kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise AnswerError(item.id, f"expected true or false, got {value!r}")
        return value
    if item.kind is Kind.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AnswerError(item.id, f"expected a whole number from {item.minimum} to {item.maximum}, got {value!r}")
        if not (item.minimum is not None and item.maximum is not None and item.minimum <= value <= item.maximum):
            raise AnswerError(item.id, f"{value} is outside {item.minimum}-{item.maximum}")
        return value
    if item.kind is Kind.DECIMAL:
        try:
            return _exact_decimal(value)
        except ValueError as exc:
            raise AnswerError(item.id, str(exc)) from None
    if item.kind is Kind.TEXT:
        if not isinstance(value, str):
            raise AnswerError(item.id, f"expected text, got {value!r}")
        if item.max_length is not None and len(value) > item.max_length:
            raise AnswerError(item.id, f"longer than {item.max_length} characters")
        return value
    raise AssertionError(f"unhandled kind {item.kind}")  # pragma: no cover


def coerce_answers(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check typed answers and return them normalised (multi-selects as frozensets, Decimal temps).

    ``None`` means "left out" (the §3.8 (3) default applies). Raises ``AnswerError`` naming the
    item. A temperature needs both value and unit (§3.8 (14): no default unit).
    """
    if not isinstance(raw, Mapping):
        raise AnswerError("answers", f"expected a mapping of item id to answer, got {type(raw).__name__}")
    result: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in ITEMS:
            raise AnswerError(str(key), "unknown question id")
        if value is None:
            continue
        result[key] = _coerce_one(ITEMS[key], value)
    if "temp_value" in result and "temp_unit" not in result:
        raise AnswerError("temp_unit", "a temperature needs a unit, 'C' or 'F'")
    if "temp_unit" in result and "temp_value" not in result:
        raise AnswerError("temp_value", "a unit was given without a temperature")
    return result


def dump_answers(answers: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe form of typed answers (multi-selects as lists in option order, Decimal as str);
    ``coerce_answers`` reads it back unchanged."""
    result: dict[str, Any] = {}
    for key, value in answers.items():
        item = ITEMS[key]
        if item.kind is Kind.MULTI:
            result[key] = [o for o in item.option_values() if o in value]
        elif item.kind is Kind.DECIMAL and value is not None:
            result[key] = str(value)
        else:
            result[key] = value
    return result

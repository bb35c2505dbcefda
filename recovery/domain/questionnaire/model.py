"""The questionnaire's building blocks: kinds of answer, options, items, groups, form limits, errors and
the temperature conversion. The items themselves are data in `items`."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum
from fractions import Fraction
from types import MappingProxyType
from typing import Any


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

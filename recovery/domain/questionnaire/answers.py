"""Reading answers: raw form input for one screen (`parse_group`, patient-friendly messages) and typed
answers from case files and stored check-ins (`coerce_answers`, `AnswerError` naming the item)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from recovery.domain.questionnaire.form import _asked_items, _check_day, _page
from recovery.domain.questionnaire.items import ITEMS
from recovery.domain.questionnaire.model import (AnswerError, FieldError, FormLimits, Item, Kind, QuestionnaireError,
                                                 TEMP_CONFIRM_FIELD, _exact_decimal, celsius, field_error)


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

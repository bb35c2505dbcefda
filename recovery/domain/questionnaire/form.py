"""Which items a check-in asks: the screens of a section, the defaults, and `groups_for` by day and answers."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from recovery.domain.questionnaire.items import ITEMS, SCREENS, _ITEM_LIST, _SCREENS_BY_ID, _SECTIONS_BY_ID
from recovery.domain.questionnaire.model import FormLimits, Group, Item, Kind, QuestionnaireError


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

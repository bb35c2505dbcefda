"""Questionnaire (protocol.md §2.1): items, screens, branching, day limits, form parsing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from recovery.domain.questionnaire.answers import coerce_answers, dump_answers, parse_group, pending_temp_confirmation
from recovery.domain.questionnaire.form import DEFAULTS, groups_for, items_on, with_defaults
from recovery.domain.questionnaire.items import EMERGENCY_SECTION, ITEMS, SCREENS, SECTIONS
from recovery.domain.questionnaire.model import (AnswerError, celsius, FieldError, FormLimits, Kind,
                                                 QuestionnaireError, TEMP_CONFIRM_FIELD)


def asked_ids(day: int, weekly: bool = False, answers: dict[str, Any] | None = None, **kw: Any) -> list[str]:
    return [i for g in groups_for(day, weekly, answers or {}, **kw) for i in g.item_ids()]


def group_ids(day: int, weekly: bool = False, answers: dict[str, Any] | None = None, **kw: Any) -> list[str]:
    return [g.id for g in groups_for(day, weekly, answers or {}, **kw)]


# ------------------------------------------------------------------------ items ----


def test_every_protocol_item_is_defined() -> None:
    assert set(ITEMS) == {
        "back_pain", "site_pain", "pain_change", "new_pain_sites", "leg_pain", "rib_pain", "cardioresp",
        "neuro", "bladder_bowel", "temp_status", "temp_value", "temp_unit", "chills", "sepsis_screen",
        "wound", "dizzy", "confused_or_very_sleepy", "headache_upright", "nausea", "cannot_keep_fluids",
        "mobility", "meds_taken", "meds_more_than_told", "meds_control", "bowel_days", "fall",
        "call_request", "free_text", "brace_ok", "restrictions_ok",
    }


@pytest.mark.parametrize(
    ("item", "options"),
    [
        ("pain_change", ["much_better", "better", "same", "worse", "much_worse"]),
        ("new_pain_sites", ["sudden_severe_back", "ribs_or_side", "down_leg", "belly", "buttocks", "none"]),
        ("cardioresp", ["chest_pain", "short_of_breath", "coughing_blood", "heart_racing_or_irregular", "fainted", "none"]),
        ("neuro", ["numb_or_tingling_legs_feet", "numb_between_legs_or_bottom", "legs_weak_or_giving_way",
                   "cannot_move_a_leg", "none", "not_sure"]),
        ("bladder_bowel", ["no_change", "leaking_or_cannot_hold", "cannot_pass_urine", "cannot_feel_when_going", "not_sure"]),
        ("temp_status", ["measured", "feel_hot_or_shivery_not_measured", "feel_normal_not_measured"]),
        ("sepsis_screen", ["confused_or_slurred_speech", "extreme_shivering_or_muscle_pain", "no_urine_today",
                           "severe_breathlessness", "skin_mottled_blue_or_pale", "feel_like_going_to_die", "none"]),
        ("wound", ["normal", "redness_small", "redness_spreading", "swelling", "warm", "more_painful",
                   "pus_or_cloudy_fluid", "red_streaks", "bleeding_oozing", "bleeding_soaks_dressing", "wound_opened"]),
        ("dizzy", ["no", "a_little", "very_dizzy_or_faint"]),
        ("nausea", ["none", "nausea", "vomiting"]),
        ("mobility", ["as_usual_or_better", "less_than_yesterday", "need_more_help", "cannot_stand_or_walk"]),
        ("meds_taken", ["none", "paracetamol_acetaminophen", "ibuprofen_or_other_nsaid", "prescribed_opioid", "other"]),
        ("meds_control", ["yes", "partly", "no"]),
        ("temp_unit", ["C", "F"]),
    ],
)
def test_options_match_the_protocol(item: str, options: list[str]) -> None:
    assert list(ITEMS[item].option_values()) == options


JARGON = ("nsaid", "opioid", "urine", "cardio", "neuro", "sepsis", "mottled", "saddle", "cauda", "_")


def test_patient_labels_are_plain_words() -> None:
    for item in ITEMS.values():
        assert item.question
        for option in item.options:
            assert option.label
            assert not any(word in option.label.lower() for word in JARGON), (item.id, option.label)


def test_types_and_ranges() -> None:
    assert (ITEMS["back_pain"].kind, ITEMS["back_pain"].minimum, ITEMS["back_pain"].maximum) == (Kind.INT, 0, 10)
    assert (ITEMS["bowel_days"].minimum, ITEMS["bowel_days"].maximum) == (0, 14)
    assert ITEMS["free_text"].max_length == 500 and not ITEMS["free_text"].required
    assert ITEMS["temp_value"].kind is Kind.DECIMAL
    assert "photo" not in (ITEMS["wound"].hint or "")  # no upload yet: do not promise one
    assert "10 minutes" in (ITEMS["wound"].hint or "")


def test_defaults_are_the_left_out_answers_of_3_8() -> None:
    assert DEFAULTS["cardioresp"] == DEFAULTS["neuro"] == DEFAULTS["new_pain_sites"] == frozenset({"none"})
    assert DEFAULTS["sepsis_screen"] == DEFAULTS["meds_taken"] == frozenset({"none"})
    assert DEFAULTS["wound"] == frozenset({"normal"})
    assert (DEFAULTS["pain_change"], DEFAULTS["temp_status"], DEFAULTS["meds_control"]) == (
        "same", "feel_normal_not_measured", "yes")
    assert (DEFAULTS["dizzy"], DEFAULTS["nausea"], DEFAULTS["bladder_bowel"], DEFAULTS["mobility"]) == (
        "no", "none", "no_change", "as_usual_or_better")
    for boolean in ("chills", "fall", "call_request", "meds_more_than_told", "cannot_keep_fluids",
                    "confused_or_very_sleepy", "headache_upright", "brace_ok", "restrictions_ok"):
        assert DEFAULTS[boolean] is False
    for number in ("back_pain", "site_pain", "leg_pain", "rib_pain", "bowel_days", "temp_value", "temp_unit"):
        assert DEFAULTS[number] is None
    assert with_defaults({"dizzy": "a_little"})["dizzy"] == "a_little"


# ----------------------------------------------------------------------- screens ----


def test_emergency_questions_come_first() -> None:
    assert SECTIONS[0] is EMERGENCY_SECTION and EMERGENCY_SECTION.emergency
    assert EMERGENCY_SECTION.item_ids() == ("cardioresp", "neuro", "bladder_bowel")
    for day in (0, 3, 10, 21, 90):
        assert group_ids(day, weekly=day >= 14)[:3] == ["cardioresp", "neuro", "bladder_bowel"]
    assert sum(g.emergency for g in SECTIONS) == 1
    assert [g.id for g in SCREENS if g.emergency] == ["cardioresp", "neuro", "bladder_bowel"]


def test_screen_order_one_question_each() -> None:
    answers = {"new_pain_sites": frozenset({"down_leg"}), "chills": True, "temp_status": "measured",
               "meds_taken": frozenset({"prescribed_opioid"})}
    screens = groups_for(3, False, answers)
    assert [g.id for g in screens] == [
        "cardioresp", "neuro", "bladder_bowel", "back_pain", "pain_change", "new_pain_sites", "leg_pain",
        "temp_status", "temp_value", "chills", "sepsis_screen", "wound", "site_pain", "dizzy",
        "confused_or_very_sleepy", "headache_upright", "nausea", "cannot_keep_fluids", "mobility", "meds_taken",
        "meds_more_than_told",
        "meds_control", "bowel_days", "fall", "call_request", "free_text"]
    # one question each; the temperature and its unit are one question with two answers
    assert {g.id: g.item_ids() for g in screens if len(g.items) > 1} == {"temp_value": ("temp_value", "temp_unit")}
    # the section a screen belongs to gives its caption, in the old screen order
    sections = list(dict.fromkeys(g.section for g in screens))
    assert sections == ["emergency", "pain", "pain_detail", "temperature", "sepsis", "wound", "feel",
                        "medicines", "bowels", "other"]
    assert {g.title for g in screens if g.section == "pain"} == {"Your pain"}


def test_every_item_is_on_exactly_one_screen_and_one_section() -> None:
    assert sorted(i for g in SCREENS for i in g.item_ids()) == sorted(ITEMS)
    assert sorted(i for g in SECTIONS for i in g.item_ids()) == sorted(ITEMS)
    assert items_on("pain") == ("back_pain", "pain_change", "new_pain_sites")
    assert items_on("pain_change") == ("pain_change",)
    # "wound" is a screen and a section: the posted fields tell which page sent them
    assert items_on("wound", {"wound": ["normal"]}) == ("wound",)
    assert items_on("wound", {"wound": ["normal"], "site_pain": "2"}) == ("wound", "site_pain")
    with pytest.raises(QuestionnaireError):
        items_on("nope")


def test_short_wording_on_screens_and_the_first_checkin_compares_with_before_the_procedure() -> None:
    def prompt(item: str, **kw: Any) -> str:
        return next(i for g in groups_for(1, False, {}, **kw) for i in g.items if i.id == item).prompt
    assert prompt("pain_change") == "Is your back pain better or worse than at your last check-in?"
    assert prompt("pain_change", first_checkin=True) == "Is your back pain better or worse than before the procedure?"
    assert prompt("back_pain") == "How bad is your back pain right now?"
    for screen in groups_for(1, False, {}, first_checkin=True):
        for item in screen.items:
            assert len(item.prompt) <= 95, (item.id, item.prompt)
    # the record keeps the protocol's wording
    assert ITEMS["pain_change"].question.startswith("Compared with your last check-in (or with before the procedure")


@pytest.mark.parametrize(
    ("item", "day", "weekly", "asked"),
    [
        ("back_pain", 90, False, True),
        ("site_pain", 14, True, True),
        ("site_pain", 15, False, False),
        ("site_pain", 21, True, False),
        ("wound", 14, False, True),
        ("wound", 21, True, False),
        ("temp_status", 14, False, True),
        ("temp_status", 15, False, False),
        ("temp_status", 21, True, True),
        ("chills", 14, False, True),
        ("chills", 21, True, False),
        ("confused_or_very_sleepy", 7, False, True),
        ("confused_or_very_sleepy", 8, False, False),
        ("headache_upright", 7, False, True),
        ("headache_upright", 10, False, False),
        ("nausea", 3, False, True),
        ("nausea", 4, False, False),
        ("cannot_keep_fluids", 0, False, True),
        ("cannot_keep_fluids", 4, False, False),
        ("brace_ok", 14, True, True),
        ("brace_ok", 5, False, False),
        ("restrictions_ok", 21, True, True),
        ("restrictions_ok", 10, False, False),
        ("call_request", 0, False, True),
        ("free_text", 42, True, True),
    ],
)
def test_day_limits(item: str, day: int, weekly: bool, asked: bool) -> None:
    assert (item in asked_ids(day, weekly)) is asked


def test_brace_only_when_prescribed() -> None:
    assert "brace_ok" not in asked_ids(14, True, brace_prescribed=False)
    assert "restrictions_ok" in asked_ids(14, True, brace_prescribed=False)


@pytest.mark.parametrize(
    ("answers", "leg", "rib"),
    [
        ({}, False, False),
        ({"new_pain_sites": frozenset({"down_leg"})}, True, False),
        ({"new_pain_sites": frozenset({"ribs_or_side"})}, False, True),
        ({"new_pain_sites": frozenset({"ribs_or_side", "down_leg"})}, True, True),
        ({"new_pain_sites": frozenset({"none"})}, False, False),
    ],
)
def test_leg_and_rib_pain_branching(answers: dict[str, Any], leg: bool, rib: bool) -> None:
    ids = asked_ids(1, answers=answers)
    assert ("leg_pain" in ids, "rib_pain" in ids) == (leg, rib)


@pytest.mark.parametrize(
    ("answers", "asked"),
    [
        ({}, False),
        ({"temp_status": "measured", "temp_value": Decimal("38.0"), "temp_unit": "C"}, True),
        ({"temp_status": "measured", "temp_value": Decimal("37.9"), "temp_unit": "C"}, False),
        ({"temp_status": "measured", "temp_value": Decimal("100.4"), "temp_unit": "F"}, True),
        ({"temp_status": "measured", "temp_value": Decimal("100.3"), "temp_unit": "F"}, False),
        ({"temp_status": "feel_hot_or_shivery_not_measured"}, True),
        ({"temp_status": "feel_normal_not_measured"}, False),
        ({"temp_status": "feel_normal_not_measured", "chills": True}, True),
        ({"chills": False}, False),
    ],
)
def test_sepsis_screen_only_after_fever_or_chills(answers: dict[str, Any], asked: bool) -> None:
    assert ("sepsis_screen" in asked_ids(2, answers=answers)) is asked


def test_sepsis_trigger_uses_the_rule_set_fever() -> None:
    answers = {"temp_status": "measured", "temp_value": Decimal("37.8"), "temp_unit": "C"}
    assert "sepsis_screen" in asked_ids(2, answers=answers, limits=FormLimits(fever_c=Decimal("37.8")))


@pytest.mark.parametrize(
    ("day", "meds", "asked"),
    [(1, {"prescribed_opioid"}, False), (2, {"prescribed_opioid"}, True), (14, {"prescribed_opioid"}, True),
     (15, {"prescribed_opioid"}, False), (5, {"paracetamol_acetaminophen"}, False), (5, None, False)],
)
def test_bowel_days_only_days_2_to_14_on_opioid(day: int, meds: set[str] | None, asked: bool) -> None:
    answers = {"meds_taken": frozenset(meds)} if meds else {}
    assert ("bowel_days" in asked_ids(day, answers=answers)) is asked


def test_temperature_value_asked_on_its_own_screen_once_measured() -> None:
    assert "temp_value" not in asked_ids(1)
    assert "temp_value" in asked_ids(1, answers={"temp_status": "measured"})
    assert "temp_value" in asked_ids(21, True, answers={"temp_status": "measured"})
    assert "temp_value" not in asked_ids(1, answers={"temp_status": "feel_normal_not_measured"})


def test_groups_for_rejects_bad_day() -> None:
    with pytest.raises(QuestionnaireError):
        groups_for(-1, False, {})


# ------------------------------------------------------------------------ parsing ----

EMERGENCY_OK = {"cardioresp": ["none"], "neuro": ["none"], "bladder_bowel": "no_change"}


def test_parse_emergency_screen() -> None:
    answers, errors = parse_group("emergency", {"cardioresp": ["chest_pain", "fainted"], "neuro": ["not_sure"],
                                                "bladder_bowel": "no_change"}, 1)
    assert errors == {}
    assert answers == {"cardioresp": frozenset({"chest_pain", "fainted"}), "neuro": frozenset({"not_sure"}),
                       "bladder_bowel": "no_change"}


@pytest.mark.parametrize(
    ("form", "item", "message"),
    [
        ({**EMERGENCY_OK, "cardioresp": ["none", "chest_pain"]}, "cardioresp",
         "You ticked “None of these” and another answer. Please untick one of them."),
        ({**EMERGENCY_OK, "neuro": ["none", "not_sure"]}, "neuro", "Please untick one of them."),
        ({**EMERGENCY_OK, "cardioresp": []}, "cardioresp", "Please tick at least one answer. If none apply, tick “None of these”."),
        ({k: v for k, v in EMERGENCY_OK.items() if k != "neuro"}, "neuro", "Please tick at least one answer."),
        ({**EMERGENCY_OK, "cardioresp": ["hiccups"]}, "cardioresp", "Please choose from the answers shown."),
        ({**EMERGENCY_OK, "bladder_bowel": ""}, "bladder_bowel", "Please choose one answer."),
        ({**EMERGENCY_OK, "bladder_bowel": ["no_change", "not_sure"]}, "bladder_bowel", "Please choose only one answer."),
    ],
)
def test_emergency_screen_errors(form: dict[str, Any], item: str, message: str) -> None:
    answers, errors = parse_group("emergency", form, 1)
    assert list(errors) == [item]
    assert message in errors[item]
    assert item not in answers


def test_neuro_not_sure_with_a_symptom_is_allowed() -> None:
    answers, errors = parse_group("emergency", {**EMERGENCY_OK, "neuro": ["not_sure", "legs_weak_or_giving_way"]}, 1)
    assert errors == {} and answers["neuro"] == {"not_sure", "legs_weak_or_giving_way"}


def test_wound_normal_cannot_be_ticked_with_a_problem() -> None:
    _, errors = parse_group("wound", {"wound": ["normal", "warm"], "site_pain": "2"}, 1)
    assert errors["wound"] == "You ticked “It looks normal” and another answer. Please untick one of them."


@pytest.mark.parametrize("value", ["", "11", "-1", "3.5", "five", "10 "])
def test_pain_scale_message(value: str) -> None:
    answers, errors = parse_group("pain", {"back_pain": value, "pain_change": "same", "new_pain_sites": "none"}, 1)
    if value == "10 ":
        assert errors == {} and answers["back_pain"] == 10
    else:
        assert errors == {"back_pain": "Please choose a number from 0 to 10."}


def test_pain_screen() -> None:
    answers, errors = parse_group("pain", {"back_pain": "0", "pain_change": "much_worse",
                                           "new_pain_sites": ["down_leg", "belly"]}, 1)
    assert errors == {}
    assert answers == {"back_pain": 0, "pain_change": "much_worse", "new_pain_sites": frozenset({"down_leg", "belly"})}


def test_pain_detail_screen_reads_only_the_asked_scales() -> None:
    so_far = {"new_pain_sites": frozenset({"down_leg"})}
    answers, errors = parse_group("pain_detail", {"leg_pain": "8", "rib_pain": "99"}, 1, answers_so_far=so_far)
    assert errors == {} and answers == {"leg_pain": 8}


def test_bowel_days_message() -> None:
    so_far = {"meds_taken": frozenset({"prescribed_opioid"})}
    _, errors = parse_group("bowels", {"bowel_days": "15"}, 3, answers_so_far=so_far)
    assert errors == {"bowel_days": "Please enter a whole number from 0 to 14."}
    answers, errors = parse_group("bowels", {"bowel_days": "3"}, 3, answers_so_far=so_far)
    assert answers == {"bowel_days": 3} and errors == {}


@pytest.mark.parametrize(("raw", "value"), [("yes", True), ("no", False), ("Yes", True), ("true", True), (["no"], False)])
def test_yes_no(raw: Any, value: bool) -> None:
    form = {"fall": raw, "call_request": "no"}
    answers, errors = parse_group("other", form, 1)
    assert errors == {} and answers["fall"] is value


@pytest.mark.parametrize("raw", [None, "", "maybe", []])
def test_yes_no_required(raw: Any) -> None:
    form = {"call_request": "no"} if raw is None else {"fall": raw, "call_request": "no"}
    _, errors = parse_group("other", form, 1)
    assert errors == {"fall": "Please choose Yes or No."}


def test_free_text_is_optional_and_limited() -> None:
    answers, errors = parse_group("other", {"fall": "no", "call_request": "no", "free_text": "  "}, 1)
    assert errors == {} and "free_text" not in answers
    answers, errors = parse_group("other", {"fall": "no", "call_request": "no", "free_text": "x" * 500}, 1)
    assert errors == {} and len(answers["free_text"]) == 500
    _, errors = parse_group("other", {"fall": "no", "call_request": "no", "free_text": "x" * 501}, 1)
    assert errors == {"free_text": "Please keep this to 500 characters or fewer (you have 501)."}


def test_weekly_other_screen() -> None:
    form = {"fall": "no", "call_request": "no", "brace_ok": "yes", "restrictions_ok": "no"}
    answers, errors = parse_group("other", form, 21, weekly=True)
    assert errors == {} and (answers["brace_ok"], answers["restrictions_ok"]) == (True, False)
    _, errors = parse_group("other", {"fall": "no", "call_request": "no"}, 21, weekly=True)
    assert set(errors) == {"brace_ok", "restrictions_ok"}


def test_parse_rejects_groups_not_asked() -> None:
    with pytest.raises(QuestionnaireError, match="unknown question group"):
        parse_group("nope", {}, 1)
    with pytest.raises(QuestionnaireError, match="not asked on day 21"):
        parse_group("wound", {"wound": "normal"}, 21)
    with pytest.raises(QuestionnaireError, match="not asked"):
        parse_group("sepsis", {"sepsis_screen": "none"}, 1)


# -------------------------------------------------------------------- temperature ----


def temp_form(value: str | None, unit: str | None = "C", **more: str) -> dict[str, Any]:
    form: dict[str, Any] = {"temp_status": "measured", "chills": "no", **more}
    if value is not None:
        form["temp_value"] = value
    if unit is not None:
        form["temp_unit"] = unit
    return form


@pytest.mark.parametrize(
    ("value", "unit", "expected_c"),
    [("100.4", "F", "38.0"), ("100.3", "F", "37.9"), ("100.31", "F", "38.0"), ("99.4", "F", "37.4"),
     ("95.09", "F", "35.1"), ("95.08", "F", "35.0"), ("37.95", "C", "38.0"), ("37.94", "C", "37.9"),
     ("37,8", "C", "37.8"), ("98.6", "f", "37.0"), ("38", "°C", "38.0")],
)
def test_temperature_conversion(value: str, unit: str, expected_c: str) -> None:
    answers, errors = parse_group("temperature", temp_form(value, unit), 1)
    assert errors == {}
    assert celsius(answers["temp_value"], answers["temp_unit"]) == Decimal(expected_c)


def test_celsius_half_up_and_type_handling() -> None:
    assert celsius(100.31, "F") == Decimal("38.0")  # float input: the typed digits, not binary noise
    assert celsius(Decimal("95.09"), "F") == Decimal("35.1")
    assert celsius(37, "C") == Decimal("37.0")
    assert str(celsius("37.25", "C")) == "37.3"
    with pytest.raises(ValueError):
        celsius(True, "C")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        celsius("37", "K")


@pytest.mark.parametrize(
    ("form", "item", "message"),
    [
        (temp_form(None), "temp_value", "Please enter your highest temperature, for example 37.8."),
        (temp_form("hot"), "temp_value", "Please enter the temperature as a number, for example 37.8 or 100.2."),
        (temp_form("38", None), "temp_unit", "Please choose °C or °F."),
        (temp_form("38", "K"), "temp_unit", "Please choose from the answers shown."),
        ({"chills": "no"}, "temp_status", "Please choose one answer."),
    ],
)
def test_temperature_errors(form: dict[str, Any], item: str, message: str) -> None:
    _, errors = parse_group("temperature", form, 1)
    assert errors == {item: message}


def test_temperature_ignored_when_not_measured() -> None:
    form = {"temp_status": "feel_normal_not_measured", "temp_value": "12", "temp_unit": "", "chills": "no"}
    answers, errors = parse_group("temperature", form, 1)
    assert errors == {} and answers == {"temp_status": "feel_normal_not_measured", "chills": False}


def test_implausible_temperature_recheck_flow() -> None:
    answers, errors = parse_group("temperature", temp_form("93.1", "F"), 1)
    assert list(errors) == ["temp_value"]
    error = errors["temp_value"]
    assert isinstance(error, FieldError) and error.code == "temp_recheck"
    assert "93.1 °F" in error and "check your thermometer" in error
    assert "temp_value" not in answers
    token = pending_temp_confirmation(errors)
    assert token == "93.1 °F"

    # Second entry, same value, with the hidden confirmation: accepted (U23 applies in triage).
    answers, errors = parse_group("temperature", temp_form("93.1", "F", **{TEMP_CONFIRM_FIELD: token}), 1)
    assert errors == {} and answers["temp_value"] == Decimal("93.1")

    # Second entry after re-checking gives a plausible number: accepted as normal.
    answers, errors = parse_group("temperature", temp_form("97.1", "F", **{TEMP_CONFIRM_FIELD: token}), 1)
    assert errors == {} and answers["temp_value"] == Decimal("97.1")


@pytest.mark.parametrize(("value", "flagged"), [("33.9", True), ("34.0", False), ("43.0", False), ("43.05", True), ("25", True)])
def test_plausible_range_edges(value: str, flagged: bool) -> None:
    _, errors = parse_group("temperature", temp_form(value), 1)
    assert (pending_temp_confirmation(errors) is not None) is flagged


def test_no_recheck_prompt_for_other_errors() -> None:
    assert pending_temp_confirmation({"temp_value": FieldError("x")}) is None
    assert pending_temp_confirmation({}) is None


# ----------------------------------------------------------------- typed answers ----


def test_coerce_and_dump_round_trip() -> None:
    typed = coerce_answers({"neuro": ["not_sure", "numb_or_tingling_legs_feet"], "temp_status": "measured",
                            "temp_value": 37.95, "temp_unit": "C", "back_pain": 3, "fall": False, "leg_pain": None})
    assert typed["neuro"] == frozenset({"not_sure", "numb_or_tingling_legs_feet"})
    assert typed["temp_value"] == Decimal("37.95") and "leg_pain" not in typed
    dumped = dump_answers(typed)
    assert dumped["neuro"] == ["numb_or_tingling_legs_feet", "not_sure"]  # option order
    assert dumped["temp_value"] == "37.95"
    assert coerce_answers(dumped) == typed


@pytest.mark.parametrize(
    ("raw", "item", "problem"),
    [
        ({"wound": ["redish"]}, "wound", "unknown option 'redish'"),
        ({"dizzy": False}, "dizzy", "expected one of no, a_little, very_dizzy_or_faint"),
        ({"bowel_days": 15}, "bowel_days", "15 is outside 0-14"),
        ({"meds_taken": ["none", "other"]}, "meds_taken", "'none' cannot be ticked with other options"),
        ({"free_text": "x" * 501}, "free_text", "longer than 500 characters"),
        ({"temp_unit": "C"}, "temp_value", "a unit was given without a temperature"),
        ({"shoe_size": 9}, "shoe_size", "unknown question id"),
    ],
)
def test_coerce_errors_name_the_item(raw: dict[str, Any], item: str, problem: str) -> None:
    with pytest.raises(AnswerError) as exc:
        coerce_answers(raw)
    assert exc.value.item == item and problem in exc.value.problem


# ------------------------------------------------- one question per screen changes no coding ----

SECTION_FORMS = [  # raw form values per section, as a whole-section page posted them
    {"emergency": {"cardioresp": ["chest_pain", "fainted"], "neuro": ["not_sure"], "bladder_bowel": "not_sure"},
     "pain": {"back_pain": "7", "pain_change": "worse", "new_pain_sites": ["down_leg", "ribs_or_side"]},
     "pain_detail": {"leg_pain": "8", "rib_pain": "3"},
     "temperature": {"temp_status": "measured", "temp_value": "100,6", "temp_unit": "°f", "chills": "yes"},
     "sepsis": {"sepsis_screen": ["no_urine_today"]},
     "wound": {"wound": ["warm", "swelling"], "site_pain": "4"},
     "feel": {"dizzy": "a_little", "confused_or_very_sleepy": "no", "headache_upright": "yes", "nausea": "vomiting",
              "cannot_keep_fluids": "no", "mobility": "need_more_help"},
     "medicines": {"meds_taken": ["prescribed_opioid", "other"], "meds_more_than_told": "yes", "meds_control": "partly"},
     "bowels": {"bowel_days": "4"},
     "other": {"fall": "no", "brace_ok": "yes", "restrictions_ok": "no", "call_request": "yes", "free_text": "hi"}},
    {"emergency": EMERGENCY_OK,
     "pain": {"back_pain": "0", "pain_change": "much_better", "new_pain_sites": ["none"]},
     "temperature": {"temp_status": "feel_normal_not_measured", "temp_value": "39", "temp_unit": "C", "chills": "no"},
     "wound": {"wound": ["normal"], "site_pain": "0"},
     "feel": {"dizzy": "no", "confused_or_very_sleepy": "no", "headache_upright": "no", "nausea": "none",
              "cannot_keep_fluids": "no", "mobility": "as_usual_or_better"},
     "medicines": {"meds_taken": ["none"], "meds_more_than_told": "no", "meds_control": "yes"},
     "other": {"fall": "yes", "brace_ok": "no", "restrictions_ok": "yes", "call_request": "no", "free_text": ""}},
]


@pytest.mark.parametrize("forms", SECTION_FORMS, ids=["everything", "calm"])
@pytest.mark.parametrize(("day", "weekly"), [(2, False), (14, True)])
def test_screen_by_screen_gives_the_same_answers_as_whole_sections(forms, day: int, weekly: bool) -> None:
    by_section: dict[str, Any] = {}
    for section in SECTIONS:
        if section.id in forms and section.id in {g.section for g in groups_for(day, weekly, by_section)}:
            answers, errors = parse_group(section.id, forms[section.id], day, weekly=weekly, answers_so_far=by_section)
            assert errors == {}, (section.id, errors)
            by_section.update(answers)
    by_screen: dict[str, Any] = {}
    done: list[str] = []
    while (screen := next((g for g in groups_for(day, weekly, by_screen) if g.id not in done), None)) is not None:
        answers, errors = parse_group(screen.id, forms[screen.section], day, weekly=weekly, answers_so_far=by_screen)
        assert errors == {}, (screen.id, errors)
        by_screen.update(answers)
        done.append(screen.id)
    assert by_screen == by_section
    assert dump_answers(by_screen) == dump_answers(by_section)

"""The check-in's items, sections and screens (protocol.md §2.1), as data: a table for clinicians to review."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from recovery.domain.questionnaire.model import AskedIf, FormLimits, Group, Item, Kind, Option, celsius


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

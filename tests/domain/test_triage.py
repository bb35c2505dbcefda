"""Rules engine (protocol.md §3): every rule, its edges, MR1/MR3, §3.8 clarifications, rule-set loading."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from recovery.domain.triage import (
    PATIENT_MESSAGES,
    RULES,
    Acknowledgement,
    Baseline,
    Level,
    PastCheckin,
    RulesetError,
    TriageInputError,
    assess,
    assess_partial,
    patient_message,
)
from recovery.files.rulesets import load_ruleset

ROOT = Path(__file__).resolve().parents[2]
RULESET_FILE = ROOT / "schedules" / "rulesets" / "va-recovery.toml"
RS = load_ruleset(RULESET_FILE)


def run(
    answers: dict[str, Any],
    hours: float = 30,
    *,
    b: int | None = None,
    history: list[tuple[float, dict[str, Any]]] = (),  # type: ignore[assignment]
    acks: list[tuple[str, float]] = (),  # type: ignore[assignment]
    disposition: str = "reviewed_expected",
    ruleset=RS,
):
    return assess(
        answers,
        hours=hours,
        baseline=Baseline(back_pain=b),
        history=[PastCheckin(h, a) for h, a in history],
        acknowledgements=[Acknowledgement(r, h, disposition) for r, h in acks],
        ruleset=ruleset,
    )


def fired(*args: Any, **kwargs: Any) -> set[str]:
    return set(run(*args, **kwargs).rule_ids)


def temp(value: Any, unit: str = "C", **more: Any) -> dict[str, Any]:
    return {"back_pain": 2, "temp_status": "measured", "temp_value": value, "temp_unit": unit, **more}


# (description, answers, kwargs, rule, fires?) — each rule with at least one firing and one edge.
CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, bool]] = [
    # --- EMERGENCY ---
    ("chest pain", {"cardioresp": ["chest_pain"]}, {}, "E1", True),
    ("no chest pain", {"cardioresp": ["none"]}, {}, "E1", False),
    ("breathless", {"cardioresp": ["short_of_breath"]}, {}, "E2", True),
    ("breathless on day 4", {"cardioresp": ["short_of_breath"]}, {"hours": 98}, "E2", True),
    ("coughing blood", {"cardioresp": ["coughing_blood"]}, {}, "E3", True),
    ("fainted", {"cardioresp": ["fainted"]}, {}, "E4", True),
    ("palpitations + very dizzy", {"cardioresp": ["heart_racing_or_irregular"], "dizzy": "very_dizzy_or_faint"}, {}, "E5", True),
    ("palpitations + a little dizzy", {"cardioresp": ["heart_racing_or_irregular"], "dizzy": "a_little"}, {}, "E5", False),
    ("palpitations alone", {"cardioresp": ["heart_racing_or_irregular"]}, {}, "E5", False),
    ("palpitations + fainted", {"cardioresp": ["heart_racing_or_irregular", "fainted"]}, {}, "E5", True),
    ("palpitations + coughing blood", {"cardioresp": ["heart_racing_or_irregular", "coughing_blood"]}, {}, "E5", True),
    ("very dizzy without palpitations", {"dizzy": "very_dizzy_or_faint"}, {}, "E5", False),
    ("leaking", {"bladder_bowel": "leaking_or_cannot_hold"}, {}, "E6", True),
    ("cannot pass urine", {"bladder_bowel": "cannot_pass_urine"}, {}, "E6", True),
    ("cannot feel", {"bladder_bowel": "cannot_feel_when_going"}, {}, "E6", True),
    ("bladder not sure (MR4)", {"bladder_bowel": "not_sure"}, {}, "E6", True),
    ("saddle numbness", {"neuro": ["numb_between_legs_or_bottom"]}, {}, "E6", True),
    ("bladder no change", {"bladder_bowel": "no_change"}, {}, "E6", False),
    ("leg numbness is not E6", {"neuro": ["numb_or_tingling_legs_feet"]}, {}, "E6", False),
    ("cannot move a leg", {"neuro": ["cannot_move_a_leg"]}, {}, "E7", True),
    ("neuro not sure is not E7", {"neuro": ["not_sure"]}, {}, "E7", False),
    ("weak legs", {"neuro": ["legs_weak_or_giving_way"]}, {}, "E8", True),
    ("not sure is not E8", {"neuro": ["not_sure"]}, {}, "E8", False),
    ("numb + leg pain 7", {"neuro": ["numb_or_tingling_legs_feet"], "new_pain_sites": ["down_leg"], "leg_pain": 7}, {}, "E9", True),
    ("numb + leg pain 6", {"neuro": ["numb_or_tingling_legs_feet"], "new_pain_sites": ["down_leg"], "leg_pain": 6}, {}, "E9", False),
    ("not sure + leg pain 10", {"neuro": ["not_sure"], "new_pain_sites": ["down_leg"], "leg_pain": 10}, {}, "E9", True),
    ("numb, leg pain missing", {"neuro": ["numb_or_tingling_legs_feet"]}, {}, "E9", False),
    ("leg pain 9 without numbness", {"new_pain_sites": ["down_leg"], "leg_pain": 9}, {}, "E9", False),
    ("fever + sepsis item", temp(38.0, sepsis_screen=["no_urine_today"]), {}, "E10", True),
    ("37.9 + sepsis item", temp(37.9, sepsis_screen=["no_urine_today"]), {}, "E10", False),
    ("chills + sepsis item", {"chills": True, "sepsis_screen": ["severe_breathlessness"]}, {}, "E10", True),
    ("feel hot + sepsis item", {"temp_status": "feel_hot_or_shivery_not_measured", "sepsis_screen": ["feel_like_going_to_die"]}, {}, "E10", True),
    ("fever + sepsis none", temp(39.0, sepsis_screen=["none"]), {}, "E10", False),
    ("sepsis item without fever", {"sepsis_screen": ["skin_mottled_blue_or_pale"]}, {}, "E10", False),
    ("confused or sleepy", {"confused_or_very_sleepy": True}, {}, "E11", True),
    ("not confused", {"confused_or_very_sleepy": False}, {}, "E11", False),
    ("bleeding soaks dressing", {"wound": ["bleeding_soaks_dressing"]}, {}, "E12", True),
    ("oozing is not E12", {"wound": ["bleeding_oozing"]}, {}, "E12", False),
    # --- URGENT: temperature ---
    ("38.0 C", temp(38.0), {}, "U1", True),
    ("37.9 C", temp(37.9), {}, "U1", False),
    ("37.95 C rounds to 38.0", temp(37.95), {}, "U1", True),
    ("37.94 C rounds to 37.9", temp(37.94), {}, "U1", False),
    ("100.4 F", temp(100.4, "F"), {}, "U1", True),
    ("100.3 F", temp(100.3, "F"), {}, "U1", False),
    ("100.31 F = 37.95 exactly", temp(100.31, "F"), {}, "U1", True),
    ("temperature as text from storage", temp("38.0"), {}, "U1", True),
    ("temperature as Decimal", temp(Decimal("38.0")), {}, "U1", True),
    ("feel hot, not measured", {"temp_status": "feel_hot_or_shivery_not_measured"}, {}, "U2", True),
    ("chills with normal temperature", temp(36.9, chills=True), {}, "U2", True),
    ("feel normal", {"temp_status": "feel_normal_not_measured"}, {}, "U2", False),
    ("high temperature alone is not U2", temp(39.0), {}, "U2", False),
    ("35.0 C", temp(35.0), {}, "U22", True),
    ("35.1 C", temp(35.1), {}, "U22", False),
    ("35.04 C rounds to 35.0", temp(35.04), {}, "U22", True),
    ("35.05 C rounds to 35.1", temp(35.05), {}, "U22", False),
    ("95.0 F", temp(95.0, "F"), {}, "U22", True),
    ("95.09 F = 35.05 exactly", temp(95.09, "F"), {}, "U22", False),
    ("33.9 C", temp(33.9), {}, "U23", True),
    ("34.0 C", temp(34.0), {}, "U23", False),
    ("43.0 C", temp(43.0), {}, "U23", False),
    ("43.05 C rounds to 43.1", temp(43.05), {}, "U23", True),
    ("93.1 F = 33.94", temp(93.1, "F"), {}, "U23", True),
    # --- URGENT: wound ---
    *[(f"wound {w}", {"wound": [w]}, {}, "U3", True)
      for w in ("redness_spreading", "swelling", "warm", "more_painful", "pus_or_cloudy_fluid",
                "red_streaks", "wound_opened", "bleeding_oozing")],
    ("wound small redness", {"wound": ["redness_small"]}, {}, "U3", False),
    ("wound normal", {"wound": ["normal"]}, {}, "U3", False),
    ("site pain 7 at exactly 72 h (day 3)", {"site_pain": 7}, {"hours": 72}, "U3b", True),
    ("site pain 7 on day 2", {"site_pain": 7}, {"hours": 71.9}, "U3b", False),
    ("site pain 6 on day 3", {"site_pain": 6}, {"hours": 80}, "U3b", False),
    ("U4: unbroken run of 72 h", {"wound": ["redness_small"]}, {"hours": 98, "history": [(26, {"wound": ["redness_small"]})]}, "U4", True),
    ("U4: run of 71 h", {"wound": ["redness_small"]}, {"hours": 98, "history": [(27, {"wound": ["redness_small"]})]}, "U4", False),
    ("U4: first report", {"wound": ["redness_small"]}, {"hours": 98}, "U4", False),
    # --- URGENT: neuro ---
    ("new numbness", {"neuro": ["numb_or_tingling_legs_feet"]}, {}, "U5", True),
    ("numbness + leg pain 6", {"neuro": ["numb_or_tingling_legs_feet"], "new_pain_sites": ["down_leg"], "leg_pain": 6}, {}, "U5", True),
    ("numbness + leg pain 7 is E9 not U5", {"neuro": ["numb_or_tingling_legs_feet"], "new_pain_sites": ["down_leg"], "leg_pain": 7}, {}, "U5", False),
    ("numbness + weakness is E8 not U5", {"neuro": ["numb_or_tingling_legs_feet", "legs_weak_or_giving_way"]}, {}, "U5", False),
    ("not sure counts as numbness (MR4)", {"neuro": ["not_sure"]}, {}, "U5", True),
    ("no neuro", {"neuro": ["none"]}, {}, "U5", False),
    ("shooting leg pain", {"new_pain_sites": ["down_leg"]}, {}, "U6", True),
    ("buttock pain is not U6", {"new_pain_sites": ["buttocks"]}, {}, "U6", False),
    # --- URGENT: pain ---
    ("P 10 in the first hours", {"back_pain": 10}, {"hours": 2, "b": 10}, "U7", True),
    ("P 9 at 47.9 h", {"back_pain": 9}, {"hours": 47.9, "b": 9}, "U7", False),
    ("P 7 at exactly 48 h", {"back_pain": 7}, {"hours": 48}, "U7", True),
    ("P 6 at 60 h", {"back_pain": 6}, {"hours": 60}, "U7", False),
    ("U8: P 4 > B 5 - 2 at 48 h", {"back_pain": 4}, {"hours": 48, "b": 5}, "U8", True),
    ("U8: P 4 = B 6 - 2", {"back_pain": 4}, {"hours": 48, "b": 6}, "U8", False),
    ("U8: P 3 below the moderate floor", {"back_pain": 3}, {"hours": 60, "b": 2}, "U8", False),
    ("U8: before 48 h", {"back_pain": 6}, {"hours": 47.99, "b": 6}, "U8", False),
    ("U8: B missing, P >= P_first", {"back_pain": 5}, {"hours": 50, "history": [(26, {"back_pain": 5})]}, "U8", True),
    ("U8: B missing, P < P_first", {"back_pain": 4}, {"hours": 50, "history": [(26, {"back_pain": 5})]}, "U8", False),
    ("U8: P_first ignores h < 12", {"back_pain": 4}, {"hours": 50, "history": [(11.9, {"back_pain": 2}), (26, {"back_pain": 6})]}, "U8", False),
    ("U8: P_first at exactly 12 h", {"back_pain": 4}, {"hours": 50, "history": [(12, {"back_pain": 4}), (26, {"back_pain": 6})]}, "U8", True),
    ("U8: P_first skips a check-in without back_pain", {"back_pain": 4}, {"hours": 50, "history": [(14, {}), (26, {"back_pain": 5})]}, "U8", False),
    ("U9: +3 on the previous", {"back_pain": 5}, {"history": [(26, {"back_pain": 2})]}, "U9", True),
    ("U9: +2 on the previous", {"back_pain": 4}, {"history": [(26, {"back_pain": 2})]}, "U9", False),
    ("U9: much worse", {"back_pain": 2, "pain_change": "much_worse"}, {}, "U9", True),
    ("U9: worse is not much worse", {"back_pain": 2, "pain_change": "worse"}, {}, "U9", False),
    ("U9: sudden severe back pain", {"back_pain": 2, "new_pain_sites": ["sudden_severe_back"]}, {}, "U9", True),
    ("U9: no previous check-in", {"back_pain": 9}, {}, "U9", False),
    ("U9: previous without back_pain", {"back_pain": 9}, {"history": [(26, {})]}, "U9", False),
    ("U10: 2, 3, 4", {"back_pain": 4}, {"hours": 80, "history": [(50, {"back_pain": 2}), (74, {"back_pain": 3})]}, "U10", True),
    ("U10: 2, 4, 4 is non-decreasing", {"back_pain": 4}, {"hours": 80, "history": [(50, {"back_pain": 2}), (74, {"back_pain": 4})]}, "U10", True),
    ("U10: 3, 5, 4 is not", {"back_pain": 4}, {"hours": 80, "history": [(50, {"back_pain": 3}), (74, {"back_pain": 5})]}, "U10", False),
    ("U10: rise of 1", {"back_pain": 5}, {"hours": 80, "history": [(50, {"back_pain": 4}), (74, {"back_pain": 4})]}, "U10", False),
    ("U10: only two check-ins", {"back_pain": 6}, {"hours": 80, "history": [(74, {"back_pain": 2})]}, "U10", False),
    ("U10: a missing value", {"back_pain": 6}, {"hours": 80, "history": [(50, {"back_pain": 2}), (74, {})]}, "U10", False),
    ("U10: the window is the last three", {"back_pain": 4}, {"hours": 98, "history": [(26, {"back_pain": 9}), (50, {"back_pain": 2}), (74, {"back_pain": 3})]}, "U10", True),
    ("U11: P_min 3, P 6", {"back_pain": 6}, {"hours": 98, "b": 9, "history": [(50, {"back_pain": 3}), (74, {"back_pain": 7})]}, "U11", True),
    ("U11: P_min 3, P 5", {"back_pain": 5}, {"hours": 98, "b": 9, "history": [(50, {"back_pain": 3}), (74, {"back_pain": 7})]}, "U11", False),
    ("U11: P_min 4", {"back_pain": 8}, {"hours": 98, "b": 9, "history": [(50, {"back_pain": 4}), (74, {"back_pain": 9})]}, "U11", False),
    ("U11: P_min ignores h < 12", {"back_pain": 4}, {"hours": 98, "b": 9, "history": [(6, {"back_pain": 0}), (50, {"back_pain": 5}), (74, {"back_pain": 6})]}, "U11", False),
    ("U11: rebound 0 -> 3 stays mild", {"back_pain": 3}, {"hours": 98, "b": 9, "history": [(50, {"back_pain": 0}), (74, {"back_pain": 5})]}, "U11", False),
    ("U12: rib pain 4", {"new_pain_sites": ["ribs_or_side"], "rib_pain": 4}, {}, "U12", True),
    ("U12: rib pain 3", {"new_pain_sites": ["ribs_or_side"], "rib_pain": 3}, {}, "U12", False),
    ("U12: rib pain missing", {"new_pain_sites": ["ribs_or_side"]}, {}, "U12", False),
    ("U12 with chest pain (§3.8.1)", {"cardioresp": ["chest_pain"], "new_pain_sites": ["ribs_or_side"], "rib_pain": 8}, {}, "U12", True),
    ("U13: B + 2 before 48 h", {"back_pain": 7}, {"hours": 47, "b": 5}, "U13", True),
    ("U13: B + 1", {"back_pain": 6}, {"hours": 47, "b": 5}, "U13", False),
    ("U13: at exactly 48 h", {"back_pain": 7}, {"hours": 48, "b": 5}, "U13", False),
    ("U13: B missing", {"back_pain": 9}, {"hours": 26}, "U13", False),
    # --- URGENT: other ---
    ("postural headache", {"headache_upright": True}, {}, "U14", True),
    ("vomiting at 24 h", {"nausea": "vomiting"}, {"hours": 24}, "U15", True),
    ("vomiting at 23.9 h", {"nausea": "vomiting"}, {"hours": 23.9}, "U15", False),
    ("cannot keep fluids at 2 h", {"cannot_keep_fluids": True}, {"hours": 2}, "U15", True),
    ("nausea twice, both >= 24 h", {"nausea": "nausea"}, {"hours": 50, "history": [(24, {"nausea": "nausea"})]}, "U15", True),
    ("nausea after vomiting", {"nausea": "nausea"}, {"hours": 50, "history": [(26, {"nausea": "vomiting"})]}, "U15", True),
    ("nausea, previous at 23 h", {"nausea": "nausea"}, {"hours": 30, "history": [(23, {"nausea": "nausea"})]}, "U15", False),
    ("nausea, previous none", {"nausea": "nausea"}, {"hours": 50, "history": [(26, {"nausea": "none"})]}, "U15", False),
    ("nausea, first report", {"nausea": "nausea"}, {"hours": 50}, "U15", False),
    ("palpitations", {"cardioresp": ["heart_racing_or_irregular"]}, {}, "U16", True),
    ("very dizzy", {"dizzy": "very_dizzy_or_faint"}, {}, "U17", True),
    ("a little dizzy is not U17", {"dizzy": "a_little"}, {}, "U17", False),
    ("cannot stand or walk", {"mobility": "cannot_stand_or_walk"}, {}, "U18", True),
    ("needs more help is not U18", {"mobility": "need_more_help"}, {}, "U18", False),
    ("more medicine than told", {"meds_more_than_told": True}, {"hours": 300}, "U19", True),
    ("medicine not working, P 7 before 48 h", {"back_pain": 7, "meds_control": "no"}, {"hours": 47, "b": 7}, "U19", True),
    ("medicine not working, P 7 at 48 h", {"back_pain": 7, "meds_control": "no"}, {"hours": 48, "b": 7}, "U19", False),
    ("medicine not working, P 6", {"back_pain": 6, "meds_control": "no"}, {"hours": 30}, "U19", False),
    ("medicine partly working, P 8", {"back_pain": 8, "meds_control": "partly"}, {"hours": 30, "b": 8}, "U19", False),
    ("call request", {"call_request": True}, {}, "U20", True),
    ("no call request", {"call_request": False}, {}, "U20", False),
    ("fall + pain up 2", {"fall": True, "back_pain": 4}, {"hours": 200, "history": [(170, {"back_pain": 2})]}, "U21", True),
    ("fall + pain up 1", {"fall": True, "back_pain": 3}, {"hours": 200, "history": [(170, {"back_pain": 2})]}, "U21", False),
    ("fall + not sure (§3.8.12)", {"fall": True, "neuro": ["not_sure"]}, {"hours": 200}, "U21", True),
    ("fall + numbness", {"fall": True, "neuro": ["numb_or_tingling_legs_feet"]}, {"hours": 200}, "U21", True),
    ("fall, no previous check-in", {"fall": True, "back_pain": 9}, {"hours": 30}, "U21", False),
    ("pain up 3 without a fall", {"back_pain": 5}, {"hours": 200, "history": [(170, {"back_pain": 2})]}, "U21", False),
    # --- WATCH ---
    ("W1: P 7 before 48 h, B 6", {"back_pain": 7}, {"hours": 26, "b": 6}, "W1", True),
    ("W1: P 7, B 5 is U13 instead", {"back_pain": 7}, {"hours": 26, "b": 5}, "W1", False),
    ("W1: B missing", {"back_pain": 8}, {"hours": 26}, "W1", True),
    ("W1: at 48 h", {"back_pain": 8}, {"hours": 48, "b": 9}, "W1", False),
    ("W1: P 6", {"back_pain": 6}, {"hours": 26, "b": 6}, "W1", False),
    ("W2: 1, 2, 3", {"back_pain": 3}, {"hours": 98, "history": [(50, {"back_pain": 1}), (74, {"back_pain": 2})]}, "W2", True),
    ("W2: 2, 3, 4 is U10", {"back_pain": 4}, {"hours": 98, "history": [(50, {"back_pain": 2}), (74, {"back_pain": 3})]}, "W2", False),
    ("W3: 37.5", temp(37.5), {}, "W3", True),
    ("W3: 37.4", temp(37.4), {}, "W3", False),
    ("W3: 37.9", temp(37.9), {}, "W3", True),
    ("W3: 38.0 is U1", temp(38.0), {}, "W3", False),
    ("W3: 37.45 rounds to 37.5", temp(37.45), {}, "W3", True),
    ("W3: 99.5 F", temp(99.5, "F"), {}, "W3", True),
    ("W3: 99.4 F = 37.44", temp(99.4, "F"), {}, "W3", False),
    ("W4: small redness only", {"wound": ["redness_small"]}, {}, "W4", True),
    ("W4: on day 10 (§3.8.5)", {"wound": ["redness_small"]}, {"hours": 242}, "W4", True),
    ("W4: small redness + warm", {"wound": ["redness_small", "warm"]}, {}, "W4", False),
    ("W4: not when U4 is met", {"wound": ["redness_small"]}, {"hours": 98, "history": [(26, {"wound": ["redness_small"]})]}, "W4", False),
    ("W5: first value is this one", {"site_pain": 2}, {"hours": 80}, "W5", True),
    ("W5: same as first", {"site_pain": 3}, {"hours": 80, "history": [(6, {"site_pain": 3})]}, "W5", True),
    ("W5: below the first", {"site_pain": 3}, {"hours": 80, "history": [(6, {"site_pain": 4}), (26, {"site_pain": 2})]}, "W5", False),
    ("W5: first answered, not first check-in", {"site_pain": 3}, {"hours": 80, "history": [(6, {}), (26, {"site_pain": 3})]}, "W5", True),
    ("W5: day 2", {"site_pain": 3}, {"hours": 71}, "W5", False),
    ("W5: site pain 0", {"site_pain": 0}, {"hours": 80}, "W5", False),
    ("W5: site pain 7 is U3b", {"site_pain": 7}, {"hours": 80}, "W5", False),
    ("W6: opioid, 3 days", {"meds_taken": ["prescribed_opioid"], "bowel_days": 3}, {"hours": 80}, "W6", True),
    ("W6: opioid, 2 days", {"meds_taken": ["prescribed_opioid"], "bowel_days": 2}, {"hours": 80}, "W6", False),
    ("W6: no opioid", {"meds_taken": ["paracetamol_acetaminophen"], "bowel_days": 5}, {"hours": 80}, "W6", False),
    ("W6: bowel_days left out", {"meds_taken": ["prescribed_opioid"]}, {"hours": 80}, "W6", False),
    ("W7: nausea at 24 h", {"nausea": "nausea"}, {"hours": 24}, "W7", True),
    ("W7: nausea at 23 h", {"nausea": "nausea"}, {"hours": 23}, "W7", False),
    ("W7: vomiting is not W7", {"nausea": "vomiting"}, {"hours": 30}, "W7", False),
    ("W8: a little dizzy", {"dizzy": "a_little"}, {}, "W8", True),
    ("W9: fall", {"fall": True}, {}, "W9", True),
    ("W9: no fall", {"fall": False}, {}, "W9", False),
    ("W10: two in a row", {"mobility": "need_more_help"}, {"hours": 80, "history": [(56, {"mobility": "less_than_yesterday"})]}, "W10", True),
    ("W10: previous as usual", {"mobility": "need_more_help"}, {"hours": 80, "history": [(56, {"mobility": "as_usual_or_better"})]}, "W10", False),
    ("W10: previous left out", {"mobility": "need_more_help"}, {"hours": 80, "history": [(56, {})]}, "W10", False),
    ("W10: no previous", {"mobility": "need_more_help"}, {"hours": 80}, "W10", False),
    ("W10: cannot stand now is not W10", {"mobility": "cannot_stand_or_walk"}, {"hours": 80, "history": [(56, {"mobility": "need_more_help"})]}, "W10", False),
]


@pytest.mark.parametrize(("answers", "kwargs", "rule", "fires"),
                         [c[1:] for c in CASES], ids=[f"{c[3]}-{c[0]}" for c in CASES])
def test_rule(answers: dict[str, Any], kwargs: dict[str, Any], rule: str, fires: bool) -> None:
    result = fired(answers, **kwargs)
    assert (rule in result) is fires, f"{rule} {'did not fire' if fires else 'fired'}; fired: {sorted(result)}"


def test_every_rule_is_tested_firing() -> None:
    assert {c[3] for c in CASES if c[4]} == set(RULES)


def test_u4_run_of_exactly_72_h() -> None:
    history = [(26, {"wound": ["redness_small"]}), (50, {"wound": ["redness_small"]})]
    assert "U4" in fired({"wound": ["redness_small"]}, 98, history=history)
    assert "U4" not in fired({"wound": ["redness_small"]}, 97.9, history=history)


def test_u4_run_is_broken_by_a_check_in_without_redness() -> None:
    history = [(2, {"wound": ["redness_small"]}), (26, {}), (50, {"wound": ["redness_small"]})]
    assert "U4" not in fired({"wound": ["redness_small"]}, 98, history=history)
    assert "W4" in fired({"wound": ["redness_small"]}, 98, history=history)


def test_u4_counts_check_ins_that_reported_redness_with_other_items() -> None:
    history = [(26, {"wound": ["redness_small", "swelling"]}), (74, {"wound": ["redness_small"]})]
    assert "U4" in fired({"wound": ["redness_small", "warm"]}, 98, history=history)


def test_u4_needs_redness_now() -> None:
    history = [(26, {"wound": ["redness_small"]}), (74, {"wound": ["redness_small"]})]
    assert "U4" not in fired({"wound": ["normal"]}, 98, history=history)


def test_new_ignores_baseline() -> None:
    base = Baseline(back_pain=5, neuro=frozenset({"numb_or_tingling_legs_feet", "legs_weak_or_giving_way"}))
    result = assess({"neuro": ["numb_or_tingling_legs_feet"]}, hours=30, baseline=base, ruleset=RS)
    assert result.rule_ids == ("U5",)
    result = assess({"neuro": ["legs_weak_or_giving_way"]}, hours=30, baseline=base, ruleset=RS)
    assert result.rule_ids == ("E8",)


# ------------------------------------------------------------------------------------ MR1 ----


def test_mr1_highest_level_wins_and_every_rule_is_kept() -> None:
    result = run({"back_pain": 2, "cardioresp": ["chest_pain"], "dizzy": "a_little", "call_request": True})
    assert result.level is Level.EMERGENCY
    assert result.rule_ids == ("E1", "U20", "W8")
    assert [r.scored_level for r in result.fired] == [Level.EMERGENCY, Level.URGENT, Level.WATCH]


def test_nothing_fired_is_ok() -> None:
    result = run({"back_pain": 1})
    assert result.level is Level.OK and result.fired == ()
    assert result.ruleset_version == "0.1.0-draft"


def test_empty_answers_are_all_defaults() -> None:
    assert run({}).level is Level.OK


# ------------------------------------------------------------------------------------ MR3 ----

U8_SETUP: dict[str, Any] = {"b": 7, "history": [(74, {"back_pain": 6})], "acks": [("U8", 78)]}


@pytest.mark.parametrize(
    ("hours", "expected"),
    [(77, Level.URGENT), (78, Level.WATCH), (149, Level.WATCH), (149.99, Level.WATCH), (150, Level.URGENT)],
    ids=["before-ack", "at-ack", "a+71", "just-before-a+72", "a+72"],
)
def test_mr3_window(hours: float, expected: Level) -> None:
    result = run({"back_pain": 6}, hours, **U8_SETUP)
    assert "U8" in result.rule_ids
    assert result.level is expected


def test_mr3_keeps_the_rule_listed_with_both_levels() -> None:
    (rule,) = run({"back_pain": 6}, 98, **U8_SETUP).fired
    assert (rule.id, rule.level, rule.scored_level, rule.downgraded) == ("U8", Level.URGENT, Level.WATCH, True)


@pytest.mark.parametrize("disposition", ["escalated", "called_patient", "reviewed"])
def test_mr3_needs_reviewed_expected(disposition: str) -> None:
    assert run({"back_pain": 6}, 98, disposition=disposition, **U8_SETUP).level is Level.URGENT


def test_mr3_needs_the_same_rule() -> None:
    result = run({"back_pain": 6}, 98, b=7, history=[(74, {"back_pain": 6})], acks=[("U7", 78)])
    assert result.level is Level.URGENT


def test_mr3_pain_higher_blocks() -> None:
    assert run({"back_pain": 7}, 98, **U8_SETUP).level is Level.URGENT


def test_mr3_pain_lower_downgrades() -> None:
    result = run({"back_pain": 5}, 98, b=6, history=[(74, {"back_pain": 6})], acks=[("U8", 78)])
    assert result.rule_ids == ("U8",) and result.level is Level.WATCH


def test_mr3_reference_is_latest_check_in_at_or_before_the_ack() -> None:
    setup = {"b": 7, "history": [(50, {"back_pain": 8}), (74, {"back_pain": 6}), (86, {"back_pain": 5})],
             "acks": [("U8", 78)]}
    assert run({"back_pain": 6}, 98, **setup).level is Level.WATCH
    # A check-in exactly at the acknowledgement time is "at or before" it.
    setup = {"b": 7, "history": [(74, {"back_pain": 5}), (78, {"back_pain": 6})], "acks": [("U8", 78)]}
    assert run({"back_pain": 6}, 98, **setup).level is Level.WATCH


def test_mr3_without_a_reference_check_in_does_not_downgrade() -> None:
    assert run({"call_request": True}, 30, acks=[("U20", 20)]).level is Level.URGENT


@pytest.mark.parametrize(
    ("ref", "now", "expected"),
    [
        ({}, {}, Level.WATCH),  # absent now passes
        ({"temp_status": "measured", "temp_value": 37.0, "temp_unit": "C"}, {}, Level.WATCH),
        ({}, {"temp_status": "measured", "temp_value": 36.8, "temp_unit": "C"}, Level.URGENT),
        ({"temp_status": "measured", "temp_value": 37.0, "temp_unit": "C"},
         {"temp_status": "measured", "temp_value": 98.6, "temp_unit": "F"}, Level.WATCH),  # 37.0 both
        ({"temp_status": "measured", "temp_value": 37.0, "temp_unit": "C"},
         {"temp_status": "measured", "temp_value": 37.1, "temp_unit": "C"}, Level.URGENT),
    ],
    ids=["absent-both", "absent-now", "absent-at-ref", "same-in-F", "higher"],
)
def test_mr3_temperature_comparison(ref: dict, now: dict, expected: Level) -> None:
    setup = {"b": 7, "history": [(74, {"back_pain": 6, **ref})], "acks": [("U8", 78)]}
    assert run({"back_pain": 6, **now}, 98, **setup).level is expected


def test_mr3_pain_present_now_absent_at_reference_blocks() -> None:
    setup = {"b": 7, "history": [(74, {})], "acks": [("U8", 78)]}
    assert run({"back_pain": 6}, 98, **setup).level is Level.URGENT


@pytest.mark.parametrize(
    ("ref_wound", "now_wound", "expected"),
    [
        (["swelling"], ["swelling"], Level.WATCH),
        (["swelling", "warm"], ["swelling"], Level.WATCH),
        (["swelling"], ["swelling", "warm"], Level.URGENT),
        (["swelling"], ["warm"], Level.URGENT),
    ],
    ids=["same", "fewer", "added", "different"],
)
def test_mr3_wound_items(ref_wound: list[str], now_wound: list[str], expected: Level) -> None:
    result = run({"wound": now_wound}, 98, history=[(74, {"wound": ref_wound})], acks=[("U3", 78)])
    assert result.level is expected


def test_mr3_neuro_not_sure_compared_as_itself() -> None:
    common = {"acks": [("U5", 78)]}
    assert run({"neuro": ["numb_or_tingling_legs_feet"]}, 98, history=[(74, {"neuro": ["not_sure"]})],
               **common).level is Level.URGENT
    assert run({"neuro": ["not_sure"]}, 98, history=[(74, {"neuro": ["not_sure"]})], **common).level is Level.WATCH
    assert run({"neuro": ["not_sure"]}, 98, history=[(74, {"neuro": ["numb_or_tingling_legs_feet"]})],
               **common).level is Level.URGENT


def test_mr3_new_neuro_item_blocks_a_pain_rule() -> None:
    setup = {"b": 7, "history": [(74, {"back_pain": 6})], "acks": [("U8", 78), ("U5", 78)]}
    result = run({"back_pain": 6, "neuro": ["numb_or_tingling_legs_feet"]}, 98, **setup)
    assert result.level is Level.URGENT
    assert {r.id: r.scored_level for r in result.fired} == {"U5": Level.URGENT, "U8": Level.URGENT}


@pytest.mark.parametrize(
    ("rule", "ref", "now", "expected"),
    [
        ("U22", {"temp_status": "measured", "temp_value": 35.0, "temp_unit": "C"},
         {"temp_status": "measured", "temp_value": 34.8, "temp_unit": "C"}, Level.URGENT),
        ("U22", {"temp_status": "measured", "temp_value": 34.8, "temp_unit": "C"},
         {"temp_status": "measured", "temp_value": 35.0, "temp_unit": "C"}, Level.URGENT),  # higher temp blocks
        ("U22", {"temp_status": "measured", "temp_value": 34.8, "temp_unit": "C"},
         {"temp_status": "measured", "temp_value": 34.8, "temp_unit": "C"}, Level.WATCH),
        ("U3b", {"site_pain": 7}, {"site_pain": 8}, Level.URGENT),
        ("U3b", {"site_pain": 8}, {"site_pain": 7}, Level.WATCH),
        ("U6", {"new_pain_sites": ["down_leg"], "leg_pain": 4}, {"new_pain_sites": ["down_leg"], "leg_pain": 5}, Level.URGENT),
        ("U6", {"new_pain_sites": ["down_leg"], "leg_pain": 5}, {"new_pain_sites": ["down_leg"], "leg_pain": 5}, Level.WATCH),
        ("U6", {"new_pain_sites": ["down_leg"]}, {"new_pain_sites": ["down_leg"], "leg_pain": 5}, Level.URGENT),
        ("U6", {"new_pain_sites": ["down_leg"], "leg_pain": 5}, {"new_pain_sites": ["down_leg"]}, Level.WATCH),
        ("U12", {"new_pain_sites": ["ribs_or_side"], "rib_pain": 5}, {"new_pain_sites": ["ribs_or_side"], "rib_pain": 6}, Level.URGENT),
        ("U12", {"new_pain_sites": ["ribs_or_side"], "rib_pain": 6}, {"new_pain_sites": ["ribs_or_side"], "rib_pain": 4}, Level.WATCH),
        ("U5", {"neuro": ["numb_or_tingling_legs_feet"], "leg_pain": 3},
         {"neuro": ["numb_or_tingling_legs_feet"], "leg_pain": 5}, Level.URGENT),
    ],
)
def test_mr3_numbers_in_the_rules_own_condition(rule: str, ref: dict, now: dict, expected: Level) -> None:
    result = run(now, 98, history=[(74, ref)], acks=[(rule, 78)])
    assert rule in result.rule_ids
    assert {r.id: r.scored_level for r in result.fired}[rule] is expected


def test_mr3_never_downgrades_emergency() -> None:
    result = run({"neuro": ["legs_weak_or_giving_way"]}, 98,
                 history=[(74, {"neuro": ["legs_weak_or_giving_way"]})], acks=[("E8", 78)])
    assert result.level is Level.EMERGENCY and not result.fired[0].downgraded


def test_mr3_does_not_touch_watch_rules() -> None:
    result = run({"dizzy": "a_little"}, 98, history=[(74, {"dizzy": "a_little"})], acks=[("W8", 78)])
    assert result.fired[0].scored_level is Level.WATCH and not result.fired[0].downgraded


def test_e10_uses_the_u1_condition_even_when_u1_is_downgraded() -> None:
    result = run(temp(38.2, sepsis_screen=["no_urine_today"]), 98,
                 history=[(74, temp(38.5))], acks=[("U1", 78)])
    assert result.level is Level.EMERGENCY
    assert {r.id: r.scored_level for r in result.fired} == {"E10": Level.EMERGENCY, "U1": Level.WATCH}


def test_mr3_window_comes_from_the_rule_set() -> None:
    short = replace(RS, constants=replace(RS.constants, MR3_WINDOW_H=24.0))
    assert run({"back_pain": 6}, 101.9, ruleset=short, **U8_SETUP).level is Level.WATCH
    assert run({"back_pain": 6}, 102, ruleset=short, **U8_SETUP).level is Level.URGENT


# ------------------------------------------------------------------ §3.8 (3) and (14) ----


def test_answers_present_are_scored_even_if_not_asked_that_day() -> None:
    # nausea is only asked on days 0-3, but a stored answer still counts (§3.8 (14)).
    assert "U15" in fired({"nausea": "vomiting"}, 300)


def test_none_answer_means_left_out() -> None:
    assert run({"back_pain": None, "leg_pain": None, "neuro": None}).level is Level.OK


# ----------------------------------------------------------------------- thresholds ----


def test_thresholds_come_from_the_rule_set() -> None:
    nhs = replace(RS, constants=replace(RS.constants, FEVER_C=Decimal("37.8")))
    assert "U1" in fired(temp(37.8), ruleset=nhs)
    assert "U1" not in fired(temp(37.8))
    stricter = replace(RS, constants=replace(RS.constants, SEVERE=6))
    assert "U7" in fired({"back_pain": 6}, 50, ruleset=stricter)


def test_mild_ceiling_follows_moderate() -> None:
    # W2 and U10 stay complementary when MODERATE changes (reading 2).
    five = replace(RS, constants=replace(RS.constants, MODERATE=5))
    history = [(50, {"back_pain": 2}), (74, {"back_pain": 3})]
    assert fired({"back_pain": 4}, 98, history=history, ruleset=five) >= {"W2"}
    assert "U10" not in fired({"back_pain": 4}, 98, history=history, ruleset=five)


# -------------------------------------------------------------------------- partial ----


def test_partial_emergency_screen_only() -> None:
    result = assess_partial({"cardioresp": ["chest_pain"]}, hours=30, ruleset=RS)
    assert result.partial and result.level is Level.EMERGENCY and result.rule_ids == ("E1",)


def test_partial_scores_only_what_was_said() -> None:
    result = assess_partial({"cardioresp": ["none"], "neuro": ["none"], "bladder_bowel": "no_change"},
                            hours=30, ruleset=RS)
    assert result.level is Level.OK and result.partial


def test_partial_neuro_not_sure_without_leg_pain_yet() -> None:
    assert assess_partial({"neuro": ["not_sure"]}, hours=30, ruleset=RS).rule_ids == ("U5",)


def test_full_assessment_is_not_partial() -> None:
    assert not run({"back_pain": 2}).partial


# ------------------------------------------------------------------- input errors ----


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: run({"wound": ["redish"]}), "answers.wound: unknown option 'redish'"),
        (lambda: run({"back_pain": 11}), "answers.back_pain: 11 is outside 0-10"),
        (lambda: run({"back_pain": "5"}), "answers.back_pain: expected a whole number"),
        (lambda: run({"back_pain": True}), "answers.back_pain: expected a whole number"),
        (lambda: run({"neuro": "not_sure"}), "answers.neuro: expected a list"),
        (lambda: run({"neuro": []}), "answers.neuro: empty list"),
        (lambda: run({"neuro": ["none", "not_sure"]}), "answers.neuro:"),
        (lambda: run({"cardioresp": ["none", "chest_pain"]}), "answers.cardioresp: 'none' cannot be ticked"),
        (lambda: run({"fall": "yes"}), "answers.fall: expected true or false"),
        (lambda: run({"temp_value": 38.0}), "answers.temp_unit: a temperature needs a unit"),
        (lambda: run({"temp_value": 38.0, "temp_unit": "K"}), "answers.temp_unit: unknown option 'K'"),
        (lambda: run({"temp_value": "hot", "temp_unit": "C"}), "answers.temp_value: not a number"),
        (lambda: run({"colour": "red"}), "answers.colour: unknown question id"),
        (lambda: run({}, -1), "hours since the procedure cannot be negative"),
        (lambda: run({}, float("nan")), "hours must be a number"),
        (lambda: run({}, 30, history=[(31, {})]), "history[0].hours: 31 is after this check-in (30)"),
        (lambda: run({}, 30, history=[(20, {}), (10, {})]), "history[1].hours"),
        (lambda: run({}, 30, history=[(20, {"wound": ["x"]})]), "history[0].answers.wound: unknown option 'x'"),
        (lambda: run({}, 30, acks=[("U99", 20)]), "acknowledgements[0].rule: unknown rule 'U99'"),
        (lambda: run({}, 30, b=11), "baseline.back_pain"),
    ],
)
def test_input_errors_name_the_field(call: Any, message: str) -> None:
    with pytest.raises(TriageInputError) as exc:
        call()
    assert message in str(exc.value)


# ------------------------------------------------------------------------ rule info ----


def test_rule_catalogue() -> None:
    assert len(RULES) == 12 + 24 + 10  # E1-E12, U1-U23 + U3b, W1-W10
    for rule_id, info in RULES.items():
        assert info.id == rule_id
        assert info.level is {"E": Level.EMERGENCY, "U": Level.URGENT, "W": Level.WATCH}[rule_id[0]]
        assert info.family and info.title(RS)
        assert "{" not in info.title(RS)


@pytest.mark.parametrize(
    ("rule", "minutes", "business_day"),
    [("E1", 15, False), ("E12", 15, False), ("U5", 60, False), ("U6", 60, False), ("U16", 60, False),
     ("U1", 240, False), ("U20", 240, False), ("U3b", 240, False), ("W1", None, True), ("W10", None, True)],
)
def test_response_times(rule: str, minutes: int | None, business_day: bool) -> None:
    """From the rule set file's [response_times] (no minutes are written in the code)."""
    info = RULES[rule]
    assert (RS.response.minutes(rule, info.level), info.response_business_day) == (minutes, business_day)


@pytest.mark.parametrize(("table", "problem"), [
    ("", "required table [response_times] is missing"),
    ("[response_times]\nEMERGENCY = 15\nURGENT = 240\nURGENT_SOON = 60\nURGENT_SOON_RULES = [\"U5\"]\nLATER = 1\n",
     "response_times.LATER: unknown key"),
    ("[response_times]\nEMERGENCY = 0\nURGENT = 240\nURGENT_SOON = 60\nURGENT_SOON_RULES = []\n",
     "response_times.EMERGENCY: must be a whole number of minutes from 1, got 0"),
    ("[response_times]\nEMERGENCY = 90\nURGENT = 240\nURGENT_SOON = 60\nURGENT_SOON_RULES = []\n",
     "must be EMERGENCY <= URGENT_SOON <= URGENT (got 90, 60, 240)"),
    ("[response_times]\nEMERGENCY = 15\nURGENT = 240\nURGENT_SOON = 60\nURGENT_SOON_RULES = \"U5\"\n",
     "response_times.URGENT_SOON_RULES: must be a list of rule ids"),
])
def test_bad_response_times_name_the_key(tmp_path: Path, table: str, problem: str) -> None:
    text = RULESET_FILE.read_text(encoding="utf-8")
    text = text[:text.index("[response_times]")] + table
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesetError) as exc:
        load_ruleset(path)
    assert problem in str(exc.value)


def test_titles_use_the_rule_set_numbers() -> None:
    assert RULES["U1"].title(RS) == "Fever 38.0 °C or higher"
    assert RULES["U8"].title(RS) == "Back pain not better by 48 h"
    assert RULES["W3"].follow_up_sms == "S23"


def test_families_group_related_rules() -> None:
    assert RULES["E1"].family == RULES["U16"].family == "cardioresp"
    assert RULES["U1"].family == RULES["E10"].family == RULES["U3"].family == "infection"
    assert RULES["E8"].family == RULES["U5"].family == "neuro"


def test_patient_messages() -> None:
    text = patient_message(Level.EMERGENCY, emerg="911", phone="555-0100")
    assert text.startswith("Call 911 now.") and "Do not drive yourself" in text
    assert "555-0100" in patient_message(Level.URGENT, emerg="911", phone="555-0100")
    for message in PATIENT_MESSAGES.values():
        assert "fine" not in message.lower()


# ----------------------------------------------------------------------- rule sets ----


def test_draft_rule_set() -> None:
    assert (RS.name, RS.version) == ("va-recovery", "0.1.0-draft")
    assert not RS.approved and RS.approved_by.startswith("UNAPPROVED")
    c = RS.constants
    assert (c.FEVER_C, c.LOW_TEMP_C, c.WATCH_TEMP_LO) == (Decimal("38.0"), Decimal("35.0"), Decimal("37.5"))
    assert (c.SEVERE, c.MODERATE, c.MCID, c.JUMP, c.REBOUND) == (7, 4, 2, 3, 3)
    assert (c.PERSIST_H, c.PAIN_CHECK_H, c.MR3_WINDOW_H) == (72, 48, 72)
    assert RS.form_limits.fever_c == Decimal("38.0")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _variant(old: str, new: str) -> str:
    text = RULESET_FILE.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("SEVERE = 7 ", "SEVERE = 11 ", "constants.SEVERE: must be a whole number from 1 to 10"),
        ("SEVERE = 7 ", "SEVERE = 3 ", "constants.SEVERE: must be above MODERATE"),
        ("MCID = 2 ", "MCID = 2.5 ", "constants.MCID: must be a whole number"),
        ("FEVER_C = 38.0 ", "FEVER_C = \"38\" ", "constants.FEVER_C: must be a temperature"),
        ("FEVER_C = 38.0 ", "FEVER_C = 38.05 ", "constants.FEVER_C: temperatures are compared to 0.1"),
        ("FEVER_C = 38.0 ", "FEVER_C = 37.4 ", "constants.FEVER_C: must be above WATCH_TEMP_LO"),
        ("PERSIST_H = 72 ", "PERSIST_H = 0 ", "constants.PERSIST_H: must be a positive number of hours"),
        ("JUMP = 3 ", "", "constants.JUMP: missing"),
        ("JUMP = 3 ", "JUMP = 3\nJUMPP = 4\n", "constants.JUMPP: unknown constant"),
        ('version = "0.1.0-draft"', 'version = ""', "version: required"),
        ('ruleset = "va-recovery"', 'ruleset = "va-recovery"\nextra = 1', "extra: unknown key"),
        ("# approved_on = 2026-01-31", "approved_on = 2026-01-31",
         "approved_on: a sign-off date was given but approved_by says UNAPPROVED"),
        ("# approved_on = 2026-01-31", 'approved_on = "soon"', "approved_on: must be a TOML date"),
        ("[constants]", "[constantz]", "constantz: unknown key"),
        ("FEVER_C = 38.0 ", "FEVER_C = = ", "not valid TOML"),
    ],
)
def test_ruleset_errors_name_file_and_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _write(tmp_path, _variant(old, new))
    with pytest.raises(RulesetError) as exc:
        load_ruleset(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert message in str(exc.value)


def test_ruleset_without_constants(tmp_path: Path) -> None:
    path = _write(tmp_path, 'ruleset = "x"\nversion = "1"\napproved_by = "UNAPPROVED"\n')
    with pytest.raises(RulesetError, match=r"rules.toml: constants: required table \[constants\] is missing"):
        load_ruleset(path)


def test_ruleset_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesetError, match="file not found"):
        load_ruleset(tmp_path / "nope.toml")


def test_approved_ruleset(tmp_path: Path) -> None:
    text = _variant('approved_by = "UNAPPROVED – awaiting clinical sign-off"', 'approved_by = "Dr A. Example"')
    text = text.replace("# approved_on = 2026-01-31", "approved_on = 2026-01-31")
    rs = load_ruleset(_write(tmp_path, text))
    assert rs.approved and str(rs.approved_on) == "2026-01-31"

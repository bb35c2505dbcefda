"""The PEG (recovery/domain/peg.py): the data file as shipped, scoring, the 30 % rule, when each
time point is asked, and form answers."""
from __future__ import annotations

import copy
import tomllib
from fractions import Fraction

import pytest

from recovery.config import REPO_ROOT
from recovery.domain import peg
from recovery.files import instruments

DATA = tomllib.loads((REPO_ROOT / "schedules" / "instruments" / "peg_v1.toml").read_text())
PEG = peg.parse_instrument(DATA)
KYPHOPLASTY_DAYS = [0, 1, 2, 3, 4, 5, 6, 7, 10, 14, 21, 28, 35, 42]


def test_the_shipped_peg_is_the_published_wording_versioned_and_not_approved():
    loaded = instruments.peg(REPO_ROOT / "schedules")
    assert loaded == PEG and loaded.version == 1
    assert not loaded.approved and loaded.approved_by.startswith("UNAPPROVED")
    assert loaded.languages == ("en", "es")  # the Spanish draft: approved_by_es in the file
    assert loaded.wording("pain").question == "What number best describes your pain on average in the past week?"
    assert loaded.wording("enjoyment").question == ("What number best describes how, during the past week, "
                                                   "pain has interfered with your enjoyment of life?")
    assert loaded.wording("activity").question == ("What number best describes how, during the past week, "
                                                  "pain has interfered with your general activity?")
    assert (loaded.wording("pain").low, loaded.wording("pain").high) == ("No pain", "Pain as bad as you can imagine")
    assert loaded.wording("activity", "es").question.startswith("¿Qué número describe mejor")  # the Spanish draft
    assert loaded.wording("activity", "fr") == loaded.wording("activity")  # a language it lacks: English
    assert loaded.improved_fraction == Fraction(3, 10)


def test_a_translation_is_one_more_block_per_item_and_must_cover_every_item():
    data = copy.deepcopy(DATA)
    data["languages"] = ["en", "es"]
    data["screens"]["es"] = {"caption": "Su última semana", "intro": "Tres preguntas."}
    for item in peg.ITEM_IDS:
        data["items"][item]["es"] = {"question": f"¿{item}?", "low": "0", "high": "10", "short": item}
    spanish = peg.parse_instrument(data)
    assert spanish.wording("pain", "es").question == "¿pain?" and spanish.screen_text("caption", "es") == "Su última semana"
    del data["items"]["activity"]["es"]
    with pytest.raises(peg.InstrumentError, match=r"items\.activity\.es: missing"):
        peg.parse_instrument(data)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(instrument="EQ-5D"), "instrument"),
    (lambda d: d["items"].pop("enjoyment"), "items: expected pain, enjoyment, activity"),
    (lambda d: d["points"].pop("week6"), "points: expected exactly"),
    (lambda d: d.update(maximum=100), "minimum/maximum"),
    (lambda d: d.update(improved_fraction=30), "improved_fraction"),
    (lambda d: d["items"]["pain"]["en"].update(question=""), r"items\.pain\.en\.question"),
])
def test_a_broken_data_file_is_refused_naming_the_key(change, message):
    data = copy.deepcopy(DATA)
    change(data)
    with pytest.raises(peg.InstrumentError, match=message):
        peg.parse_instrument(data)


def test_score_is_the_mean_of_three_and_the_30_percent_rule_is_exact():
    assert peg.score({"pain": 7, "enjoyment": 5, "activity": 6}) == 6.0
    assert peg.score({"pain": 7, "enjoyment": 5}) is None and peg.total({"pain": 1}) is None
    assert peg.score({"pain": 10, "enjoyment": 10, "activity": 9}) == pytest.approx(29 / 3)
    f = Fraction(3, 10)
    assert peg.improved(30, 21, f) is True  # exactly 30 % better (a float 0.3 * 30 would say 8.999…)
    assert peg.improved(30, 22, f) is False
    assert peg.improved(10, 7, f) is True and peg.improved(10, 8, f) is False
    assert peg.improved(0, 0, f) is None  # no relative change from a baseline of 0
    assert peg.improved(12, 15, f) is False and peg.percent_change(12, 15) == 25.0


def test_when_each_point_is_asked():
    def point(day, started=None, done=(), days=KYPHOPLASTY_DAYS):
        return peg.point_for_checkin(PEG, scheduled_day=day, planned_days=days,
                                     started_day=day if started is None else started, done=set(done))

    asked = {d: point(d) for d in KYPHOPLASTY_DAYS}
    assert {d: p for d, p in asked.items() if p} == {0: "baseline", 14: "day14", 42: "week6"}
    assert point(None, started=0) is None  # a symptom report, even on day 0
    assert point(0, done={"baseline"}) is None  # the nurse entered it
    assert point(2, started=0) == "baseline"  # started on day 0 (a link to a later slot)
    assert point(14, done={"day14"}) is None
    # A plan without check-ins on days 14 and 42: the nearest scheduled ones (earlier on a tie).
    assert point(12, days=[0, 7, 12, 16, 40, 44]) == "day14"
    assert point(16, days=[0, 7, 12, 16, 40, 44]) is None
    assert point(40, days=[0, 7, 12, 16, 40, 44]) == "week6"
    assert peg.nearest_checkin_day([], 14) is None


def test_form_answers():
    assert peg.parse_answer("7", PEG) == (7, None)
    assert peg.parse_answer(["0"], PEG) == (0, None)
    for bad in (None, "", "11", "-1", "7.5", "seven", ["1", "2"], "007"):
        value, error = peg.parse_answer(bad, PEG)
        assert value is None and error, bad
    assert peg.parse_answer(["1", "2"], PEG)[1] == "Please choose only one answer."
    assert peg.parse_answer("11", PEG)[1] == "Please choose a number from 0 to 10."
    assert peg.item_of_screen("peg_pain") == "pain" and peg.item_of_screen("peg_x") is None
    assert peg.item_of_screen("back_pain") is None


def test_cohort_share():
    c = peg.Cohort(patients=4, median_baseline=6, median_week6=3, median_change=-3, measurable=3, improved=2)
    assert c.improved_share == pytest.approx(2 / 3)
    assert peg.Cohort(0, None, None, None, 0, 0).improved_share is None

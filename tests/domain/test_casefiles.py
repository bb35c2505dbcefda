"""Worked cases (protocol.md §4): all shared cases pass, and malformed files give named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery.domain.triage import Level
from recovery.files.rulesets import load_ruleset
from recovery.files.casefile import CaseFileError, check_file, load_cases, parse_cases, run_case

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "cases"
RS = load_ruleset(ROOT / "schedules" / "rulesets" / "va-recovery.toml")


@pytest.mark.parametrize(("name", "count"), [("vignettes.yaml", 22), ("probes.yaml", 110)])
def test_shared_case_file_passes(name: str, count: int) -> None:
    report = check_file(CASES / name, RS)
    failures = [line for line in report.lines() if not line.startswith("PASS")]
    assert failures == []
    assert len(report.results) == count
    assert report.summary == f"{count} passed, 0 failed" and report.ok


def _all_cases() -> list:
    return [c for name in ("vignettes.yaml", "probes.yaml") for c in load_cases(CASES / name)]


@pytest.mark.parametrize("case", _all_cases(), ids=lambda c: c.id)
def test_each_case(case) -> None:
    result = run_case(case, RS)
    assert result.passed, result.line()


def test_case_files_are_unchanged_copies() -> None:
    shared = Path("/work/shared/clinical")
    if not shared.exists():
        pytest.skip("shared protocol folder not mounted")
    for name in ("vignettes.yaml", "probes.yaml"):
        assert (CASES / name).read_bytes() == (shared / name).read_bytes()


def test_pass_line_format() -> None:
    (case,) = parse_cases("- {id: V03, hours: 26, baseline: {back_pain: 6}, history: [{hours: 6, answers: "
                          "{back_pain: 7}}], answers: {back_pain: 9}, expect: {level: URGENT, rules: [U13]}}")
    assert run_case(case, RS).line() == "PASS V03  expected URGENT [U13]  got URGENT [U13]"


def test_expected_rules_are_a_subset_of_fired() -> None:
    (case,) = parse_cases("- {id: s, hours: 30, answers: {cardioresp: [heart_racing_or_irregular, chest_pain]}, "
                          "expect: {level: EMERGENCY, rules: [E1]}}")
    result = run_case(case, RS)
    assert result.passed and result.assessment.rule_ids == ("E1", "E5", "U16")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("- {id: L, hours: 30, answers: {back_pain: 2, cardioresp: [chest_pain]}, expect: {level: URGENT, rules: [E1]}}",
         "FAIL L  expected URGENT [E1]  got EMERGENCY [E1]  (level differs)"),
        ("- {id: R, hours: 30, answers: {back_pain: 2}, expect: {level: OK, rules: [W8]}}",
         "FAIL R  expected OK [W8]  got OK []  (not fired: W8)"),
    ],
)
def test_fail_lines(text: str, line: str) -> None:
    (case,) = parse_cases(text)
    result = run_case(case, RS)
    assert not result.passed and result.line() == line


def test_report_counts_failures(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(
        "- {id: A, hours: 30, answers: {fall: true}, expect: {level: WATCH, rules: [W9]}}\n"
        "- {id: B, hours: 30, answers: {fall: true}, expect: {level: URGENT, rules: [U21]}}\n",
        encoding="utf-8",
    )
    report = check_file(path, RS)
    assert (report.passed, report.failed, report.ok, report.summary) == (1, 1, False, "1 passed, 1 failed")


def test_yaml_no_stays_an_option_name() -> None:
    # YAML 1.1 would read `no` as false; case files mean the option names.
    (case,) = parse_cases("- {id: n, hours: 30, baseline: {back_pain: 8}, answers: {back_pain: 8, meds_control: no, "
                          "dizzy: no}, expect: {level: URGENT, rules: [U19]}}")
    assert case.answers["meds_control"] == "no" and case.answers["dizzy"] == "no"
    assert run_case(case, RS).passed


def test_case_fields_are_parsed() -> None:
    (case,) = parse_cases(
        "- id: X\n  note: n\n  hours: 98\n  baseline: {back_pain: 7, neuro: [numb_or_tingling_legs_feet]}\n"
        "  history:\n    - {hours: 74, answers: {back_pain: 6}}\n"
        "  acknowledgements:\n    - {rule: U8, hours: 78, disposition: reviewed_expected}\n"
        "  answers: {back_pain: 6}\n  expect: {level: WATCH, rules: [U8]}\n"
    )
    assert (case.id, case.note, case.hours, case.line) == ("X", "n", 98.0, 1)
    assert case.baseline.back_pain == 7 and case.baseline.neuro == {"numb_or_tingling_legs_feet"}
    assert case.history[0].hours == 74 and case.acknowledgements[0].rule == "U8"
    assert case.expected_level is Level.WATCH and case.expected_rules == ("U8",)
    assert run_case(case, RS).passed


BASE = "hours: 30, answers: {back_pain: 2}, expect: {level: OK}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {id: e-U4short, hours: 98, answers: {back_pain: 2, wound: [redish]}, expect: {level: WATCH, rules: [W4]}}",
         "case e-U4short: answers.wound: unknown option 'redish'"),
        (f"- {{id: A, {BASE}}}\n- {{hours: 30, answers: {{}}, expect: {{level: OK}}}}",
         "case #2: id: required field is missing"),
        ("- {id: B, answers: {}, expect: {level: OK}}", "case B: hours: required field is missing"),
        ("- {id: C, hours: soon, answers: {}, expect: {level: OK}}", "case C: hours: expected a number of hours"),
        ("- {id: D, hours: 30, answers: {}, expect: {level: SEVERE}}", "case D: expect.level: expected one of OK, WATCH"),
        ("- {id: E, hours: 30, answers: {}, expect: {level: OK, rules: [U99]}}", "case E: expect.rules[0]: unknown rule 'U99'"),
        ("- {id: F, hours: 30, answers: {back_pain: 12}, expect: {level: OK}}", "case F: answers.back_pain: 12 is outside 0-10"),
        ("- {id: G, hours: 30, history: [{hours: 40, answers: {}}], answers: {}, expect: {level: OK}}",
         "case G: history[0].hours: 40 is after the check-in being scored (30)"),
        ("- {id: H, hours: 30, history: [{hours: 20, answers: {neuro: [tingly]}}], answers: {}, expect: {level: OK}}",
         "case H: history[0].answers.neuro: unknown option 'tingly'"),
        ("- {id: I, hours: 30, acknowledgements: [{rule: U8, hours: 20}], answers: {}, expect: {level: OK}}",
         "case I: acknowledgements[0].disposition: required field is missing"),
        ("- {id: J, hours: 30, baseline: {back_pain: 11}, answers: {}, expect: {level: OK}}",
         "case J: baseline.back_pain: expected a whole number from 0 to 10"),
        ("- {id: K, hours: 30, answers: {}, expect: {level: OK}, expected: {}}", "case K: expected: unknown field"),
        ("- {id: L, hours: 30, answers: {temp_value: 38.0}, expect: {level: OK}}",
         "case L: answers.temp_unit: a temperature needs a unit"),
        (f"- {{id: M, {BASE}}}\n- {{id: M, {BASE}}}", "case M: id: duplicate case id"),
        ("- {id: N, hours: 30, answers: {fall: yes}, expect: {level: OK}}", "case N: answers.fall: expected true or false"),
        ("- {id: O, hours: 30, answers: {back_pain: 2, back_pain: 3}, expect: {level: OK}}", "duplicate key 'back_pain'"),
        ("- {id: P, hours: 30, answers: [back_pain], expect: {level: OK}}", "case P: answers: expected a mapping"),
        ("- [1, 2]", "case #1: expected a mapping"),
        ("{id: Q}", "expected a non-empty list of cases"),
        ("", "expected a non-empty list of cases"),
        ("- {id: R, hours: 30\n", "not valid YAML"),
    ],
)
def test_malformed_case_file_names_case_and_field(text: str, message: str) -> None:
    with pytest.raises(CaseFileError) as exc:
        parse_cases(text, "cases.yaml")
    assert str(exc.value).startswith("cases.yaml")
    assert message in str(exc.value)


def test_error_carries_the_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"# comment\n- {{id: A, {BASE}}}\n- {{id: B, hours: 30, answers: {{wound: [x]}}, expect: {{level: OK}}}}\n",
                    encoding="utf-8")
    with pytest.raises(CaseFileError) as exc:
        check_file(path, RS)
    assert str(exc.value).startswith(f"{path}:3: case B: answers.wound: unknown option 'x'")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaseFileError, match="file not found"):
        check_file(tmp_path / "none.yaml", RS)

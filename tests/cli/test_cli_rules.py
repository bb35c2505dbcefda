"""`flask rules check`: run through click's CliRunner without the Flask app."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from recovery.cli.rules import DEFAULT_RULESET_PATH, rules_group

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "cases"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_default_ruleset_path_is_in_the_repo() -> None:
    assert DEFAULT_RULESET_PATH == ROOT / "schedules" / "rulesets" / "va-recovery.toml"
    assert DEFAULT_RULESET_PATH.is_file()


@pytest.mark.parametrize(("name", "count"), [("vignettes.yaml", 22), ("probes.yaml", 110)])
def test_shared_files_pass(runner: CliRunner, name: str, count: int, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default rule set must not depend on the working directory
    result = runner.invoke(rules_group, ["check", str(CASES / name)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Rule set va-recovery 0.1.0-draft (NOT clinically approved)"
    assert lines[-1] == f"{count} passed, 0 failed"
    case_lines = lines[1:-1]
    assert len(case_lines) == count and all(line.startswith("PASS ") for line in case_lines)


def test_vignette_line(runner: CliRunner) -> None:
    result = runner.invoke(rules_group, ["check", str(CASES / "vignettes.yaml")])
    assert "PASS V03  expected URGENT [U13]  got URGENT [U13]" in result.output.splitlines()


def test_failing_case_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "fail.yaml"
    path.write_text(
        "- {id: ok, hours: 30, answers: {fall: true}, expect: {level: WATCH, rules: [W9]}}\n"
        "- {id: wrong, hours: 30, answers: {fall: true}, expect: {level: URGENT, rules: [U21]}}\n",
        encoding="utf-8",
    )
    result = runner.invoke(rules_group, ["check", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "PASS ok  expected WATCH [W9]  got WATCH [W9]" in lines
    assert "FAIL wrong  expected URGENT [U21]  got WATCH [W9]  (level differs; not fired: U21)" in lines
    assert lines[-1] == "1 passed, 1 failed"


def test_malformed_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- {id: e-U4short, hours: 98, answers: {back_pain: 2, wound: [redish]}, "
                    "expect: {level: WATCH, rules: [W4]}}\n", encoding="utf-8")
    result = runner.invoke(rules_group, ["check", str(path)])
    assert result.exit_code == 2
    assert f"Error: {path}:1: case e-U4short: answers.wound: unknown option 'redish'" in result.output
    assert "passed" not in result.output


def test_missing_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(rules_group, ["check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "file not found" in result.output


def test_ruleset_option(runner: CliRunner, tmp_path: Path) -> None:
    text = DEFAULT_RULESET_PATH.read_text(encoding="utf-8")
    lower = tmp_path / "nhs.toml"
    lower.write_text(text.replace('version = "0.1.0-draft"', 'version = "0.1.1-test"')
                     .replace("FEVER_C = 38.0 ", "FEVER_C = 37.8 "), encoding="utf-8")
    cases = tmp_path / "fever.yaml"
    cases.write_text("- {id: t, hours: 30, answers: {temp_status: measured, temp_value: 37.8, temp_unit: C}, "
                     "expect: {level: URGENT, rules: [U1]}}\n", encoding="utf-8")
    assert runner.invoke(rules_group, ["check", str(cases)]).exit_code == 1
    result = runner.invoke(rules_group, ["check", str(cases), "--ruleset", str(lower)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "Rule set va-recovery 0.1.1-test (NOT clinically approved)"


def test_bad_ruleset_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_RULESET_PATH.read_text(encoding="utf-8").replace("SEVERE = 7 ", "SEVERE = 70 "),
                   encoding="utf-8")
    result = runner.invoke(rules_group, ["check", str(CASES / "vignettes.yaml"), "--ruleset", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: constants.SEVERE: must be a whole number from 1 to 10" in result.output


def test_app_config_ruleset_path(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "configured.toml"
    app = Flask(__name__)
    app.config["RULESET_PATH"] = str(missing)
    with app.app_context():
        result = runner.invoke(rules_group, ["check", str(CASES / "vignettes.yaml")])
    assert result.exit_code == 2 and f"{missing}: file not found" in result.output


@pytest.mark.parametrize(("answers", "hours", "field"), [
    ("{fall: true}", "9" * 400, "hours"),
    ("{fall: true}", "-" + "9" * 400, "hours"),
    ("{fall: true}", "1e300", "hours"),
    ("{temp_status: measured, temp_value: 1e27, temp_unit: C}", "30", "answers.temp_value"),
    ("{temp_status: measured, temp_value: 1e27, temp_unit: F}", "30", "answers.temp_value"),
    ("{temp_status: measured, temp_value: \"1e400\", temp_unit: F}", "30", "answers.temp_value"),
    ("{temp_status: measured, temp_value: " + "9" * 400 + ", temp_unit: C}", "30", "answers.temp_value"),
])
def test_numbers_too_large_for_a_case_exit_2_naming_the_case_and_field(runner: CliRunner, tmp_path: Path,
                                                                       answers: str, hours: str, field: str) -> None:
    """Issue 11: a 400-digit `hours` or a temperature of 1e27 / "1e400" crashed with a traceback (exit 1)."""
    path = tmp_path / "huge.yaml"
    path.write_text(f"- {{id: huge, hours: {hours}, answers: {answers}, expect: {{level: WATCH}}}}\n",
                    encoding="utf-8")
    result = runner.invoke(rules_group, ["check", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert f"Error: {path}:1: case huge: {field}: " in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_huge_number_in_history_or_acknowledgements_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    big = "9" * 400
    path = tmp_path / "huge.yaml"
    path.write_text(f"- {{id: h, hours: 30, history: [{{hours: {big}, answers: {{}}}}], answers: {{}}, "
                    "expect: {level: OK}}\n"
                    f"- {{id: a, hours: 30, acknowledgements: [{{rule: W9, hours: {big}, disposition: x}}], "
                    "answers: {}, expect: {level: OK}}\n", encoding="utf-8")
    result = runner.invoke(rules_group, ["check", str(path)])
    assert result.exit_code == 2 and "case h: history[0].hours: " in result.output

"""`flask --app app timeline`: JSON shape and values, the table, errors, and where templates are found."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from recovery.cli.timeline import timeline_command

SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
T0 = ["--procedure-end", "2026-03-07T10:00", "--tz", "America/New_York"]  # Sat, EST; DST on 8 Mar


def run(*args: str):
    return CliRunner().invoke(timeline_command, list(args))


def as_json(*args: str) -> dict:
    result = run(*T0, "--json", *args) if "--procedure-end" not in args else run("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_shape_and_values():
    data = as_json()
    assert list(data) == ["template", "version", "milestones", "messages"]
    assert (data["template"], data["version"]) == ("kyphoplasty", "2")
    assert all(list(m) == ["id", "title", "starts_at", "ends_at"] for m in data["milestones"])
    assert all(list(m) == ["id", "send_at", "text"] for m in data["messages"])
    ms = {m["id"]: m for m in data["milestones"]}
    assert sorted(ms) == [f"TL{i:02d}" for i in range(1, 23) if i not in (12, 15)]  # opt-ins off
    assert ms["TL03"]["title"] == "No driving and no buses or trains"
    assert (ms["TL03"]["starts_at"], ms["TL03"]["ends_at"]) == ("2026-03-07T10:00:00-05:00", "2026-03-09T11:00:00-04:00")
    assert ms["TL16"]["starts_at"] == ms["TL16"]["ends_at"] == "2026-04-18T10:00:00-04:00"
    sends = [(m["id"], m["send_at"]) for m in data["messages"]]
    assert sends[0] == ("S01", "2026-03-07T12:00:00-05:00")
    assert ("S06", "2026-03-08T09:00:00-04:00") in sends  # day 1 on the DST day
    assert ("S10", "2026-03-10T09:00:00-04:00") in sends
    assert ("S11", "2026-03-10T11:00:00-04:00") in sends  # 2 h after S10: at most 3 routine texts, 2 h apart
    assert [s for _, s in sends] == sorted(s for _, s in sends)
    texts = {m["id"]: m["text"] for m in data["messages"]}
    assert texts["S02"].startswith("{first}, if you get chest pain") and texts["S02"].endswith("call 112 now.")
    assert texts["S06"] == "Hi {first}, time for your 2-minute check-in: {link} Or reply with your pain score, 0 to 10."
    assert {"S12", "S15"}.isdisjoint(texts) and {"S19", "S20", "S21", "S22", "S23"}.isdisjoint(texts)


def test_json_with_clinic_flags_and_discharge():
    data = as_json("--clinic", "example-strict-driving", "--working", "--brace", "--discharge", "2026-03-07T15:30")
    assert (data["template"], data["version"]) == ("kyphoplasty+example-strict-driving", "2+2")
    ms = {m["id"]: m for m in data["milestones"]}
    assert ms["TL03"]["ends_at"] == "2026-03-21T11:00:00-04:00"  # clinic: 14 × 24 h
    assert {"TL12", "TL15"} <= set(ms)
    sends = {m["id"]: m["send_at"] for m in data["messages"]}
    assert sends["S01"] == "2026-03-07T15:30:00-05:00"
    texts = {m["id"]: m["text"] for m in data["messages"]}
    assert texts["S02"].endswith("call 911 now.") and "2 weeks" in texts["S01"]
    assert "S15" in texts and "S12" not in texts  # day 2 has S02, S07, S08 first: S12 is left to Today
    table = run("--clinic", "example-strict-driving", "--working", "--brace", "--discharge", "2026-03-07T15:30", *T0)
    held = table.output.split("NOT SENT")[1]
    assert "S12:day2" in held and "desk job" in held


def test_aware_and_naive_times_agree():
    naive = as_json()
    aware = as_json("--procedure-end", "2026-03-07T15:00:00+00:00", "--tz", "America/New_York")
    zulu = as_json("--procedure-end", "2026-03-07T15:00Z", "--tz", "America/New_York")
    assert naive == aware == zulu


def test_naive_time_in_the_spring_gap_moves_forward():
    data = as_json("--procedure-end", "2026-03-08T02:30", "--tz", "America/New_York")
    assert data["milestones"][0]["starts_at"] == "2026-03-08T03:30:00-04:00"


def test_table_output():
    result = run(*T0)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Recovery after kyphoplasty or vertebroplasty: template kyphoplasty version 2" in out
    assert "MILESTONES" in out and "TEXTS" in out
    line = next(l for l in out.splitlines() if l.startswith("TL03*"))
    assert "Sat 2026-03-07 10:00 -0500" in line and "Mon 2026-03-09 11:00 -0400" in line
    s02 = next(l for l in out.splitlines() if "S02:day1" in l)
    assert s02.startswith("Sun 2026-03-08 09:00 -0400") and "call 112 now" in s02
    rows = [l for l in out.splitlines() if l.startswith("TL")]
    assert len({l.index(" Sat") if " Sat" in l else -1 for l in rows[:3]}) == 1  # aligned columns


def test_late_procedure_table_marks_moved_texts():
    result = run("--procedure-end", "2026-03-07T23:50", "--tz", "America/New_York")
    s01 = next(l for l in result.output.splitlines() if "S01:TD" in l)
    assert s01.startswith("Sun 2026-03-08 08:00 -0400") and " moved " in s01


@pytest.mark.parametrize("args,message", [
    (["--procedure-end", "2026-03-07T10:00", "--tz", "Mars/Olympus"], "--tz 'Mars/Olympus' is not an IANA time zone"),
    (["--procedure-end", "2026-03-07T10:00", "--tz", "../etc/passwd"], "is not an IANA time zone"),
    (["--procedure-end", "yesterday", "--tz", "Europe/London"], "--procedure-end 'yesterday' is not an ISO 8601 time"),
    ([*T0, "--discharge", "noon"], "--discharge 'noon' is not an ISO 8601 time"),
    ([*T0, "--discharge", "2026-03-07T09:00"], "discharge (2026-03-07T14:00:00+00:00) is before the end of the procedure"),
    ([*T0, "--template", "hip"], "no template hip (known: kyphoplasty v1"),
    ([*T0, "--clinic", "nowhere"], "no clinic file 'nowhere' (known: demo-clinic, example-strict-driving)"),
    ([*T0, "--clinic", "demo-clinic", "--template", "hip"], "clinic 'demo-clinic' is based on template 'kyphoplasty'"),
])
def test_bad_input_gives_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


def test_missing_required_option_is_a_usage_error():
    result = run("--tz", "Europe/London")
    assert result.exit_code == 2 and "--procedure-end" in result.output


def test_schedules_dir_comes_from_the_app_config(tmp_path):
    text = (SCHEDULES / "kyphoplasty_v2.toml").read_text(encoding="utf-8")
    (tmp_path / "kyphoplasty_v2.toml").write_text(
        text.replace('title = "Recovery after kyphoplasty or vertebroplasty"', 'title = "Plan from the app config"'))
    app = Flask(__name__)
    app.config["SCHEDULES_DIR"] = str(tmp_path)
    app.cli.add_command(timeline_command, "timeline")
    with app.app_context():  # `flask --app app timeline` runs commands inside the app context
        result = app.test_cli_runner().invoke(args=["timeline", *T0])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Plan from the app config: template kyphoplasty version 2")
    # a broken file there is reported with its file:line, exit 2
    (tmp_path / "kyphoplasty_v2.toml").write_text(text.replace('end = "T0+72h"', 'end = "T0+72"', 1))
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["timeline", *T0])
    assert result.exit_code == 2
    assert f"Error: {tmp_path / 'kyphoplasty_v2.toml'}:" in result.output and "cannot read offset 'T0+72'" in result.output


# ---------------------------------------------------------------------------------------------
# --enrolled-at (issue 10 item 3) and the README's days 0-3 table
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("zone,offset", [("America/New_York", "-04:00"), ("Australia/Sydney", "+10:00")])
def test_enrolled_at_shows_the_plan_of_a_late_enrolment(zone, offset):
    plain = as_json("--procedure-end", "2026-06-10T09:00", "--tz", zone)
    late = as_json("--procedure-end", "2026-06-10T09:00", "--tz", zone, "--enrolled-at", "2026-06-10T13:50")
    assert list(late) == list(plain) == ["template", "version", "milestones", "messages"]  # nothing new
    assert all(list(m) == ["id", "send_at", "text"] for m in late["messages"])
    first = [(m["id"], m["send_at"]) for m in late["messages"]][:3]
    assert first == [("S01", f"2026-06-10T13:50:00{offset}"), ("S02", f"2026-06-10T13:50:00{offset}"),
                     ("S05", f"2026-06-10T13:50:00{offset}")]
    assert ("S01", f"2026-06-10T11:00:00{offset}") in [(m["id"], m["send_at"]) for m in plain["messages"]]
    assert late["milestones"] == plain["milestones"]
    too_late = as_json("--procedure-end", "2026-06-10T09:00", "--tz", zone, "--enrolled-at", "2026-06-11T12:00")
    assert "S01" not in {m["id"] for m in too_late["messages"]}


def test_enrolled_at_table_and_bad_value():
    result = run("--procedure-end", "2026-06-10T19:30", "--tz", "America/New_York", "--enrolled-at", "2026-06-10T21:30")
    s01 = next(line for line in result.output.splitlines() if "S01:TD" in line)
    assert s01.startswith("Wed 2026-06-10 21:30 -0400") and " safety " in s01
    assert "NOT SENT" in result.output and "S09:day1" in result.output.split("NOT SENT")[1]
    bad = run(*T0, "--enrolled-at", "after lunch")
    assert bad.exit_code == 2 and "--enrolled-at 'after lunch' is not an ISO 8601 time" in bad.output


def test_the_readme_table_of_days_0_to_3_is_what_the_timeline_plans():
    from recovery.cli.timeline import first_days_markdown, timeline_days_command
    from recovery.files.plans import load_all
    table = first_days_markdown(load_all(SCHEDULES).get("kyphoplasty"))
    readme = (SCHEDULES.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- timeline-days: start -->\n")[1].split("\n<!-- timeline-days: end -->")[0]
    assert block == table, "README is out of date: run `flask --app app timeline-days` and paste its output"
    out = CliRunner().invoke(timeline_days_command, [])
    assert out.exit_code == 0 and out.output.strip() == table
    # the figures the issue asks for: at most 3 routine texts a day, each discharge time
    for line in table.splitlines():
        if line.startswith("| 0 |") or line.startswith("| 1 |") or line.startswith("| 2 |") or line.startswith("| 3 |"):
            import re
            assert all(int(n) <= 3 for n in re.findall(r"(\d+) routine", line)), line


def test_language_prints_the_spanish_texts_and_refuses_a_language_the_template_lacks():
    data = as_json("--procedure-end", "2026-03-07T10:00", "--tz", "America/New_York", "--language", "es")
    assert data["language"] == "es"
    s01 = next(m for m in data["messages"] if m["id"] == "S01")
    assert s01["text"].startswith("Hola {first}, bienvenido a casa.")
    result = run("--procedure-end", "2026-03-07T10:00", "--tz", "America/New_York", "--language", "fr")
    assert result.exit_code == 2 and "has no texts in it (it has: en, es)" in result.output

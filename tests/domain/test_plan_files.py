"""Every file in schedules/ loads; broken files are rejected with file:line, entry and problem."""
from __future__ import annotations

from dataclasses import replace
import re
from datetime import timedelta
from pathlib import Path

import pytest

from recovery.domain.plan.errors import OverrideError, TemplateError
from recovery.domain.plan.offsets import DayAt, Elapsed, FirstAt, parse_duration, parse_offset
from recovery.domain.plan.overrides import Overrides
from recovery.files.plans import load_all, load_clinic_template, load_template

SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
DEFAULT = SCHEDULES / "kyphoplasty_v1.toml"  # the broken-file cases below edit version 1
# Version 1 is kept unchanged for its patients; its S14 (175 characters with a 12-character name and
# the real 53-character link) loads only because version 2 replaces it (a warning, see
# test_a_replaced_version_is_never_rewritten). Alone in a folder it would be the newest version,
# checked strictly, so the cases below start from version 1 with S14 as it would be written today.
V1_S14_TEXT = ('text = "Hi {first}, time for your weekly recovery check-in: {link} Still no heavy lifting or hard '
               'exercise until your team says OK."')
S14_TEXT = ('text = "Hi {first}, your weekly check-in: {link} Still no heavy lifting or hard exercise until your '
            'team says OK."')
DEFAULT_TEXT = DEFAULT.read_text(encoding="utf-8").replace(V1_S14_TEXT, S14_TEXT)
NEWEST = SCHEDULES / "kyphoplasty_v2.toml"  # what new patients are enrolled on
NEWEST_TEXT = NEWEST.read_text(encoding="utf-8")
TEMPLATE_FILES = sorted(SCHEDULES.glob("*.toml"))
CLINIC_FILES = sorted((SCHEDULES / "clinics").glob("*.toml"))


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_every_template_file_loads(path):
    t = load_template(path)
    assert path.stem == f"{t.id}_v{t.version}"


@pytest.mark.parametrize("path", CLINIC_FILES, ids=lambda p: p.name)
def test_every_clinic_file_loads(path):
    t = load_clinic_template(path, SCHEDULES)
    # <clinic>.toml is the current file; <clinic>_v<n>.toml an earlier version kept for its patients
    assert path.stem in (t.clinic, f"{t.clinic}_v{t.clinic_version}") and t.id == f"{t.base_id}+{t.clinic}"
    assert t.version == f"{t.base_version}+{t.clinic_version}"


def test_load_all_finds_templates_and_clinics():
    catalog = load_all(SCHEDULES)
    assert len(TEMPLATE_FILES) >= 1 and len(CLINIC_FILES) >= 1
    assert len(catalog.templates) == len(TEMPLATE_FILES) + len(CLINIC_FILES)
    assert catalog.get("kyphoplasty").version == "2"  # the newest version, for new enrolments
    assert catalog.get("kyphoplasty", "1").version == "1"
    assert catalog.for_clinic("demo-clinic").id == "kyphoplasty+demo-clinic"
    assert catalog.for_clinic("demo-clinic").version == "2+2"  # the current file, not the kept v1
    assert catalog.get("kyphoplasty+demo-clinic", "1+1").base_version == 1
    with pytest.raises(KeyError, match="no template nope"):
        catalog.get("nope")
    with pytest.raises(KeyError, match="no clinic file 'nope'"):
        catalog.for_clinic("nope")


def test_version_2_splits_the_no_shower_part_of_tl08_into_tl22():
    t = load_template(SCHEDULES / "kyphoplasty_v2.toml")
    assert [m.id for m in t.milestones] == [f"TL{i:02d}" for i in range(1, 23)]
    m = {x.id: x for x in t.milestones}
    assert (m["TL22"].start.text, m["TL22"].end.text) == ("T0", "T0+48h") and m["TL22"].restriction
    assert "shower for the first 2 days" not in m["TL08"].detail  # Today no longer says it for 6 weeks


def test_default_template_has_the_protocol_ids_and_seed_rules():
    t = load_template(DEFAULT)
    assert (t.id, t.version) == ("kyphoplasty", "1")
    assert [m.id for m in t.milestones] == [f"TL{i:02d}" for i in range(1, 22)]
    assert [m.id for m in t.messages] == [f"S{i:02d}" for i in range(1, 28)]  # S24-S27: SMS dialogue (issue 4)
    m = {x.id: x for x in t.milestones}
    # seed rules (SEED-003, SEED-004)
    assert (m["TL03"].start.text, m["TL03"].end.text) == ("T0", "T0+48h")  # no driving / public transport 48 h
    assert m["TL02"].start.text == "TD" and m["TL02"].restriction  # responsible adult overnight
    assert (m["TL12"].start.text, m["TL12"].end.text, m["TL12"].only_if) == ("T0+48h", "T0+72h", "working")
    assert m["TL13"].start.text == "date T0+7d"  # daily activities at about 1 week
    assert m["TL14"].end.text == "date T0+42d" and m["TL14"].restriction  # no heavy lifting 6 weeks
    assert m["TL16"].point and m["TL16"].start.text == "date T0+42d"  # follow-up at 6 weeks
    assert "48 hours" in t.message("S01").text
    assert {x.id for x in t.messages if x.urgent} == {"S19", "S20", "S21", "S24", "S25", "S26", "S27"}
    assert {x.id: x.only_if for x in t.messages if x.only_if} == {"S12": "working", "S15": "brace"}
    assert {x.kind for x in t.messages} == {"reminder", "checkin_invite", "checkin_reminder", "event_reply"}
    # §2.3 cadence
    cad = t.checkins
    assert (cad.day0.at.text, cad.day0.not_before.text, cad.day0.evening_fallback.strftime("%H:%M")) == (
        "T0+6h", "TD+2h", "20:00")
    groups = {g.name: (g.days, g.at.strftime("%H:%M"), g.invite, g.enabled) for g in cad.groups}
    assert groups == {"daily": ((1, 2, 3, 4, 5, 6, 7), "09:00", "S06", True), "day10": ((10,), "09:00", "S06", True),
                      "weekly": ((14, 21, 28, 35, 42), "09:00", "S14", True),
                      "optional": ((60, 90), "09:00", "S06", False)}
    assert t.quiet_hours[0].strftime("%H:%M") == "21:00" and t.quiet_hours[1].strftime("%H:%M") == "08:00"


def test_demo_clinic_follows_the_standard_plan_with_its_own_contacts():
    base = load_template(NEWEST)
    t = load_clinic_template(SCHEDULES / "clinics" / "demo-clinic.toml", SCHEDULES)
    assert (t.base_version, t.daily_limit, t.safety_quiet_hours) == (2, base.daily_limit, base.safety_quiet_hours)
    assert (t.emerg, t.phone) == ("911", "(555) 010-0199")
    assert t.milestones == base.milestones and t.message("S01") == base.message("S01")
    assert t.clinic_title == "Demo Clinic (example only)"


def test_example_clinic_overrides_contact_an_offset_and_texts():
    base = load_template(NEWEST)
    t = load_clinic_template(SCHEDULES / "clinics" / "example-strict-driving.toml", SCHEDULES)
    assert (t.emerg, t.phone) == ("911", "(555) 010-0199")
    assert t.milestone("TL03").end.text == "T0+14d" and "2 weeks" in t.message("S01").text
    assert t.milestone("TL03").lasts == "2 weeks" and t.message("S01").safety == ("TD",)
    assert t.message("S11").send[0].text == "09:00 first at or after TL03.end"
    assert t.milestone("TL14") == base.milestone("TL14") and t.message("S02") == base.message("S02")
    assert t.title == base.title and t.clinic_title == "Example: a clinic with the 2-week driving rule"
    assert len(t.sources) == 2


# ---------------------------------------------------------------------------------------------
# Offsets
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,kind,canonical,key", [
    ("T0+48h", Elapsed, "T0+48h", "T0+48h"),
    (" TD + 1h ", Elapsed, "TD+1h", "TD+1h"),
    ("TL16-7d", Elapsed, "TL16-7d", "TL16-7d"),
    ("TL03.end", Elapsed, "TL03.end", "TL03.end"),
    ("T0+1d+12h", Elapsed, "T0+1d+12h", "T0+1d+12h"),
    ("9:00 day 1", DayAt, "09:00 day 1", "day1"),
    ("09:00 first at or after T0+48h", FirstAt, "09:00 first at or after T0+48h", "first>=T0+48h"),
])
def test_offsets_parse(text, kind, canonical, key):
    off = parse_offset(text)
    assert isinstance(off, kind) and off.text == canonical and off.key == key


def test_offset_details():
    assert parse_offset("T0+1d+12h").delta == timedelta(hours=36)
    assert parse_offset("TL16-1w").delta == timedelta(days=-7)
    assert parse_offset("09:00 7 days before TL16").key == "TL16-7d"
    assert parse_offset("09:00 the day before TL16").text == "09:00 1 day before TL16"
    assert parse_offset("18:00 2 days after TD").key == "TD+2d"
    assert parse_offset("date T0+6w").text == "date T0+42d"
    assert parse_duration("1d12h") == timedelta(hours=36)


@pytest.mark.parametrize("text", ["T0+48", "T1+2h", "09:00 day", "25:00 day 1", "date T0+4h", "tomorrow",
                                  "", "T0.end+1h", "09:00 first at or after tomorrow"])
def test_bad_offsets(text):
    with pytest.raises(ValueError, match="cannot read offset|not a 24-hour time|empty offset|calendar offset"):
        parse_offset(text)


# ---------------------------------------------------------------------------------------------
# Broken files: each must name the file, the line, the entry and the problem
# ---------------------------------------------------------------------------------------------

def _line(text: str, needle: str, after: str | None = None) -> int:
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if line.strip() == after) + 1
    return next(i for i, line in enumerate(lines[start:], start) if needle in line) + 1


def _edit(old: str, new: str, text: str = DEFAULT_TEXT, count: int = 1) -> str:
    assert old in text, old
    return text.replace(old, new, count)


# 3 + 12 (first name) + 2 + 90 + 1 + 53 (https://recovery.example.org/l/ + 22) = 161: one too many
LONG_S14 = "Hi {first}, " + "a" * 90 + " {link}"

BROKEN = [
    # (id, edited text, (needle, after-header) of the expected line, expected message after "file:line: ")
    ("text-too-long", _edit(S14_TEXT, f'text = "{LONG_S14}"'), ('text = "Hi {first}, aaaa', "[messages.S14]"),
     "message S14: text is 161 GSM-7 characters after substitution, more than one SMS (max 160; checked with a "
     "12-character first name and a 53-character link)"),
    ("unknown-message-in-sms", _edit('sms = ["S01", "S11"]', 'sms = ["S01", "S99"]'), ('sms = ["S01", "S99"]', None),
     "milestone TL03: unknown message id 'S99' in 'sms'"),
    ("unparseable-offset", _edit('start = "T0+24h"', 'start = "T0+24"'), ('start = "T0+24"', None),
     "milestone TL07: 'start': cannot read offset 'T0+24'"),
    ("not-gsm7", _edit("Take pain medicine only as your team told you.", "Take pain medicine only as you’re told."),
     ("you’re told", None), "message S05: has characters that are not GSM-7: '’' (U+2019)"),
    ("phi-placeholder", _edit("{first}, short walks help.", "{first} {last}, short walks help."),
     ("{last}", None), "message S09: placeholder {last} is not allowed"),
    ("diagnosis-word", _edit("sore where the needle went in?", "sore where the fracture was treated?"),
     ("fracture was treated", None), "message S03: reveals health information: 'fracture'"),
    ("missing-field", _edit('end = "T0+48h"\nrestriction = false\nsms = ["S04"]', 'end = "T0+48h"\nsms = ["S04"]'),
     ("[milestones.TL05]", None), "milestone TL05: missing required field 'restriction'"),
    ("duplicate-id", DEFAULT_TEXT + '\n[messages.S14]\nkind = "reminder"\n', ("[messages.S14]", "enabled = false"),
     "message S14: defined twice (first at line {first})"),
    ("toml-syntax", _edit('title = "Take off the small bandage"', 'title = "Take off the small bandage'),
     ('title = "Take off the small bandage', None), "TOML syntax error, column"),
    ("unknown-milestone-in-offset", _edit('send = ["09:00 1 day before TL16"]', 'send = ["09:00 1 day before TL61"]'),
     ("TL61", None), "message S17: unknown milestone id 'TL61' in '09:00 1 day before TL61'"),
    ("urgent-reminder", _edit('send = ["TD+2h"]\nurgent = false', 'send = ["TD+2h"]\nurgent = true'),
     ("urgent = true", "[messages.S05]"), "message S05: only an event_reply"),
    ("typo-field", _edit('restriction = false\nsms = []\n\n[milestones.TL05]', 'restrction = false\nsms = []\n\n[milestones.TL05]'),
     ("restrction", None), "milestone TL04: unknown field 'restrction'"),
    ("ends-before-start", _edit('start = "T0+24h"\nend = "T0+48h"', 'start = "T0+24h"\nend = "T0+12h"'),
     ('end = "T0+12h"', None), "milestone TL07: ends (2026-"),
    ("cycle", _edit('at = "date T0+42d"\nall_day = true', 'at = "TL08.end"\nall_day = true'),
     ("[milestones.TL08]", None), "milestone TL08: offsets refer to each other in a circle: TL08 -> TL16 -> TL08"),
    ("version-vs-file-name", _edit("\nversion = 1", "\nversion = 2"), ("version = 2", 'id = "kyphoplasty"'),
     "template: the file name must be kyphoplasty_v2.toml"),
    ("bad-kind", _edit('kind = "reminder"\nsend = ["09:00 day 1"]', 'kind = "nudge"\nsend = ["09:00 day 1"]'),
     ('kind = "nudge"', None), "message S09: kind must be one of reminder, checkin_invite"),
    ("unknown-horizon", _edit('horizon = "TL21"', 'horizon = "TL99"'), ('horizon = "TL99"', None),
     "template: horizon names unknown milestone 'TL99'"),
    ("day-in-two-groups", _edit("days = [1, 2, 3, 4, 5, 6, 7]", "days = [1, 2, 3, 4, 5, 6, 7, 10]"),
     ("days = [10]", None), "check-in group day10: day 10 already has a check-in (group daily)"),
    ("invite-of-wrong-kind", _edit('time = "09:00"\ninvite = "S14"', 'time = "09:00"\ninvite = "S13"'),
     ('invite = "S13"', None), "check-in group weekly: 'invite' must name a message of kind checkin_invite"),
    ("bad-emergency-number", _edit('emerg = "112"', 'emerg = "call 112"'), ('emerg = "call 112"', None),
     "contact: emergency number must be 2-4 digits"),
    ("bad-quiet-hours", _edit('start = "21:00"', 'start = "9pm"'), ('start = "9pm"', None),
     "quiet_hours: 'start': '9pm' is not a 24-hour time"),
    ("restriction-without-end", _edit('start = "T0"\nend = "T0+48h"\nrestriction = true',
                                      'at = "T0"\nrestriction = true'),
     ("restriction = true", "[milestones.TL03]"), "milestone TL03: a restriction needs a 'start' and an 'end'"),
    ("reminder-after-missed", _edit('reminder_after = "4h"\nmissed_after = "8h"\n\n[checkins.daily]',
                                    'reminder_after = "9h"\nmissed_after = "8h"\n\n[checkins.daily]'),
     ('reminder_after = "9h"', None), "check-in group day0: the reminder must come before"),
    ("date-in-text", _edit("your follow-up visit is tomorrow.", "your follow-up visit is on 12 May."),
     ("12 May", None), "message S17: contains a date: '12 May'"),
]


@pytest.mark.parametrize("case,text,where,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_template_files(tmp_path, case, text, where, message):
    path = tmp_path / "kyphoplasty_v1.toml"
    path.write_text(text, encoding="utf-8")
    line = _line(text, where[0], where[1])
    if "{first}" in message:
        message = message.format(first=_line(text, "[messages.S14]"))
    with pytest.raises(TemplateError) as err:
        load_template(path)
    expected = f"{path}:{line}: {message}"
    assert str(err.value).startswith(expected), f"\n got: {err.value}\nwant: {expected}…"
    assert err.value.line == line and err.value.path == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(TemplateError, match=r"nothing\.toml:0: file not found"):
        load_template(tmp_path / "nothing.toml")


# ---------------------------------------------------------------------------------------------
# Clinic files
# ---------------------------------------------------------------------------------------------

CLINIC_HEAD = ('clinic = "north"\nversion = 3\ntitle = "Northside Spine Unit"\nbased_on = "kyphoplasty"\n'
               'based_on_version = 1\n\n[contact]\nemerg = "999"\nphone = "0161 496 0000"\n')


def _clinic(tmp_path, body: str, base_text: str = DEFAULT_TEXT, name: str = "north") -> Path:
    (tmp_path / "kyphoplasty_v1.toml").write_text(base_text, encoding="utf-8")
    (tmp_path / "clinics").mkdir(exist_ok=True)
    path = tmp_path / "clinics" / f"{name}.toml"
    path.write_text(CLINIC_HEAD + body, encoding="utf-8")
    return path


def test_clinic_file_merges(tmp_path):
    path = _clinic(tmp_path, '\n[milestones.TL16]\nat = "date T0+28d"\n\n[checkins.optional]\nenabled = true\n'
                             '\n[quiet_hours]\nend = "09:00"\n')
    t = load_clinic_template(path, tmp_path)
    assert (t.id, t.version, t.emerg, t.phone) == ("kyphoplasty+north", "1+3", "999", "0161 496 0000")
    assert t.milestone("TL16").start.text == "date T0+28d"
    assert next(g for g in t.checkins.groups if g.name == "optional").enabled
    assert t.quiet_hours[1].strftime("%H:%M") == "09:00" and t.quiet_hours[0].strftime("%H:%M") == "21:00"
    # a range milestone given a single moment (and back) by the clinic
    path = _clinic(tmp_path, '\n[milestones.TL17]\nat = "T0+48h"\n')
    assert load_clinic_template(path, tmp_path).milestone("TL17").point


CLINIC_BROKEN = [
    ("unknown-milestone", '\n[milestones.TL99]\ntitle = "Extra"\n', "[milestones.TL99]",
     "milestone TL99: milestone TL99 is not in kyphoplasty v1"),
    ("text-too-long", f'\n[messages.S14]\ntext = "{LONG_S14}"\n', "text = ",
     "message S14: text is 161 GSM-7 characters"),
    ("restated-timing", '\n[milestones.TL03]\nend = "T0+7d"\n', 'end = "T0+7d"',
     "milestone TL03: changes when it ends, but message S01 repeats that timing"),
    ("clinic-name-in-text", '\n[messages.S16]\ntext = "Hi {first}, your Northside Spine Unit visit is in 7 days."\n',
     "text = ", "message S16: reveals health information: 'Spine'"),
    ("clinic-name-only", '\n[messages.S16]\ntext = "Hi {first}, your visit at Northside Spine Unit is in 7 days."\n',
     "text = ", "message S16: reveals health information"),
    ("bad-contact", "", "", ""),  # replaced below
    ("unknown-contact-field", '\nfoo = 1\n', "foo = 1", "contact: unknown field 'foo' (allowed: emerg, name, phone)"),
    ("bad-offset", '\n[messages.S09]\nsend = ["09:00 day one"]\n', 'send = ["09:00 day one"]',
     "message S09: 'send': cannot read offset '09:00 day one'"),
    ("unknown-group", '\n[checkins.monthly]\ndays = [30]\n', "[checkins.monthly]",
     "check-in group monthly: check-in group 'monthly' is not in kyphoplasty v1"),
]


@pytest.mark.parametrize("case,body,needle,message", [c for c in CLINIC_BROKEN if c[0] != "bad-contact"],
                         ids=[c[0] for c in CLINIC_BROKEN if c[0] != "bad-contact"])
def test_broken_clinic_files(tmp_path, case, body, needle, message):
    path = _clinic(tmp_path, body)
    text = path.read_text(encoding="utf-8")
    line = _line(text, needle)
    with pytest.raises(TemplateError) as err:
        load_clinic_template(path, tmp_path)
    assert str(err.value).startswith(f"{path}:{line}: {message}"), str(err.value)


def test_clinic_problems_in_its_own_header(tmp_path):
    path = _clinic(tmp_path, "", name="south")  # clinic = "north" in a file called south.toml
    with pytest.raises(TemplateError, match=r"south\.toml:1: template: clinic 'north' must match the file name"):
        load_clinic_template(path, tmp_path)
    path = _clinic(tmp_path, "")
    path.write_text(path.read_text().replace('emerg = "999"', 'emerg = "9-9-9"'))
    with pytest.raises(TemplateError, match=rf"north\.toml:{_line(path.read_text(), 'emerg')}: contact: emergency number"):
        load_clinic_template(path, tmp_path)
    path.write_text("foo = 1\n" + CLINIC_HEAD)
    with pytest.raises(TemplateError, match=r"north\.toml:1: template: unknown field 'foo'"):
        load_clinic_template(path, tmp_path)
    path.write_text(CLINIC_HEAD.replace("based_on_version = 1", "based_on_version = 7"))
    with pytest.raises(TemplateError, match=r"north\.toml:4: template: no template kyphoplasty version 7"):
        load_clinic_template(path, tmp_path)


def test_clinic_clinic_name_in_a_text_is_refused(tmp_path):
    path = _clinic(tmp_path, '\n[messages.S16]\ntext = "Hi {first}, your Northside visit is in 7 days."\n')
    head = CLINIC_HEAD.replace('title = "Northside Spine Unit"', 'title = "Northside"')
    path.write_text(head + '\n[messages.S16]\ntext = "Hi {first}, your Northside visit is in 7 days."\n')
    with pytest.raises(TemplateError, match="message S16: names the clinic"):
        load_clinic_template(path, tmp_path)


def test_error_in_the_base_template_names_the_base_file(tmp_path):
    broken = _edit('start = "T0+24h"', 'start = "T0+24"')
    path = _clinic(tmp_path, "", base_text=broken)
    base = tmp_path / "kyphoplasty_v1.toml"
    line = _line(broken, 'start = "T0+24"')
    with pytest.raises(TemplateError, match=rf"^{re.escape(str(base))}:{line}: milestone TL07"):
        load_clinic_template(path, tmp_path)


# ---------------------------------------------------------------------------------------------
# Version 2's carrier texts, versions kept for their patients, and the name texts give the sender
# ---------------------------------------------------------------------------------------------

V2 = NEWEST
V2_TEXT = NEWEST_TEXT


def test_version_2_is_one_whole_file_with_the_carrier_texts():
    v1, v2 = load_template(DEFAULT), load_template(V2)
    assert (v2.id, v2.version, v2.sources) == ("kyphoplasty", "2", (str(V2),))  # read whole, nothing inherited
    assert [m.id for m in v2.messages] == [f"S{i:02d}" for i in range(0, 30)]
    changed = {m.id for m in v2.messages if m.id in {x.id for x in v1.messages}
               and replace(m, translations=()) != v1.message(m.id)}  # (v1 has no Spanish: it stays as published)
    # S01 and S02: safety texts (item 3); S06, S07, S14: "reply with a number"; S24: HELP names the clinic
    assert changed == {"S01", "S02", "S06", "S07", "S14", "S24"}
    assert (v2.message("S00").kind, v2.message("S00").on, v2.message("S00").urgent) == ("event_reply", "enrolled", True)
    assert (v2.message("S28").kind, v2.message("S28").on, v2.message("S28").urgent) == ("event_reply", "opted_out", True)
    assert v2.message("S00").text.startswith("{clinic}: Hi {first}, you are signed up for recovery texts.")
    assert v2.message("S24").text.startswith("{clinic} recovery texts.")
    assert v2.sms_name == "Your care team" and v1.sms_name == ""
    for clinic, name in (("demo-clinic", "Demo Clinic"), ("example-strict-driving", "Example Clinic")):
        assert load_clinic_template(SCHEDULES / "clinics" / f"{clinic}.toml", SCHEDULES).sms_name == name
    # the header's list of changes names every change of both branches of work
    header = V2_TEXT.split("# FOR THE REVIEWING CLINICIAN")[0]
    for word in ("Safety texts", "daily_limit", "lasts", "TL22", "S00", "S06, S07, S14", "S24", "S28", "S29", "[contact] name"):
        assert word in header, word


def _v2(tmp_path, extra: str = "", text: str = V2_TEXT) -> Path:
    path = tmp_path / "kyphoplasty_v2.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


@pytest.mark.parametrize("extra, needle, message", [
    ('\n[messages.S30]\nkind = "reminder"\nurgent = false\nsend = ["09:00 day 3"]\ntext = "Hi {first}, ' + "a" * 150
     + '"\n', 'text = "Hi {first}, aaa', "message S30: text is "),
    ("\n[milestones.TL23]\nfoo = 1\n", "foo = 1", "milestone TL23: unknown field 'foo'"),
])
def test_a_bad_version_2_names_its_own_file_and_line(tmp_path, extra, needle, message):
    path = _v2(tmp_path, extra)
    with pytest.raises(TemplateError) as err:
        load_template(path)
    assert str(err.value).startswith(f"{path}:{_line(path.read_text(), needle)}: {message}"), str(err.value)


def test_a_template_is_never_written_as_its_differences(tmp_path):
    """One file a clinician reads whole: a template may not inherit from another version."""
    path = _v2(tmp_path, text='based_on = "kyphoplasty"\n' + V2_TEXT)
    with pytest.raises(TemplateError, match=r"kyphoplasty_v2\.toml:1: template: unknown field 'based_on'"):
        load_template(path)


@pytest.mark.parametrize("name, problem", [("Northside Spine Unit", "reveals health information: 'Spine'"),
                                           ("x" * 31, "31 characters (max 30)")])
def test_the_senders_name_is_checked(tmp_path, name, problem):
    path = _v2(tmp_path, text=V2_TEXT.replace('name = "Your care team"', f'name = "{name}"'))
    with pytest.raises(TemplateError) as err:
        load_template(path)
    assert str(err.value).startswith(f"{path}:{_line(path.read_text(), 'name = ')}: contact: name ")
    assert problem in str(err.value)


def test_clinic_placeholder_needs_a_name(tmp_path):
    (tmp_path / "kyphoplasty_v1.toml").write_text(_edit(
        'text = "Take pain medicine only as your team told you.',
        'text = "{clinic}: Take pain medicine only as your team told you.'))
    with pytest.raises(TemplateError, match=r"message S05: uses \{clinic\} but the template's \[contact\] has no name"):
        load_template(tmp_path / "kyphoplasty_v1.toml")


V1_S14_LINE = _line(DEFAULT.read_text(encoding="utf-8"), V1_S14_TEXT)


def test_a_replaced_version_is_never_rewritten(tmp_path):
    """Version 1 stays byte for byte as its patients were enrolled on it. Its S14 does not fit one SMS
    with the real link: as a version that version 2 replaces, that is a warning (naming the file and
    line); the same file as the newest version of its folder is refused."""
    v1 = load_template(DEFAULT)
    assert v1.message("S14").text.startswith("Hi {first}, time for your weekly recovery check-in: {link} Still")
    (warning,) = v1.warnings
    assert warning.startswith(f"{DEFAULT}:{V1_S14_LINE}: message S14: text is 175 GSM-7 characters after "
                              "substitution, more than one SMS (max 160; checked with a 12-character first name "
                              "and a 53-character link); kept as it is: this version is replaced by a newer one")
    assert load_template(NEWEST).warnings == ()
    alone = tmp_path / "kyphoplasty_v1.toml"
    alone.write_text(DEFAULT.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(TemplateError, match=rf"^{re.escape(str(alone))}:{V1_S14_LINE}: message S14: text is 175 "):
        load_template(alone)
    # only the length is let through: any other problem in a replaced version still fails it
    alone.write_text(_edit("Take pain medicine only as your team told you.", "Take pain medicine only as you’re told.",
                           DEFAULT.read_text(encoding="utf-8")), encoding="utf-8")
    (tmp_path / "kyphoplasty_v2.toml").write_text(V2_TEXT, encoding="utf-8")
    with pytest.raises(TemplateError, match="message S05: has characters that are not GSM-7"):
        load_template(alone)


def test_kept_clinic_versions_and_clinics_on_a_replaced_version_warn_but_their_new_texts_must_fit(tmp_path):
    kept = load_clinic_template(SCHEDULES / "clinics" / "demo-clinic_v1.toml", SCHEDULES)
    assert [w.split(": ", 2)[:2] for w in kept.warnings] == [[f"{DEFAULT}:{V1_S14_LINE}", "message S14"]]
    assert load_clinic_template(SCHEDULES / "clinics" / "demo-clinic.toml", SCHEDULES).warnings == ()
    # a clinic still on version 1: what it takes unchanged from version 1 warns ...
    (tmp_path / "kyphoplasty_v2.toml").write_text(V2_TEXT, encoding="utf-8")
    path = _clinic(tmp_path, "", base_text=DEFAULT.read_text(encoding="utf-8"))
    assert [w.split(": ", 2)[1] for w in load_clinic_template(path, tmp_path).warnings] == ["message S14"]
    # ... what it writes itself is checked like any new text
    path.write_text(CLINIC_HEAD + f'\n[messages.S16]\ntext = "{LONG_S14}"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match=r"north\.toml:\d+: message S16: text is 161 GSM-7 characters"):
        load_clinic_template(path, tmp_path)


def test_an_earlier_clinic_version_loads_as_itself():
    earlier = SCHEDULES / "clinics" / "demo-clinic_v1.toml"
    t = load_clinic_template(earlier, SCHEDULES)
    assert (t.id, t.version, t.sms_name) == ("kyphoplasty+demo-clinic", "1+1", "")
    current = load_clinic_template(SCHEDULES / "clinics" / "demo-clinic.toml", SCHEDULES)
    assert (current.id, current.version) == ("kyphoplasty+demo-clinic", "2+2")
    catalog = load_all(SCHEDULES)
    assert catalog.for_clinic("demo-clinic").version == "2+2"  # the earlier file is not the clinic's
    assert ("kyphoplasty+demo-clinic", "1+1") in catalog.templates


def test_an_earlier_version_must_be_named_for_its_version(tmp_path):
    path = _clinic(tmp_path, "")
    wrong = tmp_path / "clinics" / "north_v2.toml"
    wrong.write_text(path.read_text())
    with pytest.raises(TemplateError, match=r"clinic 'north' must match the file name 'north_v2' \(or, for an earlier "
                                            r"version kept for its patients, north_v3\.toml\)"):
        load_clinic_template(wrong, tmp_path)
    right = tmp_path / "clinics" / "north_v3.toml"
    right.write_text(path.read_text())
    assert load_clinic_template(right, tmp_path).version == "1+3"


def test_the_budget_is_the_callers(tmp_path):
    from recovery.domain import texts
    path = _v2(tmp_path)
    assert load_template(path, texts.Budget(link=50)).budget == texts.Budget(link=50)
    with pytest.raises(TemplateError, match=r"message S(06|07|14): text is \d+ GSM-7 characters after substitution, "
                                            r"more than one SMS \(max 160; checked with a 12-character first name "
                                            r"and a 70-character link\)"):
        load_template(path, texts.Budget(link=70))


def test_load_all_reports_the_bad_file(tmp_path):
    (tmp_path / "kyphoplasty_v1.toml").write_text(DEFAULT_TEXT.replace('horizon = "TL21"', 'horizon = 5'))
    with pytest.raises(TemplateError, match=r"kyphoplasty_v1\.toml:\d+: template: 'horizon' must be text"):
        load_all(tmp_path)
    (tmp_path / "kyphoplasty_v1.toml").write_text(DEFAULT_TEXT)
    (tmp_path / "rulesets").mkdir()
    (tmp_path / "rulesets" / "rules.toml").write_text("not = 'a template'\n")  # other folders are not templates
    assert list(load_all(tmp_path).templates) == [("kyphoplasty", "1")]


# ---------------------------------------------------------------------------------------------
# Overrides JSON
# ---------------------------------------------------------------------------------------------

def test_overrides_round_trip():
    data = {"working": True, "brace": False,
            "milestones": {"TL03": {"end": "T0+14d"}, "TL16": "date T0+14d", "TL12": {"start": "T0+72h", "end": "T0+5d"}},
            "messages": {"S03": False}, "texts": {"S01": "Hi {first}, welcome home."},
            "checkins": {"optional": True}}
    o = Overrides.from_dict(data)
    assert o.to_dict() == {**data, "milestones": {"TL03": {"end": "T0+14d"}, "TL16": "date T0+14d",
                                                   "TL12": {"start": "T0+72h", "end": "T0+5d"}}}
    assert Overrides.from_dict(o.to_dict()) == o
    assert Overrides.from_dict(None) == Overrides() and Overrides().to_dict() == {"working": False, "brace": False}
    import json
    json.dumps(o.to_dict())


@pytest.mark.parametrize("data,message", [
    ([], "overrides must be an object"),
    ({"wroking": True}, "wroking: unknown override"),
    ({"working": "yes"}, "working: must be true or false"),
    ({"milestones": {"TL03": {"end": "T0+14"}}}, r"milestones.TL03.end: cannot read offset 'T0\+14'"),
    ({"milestones": {"TL03": {"finish": "T0+14d"}}}, "milestones.TL03.finish: unknown"),
    ({"milestones": {"TL03": {}}}, "milestones.TL03: give an offset string"),
    ({"milestones": {"TL16": {"at": "date T0+14d", "start": "T0"}}}, "milestones.TL16: give either 'at'"),
    ({"milestones": "TL03"}, "milestones: must be an object"),
    ({"messages": {"S03": "off"}}, "messages.S03: must be true or false"),
    ({"texts": {"S01": "Hi {first}, your kyphoplasty went well."}}, "texts.S01: reveals health information"),
    ({"texts": {"S01": "Hi {surname}"}}, r"texts.S01: placeholder \{surname\} is not allowed"),
    ({"texts": {"S01": 5}}, "texts.S01: must be text"),
    ({"checkins": {"optional": 1}}, "checkins.optional: must be true or false"),
])
def test_bad_overrides(data, message):
    with pytest.raises(OverrideError, match=message):
        Overrides.from_dict(data)


# ---------------------------------------------------------------------------------------------
# Version 2: safety texts, the daily limit and milestone lengths are checked when the file loads
# ---------------------------------------------------------------------------------------------

def test_v2_marks_the_safety_texts_and_ranks_every_routine_text():
    t = load_template(NEWEST)
    assert (t.id, t.version) == ("kyphoplasty", "2")
    assert {m.id: m.safety for m in t.messages if m.safety} == {"S01": ("TD",), "S02": ("TD+1h",)}
    assert [x.strftime("%H:%M") for x in t.safety_quiet_hours] == ["23:00", "08:00"]
    assert (t.daily_limit.per_day, t.daily_limit.min_gap) == (3, timedelta(hours=2))
    routine = {m.id for m in t.messages if m.kind == "checkin_reminder"
               or (m.kind == "reminder" and any(o.key not in m.safety for o in m.send))}
    assert set(t.daily_limit.order) == routine and t.daily_limit.order[:2] == ("S02", "S07")
    assert t.milestone("TL03").lasts == "48 hours"


def _v2_edit(old: str, new: str) -> str:
    assert old in NEWEST_TEXT, old
    return NEWEST_TEXT.replace(old, new, 1)


BROKEN_V2 = [
    ("safety-on-a-reply", _v2_edit('on = "emergency_result"\nurgent = true', 'on = "emergency_result"\nurgent = true\nsafety = true'),
     ("safety = true", "[messages.S19]"), "message S19: only a reminder (a text on a timetable) can be a safety text"),
    ("safety-not-a-send-time", _v2_edit('safety = ["TD+1h"]', 'safety = ["TD+2h"]'), ('safety = ["TD+2h"]', None),
     "message S02: 'safety' names 'TD+2h', which is not one of its 'send' times (TD+1h, 09:00 day 1, 09:00 day 2)"),
    ("safety-bad-value", _v2_edit('safety = ["TD+1h"]', 'safety = "yes"'), ('safety = "yes"', None),
     "message S02: 'safety' must be true, false or a list of offsets"),
    ("safety-opt-in", _v2_edit('safety = true\nrestates', 'safety = true\nonly_if = "brace"\nrestates'),
     ("safety = true", "[messages.S01]"), "message S01: a safety text goes to every patient"),
    ("no-safety-start", _v2_edit('\nsafety_start = "23:00"', ''), ("[quiet_hours]", None),
     "quiet_hours: a template with safety texts must set [quiet_hours] safety_start"),
    ("safety-start-in-the-day", _v2_edit('safety_start = "23:00"', 'safety_start = "20:00"'),
     ('safety_start = "20:00"', None), "quiet_hours: safety_start 20:00 must lie within the quiet hours 21:00-08:00"),
    ("routine-text-not-ranked", _v2_edit('  "S09",  # short walks\n', ''), ("order = [", None),
     "daily_limit: 'order' must rank every routine text; add S09"),
    ("safety-text-ranked", _v2_edit('  "S02",  # when', '  "S01",\n  "S02",  # when'), ("order = [", None),
     "daily_limit: 'order' lists S01, but a safety text is never held back; remove it"),
    ("invitation-ranked", _v2_edit('  "S02",  # when', '  "S06",\n  "S02",  # when'), ("order = [", None),
     "daily_limit: 'order' lists S06, but a checkin_invite does not count towards the limit"),
    # the carrier texts are replies: the limit neither counts nor moves them
    ("opt-in-ranked", _v2_edit('  "S02",  # when', '  "S00",\n  "S02",  # when'), ("order = [", None),
     "daily_limit: 'order' lists S00, but an event_reply does not count towards the limit"),
    ("opt-out-reply-ranked", _v2_edit('  "S02",  # when', '  "S28",\n  "S02",  # when'), ("order = [", None),
     "daily_limit: 'order' lists S28, but an event_reply does not count towards the limit"),
    ("ranked-twice", _v2_edit('  "S09",  # short walks\n', '  "S09",\n  "S09",\n'), ("order = [", None),
     "daily_limit: 'order' lists S09 twice"),
    ("unknown-ranked", _v2_edit('  "S09",  # short walks\n', '  "S09",\n  "S99",\n'), ("order = [", None),
     "daily_limit: 'order' names unknown message 'S99'"),
    ("zero-per-day", _v2_edit("per_day = 3", "per_day = 0"), ("per_day = 0", None), "daily_limit: per_day must be 1"),
    ("bad-gap", _v2_edit('min_gap = "2h"', 'min_gap = "2 hours"'), ('min_gap = "2 hours"', None),
     "daily_limit: 'min_gap': '2 hours' is not a duration"),
    ("typo-in-limit", _v2_edit("per_day = 3", "per_day = 3\nmax = 4"), ("max = 4", None),
     "daily_limit: unknown field 'max'"),
    ("lasts-not-in-detail", _v2_edit('lasts = "48 hours"', 'lasts = "2 days"'), ("Do not drive yourself", None),
     "milestone TL03: its detail must say how long it lasts in the words of 'lasts' ('2 days')"),
    ("restating-text-without-the-length",
     _v2_edit("Do not drive or use buses or trains for 48 hours.", "Do not drive or use buses or trains yet."),
     ("trains yet.", None), "message S01: restates milestone TL03, which lasts '48 hours', but the text does not say so"),
    ("held-text-not-on-today", _v2_edit('sms = ["S09"]', 'sms = []'), ("order = [", None),
     "daily_limit: message S09 is held back by the daily limit (e.g. for a procedure ending"),
]


@pytest.mark.parametrize("case,text,where,message", BROKEN_V2, ids=[b[0] for b in BROKEN_V2])
def test_broken_v2_files(tmp_path, case, text, where, message):
    path = tmp_path / "kyphoplasty_v2.toml"
    path.write_text(text, encoding="utf-8")
    line = _line(text, where[0], where[1])
    with pytest.raises(TemplateError) as err:
        load_template(path)
    expected = f"{path}:{line}: {message}"
    assert str(err.value).startswith(expected), f"\n got: {err.value}\nwant: {expected}…"


def test_a_clinic_can_change_the_daily_limit_and_keeps_earlier_versions(tmp_path):
    (tmp_path / "kyphoplasty_v2.toml").write_text(NEWEST_TEXT, encoding="utf-8")
    (tmp_path / "clinics").mkdir()
    head = ('clinic = "north"\nversion = {v}\ntitle = "North"\nbased_on = "kyphoplasty"\nbased_on_version = 2\n\n'
            '[contact]\nemerg = "999"\nphone = "0161 496 0000"\n')
    (tmp_path / "clinics" / "north.toml").write_text(head.format(v=2) + "\n[daily_limit]\nper_day = 2\n")
    (tmp_path / "clinics" / "north_v1.toml").write_text(head.format(v=1))
    catalog = load_all(tmp_path)
    assert catalog.for_clinic("north").version == "2+2" and catalog.for_clinic("north").daily_limit.per_day == 2
    assert catalog.get("kyphoplasty+north", "2+1").daily_limit.per_day == 3  # the kept version 1
    from recovery.files import templates as templates_repo
    assert templates_repo.find_template(tmp_path, "kyphoplasty+north", "2+1", "north").clinic_version == 1
    assert templates_repo.find_template(tmp_path, "kyphoplasty+north", "2+2", "north").clinic_version == 2
    (tmp_path / "clinics" / "north_v1.toml").write_text(head.format(v=3))  # name and version disagree
    with pytest.raises(TemplateError, match=r"north_v1\.toml:1: template: clinic 'north' must match the file name"):
        load_all(tmp_path)

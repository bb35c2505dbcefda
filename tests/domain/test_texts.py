"""SMS texts: every text of every template fits one GSM-7 segment with worst-case values and carries
no PHI beyond the first name; the GSM-7 / placeholder / PHI checks themselves."""
from __future__ import annotations

from pathlib import Path

import pytest

from recovery import texts
from recovery.plan import load_all

SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
CATALOG = load_all(SCHEDULES)
ALL_TEXTS = [(f"{t.id}@{t.version}:{m.id}", t, m) for t in CATALOG.templates.values() for m in t.messages]


@pytest.mark.parametrize("name,template,message", ALL_TEXTS, ids=[x[0] for x in ALL_TEXTS])
def test_every_text_fits_one_segment_with_worst_case_values(name, template, message):
    worst = dict(texts.WORST_CASE)
    worst["emerg"] = max(worst["emerg"], template.emerg, key=len)
    worst["phone"] = max(worst["phone"], template.phone, key=len)
    body = texts.render(message.text, **worst)
    assert len(worst["first"]) == 11 and len(worst["link"]) == 26
    assert texts.is_gsm7(body)
    assert texts.gsm7_length(body) <= texts.SMS_MAX, f"{name}: {texts.gsm7_length(body)}"
    # and with the template's real numbers
    real = texts.render(message.text, first=worst["first"], link=worst["link"], emerg=template.emerg,
                        phone=template.phone)
    assert texts.gsm7_length(real) <= texts.SMS_MAX


@pytest.mark.parametrize("name,template,message", ALL_TEXTS, ids=[x[0] for x in ALL_TEXTS])
def test_no_phi_beyond_the_first_name(name, template, message):
    assert set(texts.placeholders(message.text)) <= {"first", "link", "emerg", "phone"}
    assert texts.check_text(message.text, emerg=template.emerg, phone=template.phone).ok
    body = texts.render(message.text, first="Zed", link="https://x.test/l/abc", emerg="911", phone="555")
    for word in ("kyphoplasty", "vertebroplasty", "fracture", "spine", "cement", "osteoporosis"):
        assert word not in body.lower()


def test_longest_default_text_is_s14_at_147():
    lengths = {m.id: texts.check_text(m.text).length for m in CATALOG.get("kyphoplasty").messages}
    assert max(lengths.values()) == lengths["S14"] == 147  # protocol.md §1.1


def test_gsm7_lengths():
    assert texts.gsm7_length("Hello") == 5
    assert texts.gsm7_length("£5 @ 09:00, é à ñ Ü ¿") == 21  # basic-alphabet characters count 1
    assert texts.gsm7_length("[x]{y}~|^€\\") == 2 * 9 + 2  # extension characters count 2
    assert texts.gsm7_length("a\nb") == 3
    for bad in ("it’s", "🙂", "`", "naïve", "–"):
        assert not texts.is_gsm7(bad)
        with pytest.raises(ValueError, match="not GSM-7"):
            texts.gsm7_length(bad)
    assert texts.non_gsm7_chars("don’t “quote”") == ["’", "“", "”"]


def test_render_is_one_pass_and_strict():
    assert texts.render("Hi {first}: {link} {emerg} {phone}", first="{link}", link="L", emerg="911",
                        phone="555") == "Hi {link}: L 911 555"
    with pytest.raises(ValueError, match=r"placeholder \{last\} is not allowed"):
        texts.render("Hi {first} {last}", first="A", link="L", emerg="1", phone="2")
    with pytest.raises(ValueError, match="stray"):
        texts.render("Hi {first", first="A", link="L", emerg="1", phone="2")


@pytest.mark.parametrize("text,problem", [
    ("Hi {first}, how is your kyphoplasty site?", "reveals health information: 'kyphoplasty'"),
    ("Hi {first}, after your Vertebroplasty rest.", "reveals health information: 'Vertebroplasty'"),
    ("{first}, the fracture needs time.", "'fracture'"),
    ("{first}, your spine needs rest.", "'spine'"),
    ("{first}, spinal care tips: {link}", "'spinal'"),
    ("{first}, the cement sets fast.", "'cement'"),
    ("{first}, osteoporosis medicine: {link}", "'osteoporosis'"),
    ("{first}, your vertebrae heal.", "'vertebrae'"),
    ("Hi {first}, visit on 12 May at 10:00", "contains a date: '12 May'"),
    ("Hi {first}, visit on 3/14", "contains a date: '3/14'"),
    ("Hi {first}, visit on March 3", "contains a date"),
    ("Dear {first} {surname}", r"placeholder {surname} is not allowed"),
    ("Your DOB {dob}", r"placeholder {dob} is not allowed"),
    ("Hi {first}, it’s time", "not GSM-7"),
    ("Hi {first}, " + "x" * 150, "text is 166 GSM-7 characters after substitution (max 160"),
    ("Call {phone} now {first}" + " " * 126, "text is 161 GSM-7"),  # 5+14+5+11+126, 14-char phone
])
def test_check_text_finds_problems(text, problem):
    check = texts.check_text(text)
    assert not check.ok
    assert any(problem in p for p in check.problems), check.problems


@pytest.mark.parametrize("text", [
    "{first}, you can take off the small bandage 24-48 hours after your procedure.",
    "{first}, you may shower from today if your team agrees.",  # "may" is not a date
    "{first}, for the first 1-2 days keep your head raised.",
    "Hi {first}, time for your weekly recovery check-in: {link}",
])
def test_check_text_allows_plain_texts(text):
    assert texts.check_text(text).ok


def test_check_text_uses_longer_configured_numbers_and_clinic_names():
    text = "Hi {first}. Call {phone}." + "x" * 113  # 3+11+7+14+1 = 36 + 113 = 149 with the worst case
    assert texts.check_text(text).length == 149
    assert texts.check_text(text, phone="+44 161 496 0000 ext 12").length == 149 - 14 + 23
    assert not texts.check_text(text + "x" * 3, phone="+44 161 496 0000 ext 12").ok
    problems = texts.check_text("Hi {first}, Northside (example) says hi", forbidden_names=("Northside (example)",)).problems
    assert problems and "names the clinic" in problems[0]

"""SMS text rules: the length budget, placeholder rendering and the privacy (PHI) check.

Pure: standard library only. A text template may use exactly five placeholders:
`{first}` (first name), `{link}` (the patient's link), `{emerg}` (local emergency number),
`{phone}` (care-team number) and `{clinic}` (the name texts give the sender, from the template's
[contact] name; carriers require it in the opt-in confirmation and the HELP reply). Everything else
about the patient stays behind the link (protocol §1.1): no diagnosis, procedure, body part or
appointment date in an SMS, and the clinic's name only through {clinic}, checked like a text.

The budget: every text must fit ONE GSM-7 segment (160 septets, see recovery/domain/sms_encoding.py) with
a 12-character first name, the real link (PUBLIC_BASE_URL + "/l/" + a 22-character token), and the
template's real numbers and name. A single character outside GSM-7 turns a whole message into UCS-2
(70 per segment), so templates must be pure GSM-7; a patient's name outside GSM-7 is the one thing
that can still do that at send time (the dispatcher stores the segment count).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from recovery.domain import sms_encoding
from recovery.domain.sms_encoding import GSM7_BASIC, GSM7_EXTENSION, is_gsm7, non_gsm7_chars, septets

__all__ = ["Budget", "DEFAULT_BUDGET", "GSM7_BASIC", "GSM7_EXTENSION", "LINK_PATH", "LINK_TOKEN_CHARS",
           "PLACEHOLDERS", "SMS_MAX", "TRANSLATION_SEGMENTS", "check_translation", "TextCheck", "WORST_CASE", "check_name", "check_text", "gsm7_length",
           "is_gsm7", "link_length", "non_gsm7_chars", "placeholders", "render"]

SMS_MAX = 160

PLACEHOLDERS = ("first", "link", "emerg", "phone", "clinic")

# Links in texts are PUBLIC_BASE_URL + LINK_PATH + a token of LINK_TOKEN_CHARS (128 random bits,
# base64url: recovery/services/tokens.py).
LINK_PATH = "/l/"
LINK_TOKEN_CHARS = 22
FIRST_NAME_BUDGET = 12
CLINIC_NAME_MAX = 30


def link_length(public_base_url: str) -> int:
    """Characters of a patient link under this base URL ("https://x.org" -> 13 + 3 + 22)."""
    return len(public_base_url.rstrip("/")) + len(LINK_PATH) + LINK_TOKEN_CHARS


@dataclass(frozen=True)
class Budget:
    """What a text is measured with: a first name of `first` characters and a link of `link`."""
    link: int
    first: int = FIRST_NAME_BUDGET

    @classmethod
    def for_base_url(cls, public_base_url: str) -> Budget:
        return cls(link=link_length(public_base_url))


# When the deployment's base URL is not known (a file checked on its own): a typical public one.
DEFAULT_BUDGET = Budget.for_base_url("https://recovery.example.org")

# Worst-case values for the length check: a 12-character first name, the default link, a
# 3-digit emergency number, a 14-character care-team number such as "(555) 010-0199", a clinic
# name of the longest allowed length. The real values are used where they are longer.
WORST_CASE = {"first": "W" * FIRST_NAME_BUDGET, "link": "L" * DEFAULT_BUDGET.link, "emerg": "9" * 3,
              "phone": "P" * 14, "clinic": "C" * CLINIC_NAME_MAX}

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

# Words that would tell a reader of the phone's lock screen what the patient was treated for.
_DIAGNOSIS = re.compile(
    r"\b(kyphoplast\w*|vertebroplast\w*|vertebr\w*|fractur\w*|spine|spines|spinal|cement\w*|"
    r"osteopor\w*|augmentation|cancer\w*|tumou?r\w*|myeloma\w*|metasta\w*|oncolog\w*|"
    # the same words in the translations' languages (Spanish: issue 14)
    r"cifoplast\w*|v[ée]rtebr\w*|columna|c[áa]ncer\w*|tumor\w*|mieloma\w*|osteopor\w*)\b",
    re.IGNORECASE,
)
_MONTHS = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*"
# An appointment date in the text is PHI (protocol §1.1); "24-48 hours" and "1-2 days" are fine.
_DATE_LIKE = re.compile(
    rf"\b\d{{1,2}}/\d{{1,2}}(/\d{{2,4}})?\b|\b\d{{1,2}}(st|nd|rd|th)?\s+{_MONTHS}(?![a-z])|"
    rf"\b{_MONTHS}\s+\d{{1,2}}\b|\b(january|february|march|april|june|july|august|september|"
    rf"october|november|december)\b",
    re.IGNORECASE,
)


def gsm7_length(text: str) -> int:
    """Length in GSM-7 septets. Raises ValueError naming the characters GSM-7 cannot carry."""
    bad = non_gsm7_chars(text)
    if bad:
        raise ValueError(f"not GSM-7: {', '.join(_describe(c) for c in bad)}")
    return septets(text)


def placeholders(text_template: str) -> list[str]:
    """Placeholder names used in a template, in order (duplicates kept)."""
    return _PLACEHOLDER.findall(text_template)


def render(text_template: str, *, first: str, link: str, emerg: str, phone: str, clinic: str = "") -> str:
    """Fill the placeholders in one pass (a value containing "{link}" is not re-expanded).

    Raises ValueError on any other placeholder, a stray brace, or {clinic} with no name to put
    there, so a broken template can never reach a patient half-rendered.
    """
    values = {"first": first, "link": link, "emerg": emerg, "phone": phone, "clinic": clinic}
    problems = _placeholder_problems(text_template)
    if "clinic" in placeholders(text_template) and not clinic.strip():
        problems.append("uses {clinic} but no clinic name was given")
    if problems:
        raise ValueError("; ".join(problems))
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text_template)


@dataclass(frozen=True)
class TextCheck:
    length: int  # GSM-7 septets with the budget's values substituted
    problems: tuple[str, ...]
    too_long: str = ""  # the problem in `problems` that says it does not fit one SMS, if it does not

    @property
    def ok(self) -> bool:
        return not self.problems


def check_name(name: str) -> list[str]:
    """Problems with the clinic name texts use for {clinic} (empty list when it is fine)."""
    problems = []
    if not name.strip():
        problems.append("the name is empty")
    if len(name) > CLINIC_NAME_MAX:
        problems.append(f"the name is {len(name)} characters (max {CLINIC_NAME_MAX})")
    bad = non_gsm7_chars(name)
    if bad:
        problems.append(f"the name has characters that are not GSM-7: {', '.join(_describe(c) for c in bad)}")
    if "{" in name or "}" in name:
        problems.append("the name has a '{' or '}'")
    for m in _DIAGNOSIS.finditer(name):
        problems.append(f"the name reveals health information: {m.group(0)!r} (it appears on the patient's "
                        "lock screen; use a name without the specialty)")
    return problems


def check_text(text_template: str, *, emerg: str | None = None, phone: str | None = None,
               clinic: str | None = None, budget: Budget | None = None,
               forbidden_names: tuple[str, ...] = ()) -> TextCheck:
    """Check one text template: placeholders, GSM-7, length ≤ 160 within `budget`, no PHI words.

    `emerg`/`phone` are the configured values; the length check uses whichever is longer, the
    configured value or the worst case. `clinic` is the template's name for {clinic} (its real
    value is used; none means the longest allowed). `budget` gives the first-name and link lengths
    (the deployment's real link; DEFAULT_BUDGET when not known). `forbidden_names` (the clinic's
    titles) must not appear literally: the name goes in through {clinic} only.
    """
    budget = budget or DEFAULT_BUDGET
    problems = list(_placeholder_problems(text_template))
    bad = non_gsm7_chars(_PLACEHOLDER.sub("", text_template))
    if bad:
        problems.append(f"has characters that are not GSM-7: {', '.join(_describe(c) for c in bad)}"
                        " (use plain quotes and hyphens)")
    worst = dict(WORST_CASE, first="W" * budget.first, link="L" * budget.link)
    for name, actual in (("emerg", emerg), ("phone", phone)):
        if actual is not None and len(actual) > len(worst[name]):
            worst[name] = actual
    if clinic is not None:
        worst["clinic"] = clinic
        if "clinic" in placeholders(text_template) and not clinic.strip():
            problems.append("uses {clinic} but the template's [contact] has no name")
    filled = _PLACEHOLDER.sub(lambda m: worst.get(m.group(1), m.group(0)), text_template)
    length = septets(filled)
    too_long = ""
    if length > SMS_MAX:
        too_long = (f"text is {length} GSM-7 characters after substitution, more than one SMS "
                    f"(max {SMS_MAX}; checked with a {budget.first}-character first name and a "
                    f"{budget.link}-character link)")
        problems.append(too_long)
    literal = _PLACEHOLDER.sub(" ", text_template)
    for m in _DIAGNOSIS.finditer(literal):
        problems.append(f"reveals health information: {m.group(0)!r} (keep details behind {{link}})")
    for m in _DATE_LIKE.finditer(literal):
        problems.append(f"contains a date: {m.group(0)!r} (no appointment dates in texts)")
    for name in forbidden_names:
        if name and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", literal, re.IGNORECASE):
            problems.append(f"names the clinic ({name!r}) in its words; write {{clinic}} where the clinic must "
                            "be named (the first text, HELP)")
    return TextCheck(length=length, problems=tuple(problems), too_long=too_long)


# A translation may be UCS-2 (Spanish á í ó ú: 70 characters a segment, 67 when split), so it
# may take up to this many segments, counted with the real encoding (English: one GSM-7 segment).
TRANSLATION_SEGMENTS = 2


@dataclass(frozen=True)
class TranslationCheck:
    segments: sms_encoding.Segments  # of the text filled with the worst case (encoding, units, count)
    problems: tuple[str, ...]


def check_translation(text_template: str, *, english: str, emerg: str | None = None, phone: str | None = None,
                      clinic: str | None = None, budget: Budget | None = None,
                      forbidden_names: tuple[str, ...] = ()) -> TranslationCheck:
    """A text in another language: the English text's placeholders, none missing or extra; the
    privacy checks of `check_text`; at most TRANSLATION_SEGMENTS segments in its real encoding,
    with the same worst case (a 12-character first name, the real link)."""
    base = check_text(text_template, emerg=emerg, phone=phone, clinic=clinic, budget=budget,
                      forbidden_names=forbidden_names)
    problems = [p for p in base.problems if p != base.too_long and not p.startswith("has characters that are not GSM-7")]
    mine, theirs = set(placeholders(text_template)), set(placeholders(english))
    if mine != theirs:
        missing, extra = sorted(theirs - mine), sorted(mine - theirs)
        problems.append("placeholders differ from the English text:"
                        + (f" missing {', '.join('{' + p + '}' for p in missing)}" if missing else "")
                        + (f" extra {', '.join('{' + p + '}' for p in extra)}" if extra else ""))
    budget = budget or DEFAULT_BUDGET
    worst = dict(WORST_CASE, first="W" * budget.first, link="L" * budget.link)
    for name, actual in (("emerg", emerg), ("phone", phone)):
        if actual is not None and len(actual) > len(worst[name]):
            worst[name] = actual
    if clinic is not None:
        worst["clinic"] = clinic
    filled = _PLACEHOLDER.sub(lambda m: worst.get(m.group(1), m.group(0)), text_template)
    segments = sms_encoding.count(filled)
    if segments.count > TRANSLATION_SEGMENTS:
        problems.append(f"text is {segments.units} {segments.encoding} units after substitution: {segments.count} "
                        f"SMS segments, more than {TRANSLATION_SEGMENTS} (checked with a {budget.first}-character "
                        f"first name and a {budget.link}-character link"
                        + (f"; UCS-2 because of {', '.join(segments.non_gsm)}" if segments.non_gsm else "") + ")")
    return TranslationCheck(segments=segments, problems=tuple(problems))


def _placeholder_problems(text_template: str) -> list[str]:
    problems = []
    for name in _PLACEHOLDER.findall(text_template):
        if name not in PLACEHOLDERS:
            problems.append(f"placeholder {{{name}}} is not allowed (only "
                            + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                            + "; nothing else about the patient may go in an SMS)")
    stripped = _PLACEHOLDER.sub("", text_template)
    if "{" in stripped or "}" in stripped:
        problems.append("has a stray '{' or '}' (placeholders are written {first}, {link}, {emerg}, {phone}, "
                        "{clinic})")
    return problems


def _describe(ch: str) -> str:
    return f"{ch!r} (U+{ord(ch):04X})"

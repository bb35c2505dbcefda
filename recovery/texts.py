"""SMS text rules: GSM-7 length, placeholder rendering and the privacy (PHI) check.

Pure: standard library only. A text template may use exactly four placeholders:
`{first}` (first name), `{link}` (the patient's link), `{emerg}` (local emergency number) and
`{phone}` (care-team number). Everything else about the patient stays behind the link
(protocol §1.1): no diagnosis, procedure, body part, clinic name or appointment date in an SMS.

Length is counted in GSM-7 septets: a basic-alphabet character counts 1, an extension character
(`^ { } \\ [ ] ~ | €` and form feed) counts 2. One SMS segment holds 160. A single character outside
GSM-7 turns the whole message into UCS-2 (70 per segment), so templates must be pure GSM-7.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SMS_MAX = 160

# GSM 03.38 default alphabet (ESC 0x1B is not a printable character and is left out).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

PLACEHOLDERS = ("first", "link", "emerg", "phone")

# Worst-case values for the length check (protocol §1.1: 11-character first name, 26-character
# link; 3-digit emergency number; a 14-character care-team number such as "(555) 010-0199").
WORST_CASE = {"first": "W" * 11, "link": "L" * 26, "emerg": "9" * 3, "phone": "P" * 14}

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

# Words that would tell a reader of the phone's lock screen what the patient was treated for.
_DIAGNOSIS = re.compile(
    r"\b(kyphoplast\w*|vertebroplast\w*|vertebr\w*|fractur\w*|spine|spines|spinal|cement\w*|"
    r"osteopor\w*|augmentation|cancer\w*|tumou?r\w*|myeloma\w*|metasta\w*|oncolog\w*)\b",
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


def non_gsm7_chars(text: str) -> list[str]:
    """Characters of `text` that GSM-7 cannot carry, in order of first appearance."""
    seen: list[str] = []
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION and ch not in seen:
            seen.append(ch)
    return seen


def is_gsm7(text: str) -> bool:
    return not non_gsm7_chars(text)


def gsm7_length(text: str) -> int:
    """Length in GSM-7 septets. Raises ValueError naming the characters GSM-7 cannot carry."""
    bad = non_gsm7_chars(text)
    if bad:
        raise ValueError(f"not GSM-7: {', '.join(_describe(c) for c in bad)}")
    return sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)


def placeholders(text_template: str) -> list[str]:
    """Placeholder names used in a template, in order (duplicates kept)."""
    return _PLACEHOLDER.findall(text_template)


def render(text_template: str, *, first: str, link: str, emerg: str, phone: str) -> str:
    """Fill the four placeholders in one pass (a value containing "{link}" is not re-expanded).

    Raises ValueError on any other placeholder or a stray brace, so a broken template can never
    reach a patient half-rendered.
    """
    values = {"first": first, "link": link, "emerg": emerg, "phone": phone}
    problems = _placeholder_problems(text_template)
    if problems:
        raise ValueError("; ".join(problems))
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text_template)


@dataclass(frozen=True)
class TextCheck:
    length: int  # GSM-7 septets with worst-case values substituted
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_text(text_template: str, *, emerg: str | None = None, phone: str | None = None,
               forbidden_names: tuple[str, ...] = ()) -> TextCheck:
    """Check one text template: placeholders, GSM-7, worst-case length ≤ 160, no PHI words.

    `emerg`/`phone` are the configured values; the length check uses whichever is longer, the
    configured value or the worst case. `forbidden_names` (e.g. the clinic name) must not appear.
    """
    problems = list(_placeholder_problems(text_template))
    bad = non_gsm7_chars(_PLACEHOLDER.sub("", text_template))
    if bad:
        problems.append(f"has characters that are not GSM-7: {', '.join(_describe(c) for c in bad)}"
                        " (use plain quotes and hyphens)")
    worst = dict(WORST_CASE)
    for name, actual in (("emerg", emerg), ("phone", phone)):
        if actual is not None and len(actual) > len(worst[name]):
            worst[name] = actual
    filled = _PLACEHOLDER.sub(lambda m: worst.get(m.group(1), m.group(0)), text_template)
    length = sum(2 if ch in GSM7_EXTENSION else 1 for ch in filled)
    if length > SMS_MAX:
        problems.append(f"text is {length} GSM-7 characters after substitution (max {SMS_MAX}; "
                        f"checked with an {len(worst['first'])}-character first name and a "
                        f"{len(worst['link'])}-character link)")
    literal = _PLACEHOLDER.sub(" ", text_template)
    for m in _DIAGNOSIS.finditer(literal):
        problems.append(f"reveals health information: {m.group(0)!r} (keep details behind {{link}})")
    for m in _DATE_LIKE.finditer(literal):
        problems.append(f"contains a date: {m.group(0)!r} (no appointment dates in texts)")
    for name in forbidden_names:
        if name and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", literal, re.IGNORECASE):
            problems.append(f"names the clinic ({name!r}); texts must not say where the patient was treated")
    return TextCheck(length=length, problems=tuple(problems))


def _placeholder_problems(text_template: str) -> list[str]:
    problems = []
    for name in _PLACEHOLDER.findall(text_template):
        if name not in PLACEHOLDERS:
            problems.append(f"placeholder {{{name}}} is not allowed (only "
                            + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                            + "; nothing else about the patient may go in an SMS)")
    stripped = _PLACEHOLDER.sub("", text_template)
    if "{" in stripped or "}" in stripped:
        problems.append("has a stray '{' or '}' (placeholders are written {first}, {link}, {emerg}, {phone})")
    return problems


def _describe(ch: str) -> str:
    return f"{ch!r} (U+{ord(ch):04X})"

"""How many SMS segments a text costs, by the real encoding rules. Pure: standard library only.

GSM 03.38 / 3GPP TS 23.038 (the default 7-bit alphabet):
* a character of the basic table is 1 septet; one of the extension table (`^ { } \\ [ ] ~ | €` and
  form feed) is 2 (ESC + the character);
* one segment carries 160 septets (140 octets); a longer text is sent in parts of 153 septets, the
  other 7 octets being the concatenation header (UDH), and an ESC pair is never split between parts.

A single character outside that alphabet ("Zoë", a curly apostrophe, an emoji) makes the WHOLE
text UCS-2 (UTF-16 on the air): 70 code units in one segment, 67 per part when split. A character
outside the Basic Multilingual Plane (most emoji) is 2 code units (a surrogate pair), and a user-
perceived character (a letter with a combining accent, a flag, an emoji with a skin tone or joined
with ZWJ) is never split between parts.

This is the algorithm of Twilio's own calculator (github.com/TwilioDevEd/message-segment-calculator,
npm `sms-segments-calculator`), which tests/domain/test_sms_encoding.py uses as an oracle. Python
libraries were looked at first: `gsm0338` is a maintained codec (it encodes, it does not count
parts) and `smsutil` (2020) splits but is unmaintained; neither may be imported by a pure module,
and 40 lines of table-driven code are easier to review than either.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["GSM7", "UCS2", "GSM7_BASIC", "GSM7_EXTENSION", "SINGLE", "PART", "Segments", "count", "is_gsm7",
           "non_gsm7_chars", "septets", "clusters"]

GSM7, UCS2 = "GSM-7", "UCS-2"

# GSM 03.38 default alphabet (ESC 0x1B is not a printable character and is left out).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION

SINGLE = {GSM7: 160, UCS2: 70}  # units in a text of one segment
PART = {GSM7: 153, UCS2: 67}  # units in each part of a longer text


@dataclass(frozen=True)
class Segments:
    encoding: str  # GSM-7 | UCS-2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    count: int  # segments the provider bills and the phone joins up
    non_gsm: tuple[str, ...] = ()  # the characters that forced UCS-2, in order of first appearance

    @property
    def per_segment(self) -> int:
        return SINGLE[self.encoding] if self.count == 1 else PART[self.encoding]


def non_gsm7_chars(text: str) -> list[str]:
    """Characters of `text` that GSM-7 cannot carry, in order of first appearance."""
    seen: list[str] = []
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION and ch not in seen:
            seen.append(ch)
    return seen


def is_gsm7(text: str) -> bool:
    return _GSM7.issuperset(text)


def septets(text: str) -> int:
    """GSM-7 length of a text that is GSM-7 (extension characters count 2)."""
    return len(text) + sum(map(text.count, GSM7_EXTENSION))


def _extends(ch: str) -> bool:
    """Does `ch` belong to the character before it (an approximation of Unicode's grapheme rules
    that covers names and emoji: combining marks, variation selectors, skin tones, emoji tags)?"""
    o = ord(ch)
    if o < 0x300:  # below the first combining mark: the common case, no table look-up
        return False
    return (unicodedata.category(ch) in ("Mn", "Me", "Mc") or 0xFE00 <= o <= 0xFE0F or 0x1F3FB <= o <= 0x1F3FF
            or 0xE0020 <= o <= 0xE007F or o == 0x200D)


def clusters(text: str) -> list[str]:
    """`text` as user-perceived characters: a base with its combining marks, a ZWJ emoji sequence,
    a flag (two regional indicators). "\\r\\n" stays two characters, as in GSM-7."""
    out: list[str] = []
    joined = False  # the previous character was a ZWJ: this one joins the cluster
    for ch in text:
        o = ord(ch)
        if out and (joined or _extends(ch)):
            out[-1] += ch
        elif (out and 0x1F1E6 <= o <= 0x1F1FF and len(out[-1]) == 1 and 0x1F1E6 <= ord(out[-1]) <= 0x1F1FF):
            out[-1] += ch  # the second regional indicator of a flag
        else:
            out.append(ch)
        joined = o == 0x200D
    return out


def _units(cluster: str, encoding: str) -> int:
    if encoding == GSM7:
        return septets(cluster)
    return len(cluster) + sum(1 for ch in cluster if ord(ch) > 0xFFFF)  # UTF-16: astral = 2 units


def count(text: str) -> Segments:
    """Encoding, length and number of segments of the text exactly as it will be sent."""
    if not isinstance(text, str):
        raise TypeError(f"an SMS body is text, not {type(text).__name__}")
    if is_gsm7(text):
        encoding, bad, total = GSM7, (), septets(text)
        if total <= SINGLE[GSM7]:
            return Segments(GSM7, total, 1)
        parts = list(text)  # in GSM-7 every character stands alone
    else:
        encoding, bad = UCS2, tuple(non_gsm7_chars(text))
        total = len(text.encode("utf-16-le")) // 2
        if total <= SINGLE[UCS2]:
            return Segments(UCS2, total, 1, bad)
        parts = clusters(text)
    # Several parts: fill each to PART units, never splitting a character (an ESC pair, a
    # surrogate pair, a letter and its accent) between two parts.
    segments, used, room = 1, 0, PART[encoding]
    for c in parts:
        size = _units(c, encoding)
        if used + size > room:
            segments, used = segments + 1, 0
        used += size
    return Segments(encoding, total, segments, bad)

"""Reading the texts patients send: opt-out/opt-in/help keywords and reply-by-text answers. Pure.

Keywords are matched the way Twilio's default opt-out handling matches them: the WHOLE message is
the keyword, in any case, with stray spaces and punctuation ignored ("Stop.", " s t o p ",
"opt-out", "STOP!!", "ＳＴＯＰ" full-width). "Please stop texting me" is not a keyword, for Twilio
or for us, so our opt-out state never drifts from the provider's; such a text goes to the nurse
inbox like any other free text (protocol MR6: free text is never parsed for triage).

"YES" is both an opt-in keyword and an answer to the red-flag question. The caller decides: while a
red-flag question is pending, Y/YES/N/NO answer it (`yes_no`); otherwise YES means START.
"""
from __future__ import annotations

import enum
import re
import unicodedata

__all__ = ["HELP_WORDS", "Keyword", "START_WORDS", "STOP_WORDS", "classify", "is_short_reply",
           "normalise", "parse_pain", "yes_no"]


class Keyword(enum.Enum):
    STOP = "stop"
    START = "start"
    HELP = "help"


# Twilio's default English opt-out list (reliability.md §3) plus the industry opt-in/help words.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

_YES = frozenset({"Y", "YES", "YEAH", "YEP"})
_NO = frozenset({"N", "NO", "NOPE"})
_NUMBER_WORDS = {"ZERO": 0, "NONE": 0, "ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5,
                 "SIX": 6, "SEVEN": 7, "EIGHT": 8, "NINE": 9, "TEN": 10}
# "7", "07", "7/10", "7 / 10", "7 out of 10", each with trailing punctuation allowed.
_PAIN = re.compile(r"(\d{1,2})(?:\s*(?:/|OUT\s+OF)\s*10)?")
_EDGE_PUNCT = " \t\r\n.!,;:?'\"()"
# A reply this short that is not an answer is a slip worth one re-prompt; anything longer is a
# message for the nurse.
SHORT_REPLY_MAX_CHARS = 12
SHORT_REPLY_MAX_WORDS = 2


def normalise(body: str) -> str:
    """Upper-case letters and digits only (NFKC first, so full-width and compatibility forms fold)."""
    if not isinstance(body, str):
        raise TypeError(f"an SMS body is text, not {type(body).__name__}")
    text = unicodedata.normalize("NFKC", body).upper()
    return "".join(ch for ch in text if ch.isalnum())


def classify(body: str) -> Keyword | None:
    """STOP / START / HELP when the whole text is one of those keywords, else None."""
    word = normalise(body)
    if word in STOP_WORDS:
        return Keyword.STOP
    if word in START_WORDS:
        return Keyword.START
    if word in HELP_WORDS:
        return Keyword.HELP
    return None


def yes_no(body: str) -> bool | None:
    """True for Y/YES, False for N/NO (any case and punctuation), None for anything else."""
    word = normalise(body)
    if word in _YES:
        return True
    if word in _NO:
        return False
    return None


def parse_pain(body: str) -> int | None:
    """A 0-10 pain score from a reply ("7", "7/10", "seven."), else None (11, 7.5, "a lot")."""
    if not isinstance(body, str):
        raise TypeError(f"an SMS body is text, not {type(body).__name__}")
    text = unicodedata.normalize("NFKC", body).strip(_EDGE_PUNCT).upper()
    m = _PAIN.fullmatch(text)
    if m:
        value = int(m.group(1))
    else:
        word = normalise(text)
        if word not in _NUMBER_WORDS or not text.replace(" ", "").isalpha():
            return None
        value = _NUMBER_WORDS[word]
    return value if 0 <= value <= 10 else None


def is_short_reply(body: str) -> bool:
    """True for a short slip ("11", "7.5", "ok", "y"), False for a message meant to be read."""
    text = unicodedata.normalize("NFKC", body).strip()
    return len(text) <= SHORT_REPLY_MAX_CHARS and len(text.split()) <= SHORT_REPLY_MAX_WORDS

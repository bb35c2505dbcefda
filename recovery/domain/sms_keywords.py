"""Reading the texts patients send: opt-out/opt-in/help keywords and reply-by-text answers. Pure.

Keywords are matched the way Twilio's default opt-out handling matches them: the WHOLE message is
the keyword, in any case, with stray spaces and punctuation ignored ("Stop.", " s t o p ",
"opt-out", "STOP!!", "ＳＴＯＰ" full-width). Twilio blocks the number for such a text itself.

A text that plainly asks to stop in other words is an opt-out too (the FCC: "any reasonable
means"); Twilio does not see it as one, so we honour it ourselves (`asks_to_stop`). The rule, one
sentence at a time (sentences end at . ! ? ; or a new line):

1. the whole text is stop keywords and courtesy words: "Stop. Thank you", "STOP please",
   "please stop!!", "stop stop", "Stop now, thanks";
2. a sentence asks to stop the messages, naming them: stop / quit / end / cancel + texting,
   messaging, contacting or bothering me, or + (the / these / your / all ...) texts, messages,
   SMS, reminders: "stop texting me", "please stop sending me these texts", "cancel the reminders";
3. "no more" / "not any more" + texts or messages: "no more texts", "No more messages please";
4. don't / do not / never + text, message or contact + me: "don't text me again";
5. I don't want / do not want / don't need + (any / these / the / your / more) texts or
   messages, unless the sentence goes on "to stop" / "to end": "I don't want these texts";
6. unsubscribe, opt out, "opt me out", "remove me from the list", "take me off this list".

Never an opt-out: a stop word without a message word ("the pain won't stop", "I had to stop
walking", "stop the pain pills?"), a negated or conditional request ("don't stop the texts", "if
the texts stop", "should I stop the reminders?", "why did the texts stop"), and the words
inside other words ("stopped", "nonstop", "ending"). Such texts go to the nurse's inbox, as
before, so a missed opt-out is still read by a person. The patient and the nurse can both see
how a text was read (inbound handled_as "opt_out_words"), and the nurse is given a task.

"YES" is both an opt-in keyword and an answer to the red-flag question. The caller decides: while a
red-flag question is pending, Y/YES/N/NO answer it (`yes_no`); otherwise YES means START.
"""
from __future__ import annotations

import enum
import re
import unicodedata

__all__ = ["HELP_WORDS", "Keyword", "START_WORDS", "STOP_WORDS", "asks_to_stop", "classify", "is_short_reply",
           "normalise", "parse_pain", "twilio_handles", "yes_no"]


class Keyword(enum.Enum):
    STOP = "stop"
    START = "start"
    HELP = "help"


# Twilio's default English opt-out list (reliability.md §3) plus the industry opt-in/help words.
TWILIO_STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
# Spanish (issue 14). Twilio's default handling is English only: "By default, Twilio handles
# standard English-language reply messages" (twilio.com/docs/messaging/tutorials/advanced-opt-out);
# Spanish keywords exist only if a Messaging Service's Advanced Opt-Out is set up with them. So
# Twilio neither blocks the number nor confirms for these: we do both (`twilio_handles`).
SPANISH_STOP_WORDS = frozenset({"ALTO", "PARAR", "BAJA", "CANCELAR"})
STOP_WORDS = TWILIO_STOP_WORDS | SPANISH_STOP_WORDS
# "SÍ"/"SI" are to Spanish what YES is to English: START, or the answer to a pending red-flag question.
START_WORDS = frozenset({"START", "YES", "UNSTOP", "INICIO", "SI", "SÍ"})
HELP_WORDS = frozenset({"HELP", "INFO", "AYUDA"})

_YES = frozenset({"Y", "YES", "YEAH", "YEP", "S", "SI", "SÍ"})
_NO = frozenset({"N", "NO", "NOPE"})
_NUMBER_WORDS = {"ZERO": 0, "NONE": 0, "ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5,
                 "SIX": 6, "SEVEN": 7, "EIGHT": 8, "NINE": 9, "TEN": 10,
                 "CERO": 0, "NADA": 0, "UNO": 1, "DOS": 2, "TRES": 3, "CUATRO": 4, "CINCO": 5,
                 "SEIS": 6, "SIETE": 7, "OCHO": 8, "NUEVE": 9, "DIEZ": 10}
# "7", "07", "7/10", "7 / 10", "7 out of 10", "7 de 10", each with trailing punctuation allowed.
_PAIN = re.compile(r"(\d{1,2})(?:\s*(?:/|OUT\s+OF|DE)\s*10)?")
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


def twilio_handles(body: str) -> bool:
    """Whether Twilio's own default keyword handling acts on this text (blocks the number and
    confirms). False for our Spanish opt-out words: the app sends the confirmation itself."""
    return normalise(body) in TWILIO_STOP_WORDS


def yes_no(body: str) -> bool | None:
    """True for Y/YES (S/SÍ/SI in Spanish), False for N/NO (any case and punctuation), else None."""
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


# ---------------------------------------------------------------------------------------------
# Opt-outs in the patient's own words (the rule is in the module docstring)
# ---------------------------------------------------------------------------------------------

_COURTESY = frozenset({"please", "pls", "plz", "thanks", "thank", "you", "thankyou", "thx", "ty", "now", "ok",
                       "okay", "sorry", "cheers", "all", "just", "kindly"})
_SENTENCE_END = re.compile(r"[.!?;\n]+")
_OBJECT = r"(?:text|texts|texting|text\s+messages?|messages?|messaging|msgs?|sms|sms\s+messages?|reminders?)"
_DET = r"(?:(?:the|these|those|this|your|all|any|my|all\s+the|all\s+these|all\s+your)\s+)?"
_ME = r"(?:\s+(?:me|us))?"
_STOP_VERB = r"(?:stop|quit|end|cancel|cease|halt)"
_NEGATION = re.compile(r"\b(?:don'?t|do\s+not|dont|never|not|can'?t|cannot|won'?t|wouldn'?t|didn'?t|doesn'?t|"
                       r"isn'?t|shouldn'?t|no\s+need|should|if|when|whether|why|until|unless)\b")
_REQUESTS = [
    # 2. stop + the messages
    re.compile(rf"\b{_STOP_VERB}\s+(?:(?:sending|texting|messaging|contacting|bothering|calling){_ME}\b|"
               rf"(?:sending{_ME}\s+)?{_DET}{_OBJECT}\b|sending(?:\s+(?:me|us))?\s+(?:these|this|them|those)\b)"),
]
_NO_MORE = re.compile(rf"\b(?:no\s+more|not\s+any\s*more|no\s+further)\s+{_OBJECT}\b")
_DONT_CONTACT = re.compile(r"\b(?:don'?t|dont|do\s+not|never)\s+(?:ever\s+)?(?:text|message|sms|contact)\s+(?:me|us)\b")
_DONT_WANT = re.compile(rf"\b(?:i\s+)?(?:don'?t|dont|do\s+not|no\s+longer)\s+(?:want|need|wish\s+to\s+(?:get|receive))"
                        rf"\s+(?:to\s+(?:get|receive)\s+)?(?:any\s*more\s+|any\s+|more\s+)?{_DET}(?:more\s+)?{_OBJECT}\b")
_NOT_AFTER_WANT = re.compile(r"\bto\s+(?:stop|end)\b|\bstopping\b|\bending\b")
_UNSUBSCRIBE = re.compile(r"\b(?:unsubscribe|opt\s*-?\s*out|opt\s+me\s+out|remove\s+me\s+(?:from|off)\s+"
                          rf"{_DET}(?:list|{_OBJECT})|take\s+me\s+off\s+{_DET}(?:list|{_OBJECT}))\b")
_UNSUB_NEGATED = re.compile(r"\b(?:don'?t|dont|do\s+not|never|not|how|can\s+i|should\s+i)\s+(?:\w+\s+){0,2}?"
                            r"(?:unsubscribe|opt)")


def _plain(body: str) -> str:
    text = unicodedata.normalize("NFKC", body).lower()
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")


def _sentences(text: str) -> list[str]:
    out = []
    for part in _SENTENCE_END.split(text):
        words = re.sub(r"[^a-z0-9' ]+", " ", part)
        words = " ".join(words.split())
        if words:
            out.append(words)
    return out


def _only_keywords_and_courtesy(text: str) -> bool:
    words = re.sub(r"[^a-z0-9]+", " ", text.replace("'", "")).split()
    stops = [w for w in words if w.upper() in STOP_WORDS]
    if not stops:
        return False
    rest = [w for w in words if w.upper() not in STOP_WORDS]
    # "opt out" / "stop all" written as two words
    joined = " ".join(words)
    return all(w in _COURTESY or (w in ("opt", "out") and "opt out" in joined) for w in rest)


def _negated_before(sentence: str, start: int) -> bool:
    return _NEGATION.search(sentence[:start]) is not None


def asks_to_stop(body: str) -> bool:
    """True when a text that is not exactly a keyword plainly asks for no more texts."""
    if not isinstance(body, str):
        raise TypeError(f"an SMS body is text, not {type(body).__name__}")
    text = _plain(body)
    if _only_keywords_and_courtesy(text):
        return True
    for sentence in _sentences(text):
        for pattern in _REQUESTS:
            for m in pattern.finditer(sentence):
                if not _negated_before(sentence, m.start()):
                    return True
        m = _NO_MORE.search(sentence)
        if m and not _negated_before(sentence, m.start()):
            return True
        if _DONT_CONTACT.search(sentence):
            return True
        m = _DONT_WANT.search(sentence)
        if m and not _NOT_AFTER_WANT.search(sentence, m.end()):
            return True
        m = _UNSUBSCRIBE.search(sentence)
        if m and not _UNSUB_NEGATED.search(sentence) and not _negated_before(sentence, m.start()):
            return True
    return False

"""Reading patients' texts: keywords, Y/N, pain scores (pure; no app, no DB)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery.domain.sms_keywords import twilio_handles
from recovery.domain.sms_keywords import (HELP_WORDS, START_WORDS, STOP_WORDS, Keyword, asks_to_stop, classify,
                                   is_short_reply, normalise, parse_pain, yes_no)

ALL_KEYWORDS = [(w, Keyword.STOP) for w in sorted(STOP_WORDS)] + [(w, Keyword.START) for w in sorted(START_WORDS)] + \
    [(w, Keyword.HELP) for w in sorted(HELP_WORDS)]
PUNCT = " .,!?;:'\"-_()*\t\n"


def test_the_keyword_lists_are_twilios_and_the_issues():
    twilio = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
    assert STOP_WORDS == twilio | {"ALTO", "PARAR", "BAJA", "CANCELAR"}  # Spanish: issue 14
    assert START_WORDS == {"START", "YES", "UNSTOP", "INICIO", "SI", "SÍ"} and HELP_WORDS == {"HELP", "INFO", "AYUDA"}
    # Twilio blocks and confirms only for its own English words; the Spanish ones are ours to confirm
    assert all(twilio_handles(w) for w in twilio) and not any(twilio_handles(w) for w in ("Alto", "parar", "BAJA"))
    assert yes_no("Sí") is yes_no("si") is yes_no("S") is True and yes_no("No.") is False
    assert parse_pain("siete") == 7 and parse_pain("7 de 10") == 7


@pytest.mark.parametrize("body, expected", [
    ("STOP", Keyword.STOP), ("stop", Keyword.STOP), (" Stop. ", Keyword.STOP), ("STOP!!!", Keyword.STOP),
    ("s t o p", Keyword.STOP), ("Stop all", Keyword.STOP), ("opt-out", Keyword.STOP), ("Opt out", Keyword.STOP),
    ("ＳＴＯＰ", Keyword.STOP), ("unsubscribe 🙏", Keyword.STOP), ("Cancel", Keyword.STOP), ("end.", Keyword.STOP),
    ("Quit", Keyword.STOP), ("revoke", Keyword.STOP),
    ("start", Keyword.START), ("Yes!", Keyword.START), ("UNSTOP", Keyword.START),
    ("help?", Keyword.HELP), ("Info", Keyword.HELP),
    ("please stop texting me", None), ("don't stop", None), ("STOP пожалуйста", None), ("stopp", None),
    ("7", None), ("", None), ("   ", None), ("y", None), ("helpful", None),
])
def test_classify(body, expected):
    assert classify(body) is expected


@given(st.sampled_from(ALL_KEYWORDS), st.data())
def test_any_case_spacing_and_punctuation_around_a_keyword_is_the_keyword(pair, data):
    word, kind = pair
    cased = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in word)
    spaced = "".join(c + data.draw(st.text(alphabet=" ", max_size=1)) for c in cased)
    body = data.draw(st.text(alphabet=PUNCT, max_size=3)) + spaced + data.draw(st.text(alphabet=PUNCT, max_size=3))
    assert classify(body) is kind


@given(st.text(max_size=30))
def test_a_keyword_is_only_ever_a_whole_text(body):
    kind = classify(body)
    if kind is not None:
        assert normalise(body) in STOP_WORDS | START_WORDS | HELP_WORDS


@given(st.sampled_from(sorted(STOP_WORDS)), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1,
                                                   max_size=10))
def test_more_words_make_it_free_text(word, extra):
    assert classify(f"{word} {extra}") is not Keyword.STOP or normalise(f"{word} {extra}") in STOP_WORDS


@pytest.mark.parametrize("body, expected", [
    ("Y", True), ("y.", True), ("Yes", True), ("YES!", True), ("yeah", True), ("N", False), ("no", False),
    ("No.", False), ("nope", False), ("maybe", None), ("yes and no", None), ("", None), ("7", None),
])
def test_yes_no(body, expected):
    assert yes_no(body) is expected


@given(st.integers(0, 10), st.sampled_from(["{}", " {} ", "{}.", "{}/10", "{} / 10", "{} out of 10", "0{}", "{}!"]))
def test_pain_scores_0_to_10_in_the_usual_shapes(n, shape):
    body = shape.format(n)
    if body.startswith("0") and n == 10:
        body = "10"
    assert parse_pain(body) == n


@pytest.mark.parametrize("body, expected", [
    ("seven", 7), ("Ten.", 10), ("zero", 0), ("11", None), ("7.5", None), ("-1", None), ("100", None),
    ("a lot", None), ("7 or 8", None), ("", None), ("10/10", 10), ("3/5", None), ("seven eight", None),
])
def test_pain_edge_cases(body, expected):
    assert parse_pain(body) == expected


@given(st.integers(11, 99))
def test_no_pain_score_above_10(n):
    assert parse_pain(str(n)) is None


def test_short_slips_and_real_messages():
    assert is_short_reply("11") and is_short_reply("ok") and is_short_reply("y") and is_short_reply("7.5")
    assert not is_short_reply("I have a question about my pills")
    assert not is_short_reply("my back hurts a lot")


def test_bodies_must_be_text():
    with pytest.raises(TypeError, match="SMS body is text"):
        classify(None)
    with pytest.raises(TypeError, match="SMS body is text"):
        parse_pain(7)


# ---------------------------------------------------------------------------------------------
# Opt-outs in the patient's own words (the rule is in recovery/domain/sms_keywords.py)
# ---------------------------------------------------------------------------------------------

ASKS_TO_STOP = [
    # 1. keywords and courtesy words only
    "Stop. Thank you", "STOP please", "please stop!!", "Stop stop", "stop now, thanks", "Stop.  Thank you!",
    "Cancel please", "STOP STOP STOP", "Stop, thanks", "Thank you. STOP",
    # 2. stop + the messages
    "stop texting me", "Stop texting me!", "Please stop sending me these texts", "cancel the reminders",
    "Can you stop texting me?", "How do I stop these texts?", "stop the texts", "I want to stop the messages",
    "STOP ALL TEXTS", "quit texting me", "Stop sending me this", "Stop contacting me", "stop bothering me",
    "End these messages", "Stop the texts please. Thank you", "Stop texting me, my legs are numb",
    "please stop the sms", "Stop sending messages", "STOP TEXTING ME!!!",
    # 3. no more + the messages
    "no more texts", "No more messages please", "No more text messages", "no more texting",
    # 4. don't + text/contact + me
    "Don't text me again", "do not message me", "Don’t text me anymore",  # a curly apostrophe too
    # 5. I don't want + the messages
    "I don't want these texts", "I do not want any more texts", "i dont want any more messages",
    "I no longer want texts", "I don't need these reminders",
    # 6. unsubscribe / opt out / remove me
    "unsubscribe me", "please opt me out", "remove me from this list", "take me off the list",
    "I'd like to opt out", "Unsubscribe me please",
]
NOT_AN_OPT_OUT = [
    # stop inside a symptom or an everyday sentence: no message word
    "the pain won't stop", "I had to stop walking", "stop the pain pills?", "the bleeding doesn't stop",
    "It hurts, make it stop", "I can't stop shaking", "I can't stop the bleeding", "Please stop by tomorrow",
    "stop sign hurt my leg", "I stopped taking my medicine", "nonstop pain", "Stop. My pain is worse",
    "Stop it hurts", "When should I stop wearing the brace", "quit smoking", "cancel my appointment",
    "Cancel it", "At the end of the texts it says call", "My pain is no more", "No more pain, thanks for the texts",
    # negated, conditional or a question about the texts
    "don't stop the texts", "Please don't stop texting me", "why did the texts stop",
    "should I stop the reminders?", "If the texts stop, should I call?", "I don't want the texts to stop",
    "I do not want to stop getting texts", "The texts stopped coming", "don't unsubscribe me",
    "I don't want to miss the texts",
    # plain replies
    "Yes", "No", "7", "I got your text", "Thanks for the messages", "",
]


@pytest.mark.parametrize("body", ASKS_TO_STOP)
def test_a_plain_request_to_stop_is_an_opt_out(body):
    assert asks_to_stop(body)
    assert classify(body) is not Keyword.START and classify(body) is not Keyword.HELP


@pytest.mark.parametrize("body", NOT_AN_OPT_OUT)
def test_stop_in_a_symptom_or_a_question_is_not(body):
    assert not asks_to_stop(body)


@given(st.sampled_from(sorted(STOP_WORDS)), st.data())
def test_every_keyword_is_also_a_request_to_stop(word, data):
    body = data.draw(st.text(alphabet=PUNCT, max_size=3)) + word.lower() + data.draw(st.text(alphabet=PUNCT,
                                                                                            max_size=3))
    assert classify(body) is Keyword.STOP and asks_to_stop(body)


@given(st.sampled_from(["the pain won't {}", "my leg will not {}", "I had to {} walking", "make it {}",
                        "the bleeding did not {}", "{} the pain medicine?", "when can I {} the brace"]),
       st.sampled_from(["stop", "STOP", "quit", "end", "cancel", "Stop"]))
def test_a_stop_word_without_a_message_word_never_opts_out(shape, word):
    assert not asks_to_stop(shape.format(word))


@given(st.text(max_size=200))
def test_any_text_is_read_without_error(body):
    assert asks_to_stop(body) in (True, False)

"""SMS segment counting (recovery/domain/sms_encoding.py): the encoding rules at their boundaries, and
agreement with Twilio's own calculator (npm `sms-segments-calculator`, run with node) on thousands
of texts built from GSM-7 basic and extension characters, accented names, emoji and flags."""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from recovery.domain import sms_encoding
from recovery.domain.sms_encoding import GSM7, UCS2, count

ROOT = Path(__file__).resolve().parents[2]
CALCULATOR = ROOT / "node_modules" / "sms-segments-calculator"


@pytest.mark.parametrize("text, encoding, units, segments", [
    ("", GSM7, 0, 1),
    ("x" * 160, GSM7, 160, 1), ("x" * 161, GSM7, 161, 2),
    ("x" * 306, GSM7, 306, 2), ("x" * 307, GSM7, 307, 3),
    ("{" * 80, GSM7, 160, 1), ("{" * 81, GSM7, 162, 2),  # an extension character is 2 septets
    ("€" * 80 + "x", GSM7, 161, 2),  # 76 ESC pairs fill 152 of part 1; the 77th opens part 2
    ("x" * 152 + "[" + "y" * 7, GSM7, 161, 2),  # the ESC pair does not fit the 1 septet left in part 1 ...
    ("x" * 152 + "[" + "y" * 152, GSM7, 306, 3),  # ... so it opens part 2, and part 3 follows
    ("Zoë" + "x" * 67, UCS2, 70, 1), ("Zoë" + "x" * 68, UCS2, 71, 2),  # one ë makes the whole text UCS-2
    ("ë" * 134, UCS2, 134, 2), ("ë" * 135, UCS2, 135, 3),
    ("🙂" * 35, UCS2, 70, 1), ("🙂" * 36, UCS2, 72, 2),  # an emoji is a surrogate pair: 2 units
    ("x" * 66 + "🙂" + "y" * 3, UCS2, 71, 2),  # the pair is never split: part 1 holds 66 units ...
    ("x" * 66 + "🙂" + "y" * 66, UCS2, 134, 3),  # ... so 134 units take 3 parts, not 2
    ("it’s", UCS2, 4, 1),  # a curly apostrophe pasted into a name is enough
    ("Ça va", GSM7, 5, 1), ("ça va", UCS2, 5, 1),  # GSM 03.38 has Ç but not ç
])
def test_encoding_rules_at_their_boundaries(text, encoding, units, segments):
    got = count(text)
    assert (got.encoding, got.units, got.count) == (encoding, units, segments)
    assert got.per_segment == {(GSM7, True): 160, (GSM7, False): 153, (UCS2, True): 70, (UCS2, False): 67}[
        (encoding, segments == 1)]


def test_the_characters_that_forced_ucs2_are_named():
    assert count("Hi Zoë, it’s time").non_gsm == ("ë", "’")
    assert count("Hi Zoe").non_gsm == ()


def test_a_letter_and_its_combining_accent_stay_together():
    name = "Zoe\u0308"  # e + combining diaeresis: one letter on screen, two code points
    assert sms_encoding.clusters(name) == ["Z", "o", "e\u0308"]
    # split by code point this would be 2 parts (67 + 67, the accent opening part 2 on its own);
    # kept whole, é opens part 2 and the last "y" needs a third
    text = "x" * 66 + "e\u0301" + "y" * 66
    assert (count(text).units, count(text).count) == (134, 3)


def test_bad_input_is_refused_clearly():
    with pytest.raises(TypeError, match="an SMS body is text"):
        count(b"bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Twilio's calculator as the oracle
# ---------------------------------------------------------------------------------------------

def _alphabet() -> list[str]:
    basic = sorted(sms_encoding.GSM7_BASIC - {"\r"})  # "\r\n" handling differs only in line-break warnings
    extension = sorted(sms_encoding.GSM7_EXTENSION)
    names = list("ëïłçšžőñÍÓÚ’“”–")  # accented names and pasted punctuation: UCS-2
    emoji = ["🙂", "👍🏽", "❤️", "🇺🇸", "👨‍👩‍👧", "e\u0301", "中", "한"]
    return basic * 6 + extension * 3 + names + emoji


def _samples() -> list[str]:
    rng = random.Random(20261123)
    alphabet, basic = _alphabet(), sorted(sms_encoding.GSM7_BASIC - {"\r"})
    out = []
    for _ in range(3000):
        if rng.random() < 0.5:  # mostly GSM-7, sometimes one character that is not
            text = [rng.choice(basic) for _ in range(rng.randint(100, 480))]
            if rng.random() < 0.5:
                text.insert(rng.randrange(len(text) + 1), rng.choice(alphabet))
        else:
            text = [rng.choice(alphabet) for _ in range(rng.randint(1, 350))]
        out.append("".join(text))
    for n in range(60, 75):  # every boundary, with a surrogate pair or an ESC pair at it
        out += ["x" * n + "🙂" + "y" * 3, "x" * (n + 86) + "{" + "y", "x" * (2 * n + 20) + "€" * 3]
    return out


def _twilio(texts: list[str]) -> list[tuple[str, int]]:
    script = ("const {SegmentedMessage} = require('sms-segments-calculator');"
              "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "console.log(JSON.stringify(input.map(t => { const m = new SegmentedMessage(t);"
              " return [m.encodingName, m.segmentsCount]; })));")
    done = subprocess.run(["node", "-e", script], input=json.dumps(texts), capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    return [tuple(x) for x in json.loads(done.stdout)]


def test_segment_counts_agree_with_twilios_calculator():
    if shutil.which("node") is None or not CALCULATOR.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node and node_modules/sms-segments-calculator are needed (npm ci)")
        pytest.skip("node or node_modules/sms-segments-calculator missing (run npm ci)")
    texts = _samples()
    theirs = _twilio(texts)
    ours = [(count(t).encoding, count(t).count) for t in texts]
    disagree = [(t, o, w) for t, o, w in zip(texts, ours, theirs) if o != w]
    assert not disagree, f"{len(disagree)} of {len(texts)} differ, e.g. {disagree[:2]}"
    assert {c for _, c in ours} >= {1, 2, 3, 4} and {e for e, _ in ours} == {GSM7, UCS2}  # the samples cover both

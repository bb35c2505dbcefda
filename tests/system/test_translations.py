"""Completeness of every language (issue 14): a catalog string or a plan text without its
translation, a placeholder missing or extra, a catalog that no longer matches the source strings or
a stale compiled .mo fails here. A new language under translations/ is checked like Spanish."""
from __future__ import annotations

import re
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from recovery.config import REPO_ROOT
from recovery.domain import sms_encoding, texts
from recovery.files import plans
from recovery.web.i18n import LANGUAGES, TRANSLATIONS_DIR

CATALOGS = sorted(TRANSLATIONS_DIR.glob("*/LC_MESSAGES/messages.po"))
_PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def placeholders(text: str) -> list[str]:
    return sorted(_PLACEHOLDER.findall(text))


def test_every_language_the_app_offers_has_a_catalog_and_the_reverse():
    assert {p.parts[-3] for p in CATALOGS} == set(LANGUAGES) - {"en"}


def source_msgids() -> set:
    """What `make translations` extracts now (babel.cfg, the same keywords as the Makefile)."""
    from babel.messages.frontend import parse_mapping_cfg
    with open(REPO_ROOT / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "field_error": None}
    return {msg[2] if isinstance(msg[2], str) else msg[2][0]
            for msg in extract_from_dir(str(REPO_ROOT), method_map, options_map, keywords=keywords)}


@pytest.mark.parametrize("po", CATALOGS, ids=lambda p: p.parts[-3])
def test_every_string_is_translated_with_the_same_placeholders_and_compiled(po):
    with open(po, "rb") as f:
        catalog = read_po(f)
    entries = [m for m in catalog if m.id]
    problems = []
    for m in entries:
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if not all(strings) or m.fuzzy:
            problems.append(f"untranslated: {ids[0]!r}")
        elif any(placeholders(s) != placeholders(ids[-1 if i else 0]) for i, s in enumerate(strings)):
            problems.append(f"placeholders differ: {ids[0]!r} -> {strings!r}")
    assert problems == []
    # the catalog holds exactly what the sources ask for (a new _() needs `make translations`)
    assert {m.id if isinstance(m.id, str) else m.id[0] for m in entries} == source_msgids()
    assert "UNAPPROVED" in (catalog.header_comment or "")  # a draft until a clinician signs it off
    # the committed .mo is the .po compiled
    with open(po.with_suffix(".mo"), "rb") as f:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(f) if m.id}
    assert compiled == {_key(m.id): _key(m.string) for m in entries}


def _key(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def test_every_current_plan_text_is_in_every_language_within_its_budget():
    """Frozen (replaced) versions stay as they were published, English only; every file in use
    for new enrolments has each text in each language, and says who signed the language off."""
    catalog = plans.load_all(REPO_ROOT / "schedules")
    newest = {}
    for t in catalog.templates.values():
        key = (t.base_id, t.clinic)
        if key not in newest or int(t.clinic_version or t.version) > int(newest[key].clinic_version or newest[key].version):
            newest[key] = t
    longest = {}
    for t in newest.values():
        for m in t.messages:
            given = dict(m.translations)
            assert set(given) == set(LANGUAGES) - {"en"}, (t.sources[-1], m.id)
            for language, text in given.items():
                filled = texts.render(text, first="W" * 12, link="L" * t.budget.link, emerg=t.emerg,
                                      phone=t.phone, clinic=t.sms_name or "C" * 30)
                seg = sms_encoding.count(filled)
                assert seg.count <= texts.TRANSLATION_SEGMENTS
                longest[language] = max(longest.get(language, (0,)), (seg.units, seg.encoding, seg.count, m.id))
    print("longest text per language (units, encoding, segments, message):", longest)

"""`pybabel extract` method for the patient-facing strings that are data in the domain (babel.cfg).

The questionnaire's questions, hints, answers and section titles and the §3 messages the patient
reads after a check-in are plain strings in pure domain modules (no gettext there: the domain
imports nothing but the standard library). This lists them as msgids, so they are translated in
the same catalog as the templates (recovery/web/i18n.py translates them at render time).
"""
from __future__ import annotations

from collections.abc import Iterator


def _questionnaire() -> Iterator[str]:
    from recovery.domain.questionnaire.items import ITEMS, SECTIONS
    for section in SECTIONS:
        yield section.title
        if section.intro:
            yield section.intro
    for i in ITEMS.values():
        yield from (s for s in (i.question, i.ask, i.ask_first, i.hint) if s)
        yield from (o.label for o in i.options)


def _triage() -> Iterator[str]:
    from recovery.domain.triage import PATIENT_MESSAGES
    yield from PATIENT_MESSAGES.values()


def _records() -> Iterator[str]:
    from recovery.services.records import OUT_OF
    yield OUT_OF


def _phones() -> Iterator[str]:
    from recovery.services.phones import MOBILE_ERRORS
    yield from MOBILE_ERRORS


SOURCES = {"questionnaire/items.py": _questionnaire, "triage.py": _triage, "records.py": _records,
           "services/phones.py": _phones}


def domain_strings(fileobj, keywords, comment_tags, options):
    """Babel's extractor interface: (line, function, message, comments) per string; the file's own
    `field_error("...")` calls too (Babel takes one method per file)."""
    from babel.messages.extract import extract_python
    yield from extract_python(fileobj, keywords, comment_tags, options)
    name = getattr(fileobj, "name", "")
    if isinstance(name, bytes):
        name = name.decode()
    source = next((f for key, f in SOURCES.items() if name.endswith(key)), None)
    seen: set[str] = set()
    for message in (source() if source else ()):
        if message not in seen:
            seen.add(message)
            yield 0, "gettext", message, ["domain data"]


def all_domain_strings() -> list[str]:
    return sorted({m for f in SOURCES.values() for m in f()})

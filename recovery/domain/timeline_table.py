"""A timeline as rows for review: the `flask timeline` table and the preview at /admin/plan
show the same columns, made here."""
from __future__ import annotations

from datetime import datetime

from recovery.domain import texts
from recovery.domain.plan.model import Template
from recovery.domain.timeline import PlannedMessage, Timeline

MILESTONE_HEADER = ("ID", "Starts", "Ends", "Title")
TEXT_HEADER = ("Send at", "Occurrence", "", "Text")
HELD_HEADER = ("Would be", "Occurrence", "Text")


def when(tl: Timeline, instant: datetime) -> str:
    return tl.local(instant).strftime("%a %Y-%m-%d %H:%M %z")


def shown_text(t: Template, m: PlannedMessage) -> str:
    """The text with the clinic's numbers filled in and {first} / {link} left as placeholders."""
    return texts.render(m.text_template, first="{first}", link="{link}", emerg=t.emerg, phone=t.phone,
                        clinic=t.sms_name)


def flags(m: PlannedMessage) -> str:
    return " ".join(word for word, on in (("safety", m.safety), ("moved", m.quiet_moved),
                                          ("later", m.spaced)) if on)


def milestone_rows(tl: Timeline) -> list[tuple[str, str, str, str]]:
    """(id, with * for a restriction with a countdown; starts; ends, empty for a moment; title)"""
    return [(m.id + ("*" if m.restriction else ""), when(tl, m.starts_at), "" if m.point else when(tl, m.ends_at),
             m.title) for m in tl.milestones]


def text_rows(t: Template, tl: Timeline) -> list[tuple[str, str, str, str]]:
    return [(when(tl, m.send_at), m.key, flags(m), shown_text(t, m)) for m in tl.messages]


def held_rows(t: Template, tl: Timeline) -> list[tuple[str, str, str]]:
    """Texts over the daily limit of routine texts (the patient reads them on the Today page)."""
    return [(when(tl, m.send_at), m.key, shown_text(t, m)) for m in tl.held]

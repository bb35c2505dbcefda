"""A clinic's plan changed from the browser (/admin/plan): what an edit of offsets and texts
changes in the clinic's override, and the differences between two plans in words.

Nothing here checks a plan: the changed override is read with the clinic file loader
(recovery.files.plans), so the browser gets exactly the checks and messages a file gets."""
from __future__ import annotations

from typing import Mapping

from recovery.domain.plan.errors import OffsetError, OverrideError
from recovery.domain.plan.model import Milestone, Template
from recovery.domain.plan.offsets import Elapsed, parse_offset
from recovery.domain.plan.overrides import DURATION_WORDS, MilestoneOverride, Overrides

# (section, entry id) -> {key: new value, or None to take the base template's value again}
Changes = dict[tuple[str, str], dict[str, object]]


def offset_keys(m: Milestone) -> tuple[str, ...]:
    """The offsets a milestone is written with: `at` (one moment) or `start` and `end`."""
    return ("at",) if m.point else ("start", "end")


def offset_text(m: Milestone, key: str) -> str:
    return m.start.text if key in ("at", "start") else m.end.text


def edit_changes(current: Template, base: Template, offsets: Mapping[str, Mapping[str, str]],
                 texts: Mapping[str, str], translated: Mapping[str, Mapping[str, str]] | None = None) -> Changes:
    """The override changes for the offsets (milestone id -> key -> offset) and texts (message id
    -> text) typed on the form, against the clinic's current plan. A value back to the base
    template's drops the override. A milestone that says how long it lasts (`lasts`) is reworded
    as a nurse's per-patient change is (Overrides.reworded): its detail and the texts restating it
    say the new length, unless the form gives such a text itself."""
    changes: Changes = {}

    def put(section: str, eid: str, key: str, value: object, base_value: object) -> None:
        changes.setdefault((section, eid), {})[key] = None if value == base_value else value

    moved: dict[str, MilestoneOverride] = {}
    for m in current.milestones:
        typed = offsets.get(m.id, {})
        b = _base_milestone(base, m.id)
        new = {}
        for key in offset_keys(m):
            value = " ".join(str(typed.get(key, offset_text(m, key))).split())
            if value != offset_text(m, key):
                base_value = offset_text(b, key) if b is not None and b.point == m.point else None
                put("milestones", m.id, key, value, base_value)
                new[key] = value
        if new and m.lasts:
            try:
                moved[m.id] = MilestoneOverride(**{k: parse_offset(v) for k, v in new.items()})
            except OffsetError:
                pass  # the loader names the field and the problem
    typed_texts = {sid: _lines(t) for sid, t in texts.items()
                   if _has_message(current, sid) and _lines(t) != current.message(sid).text}
    if moved:
        try:
            reworded, details = Overrides(milestones=moved, texts=typed_texts).reworded(current)
        except OverrideError:
            reworded, details = {}, {}  # cannot be put in words: the loader asks for the texts
        for mid, detail in details.items():
            m, b = current.milestone(mid), _base_milestone(base, mid)
            words = detail_words(m, detail)
            put("milestones", mid, "detail", detail, b.detail if b else None)
            if words:
                put("milestones", mid, "lasts", words, b.lasts if b else None)
        for sid, text in reworded.items():
            typed_texts.setdefault(sid, text)
    typed_translations = {(language, sid): _lines(t) for language, by_id in (translated or {}).items()
                          for sid, t in by_id.items() if _has_message(current, sid)
                          and _lines(t) != dict(current.message(sid).translations).get(language)}
    if moved:
        _reword_translations(current, base, moved, put, typed=set(typed_translations))
    for sid, text in typed_texts.items():
        b = _base_message_text(base, sid)
        put("messages", sid, "text", text, b)
    for (language, sid), text in typed_translations.items():
        bm = _base_message(base, sid)
        put("messages", sid, f"text_{language}", text, dict(bm.translations).get(language) if bm else None)
    return changes


def _reword_translations(current: Template, base: Template, moved: Mapping[str, MilestoneOverride], put, *,
                         typed: set[tuple[str, str]]) -> None:
    """The other languages' detail and restating texts say the new length too, in their own words
    ("48 horas" -> "3 días"): the plan files require every language to be reworded together."""
    effective = Overrides(milestones=dict(moved)).milestone_offsets(current)
    for mid in moved:
        m, b = current.milestone(mid), _base_milestone(base, mid)
        start, end = effective[mid]
        if not (isinstance(m.start, Elapsed) and isinstance(m.end, Elapsed)
                and isinstance(start, Elapsed) and isinstance(end, Elapsed)):
            continue
        for language, words in DURATION_WORDS.items():
            try:
                old, new = words(m.end.delta - m.start.delta), words(end.delta - start.delta)
            except ValueError:
                continue
            detail = m.words_in(language)[2]
            if old in detail and dict(m.translations).get(language):
                base_detail = dict(b.translations).get(language, (None, None, None))[2] if b else None
                put("milestones", mid, f"detail_{language}", detail.replace(old, new), base_detail)
            for rule in current.messages:
                text = dict(rule.translations).get(language)
                if mid in rule.restates and text and old in text and (language, rule.id) not in typed:
                    bm = _base_message(base, rule.id)
                    put("messages", rule.id, f"text_{language}", text.replace(old, new),
                        dict(bm.translations).get(language) if bm else None)


def detail_words(m: Milestone, new_detail: str) -> str:
    """The new `lasts` words: what replaced the old ones in the reworded detail."""
    before, _, after = m.detail.partition(m.lasts)
    if not new_detail.startswith(before) or not new_detail.endswith(after):
        return ""
    return new_detail[len(before):len(new_detail) - len(after)]


def differences(old: Template, new: Template) -> list[str]:
    """What `new` does differently from `old`, one line per change, in words a clinician reads:
    "TL03 No driving: ends T0+72h instead of T0+48h", "S01 text changed"."""
    out: list[str] = []
    if (old.emerg, old.phone, old.sms_name) != (new.emerg, new.phone, new.sms_name):
        for label, a, b in (("emergency number", old.emerg, new.emerg), ("care-team phone", old.phone, new.phone),
                            ("name in texts", old.sms_name, new.sms_name)):
            if a != b:
                out.append(f"Contact: {label} {b or '(none)'} instead of {a or '(none)'}")
    if old.quiet_hours != new.quiet_hours:
        out.append(f"Quiet hours {new.quiet_start:%H:%M}-{new.quiet_end:%H:%M} instead of "
                   f"{old.quiet_start:%H:%M}-{old.quiet_end:%H:%M}")
    for m in new.milestones:
        o = _base_milestone(old, m.id)
        if o is None:
            out.append(f"{m.id} {m.short}: new")
            continue
        name = f"{m.id} {o.short}"
        if m.point and o.point and m.start.text != o.start.text:
            out.append(f"{name}: at {m.start.text} instead of {o.start.text}")
        elif not (m.point and o.point):
            for word, a, b in (("starts", o.start.text, m.start.text), ("ends", o.end.text, m.end.text)):
                if a != b:
                    out.append(f"{name}: {word} {b} instead of {a}")
        for label, a, b in (("title", o.title, m.title), ("short label", o.short, m.short),
                            ("detail", o.detail, m.detail)):
            if a != b:
                out.append(f"{name}: {label} changed")
    for s in new.messages:
        o = _base_message(old, s.id)
        if o is None:
            out.append(f"{s.id}: new")
            continue
        if s.text != o.text:
            out.append(f"{s.id} text changed")
        if [x.text for x in s.send] != [x.text for x in o.send]:
            out.append(f"{s.id} sent {', '.join(x.text for x in s.send)} instead of {', '.join(x.text for x in o.send)}")
        if s.enabled != o.enabled:
            out.append(f"{s.id} {'switched on' if s.enabled else 'switched off'}")
    if new.checkins != old.checkins:
        out.append("Check-in cadence changed")
    if new.daily_limit != old.daily_limit:
        out.append("Daily limit of routine texts changed")
    return out


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def _has_message(t: Template, sid: str) -> bool:
    return any(m.id == sid for m in t.messages)


def _base_milestone(t: Template, mid: str) -> Milestone | None:
    return next((m for m in t.milestones if m.id == mid), None)


def _base_message(t: Template, sid: str):
    return next((m for m in t.messages if m.id == sid), None)


def _base_message_text(t: Template, sid: str) -> str | None:
    m = _base_message(t, sid)
    return m.text if m else None

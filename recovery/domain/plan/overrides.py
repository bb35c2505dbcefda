"""Per-patient overrides, chosen at enrolment and stored as JSON on the enrolment."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

from recovery.domain import texts
from recovery.domain.plan.builder import find_cycle
from recovery.domain.plan.errors import OffsetError, OverrideError
from recovery.domain.plan.model import FLAGS, Milestone, Template
from recovery.domain.plan.offsets import Elapsed, Offset, parse_offset


# ---------------------------------------------------------------------------------------------
# Per-patient overrides (chosen at enrolment, stored as JSON on the enrolment)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MilestoneOverride:
    start: Offset | None = None
    end: Offset | None = None
    at: Offset | None = None  # for a single-moment milestone (e.g. the follow-up visit)

    def to_value(self) -> str | dict[str, str]:
        if self.at is not None and self.start is None and self.end is None:
            return self.at.text
        return {k: v.text for k, v in (("start", self.start), ("end", self.end), ("at", self.at)) if v is not None}


@dataclass(frozen=True)
class Overrides:
    """Per-patient changes to a template. JSON shape (every key optional)::

        {"working": true, "brace": false,
         "milestones": {"TL03": {"end": "T0+14d"}, "TL16": "date T0+14d"},
         "messages": {"S03": false},
         "texts": {"S01": "Hi {first}, welcome home. ... for 2 weeks."},
         "checkins": {"optional": true}}

    `milestones`: a string is the moment of a single-moment milestone (`at`); a table gives start/end.
    `messages`: switch a text off (false) or on (true, for one that is off by default); urgent safety
    replies cannot be switched off, and S12/S15-style texts still need their profile flag.
    `texts`: replacement wording, checked like template texts (GSM-7, ≤ 160, no PHI).
    `checkins`: switch a check-in group on/off by name (day0, daily, day10, weekly, optional).
    """
    working: bool = False
    brace: bool = False
    milestones: Mapping[str, MilestoneOverride] = field(default_factory=dict)
    messages: Mapping[str, bool] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)
    checkins: Mapping[str, bool] = field(default_factory=dict)

    def flag(self, name: str | None) -> bool:
        return True if name is None else bool(getattr(self, name))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Overrides:
        """Parse the stored JSON. Raises OverrideError naming the field (``milestones.TL03.end: …``)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise OverrideError(f"overrides must be an object, not {type(data).__name__}")
        allowed = {"working", "brace", "milestones", "messages", "texts", "checkins"}
        for key in data:
            if key not in allowed:
                raise OverrideError(f"{key}: unknown override (allowed: {', '.join(sorted(allowed))})")
        flags = {}
        for key in FLAGS:
            value = data.get(key, False)
            if not isinstance(value, bool):
                raise OverrideError(f"{key}: must be true or false, not {value!r}")
            flags[key] = value
        milestones: dict[str, MilestoneOverride] = {}
        for mid, value in _mapping(data, "milestones").items():
            if isinstance(value, str):
                milestones[mid] = MilestoneOverride(at=_override_offset(f"milestones.{mid}", value))
                continue
            if not isinstance(value, Mapping) or not value:
                raise OverrideError(f"milestones.{mid}: give an offset string or {{\"start\": ..., \"end\": ...}}")
            for k in value:
                if k not in ("start", "end", "at"):
                    raise OverrideError(f"milestones.{mid}.{k}: unknown (use start, end or at)")
            if "at" in value and ("start" in value or "end" in value):
                raise OverrideError(f"milestones.{mid}: give either 'at' or 'start'/'end', not both")
            milestones[mid] = MilestoneOverride(**{k: _override_offset(f"milestones.{mid}.{k}", v)
                                                   for k, v in value.items()})
        messages = {}
        for sid, value in _mapping(data, "messages").items():
            if not isinstance(value, bool):
                raise OverrideError(f"messages.{sid}: must be true or false, not {value!r}")
            messages[sid] = value
        texts_ = {}
        for sid, value in _mapping(data, "texts").items():
            if not isinstance(value, str):
                raise OverrideError(f"texts.{sid}: must be text, not {value!r}")
            check = texts.check_text(value)
            if check.problems:
                raise OverrideError(f"texts.{sid}: {check.problems[0]}")
            texts_[sid] = value
        checkins = {}
        for name, value in _mapping(data, "checkins").items():
            if not isinstance(value, bool):
                raise OverrideError(f"checkins.{name}: must be true or false, not {value!r}")
            checkins[name] = value
        return cls(milestones=milestones, messages=messages, texts=texts_, checkins=checkins, **flags)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable; `from_dict(to_dict())` gives an equal object. Empty parts are left out."""
        out: dict[str, Any] = {"working": self.working, "brace": self.brace}
        if self.milestones:
            out["milestones"] = {k: v.to_value() for k, v in self.milestones.items()}
        if self.messages:
            out["messages"] = dict(self.messages)
        if self.texts:
            out["texts"] = dict(self.texts)
        if self.checkins:
            out["checkins"] = dict(self.checkins)
        return out

    def validate(self, template: Template) -> None:
        """Check these overrides against a template. Raises OverrideError naming the field."""
        ids = {m.id for m in template.milestones}
        for mid, o in self.milestones.items():
            if mid not in ids:
                raise OverrideError(f"milestones.{mid}: unknown milestone (known: {', '.join(sorted(ids))})")
            m = template.milestone(mid)
            if m.point and (o.start or o.end):
                raise OverrideError(f"milestones.{mid}: is a single moment; give \"at\" (or just the offset string)")
            if not m.point and o.at:
                raise OverrideError(f"milestones.{mid}: has a start and an end; give {{\"start\": ...}} "
                                    "and/or {\"end\": ...}")
            for k, off in (("start", o.start), ("end", o.end), ("at", o.at)):
                for ref in off.refs() if off else ():
                    if ref not in ids:
                        raise OverrideError(f"milestones.{mid}.{k}: unknown milestone id {ref!r} in {off.text!r}")
        effective = self.milestone_offsets(template)
        cycle = find_cycle(effective)
        if cycle:
            raise OverrideError(f"milestones.{cycle[0]}: offsets refer to each other in a circle: "
                                + " -> ".join(cycle))
        msg_ids = [m.id for m in template.messages]
        for sid, on in self.messages.items():
            if sid not in msg_ids:
                raise OverrideError(f"messages.{sid}: unknown message (known: {', '.join(msg_ids)})")
            rule = template.message(sid)
            if rule.kind == "checkin_invite":
                groups_ = ", ".join(template.checkins.group_names())
                raise OverrideError(f"messages.{sid}: is a check-in invitation; switch check-in groups on or off "
                                    f"with checkins.<group> ({groups_})")
            if not on and rule.urgent:
                raise OverrideError(f"messages.{sid}: is an urgent safety reply and cannot be switched off")
            if not on and rule.safety:
                raise OverrideError(f"messages.{sid}: is a safety text and cannot be switched off "
                                    f"(change its wording with texts.{sid})")
            if on and rule.only_if and not self.flag(rule.only_if):
                raise OverrideError(f"messages.{sid}: is only for patients with '{rule.only_if}'; set "
                                    f"{rule.only_if} = true instead")
        for sid in self.texts:
            if sid not in msg_ids:
                raise OverrideError(f"texts.{sid}: unknown message (known: {', '.join(msg_ids)})")
            rule = template.message(sid)
            check = texts.check_text(self.texts[sid], emerg=template.emerg, phone=template.phone,
                                     clinic=template.sms_name, budget=template.budget)
            if check.problems:
                raise OverrideError(f"texts.{sid}: {check.problems[0]}")
            missing = [p for p in ("link",) if "{" + p + "}" in rule.text and "{" + p + "}" not in self.texts[sid]]
            if missing:
                raise OverrideError(f"texts.{sid}: must keep {{link}} (the original text has it)")
        groups = template.checkins.group_names()
        for name in self.checkins:
            if name not in groups:
                raise OverrideError(f"checkins.{name}: unknown check-in group (known: {', '.join(groups)})")
        for mid, o in self.milestones.items():
            m = template.milestone(mid)
            if not _changes(m, o) or m.lasts:  # a milestone with 'lasts' is reworded (reworded())
                continue
            for rule in template.messages:
                if mid in rule.restates and rule.id not in self.texts and self.messages.get(rule.id, True) \
                        and rule.enabled and self.flag(rule.only_if):
                    raise OverrideError(
                        f"milestones.{mid}: message {rule.id} repeats this timing in its text "
                        f"({rule.text!r}); give texts.{rule.id} with the new wording or switch "
                        f"messages.{rule.id} off")
        new_texts, _ = self.reworded(template)
        for sid, text in new_texts.items():
            check = texts.check_text(text, emerg=template.emerg, phone=template.phone, clinic=template.sms_name,
                                     budget=template.budget)
            if check.problems:
                raise OverrideError(f"texts.{sid}: reworded for the patient's own length, {check.problems[0]}")

    def reworded(self, template: Template) -> tuple[dict[str, str], dict[str, str]]:
        """(texts, details) after a per-patient change of a milestone that says how long it lasts
        (`lasts = "48 hours"`): its detail and every text restating it say the patient's own length,
        in the template's or clinic's own wording. Texts given in `texts` are left as given."""
        out_texts: dict[str, str] = {}
        details: dict[str, str] = {}
        effective = self.milestone_offsets(template)
        for m in template.milestones:
            o = self.milestones.get(m.id)
            if not m.lasts or o is None or not _changes(m, o):
                continue
            start, end = effective[m.id]
            if not (isinstance(start, Elapsed) and isinstance(end, Elapsed) and start.anchor == end.anchor):
                raise OverrideError(f"milestones.{m.id}: its texts say how long it lasts ({m.lasts!r}); give its "
                                    f"end as a length after {start.text if isinstance(start, Elapsed) else 'its start'}"
                                    f", e.g. \"T0+21d\"")
            try:
                words = duration_words(end.delta - start.delta)
            except ValueError as e:
                raise OverrideError(f"milestones.{m.id}: {e}") from None
            details[m.id] = m.detail.replace(m.lasts, words)
            for rule in template.messages:
                if m.id in rule.restates and rule.id not in self.texts:
                    out_texts[rule.id] = out_texts.get(rule.id, rule.text).replace(m.lasts, words)
        return out_texts, details

    def milestone_offsets(self, template: Template) -> dict[str, tuple[Offset, Offset]]:
        """(start, end) of every milestone after these overrides."""
        out = {}
        for m in template.milestones:
            o = self.milestones.get(m.id)
            if o is None:
                out[m.id] = (m.start, m.end)
            elif o.at is not None:
                out[m.id] = (o.at, o.at)
            else:
                out[m.id] = (o.start or m.start, o.end or m.end)
        return out


def _changes(m: Milestone, o: MilestoneOverride) -> bool:
    return (o.at is not None and o.at.text != m.start.text) or \
           (o.start is not None and o.start.text != m.start.text) or \
           (o.end is not None and o.end.text != m.end.text)


# How each language of the plan files words a length: hours up to a limit, then whole weeks or
# days; (limit in hours, hour, hours, week, weeks, days). English keeps hours up to 48 ("48 hours",
# as protocol.md words the sedation rule); Spanish up to 72 ("72 horas" keeps a text in GSM-7 where
# "3 días" would make it UCS-2).
_LENGTH_WORDS = {"en": (48, "hour", "hours", "week", "weeks", "days"),
                 "es": (72, "hora", "horas", "semana", "semanas", "días")}


def duration_words(length: timedelta, language: str = "en") -> str:
    """A length as the texts write it: "48 hours", "3 weeks", "10 days" (or "72 horas", ...)."""
    limit, hour, hours_word, week, weeks_word, days_word = _LENGTH_WORDS[language]
    hours, rest = divmod(length, timedelta(hours=1))
    if rest or hours < 1:
        raise ValueError(f"a length of {length} cannot be put in words; give whole hours or days")
    if hours <= limit or hours % 24:
        return f"{hours} {hour if hours == 1 else hours_word}"
    days = hours // 24
    if days % 7 == 0:
        return f"{days // 7} {week if days == 7 else weeks_word}"
    return f"{days} {days_word}"


def duration_words_es(length: timedelta) -> str:
    return duration_words(length, "es")


# The languages other than English whose detail and texts a new length is reworded in.
DURATION_WORDS = {"es": duration_words_es}


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise OverrideError(f"{key}: must be an object, not {value!r}")
    return value


def _override_offset(where: str, value: Any) -> Offset:
    try:
        return parse_offset(value)
    except OffsetError as e:
        raise OverrideError(f"{where}: {e}") from None

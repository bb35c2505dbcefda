"""Building a Template from raw TOML, every field checked; each problem names its file and line."""
from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Any, Mapping

from recovery.domain import texts
from recovery.domain.plan.errors import OffsetError
from recovery.domain.plan.model import (CheckinCadence, CheckinGroup, DailyLimit, Day0Checkin, EVENTS, FLAGS, KINDS,
                                        MessageRule, Milestone, SourceMap, Template, _ID_MESSAGE, _ID_MILESTONE,
                                        _ID_TEMPLATE)
from recovery.domain.plan.offsets import Offset, parse_clock, parse_duration, parse_offset


# ---------------------------------------------------------------------------------------------
# Building a Template from raw TOML (every field checked)
# ---------------------------------------------------------------------------------------------

_TEMPLATE_KEYS = {"id", "version", "title", "status", "approved_by", "horizon", "contact", "quiet_hours",
                  "milestones", "messages", "checkins", "daily_limit"}
_MILESTONE_KEYS = {"title", "detail", "start", "end", "at", "restriction", "short", "sms", "only_if", "all_day",
                   "lasts"}
_APPROVED_IN = re.compile(r"approved_by_[a-z]{2,3}")  # who signed off a language's texts
_WORDS_IN = re.compile(r"(title|short|detail)_([a-z]{2,3})")  # a milestone's words in another language
_TEXT_IN = re.compile(r"text_([a-z]{2,3})")  # a message's text in another language: text_es
_MESSAGE_KEYS = {"kind", "text", "urgent", "send", "on", "delay", "only_if", "enabled", "restates", "note",
                 "safety"}
_GROUP_KEYS = {"days", "time", "invite", "reminder_after", "missed_after", "enabled"}
_DAY0_KEYS = {"invite", "at", "not_before", "evening_fallback", "reminder_after", "missed_after", "enabled"}


class TemplateBuilder:
    def __init__(self, raw: dict, src: SourceMap, budget: texts.Budget | None = None,
                 frozen: bool | frozenset[str] = False):
        self.raw, self.src, self.budget = raw, src, budget or texts.DEFAULT_BUDGET
        # Texts kept exactly as published for the patients enrolled on them (True: every text): one
        # that does not fit one SMS within the budget is a warning, not an error (see load_template).
        self.frozen = frozen
        self.warnings: list[str] = []

    def _frozen(self, message_id: str) -> bool:
        return self.frozen is True or (bool(self.frozen) and message_id in self.frozen)

    # -- small typed getters ------------------------------------------------------------------
    def _get(self, table: tuple[str, ...], key: str, kind: type | tuple, required: bool = True,
             default: Any = None) -> Any:
        node = self._node(table)
        if key not in node:
            if required:
                raise self.src.fail(table, None, f"missing required field '{key}'")
            return default
        value = node[key]
        ok = isinstance(value, kind) and not (kind in (int, (int,)) and isinstance(value, bool))
        if not ok:
            want = {str: "text", bool: "true or false", int: "a whole number", list: "a list"}.get(kind, str(kind))
            raise self.src.fail(table, key, f"'{key}' must be {want}, not {value!r}")
        return value

    def _text(self, table, key, required=True, default="", max_len=600) -> str:
        value = self._get(table, key, str, required, default)
        if required and not value.strip():
            raise self.src.fail(table, key, f"'{key}' is empty")
        if len(value) > max_len:
            raise self.src.fail(table, key, f"'{key}' is {len(value)} characters (max {max_len})")
        return value.strip()

    def _node(self, table: tuple[str, ...]) -> dict:
        node: Any = self.raw
        for part in table:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if not isinstance(node, dict):
            raise self.src.fail(table, None, "must be a table")
        return node

    def _unknown(self, table: tuple[str, ...], allowed: set[str]) -> None:
        for key in self._node(table):
            if key not in allowed:
                raise self.src.fail(table, key, f"unknown field '{key}' (allowed: {', '.join(sorted(allowed))})")

    def _offset(self, table, key, required=True) -> Offset | None:
        value = self._node(table).get(key)
        if value is None:
            if required:
                raise self.src.fail(table, None, f"missing required field '{key}'")
            return None
        try:
            return parse_offset(value)
        except OffsetError as e:
            raise self.src.fail(table, key, f"'{key}': {e}") from None

    def _duration(self, table, key) -> timedelta:
        value = self._get(table, key, str)
        try:
            return parse_duration(value)
        except OffsetError as e:
            raise self.src.fail(table, key, f"'{key}': {e}") from None

    def _clock(self, table, key) -> time:
        value = self._get(table, key, str)
        try:
            return parse_clock(value)
        except OffsetError as e:
            raise self.src.fail(table, key, f"'{key}': {e}") from None

    def _flag(self, table, key="only_if") -> str | None:
        value = self._get(table, key, str, required=False)
        if value is not None and value not in FLAGS:
            raise self.src.fail(table, key, f"'{key}' must be one of {', '.join(FLAGS)}, not {value!r}")
        return value

    # -- the template -------------------------------------------------------------------------
    def build(self, *, clinic: str | None, clinic_version: int | None, clinic_title: str | None) -> Template:
        self._unknown((), _TEMPLATE_KEYS | {k for k in self.raw if _APPROVED_IN.fullmatch(k)})
        tid = self._get((), "id", str)
        if not _ID_TEMPLATE.match(tid):
            raise self.src.fail((), "id", f"id {tid!r} must be lower-case letters, digits, '-' or '_'")
        version = self._get((), "version", int)
        if version < 1:
            raise self.src.fail((), "version", "version must be 1 or more")
        title = self._text((), "title", max_len=120)
        status = self._text((), "status", required=False, default="draft", max_len=200)
        self._text((), "approved_by", required=False, max_len=120)

        self._unknown(("contact",), {"emerg", "phone", "name"})
        emerg = self._get(("contact",), "emerg", str)
        if not re.fullmatch(r"\d{2,4}", emerg):
            raise self.src.fail(("contact",), "emerg", f"emergency number must be 2-4 digits, not {emerg!r}")
        phone = self._text(("contact",), "phone", max_len=20)
        if not texts.is_gsm7(phone):
            raise self.src.fail(("contact",), "phone", f"phone {phone!r} has characters that are not GSM-7")
        sms_name = self._get(("contact",), "name", str, required=False, default="").strip()
        name_problems = texts.check_name(sms_name) if "name" in self._node(("contact",)) else []
        if name_problems:
            raise self.src.fail(("contact",), "name", f"name {sms_name!r}: {name_problems[0]}")

        self._unknown(("quiet_hours",), {"start", "end", "safety_start"})
        quiet_start = self._clock(("quiet_hours",), "start")
        quiet_end = self._clock(("quiet_hours",), "end")
        if quiet_start == quiet_end:
            raise self.src.fail(("quiet_hours",), "end", "quiet hours start and end at the same time")
        safety_start = None
        if "safety_start" in self._node(("quiet_hours",)):
            safety_start = self._clock(("quiet_hours",), "safety_start")
            inside = quiet_start < safety_start < quiet_end if quiet_start < quiet_end else (
                safety_start > quiet_start or safety_start < quiet_end)
            if safety_start != quiet_start and not inside:
                raise self.src.fail(("quiet_hours",), "safety_start",
                                    f"safety_start {safety_start:%H:%M} must lie within the quiet hours "
                                    f"{quiet_start:%H:%M}-{quiet_end:%H:%M} (safety texts may go later, not earlier)")

        milestones = self._milestones()
        messages = self._messages(emerg, phone, clinic_title, clinic, sms_name)
        for language in sorted({lang for m in (*messages, *milestones) for lang, _ in m.translations}):
            # A translation is clinical content with its own sign-off, marked like the file's
            self._text((), f"approved_by_{language}", max_len=120)
        checkins = self._checkins(messages)
        daily_limit = self._daily_limit(messages)
        ids = {m.id for m in milestones}
        msg_ids = {m.id for m in messages}

        horizon = self._get((), "horizon", str)
        if horizon not in ids:
            raise self.src.fail((), "horizon", f"horizon names unknown milestone {horizon!r}")
        for m in milestones:
            for sid in m.sms:
                if sid not in msg_ids:
                    raise self.src.fail(("milestones", m.id), "sms", f"unknown message id {sid!r} in 'sms'")
            for key, off in (("start", m.start), ("end", m.end)):
                for ref in off.refs():
                    if ref not in ids:
                        raise self.src.fail(("milestones", m.id), "at" if m.point else key,
                                            f"unknown milestone id {ref!r} in {off.text!r}")
        for msg in messages:
            for off in msg.send:
                for ref in off.refs():
                    if ref not in ids:
                        raise self.src.fail(("messages", msg.id), "send", f"unknown milestone id {ref!r} in {off.text!r}")
            for ref in msg.restates:
                if ref not in ids:
                    raise self.src.fail(("messages", msg.id), "restates", f"unknown milestone id {ref!r} in 'restates'")
        for off_key in ("at", "not_before") if checkins.day0 else ():
            for ref in getattr(checkins.day0, off_key).refs():
                if ref not in ids:
                    raise self.src.fail(("checkins", "day0"), off_key, f"unknown milestone id {ref!r}")
        cycle = find_cycle({m.id: (m.start, m.end) for m in milestones})
        if cycle:
            raise self.src.fail(("milestones", cycle[0]), None,
                                "offsets refer to each other in a circle: " + " -> ".join(cycle))
        by_id = {m.id: m for m in milestones}
        for m in milestones:
            if m.lasts and m.lasts not in m.detail:
                raise self.src.fail(("milestones", m.id), "detail",
                                    f"its detail must say how long it lasts in the words of 'lasts' ({m.lasts!r})")
        for msg in messages:
            for ref in msg.restates:
                lasts = by_id[ref].lasts
                if lasts and lasts not in msg.text:
                    raise self.src.fail(("messages", msg.id), "text",
                                        f"restates milestone {ref}, which lasts {lasts!r}, but the text does not "
                                        "say so; use the same words as the milestone's 'lasts'")
        if any(msg.safety for msg in messages) and safety_start is None:
            raise self.src.fail(("quiet_hours",), None, "a template with safety texts must set [quiet_hours] "
                                                        "safety_start (until when a safety text may still go)")

        base_id, base_version = tid, version
        return Template(
            id=f"{tid}+{clinic}" if clinic else tid,
            version=f"{version}+{clinic_version}" if clinic else str(version),
            title=title, base_id=base_id, base_version=base_version, clinic=clinic,
            clinic_version=clinic_version, clinic_title=clinic_title,
            sources=tuple(layer.path for layer in self.src.layers), status=status,
            emerg=emerg, phone=phone, quiet_start=quiet_start, quiet_end=quiet_end, horizon=horizon,
            milestones=milestones, messages=messages, checkins=checkins, safety_start=safety_start,
            daily_limit=daily_limit, sms_name=sms_name, budget=self.budget, warnings=tuple(self.warnings))

    def _milestones(self) -> tuple[Milestone, ...]:
        table = self._node(("milestones",))
        if not table:
            raise self.src.fail((), "milestones", "no milestones")
        out = []
        for mid in table:
            t = ("milestones", mid)
            if not _ID_MILESTONE.match(mid):
                raise self.src.fail(t, None, f"milestone id {mid!r} must look like TL01")
            if not isinstance(table[mid], dict):
                raise self.src.fail(t, None, "must be a table")
            node = table[mid]
            self._unknown(t, _MILESTONE_KEYS | {k for k in node if _WORDS_IN.fullmatch(k)})
            if "at" in node and ("start" in node or "end" in node):
                raise self.src.fail(t, "at", "give either 'at' (one moment) or 'start' and 'end', not both")
            if "at" in node:
                start = end = self._offset(t, "at")
                point = True
            else:
                start, end = self._offset(t, "start"), self._offset(t, "end")
                point = False
            sms = self._get(t, "sms", list)
            if not all(isinstance(s, str) for s in sms):
                raise self.src.fail(t, "sms", "'sms' must be a list of message ids like [\"S01\"]")
            if len(set(sms)) != len(sms):
                raise self.src.fail(t, "sms", "'sms' lists a message twice")
            title = self._text(t, "title", max_len=80)
            restriction = self._get(t, "restriction", bool)
            out.append(Milestone(
                id=mid, title=title, detail=self._text(t, "detail", max_len=600),
                start=start, end=end, point=point, restriction=restriction,
                short=self._text(t, "short", required=False, default="", max_len=60) or title,
                sms=tuple(sms), only_if=self._flag(t),
                all_day=self._get(t, "all_day", bool, required=False, default=False),
                lasts=self._text(t, "lasts", required=False, default="", max_len=30),
                translations=self._milestone_words(t, node)))
            if out[-1].lasts and point:
                raise self.src.fail(t, "lasts", "a single-moment milestone ('at') does not last: remove 'lasts'")
            if restriction and point:
                raise self.src.fail(t, "restriction", "a restriction needs a 'start' and an 'end', not 'at'")
        return tuple(out)

    def _messages(self, emerg: str, phone: str, clinic_title: str | None, clinic: str | None,
                  sms_name: str = "") -> tuple[MessageRule, ...]:
        table = self._node(("messages",))
        if not table:
            raise self.src.fail((), "messages", "no messages")
        forbidden = tuple(n for n in (clinic_title, clinic.replace("-", " ") if clinic else None) if n)
        out = []
        for sid in table:
            t = ("messages", sid)
            if not _ID_MESSAGE.match(sid):
                raise self.src.fail(t, None, f"message id {sid!r} must look like S01")
            if not isinstance(table[sid], dict):
                raise self.src.fail(t, None, "must be a table")
            node = table[sid]
            self._unknown(t, _MESSAGE_KEYS | {k for k in node if _TEXT_IN.fullmatch(k)})
            kind = self._get(t, "kind", str)
            if kind not in KINDS:
                raise self.src.fail(t, "kind", f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
            text = self._get(t, "text", str)
            check = texts.check_text(text, emerg=emerg, phone=phone, clinic=sms_name, budget=self.budget,
                                     forbidden_names=forbidden)
            problems = [p for p in check.problems if not (p == check.too_long and self._frozen(sid))]
            if problems:
                raise self.src.fail(t, "text", problems[0])
            if check.too_long:  # a frozen text: it goes as it always has, in more than one segment
                self.warnings.append(str(self.src.fail(t, "text", check.too_long + FROZEN_TOO_LONG)))
            translations = self._translations(t, node, text, emerg, phone, sms_name, forbidden)
            urgent = self._get(t, "urgent", bool)
            if urgent and kind != "event_reply":
                raise self.src.fail(t, "urgent", "only an event_reply (answering something the patient just "
                                                 "did) may be urgent and ignore quiet hours")
            send: tuple[Offset, ...] = ()
            on, delay = None, timedelta(0)
            if kind == "reminder":
                raw_send = node.get("send")
                if raw_send is None:
                    raise self.src.fail(t, None, "missing required field 'send' (when to send it)")
                if isinstance(raw_send, str):
                    raw_send = [raw_send]
                if not isinstance(raw_send, list) or not raw_send:
                    raise self.src.fail(t, "send", "'send' must be an offset or a non-empty list of offsets")
                parsed = []
                for item in raw_send:
                    try:
                        parsed.append(parse_offset(item))
                    except OffsetError as e:
                        raise self.src.fail(t, "send", f"'send': {e}") from None
                keys = [p.key for p in parsed]
                dup = next((k for k in keys if keys.count(k) > 1), None)
                if dup:
                    raise self.src.fail(t, "send", f"'send' has two occurrences with the same key {dup!r}")
                send = tuple(parsed)
            elif "send" in node:
                raise self.src.fail(t, "send", f"a {kind} is not sent on a timetable: remove 'send'"
                                    + (" (the [checkins] cadence sends it)" if kind.startswith("checkin") else ""))
            if kind == "event_reply":
                on = self._get(t, "on", str)
                if on not in EVENTS:
                    raise self.src.fail(t, "on", f"'on' must be one of {', '.join(EVENTS)}, not {on!r}")
                delay = self._duration(t, "delay") if "delay" in node else timedelta(0)
            else:
                for key in ("on", "delay"):
                    if key in node:
                        raise self.src.fail(t, key, f"'{key}' is only for kind event_reply")
            restates = self._get(t, "restates", list, required=False, default=[])
            if not all(isinstance(r, str) for r in restates):
                raise self.src.fail(t, "restates", "'restates' must be a list of milestone ids")
            safety = self._safety(t, node, kind, send)
            out.append(MessageRule(
                id=sid, kind=kind, text=text, urgent=urgent, send=send, on=on, delay=delay,
                only_if=self._flag(t), enabled=self._get(t, "enabled", bool, required=False, default=True),
                restates=tuple(restates), note=self._text(t, "note", required=False, max_len=400),
                safety=safety, translations=translations))
            if urgent and not out[-1].enabled:
                raise self.src.fail(t, "enabled", "an urgent safety reply cannot be switched off")
            if safety and (not out[-1].enabled or out[-1].only_if):
                raise self.src.fail(t, "safety", "a safety text goes to every patient: it cannot be "
                                                 "switched off (enabled = false) or depend on 'only_if'")
        return tuple(out)

    def _milestone_words(self, t: tuple[str, ...], node: dict) -> tuple[tuple[str, tuple[str, str, str]], ...]:
        """title_es / detail_es (and short_es, else the title): a language gives both or none."""
        out = []
        for language in sorted({m.group(2) for k in node if (m := _WORDS_IN.fullmatch(k))}):
            title = self._text(t, f"title_{language}", max_len=100)
            detail = self._text(t, f"detail_{language}", max_len=700)
            short = self._text(t, f"short_{language}", required=False, default="", max_len=70) or title
            out.append((language, (title, short, detail)))
        return tuple(out)

    def _translations(self, t: tuple[str, ...], node: dict, english: str, emerg: str, phone: str, sms_name: str,
                      forbidden: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """`text_es = "..."`: the text in that language, checked with its real encoding (a failure
        names the file, line, message and language)."""
        out = []
        for key in node:
            match = _TEXT_IN.fullmatch(key)
            if not match:
                continue
            language = match.group(1)
            text = self._get(t, key, str)
            check = texts.check_translation(text, english=english, emerg=emerg, phone=phone, clinic=sms_name,
                                            budget=self.budget, forbidden_names=forbidden)
            problems = [p for p in check.problems if not (p.startswith("text is") and self._frozen(t[1]))]
            if problems:
                raise self.src.fail(t, key, f"language {language!r}: {problems[0]}")
            out.append((language, text))
        return tuple(sorted(out))

    def _safety(self, t: tuple[str, ...], node: dict, kind: str, send: tuple[Offset, ...]) -> tuple[str, ...]:
        """`safety = true` (every occurrence) or a list of the `send` offsets that are safety texts."""
        value = node.get("safety", False)
        if value is False:
            return ()
        if kind != "reminder":
            raise self.src.fail(t, "safety", "only a reminder (a text on a timetable) can be a safety text; "
                                             "replies that must go at night are 'urgent' instead")
        if value is True:
            return tuple(off.key for off in send)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.src.fail(t, "safety", "'safety' must be true, false or a list of offsets from 'send' "
                                             "(e.g. [\"TD+1h\"])")
        keys = {off.key: off.text for off in send}
        out = []
        for item in value:
            try:
                key = parse_offset(item).key
            except OffsetError as e:
                raise self.src.fail(t, "safety", f"'safety': {e}") from None
            if key not in keys:
                raise self.src.fail(t, "safety", f"'safety' names {item!r}, which is not one of its 'send' "
                                                 f"times ({', '.join(keys.values())})")
            out.append(key)
        return tuple(dict.fromkeys(out))

    def _daily_limit(self, messages: tuple[MessageRule, ...]) -> DailyLimit | None:
        t = ("daily_limit",)
        node = self._node(t)
        if not node:
            return None
        self._unknown(t, {"per_day", "min_gap", "order"})
        per_day = self._get(t, "per_day", int)
        if per_day < 1:
            raise self.src.fail(t, "per_day", "per_day must be 1 or more")
        min_gap = self._duration(t, "min_gap")
        if min_gap > timedelta(hours=12):
            raise self.src.fail(t, "min_gap", "min_gap longer than 12 hours would leave one text a day")
        order = self._get(t, "order", list)
        if not all(isinstance(v, str) for v in order):
            raise self.src.fail(t, "order", "'order' must be a list of message ids like [\"S02\", \"S07\"]")
        by_id = {m.id: m for m in messages}
        routine = [m.id for m in messages if _is_routine_rule(m)]
        seen: set[str] = set()
        for sid in order:
            if sid in seen:
                raise self.src.fail(t, "order", f"'order' lists {sid} twice")
            seen.add(sid)
            m = by_id.get(sid)
            if m is None:
                raise self.src.fail(t, "order", f"'order' names unknown message {sid!r}")
            if sid not in routine:
                why = ("a safety text is never held back" if m.kind == "reminder" else
                       f"{'an' if m.kind[0] in 'aeiou' else 'a'} {m.kind} does not count towards the limit")
                raise self.src.fail(t, "order", f"'order' lists {sid}, but {why}; remove it")
        missing = [sid for sid in routine if sid not in seen]
        if missing:
            raise self.src.fail(t, "order", f"'order' must rank every routine text; add {', '.join(missing)}")
        return DailyLimit(per_day=per_day, min_gap=min_gap, order=tuple(order))

    def _checkins(self, messages: tuple[MessageRule, ...]) -> CheckinCadence:
        by_id = {m.id: m for m in messages}
        base = ("checkins",)
        node = self._node(base)
        if not node:
            raise self.src.fail((), "checkins", "missing the [checkins] cadence")
        reminder = self._get(base, "reminder", str)
        if by_id.get(reminder) is None or by_id[reminder].kind != "checkin_reminder":
            raise self.src.fail(base, "reminder", f"'reminder' must name a message of kind checkin_reminder, not {reminder!r}")

        def invite_of(t):
            invite = self._get(t, "invite", str)
            if by_id.get(invite) is None or by_id[invite].kind != "checkin_invite":
                raise self.src.fail(t, "invite", f"'invite' must name a message of kind checkin_invite, not {invite!r}")
            return invite

        def windows(t):
            reminder_after = self._duration(t, "reminder_after")
            missed_after = self._duration(t, "missed_after")
            if reminder_after >= missed_after:
                raise self.src.fail(t, "reminder_after", "the reminder must come before the check-in counts as missed")
            return reminder_after, missed_after

        day0 = None
        groups = []
        seen_days: dict[int, str] = {}
        for name, value in node.items():
            if name == "reminder":
                continue
            t = base + (name,)
            if not isinstance(value, dict):
                raise self.src.fail(base, name, f"unknown field '{name}' (a check-in group is a table)")
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name):
                raise self.src.fail(t, None, f"group name {name!r} must be lower-case letters, digits or '_'")
            if name == "day0":
                self._unknown(t, _DAY0_KEYS)
                invite = invite_of(t)
                reminder_after, missed_after = windows(t)
                day0 = Day0Checkin(invite=invite, at=self._offset(t, "at"), not_before=self._offset(t, "not_before"),
                                   evening_fallback=self._clock(t, "evening_fallback"),
                                   reminder_after=reminder_after, missed_after=missed_after,
                                   enabled=self._get(t, "enabled", bool, required=False, default=True))
                seen_days[0] = name
                continue
            self._unknown(t, _GROUP_KEYS)
            days = self._get(t, "days", list)
            if not days or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 366 for d in days):
                raise self.src.fail(t, "days", "'days' must be a non-empty list of day numbers 0-366")
            for d in days:
                if d in seen_days:
                    raise self.src.fail(t, "days", f"day {d} already has a check-in (group {seen_days[d]})")
                seen_days[d] = name
            invite = invite_of(t)
            reminder_after, missed_after = windows(t)
            groups.append(CheckinGroup(name=name, days=tuple(sorted(days)), at=self._clock(t, "time"),
                                       invite=invite, reminder_after=reminder_after, missed_after=missed_after,
                                       enabled=self._get(t, "enabled", bool, required=False, default=True)))
        used = {g.invite for g in groups} | ({day0.invite} if day0 else set())
        for m in messages:
            if m.kind == "checkin_invite" and m.id not in used:
                raise self.src.fail(("messages", m.id), "kind", "a checkin_invite that no [checkins] group sends")
            if m.kind == "checkin_reminder" and m.id != reminder:
                raise self.src.fail(("messages", m.id), "kind", "a checkin_reminder that [checkins] does not use")
        return CheckinCadence(reminder=reminder, day0=day0, groups=tuple(groups))


def _is_routine_rule(m: MessageRule) -> bool:
    """Counts towards [daily_limit]: a reminder with an occurrence that is not a safety text, or
    the check-in reminder. Replies, safety texts and check-in invitations never count."""
    if m.kind == "checkin_reminder":
        return True
    return m.kind == "reminder" and any(off.key not in m.safety for off in m.send)


def find_cycle(offsets: Mapping[str, tuple[Offset, Offset]]) -> list[str] | None:
    """A list like ["TL08", "TL16", "TL08"] if milestone offsets refer to each other in a circle."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mid: str) -> list[str] | None:
        state[mid] = 1
        stack.append(mid)
        for off in offsets.get(mid, ()):
            for ref in sorted(off.refs()):
                if ref not in offsets:
                    continue
                if state.get(ref) == 1:
                    return stack[stack.index(ref):] + [ref]
                if ref not in state:
                    found = visit(ref)
                    if found:
                        return found
        stack.pop()
        state[mid] = 2
        return None

    for mid in offsets:
        if mid not in state:
            found = visit(mid)
            if found:
                return found
    return None


# Appended to the too-long warning of a text that a replaced (frozen) version keeps.
FROZEN_TOO_LONG = ("; kept as it is: this version is replaced by a newer one and stays unchanged for the "
                   "patients enrolled on it, so the text still goes, in more than one SMS segment")

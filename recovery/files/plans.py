"""Reading the plan files clinicians review: schedules/<id>_v<version>.toml templates and
schedules/clinics/<name>.toml clinic files, merged onto their base; every problem reported as
``file:line: entry: problem``. Each loaded template is also dry-run (built for a few awkward
procedure times) so that a plan which cannot be laid out fails when its file loads, not at a
patient's enrolment. The grammar and the field checks are in recovery.domain.plan."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from recovery.domain import texts
from recovery.domain.plan.builder import TemplateBuilder
from recovery.domain.plan.errors import TemplateError
from recovery.domain.plan.model import Template
from recovery.domain.plan.overrides import Overrides
from recovery.domain.timeline import TimelineError, build_timeline

# ---------------------------------------------------------------------------------------------
# Where things are in the raw file (for file:line messages)
# ---------------------------------------------------------------------------------------------

_KEY_PART = r'(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')'
_HEADER_RE = re.compile(r"^\s*\[(\[)?\s*(" + _KEY_PART + r"(?:\s*\.\s*" + _KEY_PART + r")*)\s*\]\]?\s*(?:#.*)?$")
_KEYLINE_RE = re.compile(r"^\s*(" + _KEY_PART + r"(?:\s*\.\s*" + _KEY_PART + r")*)\s*=\s*(.*)$")
_STRINGS_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in re.findall(_KEY_PART, dotted))


class _LineIndex:
    """Line numbers of table headers and keys in a TOML text (enough for messages, not a parser)."""

    def __init__(self, text: str):
        self.tables: dict[tuple[str, ...], int] = {}
        self.keys: dict[tuple[tuple[str, ...], str], int] = {}
        self.duplicate: tuple[tuple[str, ...], int, int] | None = None  # (table, line, first line)
        self.last_line = max(1, len(text.splitlines()))
        headers: dict[tuple[str, ...], int] = {}
        current: tuple[str, ...] = ()
        in_string: str | None = None
        depth = 0
        for n, line in enumerate(text.splitlines(), 1):
            if in_string:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            if depth > 0:
                depth += self._balance(line)
                continue
            m = _HEADER_RE.match(line)
            if m:
                current = _split_key(m.group(2))
                if not m.group(1):
                    if current in headers and self.duplicate is None:
                        self.duplicate = (current, n, headers[current])
                    headers.setdefault(current, n)
                self.tables.setdefault(current, n)
                continue
            m = _KEYLINE_RE.match(line)
            if not m:
                continue
            parts = _split_key(m.group(1))
            for i in range(1, len(parts)):
                self.tables.setdefault(current + parts[:i], n)
            self.keys.setdefault((current + parts[:-1], parts[-1]), n)
            value = m.group(2).strip()
            for delim in ('"""', "'''"):
                if value.startswith(delim) and value.count(delim) % 2 == 1:
                    in_string = delim
            if not in_string:
                depth = self._balance(value)

    @staticmethod
    def _balance(fragment: str) -> int:
        bare = _STRINGS_RE.sub("", fragment).split("#", 1)[0]
        return bare.count("[") + bare.count("{") - bare.count("]") - bare.count("}")

    def find(self, table: tuple[str, ...], key: str | None = None) -> int:
        if key is not None and (table, key) in self.keys:
            return self.keys[(table, key)]
        for i in range(len(table), 0, -1):
            if table[:i] in self.tables:
                return self.tables[table[:i]]
            if (table[:i - 1], table[i - 1]) in self.keys:
                return self.keys[(table[:i - 1], table[i - 1])]
        return 1


def key_at(text: str, line: int) -> tuple[tuple[str, ...], str | None] | None:
    """The (table, key) written on `line` of a TOML text, (table, None) for a table header, or None."""
    index = _LineIndex(text)
    for (table, key), n in index.keys.items():
        if n == line:
            return table, key
    for table, n in index.tables.items():
        if n == line:
            return table, None
    return None


@dataclass
class _Layer:
    path: str
    raw: dict
    lines: _LineIndex


def _has(raw: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if not isinstance(raw, dict) or part not in raw:
            return False
        raw = raw[part]
    return True


class _Source:
    """One or more files (clinic first, then its base template) that together give a template."""

    def __init__(self, layers: list[_Layer]):
        self.layers = layers

    def where(self, table: tuple[str, ...], key: str | None = None) -> tuple[str, int]:
        if key is not None:
            for layer in self.layers:
                if _has(layer.raw, table + (key,)):
                    return layer.path, layer.lines.find(table, key)
        for depth in range(len(table), 0, -1):
            for layer in self.layers:
                if _has(layer.raw, table[:depth]):
                    return layer.path, layer.lines.find(table[:depth])
        return self.layers[-1].path, 1

    def fail(self, table: tuple[str, ...], key: str | None, problem: str) -> TemplateError:
        path, line = self.where(table, key)
        return TemplateError(path, line, _entry_name(table), problem)


def _entry_name(table: tuple[str, ...]) -> str:
    if len(table) >= 2 and table[0] == "milestones":
        return f"milestone {table[1]}"
    if len(table) >= 2 and table[0] == "messages":
        return f"message {table[1]}"
    if len(table) >= 2 and table[0] == "checkins":
        return f"check-in group {table[1]}"
    return ".".join(table) if table else "template"


def _read_toml(path: Path) -> tuple[dict, _LineIndex]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(str(path), 0, "", "file not found") from None
    except UnicodeDecodeError as e:
        raise TemplateError(str(path), 1, "", f"not UTF-8 text ({e.reason})") from None
    return _parse_toml(text, str(path))


def _parse_toml(text: str, label: str) -> tuple[dict, _LineIndex]:
    lines = _LineIndex(text)
    if lines.duplicate:
        table, line, first = lines.duplicate
        raise TemplateError(label, line, _entry_name(table),
                            f"defined twice (first at line {first}); ids must be unique")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = int(m.group(1)) if m else lines.last_line
        detail = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        col = f", column {m.group(2)}" if m else ""
        raise TemplateError(label, line, "", f"TOML syntax error{col}: {detail}") from None
    return raw, lines



_CLINIC_KEYS = {"clinic", "version", "title", "status", "approved_by", "based_on", "based_on_version",
                "contact", "quiet_hours", "milestones", "messages", "checkins", "daily_limit"}


def _dry_run(template: Template, src: _Source) -> None:
    """Build the timeline for a few awkward procedure times so a milestone that would end before it
    starts is caught when the file loads, not at a patient's enrolment."""
    samples = [(datetime(2026, 3, 7, 23, 50), "America/New_York"), (datetime(2026, 6, 15, 10, 0), "UTC"),
               (datetime(2026, 10, 24, 14, 0), "Europe/London"), (datetime(2026, 6, 10, 9, 0), "America/New_York"),
               (datetime(2026, 6, 10, 19, 30), "America/New_York"), (datetime(2026, 6, 10, 22, 30), "Australia/Sydney")]
    on_today = {sid for m in template.milestones for sid in m.sms}
    for local, zone in samples:
        tz = ZoneInfo(zone)
        try:
            tl = build_timeline(template, procedure_end=local.replace(tzinfo=tz), discharge=None, tz=tz,
                                overrides=Overrides(working=True, brace=True))
        except TimelineError as e:
            if e.milestone:
                m = template.milestone(e.milestone)
                key = "at" if m.point else (e.field or "end")
                raise src.fail(("milestones", e.milestone), key, e.problem) from None
            raise src.fail((), None, str(e)) from None
        for held in tl.held:
            if held.id not in on_today:
                raise src.fail(("daily_limit",), "order",
                               f"message {held.id} is held back by the daily limit (e.g. for a procedure ending "
                               f"{local:%Y-%m-%d %H:%M} {zone}), but no milestone lists it in 'sms', so the patient "
                               "would not read it on the Today page either; rank it higher or add it to a milestone")



# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

def _superseded(p: Path, raw: dict) -> bool:
    """A newer version of this template lies beside it: this one takes no new patients and is kept,
    unchanged, for the patients enrolled on it."""
    tid, version = raw.get("id"), raw.get("version")
    if not isinstance(tid, str) or not isinstance(version, int) or isinstance(version, bool):
        return False
    name = re.compile(rf"{re.escape(tid)}_v(\d+)")
    return any((m := name.fullmatch(q.stem)) is not None and int(m.group(1)) > version
               for q in p.parent.glob(f"{tid}_v*.toml"))


def load_template(path: str | Path, budget: texts.Budget | None = None) -> Template:
    """Read and check one template file. Raises TemplateError (``file:line: entry: problem``).

    `budget` is what every text must fit in one SMS with (the deployment's real link length;
    texts.DEFAULT_BUDGET when not given). A version that a newer one replaces is never rewritten
    (its patients keep the texts they were enrolled with): there a text over the budget is listed
    in `Template.warnings` instead of failing the load; every other check still fails it."""
    p = Path(path)
    raw, lines = _read_toml(p)
    src = _Source([_Layer(str(path), raw, lines)])
    builder = TemplateBuilder(raw, src, budget, frozen=_superseded(p, raw))
    template = builder.build(clinic=None, clinic_version=None, clinic_title=None)
    expected = f"{template.base_id}_v{template.base_version}"
    if p.stem != expected:
        raise src.fail((), "version", f"the file name must be {expected}.toml to match id and version "
                                      "(a new version is a new file, so enrolled patients keep theirs)")
    _dry_run(template, src)
    return template


def _merge_clinic(braw: dict, craw: dict, csrc: _Source, base_label: str) -> dict:
    """A clinic file laid over its base template, entry by entry (it changes existing entries only)."""
    merged = {k: v for k, v in braw.items()}
    for section in ("contact", "quiet_hours", "daily_limit"):
        if section in craw:
            if not isinstance(craw[section], dict):
                raise csrc.fail((), section, "must be a table")
            merged[section] = {**braw.get(section, {}), **craw[section]}
    for section in ("milestones", "messages"):
        if section not in craw:
            continue
        if not isinstance(craw[section], dict):
            raise csrc.fail((), section, "must be a table")
        entries = dict(braw.get(section, {}))
        for eid, fields_ in craw[section].items():
            if not isinstance(fields_, dict):
                raise csrc.fail((section,), eid, "must be a table")
            if eid not in entries:
                raise csrc.fail((section, eid), None,
                                f"{section[:-1]} {eid} is not in {base_label}; a clinic file "
                                "changes existing entries (new content needs a new template version)")
            entry = dict(entries[eid])
            for key in ("text", "title", "short", "detail"):
                stale = [k for k in entry if key in fields_ and re.fullmatch(rf"{key}_[a-z]{{2,3}}", k)
                         and k not in fields_]
                if stale:  # the base's Spanish would go on saying what the clinic's English no longer says
                    raise csrc.fail((section, eid), key, f"changes the {key} but not {', '.join(stale)}: a clinic "
                                                         f"that rewords its {key} gives its words in every language")
            if section == "milestones" and "at" in fields_:
                entry.pop("start", None), entry.pop("end", None)
            if section == "milestones" and ("start" in fields_ or "end" in fields_):
                if "at" in entry and "at" not in fields_:
                    start_end = {"start": entry["at"], "end": entry["at"]}
                    entry.pop("at")
                    entry = {**start_end, **entry}
            entry.update(fields_)
            entries[eid] = entry
        merged[section] = entries
    if "checkins" in craw:
        if not isinstance(craw["checkins"], dict):
            raise csrc.fail((), "checkins", "must be a table")
        groups = dict(braw.get("checkins", {}))
        for gname, fields_ in craw["checkins"].items():
            if isinstance(fields_, dict):
                if gname not in groups:
                    raise csrc.fail(("checkins", gname), None, f"check-in group {gname!r} is not in {base_label}")
                groups[gname] = {**groups[gname], **fields_}
            else:
                groups[gname] = fields_
        merged["checkins"] = groups
    return merged


def load_clinic_template(clinic_path: str | Path, templates_dir: str | Path,
                         budget: texts.Budget | None = None) -> Template:
    """Read a clinic override file and merge it onto its base template in `templates_dir`.

    The current file is clinics/<clinic>.toml; versions that patients are still enrolled on are
    kept as clinics/<clinic>_v<version>.toml. Like a replaced template version, a kept clinic
    version is never rewritten: its texts over the budget are warnings, and so are the texts a
    current clinic file takes unchanged from a replaced template version."""
    cp = Path(clinic_path)
    craw, clines = _read_toml(cp)
    return _clinic_template(craw, clines, str(clinic_path), templates_dir, budget, stem=cp.stem)


def load_clinic_text(text: str, label: str, templates_dir: str | Path, budget: texts.Budget | None = None, *,
                     clinic: str | None, frozen: bool = False) -> Template:
    """A clinic override in the clinic file format, from elsewhere than schedules/clinics/ (a
    version published at /admin/plan, a file being imported): the same checks as a clinic file,
    every problem named ``label:line``. Its `clinic` must be `clinic` (None: a published version,
    checked when it was published); `frozen`: a published version kept for its patients (texts
    over the budget are warnings, as for a kept file)."""
    craw, clines = _parse_toml(text, label)
    return _clinic_template(craw, clines, label, templates_dir, budget, expect=clinic, frozen=frozen)


def _clinic_template(craw: dict, clines: _LineIndex, label: str, templates_dir: str | Path,
                     budget: texts.Budget | None, *, stem: str | None = None, expect: str | None = None,
                     frozen: bool = False) -> Template:
    clayer = _Layer(label, craw, clines)
    csrc = _Source([clayer])
    for key in craw:
        if key not in _CLINIC_KEYS:
            raise csrc.fail((), key, f"unknown field '{key}' (allowed: {', '.join(sorted(_CLINIC_KEYS))})")
    cb = TemplateBuilder(craw, csrc)
    name = cb._get((), "clinic", str)
    cversion = cb._get((), "version", int)
    if stem is not None and stem != name and stem != f"{name}_v{cversion}":
        raise csrc.fail((), "clinic", f"clinic {name!r} must match the file name {stem!r} (or, for an "
                                      f"earlier version kept for its patients, {name}_v{cversion}.toml)")
    if expect is not None and name != expect:
        raise csrc.fail((), "clinic", f"clinic {name!r} is another clinic's plan; this clinic's is {expect!r}")
    if cversion < 1:
        raise csrc.fail((), "version", "version must be 1 or more")
    ctitle = cb._text((), "title", max_len=120)
    based_on = cb._get((), "based_on", str)
    based_version = cb._get((), "based_on_version", int)
    if not re.fullmatch(r"[a-z][a-z0-9_-]{1,40}", based_on):
        raise csrc.fail((), "based_on", f"no template {based_on!r}")
    base_path = Path(templates_dir) / f"{based_on}_v{based_version}.toml"
    if not base_path.exists():
        raise csrc.fail((), "based_on", f"no template {based_on} version {based_version} "
                                        f"(expected {base_path})")
    braw, blines = _read_toml(base_path)
    base = load_template(base_path, budget)  # the base must be valid on its own
    blayer = _Layer(str(base_path), braw, blines)
    merged = _merge_clinic(braw, craw, csrc, base_label=f"{based_on} v{based_version}")

    # a kept earlier version of the clinic file
    kept: bool | frozenset[str] = frozen or (stem is not None and stem != name)
    if not kept and _superseded(base_path, braw):
        own = craw.get("messages", {})
        kept = frozenset(sid for sid in merged.get("messages", {}) if "text" not in own.get(sid, {}))
    src = _Source([clayer, blayer])
    template = TemplateBuilder(merged, src, budget, kept).build(clinic=name, clinic_version=cversion, clinic_title=ctitle)
    template = _replace(template, status=cb._text((), "status", required=False, default=base.status, max_len=200))
    _check_restated(base, template, src, clinic_raw=craw)
    _dry_run(template, src)
    return template


def _replace(t: Template, **changes: Any) -> Template:
    from dataclasses import replace
    return replace(t, **changes)


def _check_restated(base: Template, merged: Template, src: _Source, clinic_raw: dict) -> None:
    """A clinic that changes when a milestone happens must also change texts that repeat its timing."""
    for m in merged.milestones:
        old = base.milestone(m.id)
        changed = [k for k, a, b in (("start", old.start, m.start), ("end", old.end, m.end)) if a.text != b.text]
        if not changed:
            continue
        for msg in merged.messages:
            if m.id not in msg.restates:
                continue
            fields_ = clinic_raw.get("messages", {}).get(msg.id, {})
            if "text" in fields_ or fields_.get("enabled") is False:
                continue
            path, line = src.where(("milestones", m.id), "at" if m.point else changed[0])
            raise TemplateError(path, line, f"milestone {m.id}",
                                f"changes when it {'happens' if m.point else changed[0] + 's'}, but message "
                                f"{msg.id} repeats that timing in its text; change [messages.{msg.id}] text too "
                                "(or set enabled = false)")


@dataclass(frozen=True)
class Catalog:
    """Every template in a schedules directory, plus each clinic's effective template."""
    templates: Mapping[tuple[str, str], Template]  # (id, version) → template; includes clinic ones
    clinics: Mapping[str, Template]  # clinic name → its effective template

    def get(self, template_id: str, version: str | None = None) -> Template:
        matches = [t for (tid, _), t in self.templates.items() if tid == template_id]
        if version is not None:
            matches = [t for t in matches if t.version == str(version)]
        if not matches:
            known = ", ".join(sorted({f"{t.id} v{t.version}" for t in self.templates.values()})) or "none"
            want = f"{template_id}" + (f" version {version}" if version is not None else "")
            raise KeyError(f"no template {want} (known: {known})")
        return max(matches, key=lambda t: (t.base_version, t.clinic_version or 0))

    def for_clinic(self, name: str) -> Template:
        if name not in self.clinics:
            known = ", ".join(sorted(self.clinics)) or "none"
            raise KeyError(f"no clinic file {name!r} (known: {known})")
        return self.clinics[name]


def load_all(schedules_dir: str | Path, budget: texts.Budget | None = None) -> Catalog:
    """Load `<dir>/*.toml` (templates) and `<dir>/clinics/*.toml` (clinic files). Other folders
    (e.g. rulesets/) are not templates and are left alone. Raises TemplateError on the first bad file."""
    d = Path(schedules_dir)
    if not d.is_dir():
        raise TemplateError(str(d), 0, "", "schedules directory not found")
    templates: dict[tuple[str, str], Template] = {}
    for p in sorted(d.glob("*.toml")):
        t = load_template(p, budget)
        templates[(t.id, t.version)] = t
    clinics: dict[str, Template] = {}
    for p in sorted((d / "clinics").glob("*.toml")):
        t = load_clinic_template(p, d, budget)
        if p.stem == t.clinic:  # <clinic>_v<n>.toml files are earlier versions, kept for their patients
            clinics[t.clinic] = t
        templates[(t.id, t.version)] = t
    return Catalog(templates=templates, clinics=clinics)

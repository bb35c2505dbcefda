"""Finding templates on disk: the clinic's effective template for new enrolments, and the exact
id + version an existing enrolment was built from (editing a template never moves old patients).

Every text is checked against the deployment's real link length (PUBLIC_BASE_URL): `configure`,
called once at start-up (create_app), loads every file with it, so that a text that would not fit
one SMS stops the app from starting, naming the file, line and message; from then on every load
uses it. A version kept only for the patients enrolled on it (a template version a newer one
replaces, an earlier clinic version) is never rewritten: its over-long texts are logged as
warnings at start-up (they go as they always have, in two segments, counted on the patient page).

A clinic's plan may also be published at /admin/plan: those versions are in the database, in the
clinic file format, and come here as `Published` (recovery/services/clinic_plans.py reads them).
Which plan an enrolment uses is decided here only: `for_new_enrolment` and `for_enrolment`."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from recovery.domain import texts
from recovery.files import plans

log = logging.getLogger(__name__)

_cache: dict[tuple, object] = {}
_lock = threading.Lock()
_budget: texts.Budget = texts.DEFAULT_BUDGET


def configure(public_base_url: str, schedules_dir: str | Path) -> texts.Budget:
    """Check every file with links under this base URL (raises plan.TemplateError), then measure
    texts with it from now on. A failed check changes nothing."""
    global _budget
    new = texts.Budget.for_base_url(public_base_url)
    for warning in check_all(schedules_dir, new):
        log.warning("%s", warning)
    _budget = new
    return new


def budget() -> texts.Budget:
    return _budget


def _cached(path: Path, loader, budget: texts.Budget | None = None):
    key = (str(path), path.stat().st_mtime, budget or _budget)
    with _lock:
        if key not in _cache:
            _cache[key] = loader()
        return _cache[key]


def all_templates(schedules_dir: str | Path) -> list:
    d = Path(schedules_dir)
    return [_cached(p, lambda p=p: plans.load_template(p, _budget)) for p in sorted(d.glob("*.toml"))]


def _clinic_files(d: Path, clinic_file: str) -> list[Path]:
    """The clinic's current file, then the versions kept for patients enrolled on them."""
    current = d / "clinics" / f"{clinic_file}.toml"
    earlier = sorted((d / "clinics").glob(f"{clinic_file}_v*.toml"))
    return ([current] if current.exists() else []) + earlier


def clinic_template(schedules_dir: str | Path, template_file: str | None, default_id: str):
    """The template a clinic enrols new patients on: its override file, else the newest default."""
    d = Path(schedules_dir)
    if template_file:
        path = d / "clinics" / f"{template_file}.toml"
        return _cached(path, lambda: plans.load_clinic_template(path, d, _budget))
    candidates = [t for t in all_templates(d) if t.id == default_id]
    if not candidates:
        raise LookupError(f"no template {default_id!r} in {d}")
    return max(candidates, key=lambda t: int(t.version))


def find_template(schedules_dir: str | Path, template_id: str, version: str,
                  clinic_file: str | None = None):
    """The exact template an enrolment stored. A clinic template is found through its file, or
    its earlier versions (kept as clinics/<clinic>_v<n>.toml)."""
    d = Path(schedules_dir)
    options = list(all_templates(d))
    for t in options:
        if t.id == template_id and str(t.version) == str(version):
            return t
    if clinic_file:
        for path in _clinic_files(d, clinic_file):
            t = _cached(path, lambda path=path: plans.load_clinic_template(path, d, _budget))
            if t.id == template_id and str(t.version) == str(version):
                return t
    raise LookupError(f"template {template_id} version {version} is no longer in {d}; "
                      "keep old versions so existing enrolments can be shown")


@dataclass(frozen=True)
class Published:
    """A clinic plan version published at /admin/plan (a database row, never changed)."""
    id: int
    clinic: str  # its clinic's plan name, for messages
    version: int
    text: str  # TOML in the clinic file format


_published: dict[tuple, object] = {}


def published_label(clinic: str, version: int) -> str:
    """How messages name a published version (``label:line: entry: problem``)."""
    return f"{clinic} plan v{version} (published)"


def published_template(schedules_dir: str | Path, version: Published):
    """The effective template of a published version, parsed once: a version never changes (the
    key holds its text all the same, so that two databases' rows of one id never mix). Loaded as
    a kept version (a text that no longer fits one SMS is a warning, and a clinic renamed since
    does not matter): it was checked in full when it was published."""
    key = (str(schedules_dir), version.id, version.clinic, version.version, version.text, _budget)
    with _lock:
        hit = _published.get(key)
    if hit is None:
        t = plans.load_clinic_text(version.text, published_label(version.clinic, version.version),
                                   schedules_dir, _budget, clinic=None, frozen=True)
        hit = replace(t, published_id=version.id)
        with _lock:
            hit = _published.setdefault(key, hit)
    return hit


def for_new_enrolment(schedules_dir: str | Path, clinic, default_id: str, newest: Published | None):
    """The plan a new enrolment gets: the clinic's newest published version, else (none
    published) its override file, else the newest default template."""
    if newest is not None:
        return published_template(schedules_dir, newest)
    return clinic_template(schedules_dir, clinic.template_file if clinic else None, default_id)


def for_enrolment(schedules_dir: str | Path, enrolment, clinic,
                  published: Callable[[int], Published] | None = None):
    """The plan an enrolment uses: the version it stored (a published one by its row, read
    through `published`; else the template id and version, found with its clinic's file); never
    the clinic's current plan (a new version never moves enrolled patients). The one place this
    is decided, for pages, texts, replies and the missed-check-in scan."""
    if getattr(enrolment, "plan_version_id", None) is not None:
        if published is None:
            raise LookupError(f"enrolment {enrolment.id} is on published plan version row "
                              f"{enrolment.plan_version_id}; pass `published` to read it")
        return published_template(schedules_dir, published(enrolment.plan_version_id))
    return find_template(schedules_dir, enrolment.template_id, enrolment.template_version,
                         clinic.template_file if clinic else None)


def check_all(schedules_dir: str | Path, budget: texts.Budget | None = None) -> list[str]:
    """Load every template, clinic file and earlier clinic version with `budget` (default: the
    configured one). Raises plan.TemplateError on the first bad one. Returns the warnings (texts of
    kept versions that do not fit one SMS), each once, in file order."""
    d, b = Path(schedules_dir), budget or _budget
    loaded = [_cached(p, lambda p=p: plans.load_template(p, b), b) for p in sorted(d.glob("*.toml"))]
    loaded += [_cached(path, lambda path=path: plans.load_clinic_template(path, d, b), b)
               for path in sorted((d / "clinics").glob("*.toml"))]
    return list(dict.fromkeys(w for t in loaded for w in t.warnings))


def configured_ruleset():
    """The rule set the app is configured with (RULESET_PATH), for use-cases not given one."""
    from recovery.config import Config
    return ruleset(Config.RULESET_PATH)


def ruleset(path: str | Path):
    """The triage rule set (versioned thresholds, MR5), cached until the file changes."""
    from recovery.files.rulesets import load_ruleset
    p = Path(path)
    return _cached(p, lambda: load_ruleset(p))

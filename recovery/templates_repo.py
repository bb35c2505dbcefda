"""Finding templates on disk: the clinic's effective template for new enrolments, and the exact
id + version an existing enrolment was built from (editing a template never moves old patients)."""
from __future__ import annotations

import threading
from pathlib import Path

from recovery import plan

_cache: dict[tuple[str, float], object] = {}
_lock = threading.Lock()


def _cached(path: Path, loader):
    key = (str(path), path.stat().st_mtime)
    with _lock:
        if key not in _cache:
            _cache[key] = loader()
        return _cache[key]


def all_templates(schedules_dir: str | Path) -> list:
    d = Path(schedules_dir)
    return [_cached(p, lambda p=p: plan.load_template(p)) for p in sorted(d.glob("*.toml"))]


def clinic_template(schedules_dir: str | Path, template_file: str | None, default_id: str):
    """The template a clinic enrols new patients on: its override file, else the newest default."""
    d = Path(schedules_dir)
    if template_file:
        path = d / "clinics" / f"{template_file}.toml"
        return _cached(path, lambda: plan.load_clinic_template(path, d))
    candidates = [t for t in all_templates(d) if t.id == default_id]
    if not candidates:
        raise LookupError(f"no template {default_id!r} in {d}")
    return max(candidates, key=lambda t: int(t.version))


def find_template(schedules_dir: str | Path, template_id: str, version: str,
                  clinic_file: str | None = None):
    """The exact template an enrolment stored. A clinic template is found through its file."""
    d = Path(schedules_dir)
    options = list(all_templates(d))
    if clinic_file:
        # The clinic's current file, then its earlier versions (kept as <clinic>_v<n>.toml).
        paths = [d / "clinics" / f"{clinic_file}.toml", *sorted((d / "clinics").glob(f"{clinic_file}_v*.toml"))]
        for path in paths:
            if path.exists():
                options.append(_cached(path, lambda path=path: plan.load_clinic_template(path, d)))
    for t in options:
        if t.id == template_id and str(t.version) == str(version):
            return t
    raise LookupError(f"template {template_id} version {version} is no longer in {d}; "
                      "keep old versions so existing enrolments can be shown")


def ruleset(path: str | Path):
    """The triage rule set (versioned thresholds, MR5), cached until the file changes."""
    from recovery.triage import load_ruleset
    p = Path(path)
    return _cached(p, lambda: load_ruleset(p))

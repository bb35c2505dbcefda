"""Jinja filters that format (never decide): times in a given zone, relative durations."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Flask, url_for


def local(dt: datetime | None, tz: str, fmt: str = "%a %-d %b, %H:%M") -> str:
    if dt is None:
        return ""
    return dt.astimezone(ZoneInfo(tz)).strftime(fmt)


@lru_cache(maxsize=64)
def _digest(path: str, mtime: float) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def init_app(app: Flask) -> None:
    # Static files are cached for a year (static_files.py); the content hash in the URL changes
    # when the file does.
    def asset(filename: str) -> str:
        path = Path(app.static_folder) / filename
        return url_for("static", filename=filename, v=_digest(str(path), path.stat().st_mtime))
    app.jinja_env.globals["asset"] = asset

    app.jinja_env.filters["local"] = local
    app.jinja_env.filters["localdate"] = lambda dt, tz: local(dt, tz, "%a %-d %b %Y")
    app.jinja_env.globals["field_attrs"] = field_attrs


def field_attrs(f, hint=None, autocomplete=None, inputmode=None) -> dict:
    """aria-describedby/aria-invalid and input hints for a WTForms field."""
    attrs: dict = {}
    described = ([f"{f.id}-hint"] if hint else []) + ([f"{f.id}-error"] if f.errors else [])
    if described:
        attrs["aria-describedby"] = " ".join(described)
    if f.errors:
        attrs["aria-invalid"] = "true"
    if autocomplete:
        attrs["autocomplete"] = autocomplete
    if inputmode:
        attrs["inputmode"] = inputmode
    return attrs

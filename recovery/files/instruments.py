"""Outcome instruments on disk: schedules/instruments/peg_v<n>.toml (the PEG, versioned).

New answers use the newest version; a stored answer names the version it was given with, and that
file is kept (never edited) so its wording can still be shown."""
from __future__ import annotations

import re
import threading
import tomllib
from pathlib import Path

from recovery.domain.peg import Instrument, InstrumentError, parse_instrument

_FILE = re.compile(r"peg_v(\d+)\.toml")
_cache: dict[tuple[str, float], Instrument] = {}
_lock = threading.Lock()


def _load(path: Path) -> Instrument:
    key = (str(path), path.stat().st_mtime)
    with _lock:
        if key not in _cache:
            try:
                instrument = parse_instrument(tomllib.loads(path.read_text(encoding="utf-8")))
            except (tomllib.TOMLDecodeError, InstrumentError) as e:
                raise InstrumentError(f"{path.name}: {e}") from None
            if f"peg_v{instrument.version}.toml" != path.name:
                raise InstrumentError(f"{path.name}: says version {instrument.version}")
            _cache[key] = instrument
        return _cache[key]


def _files(schedules_dir: str | Path) -> dict[int, Path]:
    d = Path(schedules_dir) / "instruments"
    return {int(m[1]): p for p in d.glob("peg_v*.toml") if (m := _FILE.fullmatch(p.name))}


def peg(schedules_dir: str | Path, version: int | None = None) -> Instrument:
    """The PEG of that version, or the newest one."""
    files = _files(schedules_dir)
    if not files:
        raise LookupError(f"no PEG file in {Path(schedules_dir) / 'instruments'}")
    wanted = max(files) if version is None else version
    if wanted not in files:
        raise LookupError(f"PEG version {wanted} is no longer in {Path(schedules_dir) / 'instruments'}; "
                          "keep old versions so stored answers can be shown")
    return _load(files[wanted])

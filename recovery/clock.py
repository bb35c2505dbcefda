"""The one place that reads the wall clock. Edges (routes, CLI, scheduler tick) call `utcnow()`;
in-process tests freeze it with time-machine; multi-process tests shift it for every process with
RECOVERY_CLOCK_OFFSET_SECONDS (the clock keeps running, just elsewhere in time)."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone


def utcnow() -> datetime:
    now = datetime.now(timezone.utc)
    offset = os.environ.get("RECOVERY_CLOCK_OFFSET_SECONDS")
    return now + timedelta(seconds=float(offset)) if offset else now

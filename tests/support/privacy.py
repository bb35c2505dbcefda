"""Canary values for the "no PHI in logs" check (reliability.md 4.12).

Tests that exercise a flow end to end use these values for a phone number and a symptom text; a
handler on the root logger sees every log record of the run, and when the run ends (conftest's
pytest_sessionfinish, after every test and fixture) the run fails if either value, in any spelling,
appears in any of them or in a subprocess log file.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

CANARY_PHONE = "+12025557731"
CANARY_SYMPTOM = "CANARY-NUMBNESS-7731"
CANARY_EMAIL = "canary.nurse.7731@example.org"
# The ways a number may be written into a log line by accident (and the email, in any case).
CANARY_PATTERNS = [re.compile(p) for p in (
    r"2025557731", r"202[ .-]?555[ .-]?7731", r"\(202\)\s?555-7731", re.escape(CANARY_SYMPTOM),
    r"(?i)canary\.nurse\.7731")]
# Loggers that do not propagate to the root logger, which the collector must be attached to as well.
OWN_HANDLER_LOGGERS = ("recovery.messaging.console",)


class Collector(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lock_ = threading.Lock()
        self.count = 0
        self.hits: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is not our concern here
            text = str(record.msg)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        with self.lock_:
            self.count += 1
            if any(p.search(text) for p in CANARY_PATTERNS):
                self.hits.append(f"{record.name}: {text[:300]}")


COLLECTOR = Collector()


def log_dir() -> Path:
    """Where test-started processes (gunicorn, scheduler, Prism) write their logs."""
    d = Path(os.environ.setdefault("RECOVERY_TEST_LOG_DIR", f"/tmp/recovery-test-logs-{os.getpid()}"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def scan_log_files() -> list[str]:
    hits = []
    for path in log_dir().rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            hits += [f"{path.name}: {m.group(0)}" for p in CANARY_PATTERNS for m in p.finditer(text)]
    return hits


def privacy_problems(collector: Collector, file_hits: list[str], *, installed: bool) -> list[str]:
    """What the end-of-run check reports; empty when no log line carried a canary value.
    `installed`: the collector is still on the root logger (else it saw nothing and proves nothing)."""
    problems = []
    if not installed:
        problems.append("the log collector is not on the root logger: it saw nothing")
    if collector.hits:
        problems.append("PHI in logs:\n" + "\n".join(collector.hits[:20]))
    if file_hits:
        problems.append("PHI in process logs:\n" + "\n".join(file_hits[:20]))
    return problems

"""Logging for every process (web workers, scheduler, CLI): what any log line may contain.

The LogRecord factory is replaced, so this holds for every handler in the process (ours,
gunicorn's, pytest's), whoever logs:
- control characters in a message are escaped (`\\n`, `\\x1b`, `\\u202e`): an email or a form
  field holding a newline cannot forge a second log line, ESC cannot rewrite a terminal, and bidi
  overrides cannot reorder what a reader sees;
- links are masked (`…/l/AbCd…`): no log line carries a usable sign-in link.
Tracebacks keep their lines, each escaped and indented, so no line of one can pass for a record.
"""
from __future__ import annotations

import logging
import re

from recovery.messaging import mask_links

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(0)) or (
        f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) < 0x100 else f"\\u{ord(m.group(0)):04x}"), text)


def safe_text(text: str) -> str:
    return mask_links(escape_controls(text))


class SafeLogRecord(logging.LogRecord):
    def getMessage(self) -> str:  # noqa: N802 - logging's name
        return safe_text(super().getMessage())


class SafeFormatter(logging.Formatter):
    def formatException(self, ei) -> str:  # noqa: N802
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + safe_text(line) for line in text.splitlines())


def configure(level: str | int = "INFO") -> None:
    """Idempotent. Adds a stderr handler only when the root logger has none (as basicConfig does:
    gunicorn, the CLI), so a test runner's own handlers are left alone."""
    logging.setLogRecordFactory(SafeLogRecord)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(SafeFormatter(FORMAT))
        root.addHandler(handler)
        root.setLevel(level)

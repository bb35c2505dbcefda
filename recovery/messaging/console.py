"""In-process SMS backends: `ConsoleGateway` for development, `RecordingGateway` for tests.

Neither talks to a network. Both apply the same checks as the Twilio backend (`check_message`),
so a malformed number fails here the way it would fail in production.

The console prints one line per text, but never the text itself: a body may hold a live sign-in
link, and whatever a template ever says must not end up in a terminal or a log file. The line
names the masked number, the outbox row (its full text is on the nurse's patient page, with
"[link]" in place of the token), the length and each link with its token cut off.
"""
from __future__ import annotations

import itertools
import logging
import secrets
import sys
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from recovery.logsetup import SafeFormatter
from recovery.messaging import URL_PATTERN, Sender, SendError, SendResult, check_message, mask_links, mask_number

__all__ = ["ConsoleGateway", "RecordingGateway", "SendAttempt", "SentSms"]

LOGGER_NAME = "recovery.messaging.console"


@dataclass(frozen=True)
class SentSms:
    to: str
    body: str
    status_callback: str | None
    provider_id: str
    sender: Sender | None = None


@dataclass(frozen=True)
class SendAttempt:
    """One call to `send`, successful (`result`) or not (`error`)."""

    to: str
    body: str
    status_callback: str | None
    result: SendResult | None
    error: SendError | None
    sender: Sender | None = None


class _CurrentStdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at emit time (pytest's capsys swaps it per test)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


_handler_lock = threading.Lock()


def _console_logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    with _handler_lock:
        if not any(isinstance(h, _CurrentStdoutHandler) for h in logger.handlers):
            handler = _CurrentStdoutHandler()
            handler.setFormatter(SafeFormatter("%(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        # One line per text on stdout: not also on the root handler (app.py logs to stderr).
        logger.propagate = False
    return logger


def describe(to: str, body: str, status_callback: str | None) -> str:
    """'SMS to +1••••••0100 (outbox 12): 71 characters, link https://…/l/AbCd…'"""
    ob = parse_qs(urlsplit(status_callback).query).get("ob", [""])[0] if status_callback else ""
    where = f" (outbox {ob})" if ob.isdigit() else ""
    links = [mask_links(m.group(0)) for m in URL_PATTERN.finditer(body)]
    linked = "".join(f", link {link}" for link in links)
    return f"SMS to {mask_number(to)}{where}: {len(body)} characters{linked}"


class ConsoleGateway:
    """Development backend: prints 'SMS to +1•••••••0100 (outbox 12): 71 characters, link …/l/AbCd…'
    and keeps every text in memory (in this process only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[SentSms] = []
        self._log = _console_logger()

    def send(self, *, to: str, body: str, status_callback: str | None, sender: Sender | None = None) -> SendResult:
        check_message(to, body)
        provider_id = "CO" + secrets.token_hex(16)
        with self._lock:
            self._sent.append(SentSms(to, body, status_callback, provider_id, sender))
        self._log.info("%s", describe(to, body, status_callback))
        return SendResult(provider_id=provider_id, status="queued")

    @property
    def sent(self) -> tuple[SentSms, ...]:
        with self._lock:
            return tuple(self._sent)

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()


class RecordingGateway:
    """Test backend: records every attempt; can be told to fail.

    `fail_number(to, error)` makes every send to that number raise a copy of `error` until
    `clear_failures()`; `fail_next(error, times=n)` makes the next n sends raise it, whatever the
    number. Queued failures win over per-number ones. Provider ids are 'SM' + a 32-hex counter, so
    they are unique and predictable within one gateway.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: list[SendAttempt] = []
        self._by_number: dict[str, SendError] = {}
        self._next: list[SendError] = []
        self._ids = itertools.count(1)

    def fail_number(self, to: str, error: SendError) -> None:
        if not isinstance(error, SendError):
            raise TypeError(f"fail_number needs a SendError, not {type(error).__name__}")
        with self._lock:
            self._by_number[to] = error

    def fail_next(self, error: SendError, *, times: int = 1) -> None:
        if not isinstance(error, SendError):
            raise TypeError(f"fail_next needs a SendError, not {type(error).__name__}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"fail_next: times must be an int >= 1, not {times!r}")
        with self._lock:
            self._next.extend([error] * times)

    def clear_failures(self) -> None:
        with self._lock:
            self._by_number.clear()
            self._next.clear()

    def send(self, *, to: str, body: str, status_callback: str | None, sender: Sender | None = None) -> SendResult:
        try:
            check_message(to, body)
        except SendError as exc:
            with self._lock:
                self._attempts.append(SendAttempt(to, body, status_callback, None, exc, sender))
            raise
        with self._lock:
            planned = self._next.pop(0) if self._next else self._by_number.get(to)
            if planned is not None:
                error = planned.copy()
                self._attempts.append(SendAttempt(to, body, status_callback, None, error, sender))
            else:
                result = SendResult(provider_id=f"SM{next(self._ids):032x}", status="queued")
                self._attempts.append(SendAttempt(to, body, status_callback, result, None, sender))
                return result
        raise error

    @property
    def attempts(self) -> tuple[SendAttempt, ...]:
        with self._lock:
            return tuple(self._attempts)

    @property
    def sent(self) -> tuple[SentSms, ...]:
        """Successful sends only, in order."""
        with self._lock:
            return tuple(SentSms(a.to, a.body, a.status_callback, a.result.provider_id, a.sender)
                         for a in self._attempts if a.result is not None)

    def sent_to(self, to: str) -> tuple[SentSms, ...]:
        return tuple(s for s in self.sent if s.to == to)

    def clear(self) -> None:
        """Forget recorded attempts (not the planned failures)."""
        with self._lock:
            self._attempts.clear()

"""The SMS gateway interface: what dispatch calls, what every backend returns or raises.

Backends: `console.ConsoleGateway` (dev), `console.RecordingGateway` (tests) and
`twilio_gateway.TwilioGateway` (the only module that imports `twilio`). This module imports the
standard library only, so domain and dispatch code can depend on it without pulling in the SDK.

Privacy: nothing here ever puts a phone number or a message body into an exception text or a log
line; `mask_number` is the one way a number may appear in logs.
"""
from __future__ import annotations

import email.utils
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "INVALID_NUMBER_CODES",
    "MAX_ATTEMPTS",
    "OPTED_OUT_CODES",
    "RETRYABLE_CODES",
    "URL_PATTERN",
    "SendError",
    "SendErrorKind",
    "SendResult",
    "Sender",
    "SmsGateway",
    "backoff_delay",
    "check_message",
    "error_kind",
    "is_e164",
    "mask_links",
    "mask_number",
    "parse_retry_after",
    "retry_delay",
]

SendErrorKind = Literal["invalid_number", "opted_out", "retryable", "permanent"]
_KINDS: frozenset[str] = frozenset(("invalid_number", "opted_out", "retryable", "permanent"))

# Twilio error codes, by what the app must do about them (reliability.md §3, TESTING.md §8).
INVALID_NUMBER_CODES: frozenset[int] = frozenset({21211, 21614, 21635, 30005, 30006})
OPTED_OUT_CODES: frozenset[int] = frozenset({21610})
# 20429 is "never processed, always safe to retry"; 30003/30008 are delivery-time failures that
# Twilio reports in status callbacks and that may succeed on a later attempt.
RETRYABLE_CODES: frozenset[int] = frozenset({20429, 30003, 30008})

# reliability.md §3.5: base 2 s, x2, cap 5 min, at most 8 attempts, full jitter.
MAX_ATTEMPTS = 8

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
URL_PATTERN = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
# A path segment or query value long enough to be a secret (our tokens are 43 characters).
_TOKENISH = re.compile(r"(?<=[/=])([A-Za-z0-9_-]{4})[A-Za-z0-9_-]{8,}")
_LINK_PATH = re.compile(r"(/l/[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{8,}")  # a patient link without its host
_DELTA_SECONDS = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it accepted a message."""

    provider_id: str  # Twilio Message SID ("SM…"); fake backends use their own prefix
    status: str  # the initial status, e.g. "queued" (no status callback is sent for it)


class SendError(Exception):
    """A send that the provider refused or that never reached it.

    `kind` drives what dispatch does: "invalid_number" (flag the number for a nurse),
    "opted_out" (mark the patient opted out, never retry), "retryable" (back off and retry),
    "permanent" (give up and alert). `may_have_sent` is True when the request may have been
    processed anyway (read timeout, 5xx), so a retry can duplicate the text.
    `str()` never contains a phone number or message text.
    """

    def __init__(
        self,
        kind: SendErrorKind,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        may_have_sent: bool = False,
        reason: str = "",
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"SendError kind must be one of {sorted(_KINDS)}, not {kind!r}")
        if retry_after is not None and (not math.isfinite(retry_after) or retry_after < 0):
            raise ValueError(f"SendError retry_after must be a finite number >= 0, not {retry_after!r}")
        self.kind: SendErrorKind = kind
        self.code = code
        self.http_status = http_status
        self.retry_after = retry_after
        self.may_have_sent = may_have_sent
        self.reason = reason  # fixed wording chosen by our code, never provider text (it echoes numbers)
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"SMS send failed: {self.kind}"]
        if self.reason:
            parts.append(self.reason)
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.retry_after is not None:
            parts.append(f"retry after {self.retry_after:g} s")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return (f"SendError({self.kind!r}, code={self.code!r}, http_status={self.http_status!r}, "
                f"retry_after={self.retry_after!r}, may_have_sent={self.may_have_sent!r}, "
                f"reason={self.reason!r})")

    def copy(self) -> SendError:
        """A fresh instance with the same fields (raising one instance twice stacks tracebacks)."""
        return SendError(self.kind, code=self.code, http_status=self.http_status,
                         retry_after=self.retry_after, may_have_sent=self.may_have_sent,
                         reason=self.reason)


@dataclass(frozen=True)
class Sender:
    """A clinic's own sender (set at /admin/clinic): a From number or a Messaging Service, used instead
    of the gateway's configured one (TWILIO_FROM_NUMBER / TWILIO_MESSAGING_SERVICE_SID)."""

    from_number: str | None = None
    messaging_service_sid: str | None = None


@runtime_checkable
class SmsGateway(Protocol):
    def send(self, *, to: str, body: str, status_callback: str | None, sender: Sender | None = None) -> SendResult:
        """Hand one text to the provider (from `sender` when given). Raises SendError; never
        retries by itself. Dispatch passes `sender` only when the clinic has its own, so a
        gateway that knows one sender only still works for clinics without one."""
        ...


def error_kind(code: int | None, http_status: int | None) -> SendErrorKind:
    """Classify a provider error. The Twilio code decides; HTTP status only for 429 and 5xx.

    Also usable for the `ErrorCode` of a failed/undelivered status callback (30003, 30006…).
    """
    if code in INVALID_NUMBER_CODES:
        return "invalid_number"
    if code in OPTED_OUT_CODES:
        return "opted_out"
    if code in RETRYABLE_CODES:
        return "retryable"
    if http_status is not None and (http_status == 429 or 500 <= http_status <= 599):
        return "retryable"
    return "permanent"


def is_e164(number: object) -> bool:
    return isinstance(number, str) and _E164.fullmatch(number) is not None


def check_message(to: str, body: str) -> None:
    """The checks every backend makes before sending.

    A malformed number is data (a stored patient number), so it is a SendError the caller
    handles like Twilio's 21211; an empty or non-text body is a programming error.
    """
    if not isinstance(body, str):
        raise TypeError(f"SMS body must be str, not {type(body).__name__}")
    if not body.strip():
        raise ValueError("SMS body is empty (Twilio would refuse it with 21602)")
    if not is_e164(to):
        raise SendError("invalid_number", reason="'to' is not an E.164 number (+ and 7-15 digits)")


def mask_number(e164: str | None) -> str:
    """'+15005550100' -> '+1••••••0100': the first digit (1 = North America), the last 4,
    and one bullet per hidden digit.

    Anything with fewer than 8 digits is masked entirely, because 4 digits would be half of it.
    """
    if e164 is None:
        return "(no number)"
    if not isinstance(e164, str):
        raise TypeError(f"mask_number expects a str, not {type(e164).__name__}")
    digits = [c for c in e164 if "0" <= c <= "9"]
    if not digits:
        return "(no number)"
    if len(digits) < 8:
        return "•" * len(digits)
    if e164.lstrip().startswith("+"):
        return "+" + digits[0] + "•" * (len(digits) - 5) + "".join(digits[-4:])
    return "•" * (len(digits) - 4) + "".join(digits[-4:])


def mask_links(text: str) -> str:
    """Every link in `text` with its secret parts cut to 4 characters and '…': where the link went
    stays readable, but it can no longer be used ('https://x.org/l/AbCd…')."""
    return _LINK_PATH.sub(r"\1…", URL_PATTERN.sub(lambda m: _TOKENISH.sub(r"\1…", m.group(0)), text))


class _Random(Protocol):
    def random(self) -> float: ...


def backoff_delay(
    attempt: int,
    *,
    base: float = 2.0,
    factor: float = 2.0,
    cap: float = 300.0,
    rng: _Random,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 = the first send failed).

    Full jitter (uniform in [0, min(cap, base * factor**(attempt-1)))): spreads retries from many
    workers so a 429 storm does not repeat in lockstep. Pure: randomness comes from `rng`.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"backoff_delay: attempt must be an int >= 1, not {attempt!r}")
    if not (base > 0 and math.isfinite(base)):
        raise ValueError(f"backoff_delay: base must be a finite number > 0, not {base!r}")
    if not (factor >= 1 and math.isfinite(factor)):
        raise ValueError(f"backoff_delay: factor must be a finite number >= 1, not {factor!r}")
    if not (cap > 0 and math.isfinite(cap)):
        raise ValueError(f"backoff_delay: cap must be a finite number > 0, not {cap!r}")
    # Compare in log space so attempt=10**6 cannot overflow a float.
    exponent = attempt - 1
    if math.log(base) + exponent * math.log(factor) >= math.log(cap):
        ceiling = cap
    else:
        ceiling = base * factor**exponent
    return rng.random() * ceiling


def retry_delay(
    error: SendError,
    attempt: int,
    *,
    rng: _Random,
    max_attempts: int = MAX_ATTEMPTS,
) -> float | None:
    """Seconds until the next try after `attempt` failed with `error`, or None to give up.

    Honours Retry-After as a floor: Twilio says a 429 was never processed, so waiting longer is free.
    """
    if error.kind != "retryable" or attempt >= max_attempts:
        return None
    delay = backoff_delay(attempt, rng=rng)
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now` (aware): delta-seconds or an HTTP-date; None if absent/garbled."""
    if now.tzinfo is None:
        raise ValueError("parse_retry_after: now must be an aware datetime")
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())

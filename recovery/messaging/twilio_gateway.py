"""Twilio backend. The ONLY module in the project that imports `twilio`.

`TwilioGateway.send` maps every way a create can fail onto `SendError` kinds:
Twilio error codes (the code decides; HTTP status only for 429 and 5xx), connection errors and
timeouts. Nothing the SDK raises, and no provider text (which echoes the phone number), leaves
this module: errors are re-raised `from None`, so a logged traceback cannot carry the number.

`LocalMockHttpClient` points the real SDK at a local Prism mock (config `TWILIO_API_BASE_URL`);
`validate_signature` / `compute_signature` are the webhook signature helpers.
"""
from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from recovery.messaging import Sender, SendError, SendResult, check_message, error_kind, parse_retry_after

__all__ = [
    "GatewayHttpClient",
    "LocalMockHttpClient",
    "NonTwilioHostError",
    "TwilioGateway",
    "compute_signature",
    "validate_signature",
]

TWILIO_API_ORIGIN = "https://api.twilio.com"
DEFAULT_TIMEOUT = 10.0

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_SENDER = re.compile(r"\+[1-9][0-9]{6,14}|[0-9]{5,6}")  # E.164 long code / toll-free, or a short code


class NonTwilioHostError(RuntimeError):
    """The SDK tried to reach a host the mock client does not rewrite (never sent anywhere)."""


class GatewayHttpClient(TwilioHttpClient):
    """TwilioHttpClient that remembers, per thread, the last response it got.

    The SDK's exceptions drop the response headers, and Retry-After lives there.
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(timeout=timeout, **kwargs)
        self._local = threading.local()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self._local.response = None
        response = super().request(method, url, *args, **kwargs)
        self._local.response = response
        return response

    def last_response_headers(self) -> Mapping[str, str]:
        response = getattr(self._local, "response", None)
        return (response.headers or {}) if response is not None else {}


_LOOPBACK_NAMES = {"localhost"}


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalMockHttpClient(GatewayHttpClient):
    """The real TwilioHttpClient with https://api.twilio.com rewritten to a local mock (Prism).

    Refuses any other Twilio host (regional/edge hosts, other products) instead of letting a
    test reach the internet, and refuses a base URL off this machine, so a stray
    TWILIO_API_BASE_URL can never ship real credentials to a third party.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:4010", *, timeout: float = DEFAULT_TIMEOUT,
                 **kwargs: Any) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"TWILIO_API_BASE_URL must be an http(s) URL like http://127.0.0.1:4010, "
                             f"not {base_url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"TWILIO_API_BASE_URL must be an origin without a path, not {base_url!r}")
        if not _is_loopback(parts.hostname):
            raise ValueError(f"TWILIO_API_BASE_URL must point at this machine (127.0.0.1, ::1 or "
                             f"localhost), not {parts.hostname!r}")
        super().__init__(timeout=timeout, **kwargs)
        self.base_url = f"{parts.scheme}://{parts.netloc}"

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if not url.startswith(TWILIO_API_ORIGIN + "/"):
            raise NonTwilioHostError(f"refused to send to {urlsplit(url).netloc or url!r}: only "
                                     f"{TWILIO_API_ORIGIN} is rewritten to the local mock")
        return super().request(method, self.base_url + url[len(TWILIO_API_ORIGIN):], *args, **kwargs)


class TwilioGateway:
    """`SmsGateway` backed by Twilio Programmable Messaging (`client.messages.create`).

    Needs `from_number` or `messaging_service_sid` (or both: a specific sender from the
    service's pool). The SDK never retries (not even 429); dispatch does, from the SendError.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        http_client: HttpClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(account_sid, str) or not _ACCOUNT_SID.fullmatch(account_sid):
            raise ValueError("TWILIO_ACCOUNT_SID must be 'AC' followed by 32 hex characters")
        if not isinstance(auth_token, str) or not auth_token.strip():
            raise ValueError("TWILIO_AUTH_TOKEN is empty")
        if from_number is None and messaging_service_sid is None:
            raise ValueError("Twilio needs a sender: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        if from_number is not None and not _SENDER.fullmatch(from_number):
            raise ValueError("TWILIO_FROM_NUMBER must be an E.164 number (+15017122661) or a 5-6 digit short code")
        if messaging_service_sid is not None and not _SERVICE_SID.fullmatch(messaging_service_sid):
            raise ValueError("TWILIO_MESSAGING_SERVICE_SID must be 'MG' followed by 32 hex characters")
        if not (timeout > 0):
            raise ValueError(f"Twilio timeout must be > 0 seconds, not {timeout!r}")
        if http_client is None:
            http_client = GatewayHttpClient(timeout=timeout)
        elif http_client.timeout is None:
            # The SDK's default is no timeout at all: a hung connection would hang a worker.
            http_client.timeout = timeout
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        self.http_client = http_client
        self._client = Client(account_sid, auth_token, http_client=http_client)

    def send(self, *, to: str, body: str, status_callback: str | None, sender: Sender | None = None) -> SendResult:
        check_message(to, body)
        params: dict[str, Any] = {"to": to, "body": body}
        # A clinic's own sender replaces the configured one entirely (its number is not in our service).
        from_number, service_sid = ((sender.from_number, sender.messaging_service_sid) if sender is not None
                                    else (self._from_number, self._messaging_service_sid))
        if sender is not None and not (from_number is None or _SENDER.fullmatch(from_number)):
            raise SendError("permanent", reason="the clinic's sender number is not E.164 or a short code")
        if sender is not None and not (service_sid is None or _SERVICE_SID.fullmatch(service_sid)):
            raise SendError("permanent", reason="the clinic's messaging service SID is malformed")
        if from_number is not None:
            params["from_"] = from_number
        if service_sid is not None:
            params["messaging_service_sid"] = service_sid
        if status_callback is not None:
            params["status_callback"] = status_callback
        try:
            message = self._client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._provider_error(exc.code, exc.status) from None
        except requests.exceptions.ConnectionError as exc:  # includes ConnectTimeout
            never_opened = _connection_never_opened(exc)
            reason = "connect timeout" if isinstance(exc, requests.exceptions.ConnectTimeout) else "connection error"
            raise SendError("retryable", reason=reason, may_have_sent=not never_opened) from None
        except requests.exceptions.Timeout:  # ReadTimeout: Twilio may have accepted it
            raise SendError("retryable", reason="read timeout", may_have_sent=True) from None
        except requests.exceptions.RequestException:  # e.g. a response cut off mid-body
            raise SendError("retryable", reason="HTTP error", may_have_sent=True) from None
        except TwilioException:
            raise SendError("permanent", reason="Twilio client error") from None
        if not message.sid:
            raise SendError("permanent", reason="Twilio accepted the request but returned no SID",
                            may_have_sent=True)
        return SendResult(provider_id=str(message.sid), status=str(message.status or "queued"))

    def _provider_error(self, code: Any, http_status: Any) -> SendError:
        code = code if isinstance(code, int) else None
        http_status = http_status if isinstance(http_status, int) else None
        kind = error_kind(code, http_status)
        retry_after = None
        if isinstance(self.http_client, GatewayHttpClient):
            headers = self.http_client.last_response_headers()
            raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            retry_after = parse_retry_after(raw, datetime.now(timezone.utc))
        # A 5xx may have been processed before failing; 429 and 4xx never are.
        may_have_sent = http_status is not None and http_status >= 500
        return SendError(kind, code=code, http_status=http_status, retry_after=retry_after,
                         may_have_sent=may_have_sent, reason="Twilio refused the message")


def _connection_never_opened(exc: BaseException) -> bool:
    """True when the TCP connection was never established, so Twilio cannot have seen the request."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (NewConnectionError, ConnectTimeoutError)):
            return True
        if isinstance(item, BaseException):
            stack.extend(item.args)
            stack.extend((item.__cause__, item.__context__, getattr(item, "reason", None)))
    return False


def validate_signature(auth_token: str, url: str, params: Mapping[str, Any] | str | None,
                       signature: str | None) -> bool:
    """True when `signature` (the X-Twilio-Signature header) matches `url` + `params`.

    `url` must be the public URL Twilio called (not request.url behind a proxy); `params` all of
    the form as received (a MultiDict is fine), or the raw body for JSON webhooks (?bodySHA256=).
    """
    if not isinstance(auth_token, str) or not auth_token:
        raise ValueError("validate_signature: the auth token is empty")
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def compute_signature(auth_token: str, url: str, params: Mapping[str, Any]) -> str:
    """The X-Twilio-Signature Twilio would send; for tests and the bench that post webhooks."""
    if not isinstance(auth_token, str) or not auth_token:
        raise ValueError("compute_signature: the auth token is empty")
    return RequestValidator(auth_token).compute_signature(url, params)

"""Twilio REST error responses that Prism cannot produce, keyed on test-credential magic numbers.

Twilio's spec declares only 201 for Messages create, so Prism never returns 21211/21610/20429.
`canned_twilio_errors(base_url)` answers those with Twilio's error JSON through `responses` and
passes every other request through to Prism, so the real SDK still parses them (TESTING.md §4).

The numbers follow Twilio's test-credential list (https://www.twilio.com/docs/iam/test-credentials),
so they mean the same here as on Twilio's sandbox. 20429 and 500 have no magic number there; the
+1500555 04xx/05xx numbers below are our own, chosen to read like the status they return. The
`message` texts are illustrative (the app keys on `code` only); some echo the number, as Twilio's do,
which is exactly what the gateway must keep out of its errors.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import responses
from responses import matchers


@dataclass(frozen=True)
class CannedError:
    param: str  # "To" or "From": which request field the magic number is matched on
    number: str
    http_status: int
    code: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict[str, object]:
        """Twilio's REST error body shape."""
        return {"code": self.code, "message": self.message,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}", "status": self.http_status}


TO_INVALID = "+15005550001"  # 21211
TO_UNREACHABLE = "+15005550002"  # 21612
TO_NO_INTERNATIONAL = "+15005550003"  # 21408
TO_OPTED_OUT = "+15005550004"  # 21610
TO_NOT_MOBILE = "+15005550009"  # 21614
TO_RATE_LIMITED = "+15005550429"  # 20429, ours
TO_RATE_LIMITED_RETRY_AFTER = "+15005550430"  # 20429 + Retry-After: 30, ours
TO_SERVER_ERROR = "+15005550500"  # HTTP 500 / 20500, ours

FROM_VALID = "+15005550006"  # passes
FROM_INVALID = "+15005550001"  # 21212
FROM_NOT_OWNED = "+15005550007"  # 21606
FROM_QUEUE_FULL = "+15005550008"  # 21611

CANNED_ERRORS: tuple[CannedError, ...] = (
    CannedError("To", TO_INVALID, 400, 21211, f"The 'To' number {TO_INVALID} is not a valid phone number."),
    CannedError("To", TO_UNREACHABLE, 400, 21612,
                f"The 'To' phone number: {TO_UNREACHABLE}, is not currently reachable using the 'From' "
                "phone number via SMS."),
    CannedError("To", TO_NO_INTERNATIONAL, 400, 21408,
                f"Permission to send an SMS has not been enabled for the region indicated by the 'To' "
                f"number: {TO_NO_INTERNATIONAL}."),
    CannedError("To", TO_OPTED_OUT, 400, 21610, "Attempt to send to unsubscribed recipient"),
    CannedError("To", TO_NOT_MOBILE, 400, 21614, f"'To' number {TO_NOT_MOBILE} is not a valid mobile number"),
    CannedError("To", TO_RATE_LIMITED, 429, 20429, "Too Many Requests"),
    CannedError("To", TO_RATE_LIMITED_RETRY_AFTER, 429, 20429, "Too Many Requests",
                headers=(("Retry-After", "30"),)),
    CannedError("To", TO_SERVER_ERROR, 500, 20500, "An internal server error has occurred"),
    CannedError("From", FROM_INVALID, 400, 21212,
                f"The 'From' number {FROM_INVALID} is not a valid phone number, shortcode, or "
                "alphanumeric sender ID."),
    CannedError("From", FROM_NOT_OWNED, 400, 21606,
                "The 'From' phone number provided is not a valid, message-capable Twilio phone number "
                "for this destination."),
    CannedError("From", FROM_QUEUE_FULL, 400, 21611,
                "This 'From' number has exceeded the maximum number of queued messages"),
)


def canned_error_for(param: str, number: str) -> CannedError | None:
    return next((c for c in CANNED_ERRORS if c.param == param and c.number == number), None)


def messages_url(base_url: str) -> re.Pattern[str]:
    return re.compile(re.escape(base_url.rstrip("/")) +
                      r"/2010-04-01/Accounts/AC[0-9a-fA-F]{32}/Messages\.json")


def install_canned_errors(rsps: responses.RequestsMock, base_url: str) -> None:
    """Register every canned error on Messages create; let everything else reach `base_url`."""
    url = messages_url(base_url)
    for canned in CANNED_ERRORS:
        rsps.add(responses.POST, url, status=canned.http_status, json=canned.body(),
                 headers=dict(canned.headers),
                 match=[matchers.urlencoded_params_matcher({canned.param: canned.number},
                                                           strict_match=False)])
    rsps.add_passthru(base_url.rstrip("/"))


@contextmanager
def canned_twilio_errors(base_url: str) -> Iterator[responses.RequestsMock]:
    """`with canned_twilio_errors(prism_url) as rsps:`; `rsps.calls` counts what was sent."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        install_canned_errors(rsps, base_url)
        yield rsps

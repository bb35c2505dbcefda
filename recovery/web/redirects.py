"""Where a redirect may go when the target comes from the request (`?next=`, a form's `next`).

One checker, `same_origin_path`, reads the target the way a browser's URL parser (WHATWG URL) will
read the Location header: leading and trailing spaces and controls stripped, every tab and newline
dropped, a backslash in the path read as a slash. What is left must be a path of this site (one
leading slash, not two), or the target is ignored. The value handed back is that normalised path,
percent-encoded to plain ASCII, so the header cannot be split and the browser lands where we checked.

`init_app` adds a last line of defence: every response's Location and HX-Redirect are checked on the
way out, so a view that forgets the checker still cannot send anyone to another site.
"""
from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Flask, request

log = logging.getLogger(__name__)

_STRIP = "".join(chr(c) for c in range(0x21))  # C0 controls and space (WHATWG strips them at both ends)
_DROP = str.maketrans("", "", "\t\n\r")  # WHATWG removes every ASCII tab or newline
# Left as they are in the header: RFC 3986 reserved and unreserved characters and '%' (escapes
# already present stay escapes). Everything else, non-ASCII included, is percent-encoded as UTF-8.
_SAFE = "/?#[]@!$&'()*+,;=:-._~%"
MAX_LENGTH = 2000
HEADERS = ("Location", "HX-Redirect")


def same_origin_path(raw: str | None, *, under: str = "/") -> str | None:
    """The path to redirect to, or None when `raw` is empty, too long, or not a path of this site
    (another host, another scheme, a relative path, a control character) or not below `under`."""
    if not raw or len(raw) > MAX_LENGTH:
        return None
    target = raw.strip(_STRIP).translate(_DROP)
    cut = min((i for i in (target.find("?"), target.find("#")) if i >= 0), default=len(target))
    path, rest = target[:cut].replace("\\", "/"), target[cut:]
    if not path.startswith("/") or path.startswith("//") or not path.startswith(under):
        return None
    target = path + rest
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in target):
        return None  # NUL, ESC, DEL, C1: no page of ours has them
    try:
        return quote(target, safe=_SAFE)
    except UnicodeEncodeError:  # a lone surrogate
        return None


def is_same_origin_path(value: str) -> bool:
    """True for a header value that is already a checked, encoded path of this site."""
    return same_origin_path(value) == value


def init_app(app: Flask) -> None:
    @app.after_request
    def _no_off_site_redirects(response):
        for header in HEADERS:
            value = response.headers.get(header)
            if value is not None and not is_same_origin_path(value):
                # The value itself is not logged: it came from the request.
                log.error("%s header of %s was not a path of this site; sent the home page instead",
                          header, request.endpoint)
                response.headers[header] = "/"
        return response

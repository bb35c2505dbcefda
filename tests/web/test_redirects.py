"""Redirect targets taken from the request (`?next=` of sign-in, the `next` field of the alert forms)
end as a same-origin path as a browser reads them, or are ignored (issue 11 §1).

The browser's reading is ada (ada-url), a WHATWG URL parser (the one Node.js uses): tabs and
newlines dropped, backslash read as slash, leading and trailing spaces and controls stripped. The
checker (recovery/web/redirects.py) is written independently of it, with the standard library.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote

import ada_url
import pytest
import sqlalchemy as sa
from flask import redirect
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recovery.services import alerting
from recovery.store.models import Alert, AlertStatus, WebSession
from recovery.web.redirects import same_origin_path
from tests.support.factories import PASSWORD, enrol, login, make_clinic, make_staff

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
SITE = "https://recovery.example.org"
PAGE = SITE + "/login?next=x"

HOSTILE = [
    "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "\t//evil.example", "//evil.example",
    "/\\evil.example", "\\/evil.example", "\\\\evil.example", " //evil.example", "\x00//evil.example",
    "/\t\\evil.example", "\x0c//evil.example", "https://evil.example/", "http:evil.example", "javascript:alert(1)",
    "https:\\\\evil.example", "/\u0000\n/evil.example", "evil.example", "\n", "\t", "",
]


def browser_reading(location: str, page: str = PAGE):
    """How a browser resolves a Location header sent in answer to `page` (None: not a URL)."""
    try:
        return ada_url.URL(location, page)
    except ValueError:
        return None


def _origin(location: str, page: str = PAGE) -> str | None:
    url = browser_reading(location, page)
    return url.origin if url else None


def _nurse(session):
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    session.commit()
    return clinic, nurse


# ---- the reproductions ------------------------------------------------------------------------

def test_sign_in_with_a_tab_in_next_stays_on_the_site(client, session):
    _, nurse = _nurse(session)
    r = client.post("/login?next=/%09/evil.example", data={"email": nurse.email, "password": PASSWORD})
    assert r.status_code == 303
    assert _origin(r.headers["Location"], "http://localhost/login") == "http://localhost", r.headers["Location"]


@pytest.mark.parametrize("raw", HOSTILE)
def test_sign_in_ignores_every_hostile_next(client, session, raw):
    _, nurse = _nurse(session)
    r = client.post("/login", query_string={"next": raw}, data={"email": nurse.email, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["Location"] == "/nurse/", (raw, r.headers.get("Location"))


def test_a_newline_in_next_is_not_a_500_after_signing_in(client, session):
    _, nurse = _nurse(session)
    r = client.post("/login?next=%2F%0A%2Fx", data={"email": nurse.email, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["Location"] == "/nurse/"
    assert client.get("/nurse/").status_code == 200  # signed in, and the page says so
    assert session.scalar(sa.select(sa.func.count()).select_from(WebSession)) == 1


def test_a_same_site_next_is_followed(client, session):
    _, nurse = _nurse(session)
    r = client.post("/login?next=/nurse/patients%3Fq%3Dann", data={"email": nurse.email, "password": PASSWORD})
    assert r.headers["Location"] == "/nurse/patients?q=ann"


def test_acknowledge_with_a_newline_in_next_says_it_was_saved(client, session, frozen):
    frozen.move_to(NOW)
    clinic, nurse = _nurse(session)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, first="Ann",
                    sms_consent=False)
    session.commit()
    alert = alerting.raise_rules(session, patient=patient, enrolment=patient.enrolments[0], rule_ids=["E1"],
                                 now=NOW)[0]
    session.commit()
    login(client, nurse)
    r = client.post(f"/nurse/alerts/{alert.id}/acknowledge", data={"next": "/nurse/\n/evil.example"})
    # the browser drops the newline: a path of this site, and followed as such
    assert r.status_code == 303 and r.headers["Location"] == "/nurse//evil.example"
    assert _origin(r.headers["Location"], f"http://localhost/nurse/alerts/{alert.id}/acknowledge") == "http://localhost"
    session.expire_all()
    assert session.get(Alert, alert.id).status == AlertStatus.ACKNOWLEDGED
    assert b"Alert acknowledged for Ann" in client.get("/nurse/").data
    r = client.post(f"/nurse/alerts/{alert.id}/resolve",
                    data={"disposition": "other", "note": "called", "next": "\t/\\evil.example/nurse/"})
    assert r.status_code == 303 and r.headers["Location"] == "/nurse/"


# ---- the checker against a real parser --------------------------------------------------------

_PIECES = st.sampled_from(["/", "\\", "\t", "\n", "\r", " ", "\x00", "\x0c", "\x7f", "\x85", "\u2028", "\u3000",
                           ".", "..", ":", "@", "?", "#", "%", "%2F", "%5C", "%09", "%0A", "%2e", "evil.example",
                           "nurse", "a", "Z", "é", "€", "http", "https", "javascript", "//", "\\\\", "'", '"', "<",
                           "^", "`", "{", "|", "~", "[", "]"])
TARGETS = st.one_of(st.lists(_PIECES, max_size=12).map("".join), st.text(max_size=40))


def _same_meaning(a, b) -> bool:
    """Two parsed URLs name the same resource once percent-encoding differences are set aside."""
    return all(unquote(getattr(a, part)) == unquote(getattr(b, part)) for part in ("origin", "pathname", "search",
                                                                                    "hash"))


@settings(max_examples=1500, deadline=None)
@given(raw=TARGETS)
@example(raw="/\t/evil.example")
@example(raw="/.//evil.example")
@example(raw="/%2e//evil.example")
def test_an_accepted_target_is_same_origin_as_a_browser_reads_it(raw):
    out = same_origin_path(raw)
    if out is None:
        return
    # a header value that cannot be cut (ASCII, no control, no space) ...
    assert out.isascii() and all(0x21 <= ord(c) < 0x7f for c in out), repr(out)
    # ... that a browser reads as a page of this site, whatever page it answers ...
    for page in (PAGE, SITE + "/nurse/alerts/1/acknowledge", SITE + "/"):
        assert _origin(out, page) == SITE, (raw, out, page)
    # ... and the same page the browser would have read from the raw value
    assert _same_meaning(browser_reading(out), browser_reading(raw)), (raw, out)


@settings(max_examples=500, deadline=None)
@given(raw=TARGETS)
def test_a_target_the_browser_reads_as_another_site_is_refused(raw):
    if _origin(raw) != SITE:
        assert same_origin_path(raw) is None, (raw, same_origin_path(raw))


_PATH_CHARS = st.sampled_from(list("abcxyz019-_.~!$&'()*+,;=:@") + ["%20", "%2F", "é"])
PLAIN_PATHS = st.lists(st.lists(_PATH_CHARS, min_size=1, max_size=8).map("".join), min_size=1, max_size=4).map(
    lambda segs: "/" + "/".join(segs))


@settings(max_examples=300, deadline=None)
@given(path=PLAIN_PATHS, query=st.sampled_from(["", "?q=ann", "?all=1&x=%2F", "#top"]))
def test_an_ordinary_path_of_the_site_is_kept(path, query):
    raw = path + query
    assert same_origin_path(raw) == quote(raw, safe="/?#[]@!$&'()*+,;=:-._~%")


def test_under_keeps_a_form_on_its_own_pages():
    assert same_origin_path("/nurse/patients/3", under="/nurse/") == "/nurse/patients/3"
    assert same_origin_path("/me", under="/nurse/") is None
    assert same_origin_path("/\t/nurse/", under="/nurse/") is None


# ---- no response leaves with an off-site Location ----------------------------------------------

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=TARGETS.filter(lambda s: "\n" not in s and "\r" not in s and "\x00" not in s))
@example(raw="/\t/evil.example")
@example(raw="https://evil.example/")
def test_no_redirect_leaves_the_site_whatever_a_view_hands_it(app, raw):
    """Even a view that forgot the checker cannot send the browser elsewhere: every Location and
    HX-Redirect is checked on the way out."""
    with app.test_request_context("/login"):
        resp = redirect(raw, 303)
        resp.headers["HX-Redirect"] = raw
        resp = app.process_response(resp)
    for header in ("Location", "HX-Redirect"):
        assert _origin(resp.headers[header], "http://localhost/login") == "http://localhost", (header, raw)

"""A patient's session (issue 11 §1): signing out ends it on the server, every patient page offers
it without JavaScript, and the cookie lives exactly as long as the server-side session."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import sqlalchemy as sa

from recovery.store.models import AuditEvent, WebSession
from tests.support.factories import enrol, make_clinic, open_link, patient_link

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)


def _patient(session):
    clinic = make_clinic(session, now=NOW)
    p = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW)
    token = patient_link(session, p, now=NOW)
    session.commit()
    return p, token


def _session_cookie(response):
    raw = [v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("session=")]
    assert raw, response.headers
    return raw[-1]


def test_sign_out_ends_the_session_on_the_server(client, session, frozen):
    """Reproduction: after signing out, a copied cookie still opened /me."""
    frozen.move_to(NOW)
    p, token = _patient(session)
    assert open_link(client, token).status_code == 303
    copied = client.get_cookie("session").value
    page = client.get("/me")
    assert page.status_code == 200
    assert b'action="/me/sign-out"' in page.data and b">Sign out</button>" in page.data  # a plain form
    r = client.post("/me/sign-out")
    assert r.status_code == 303 and r.headers["Location"] == "/signed-out"
    assert b"You have signed out" in client.get("/signed-out").data
    assert session.scalar(sa.select(WebSession.revoked_at).where(WebSession.patient_id == p.id)) is not None
    assert session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "logout",
                                                      AuditEvent.patient_id == p.id)) is not None
    thief = client.application.test_client()
    thief.set_cookie("session", copied)
    r = thief.get("/me")
    assert r.status_code == 302 and r.headers["Location"] == "/signed-out"
    # and the dead token is dropped from that browser's cookie
    left = thief.get_cookie("session")
    app = client.application
    assert left is None or "pt" not in app.session_interface.get_signing_serializer(app).loads(left.value)


def test_sign_out_without_a_session_just_goes_to_the_signed_out_page(client):
    r = client.post("/me/sign-out")
    assert r.status_code == 303 and r.headers["Location"] == "/signed-out"


def test_the_cookie_expires_with_the_server_session(client, session, frozen):
    """Reproduction: the cookie lived 31 days against a 7-day server session."""
    frozen.move_to(NOW)
    p, token = _patient(session)
    r = open_link(client, token)
    ws = session.scalar(sa.select(WebSession).where(WebSession.patient_id == p.id))
    assert ws.expires_at == NOW + timedelta(days=7)
    expires = parsedate_to_datetime(_session_cookie(r).split("Expires=")[1].split(";")[0])
    assert expires == ws.expires_at
    # later requests keep the same end, they do not push it out
    frozen.move_to(NOW + timedelta(days=5))
    r = client.get("/me")
    assert r.status_code == 200
    expires = parsedate_to_datetime(_session_cookie(r).split("Expires=")[1].split(";")[0])
    assert expires == ws.expires_at
    frozen.move_to(NOW + timedelta(days=7, seconds=1))
    assert client.get("/me").status_code == 302

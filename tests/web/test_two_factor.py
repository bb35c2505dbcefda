"""Two-step sign-in (TOTP, issue 13 §1): enrol from the account page, the code after the password
(half signed in opens nothing), no replay of a code, wrong codes rate limited, the clinic-wide
requirement (enrol right after the password) and an admin's reset."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pyotp
import sqlalchemy as sa

from recovery.store.models import AuditEvent, StaffRole, StaffUser
from tests.support.factories import PASSWORD, login, make_clinic, make_staff

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)


def _code(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret).at(at)


def _enrol(client, at: datetime) -> str:
    page = client.get("/account/two-factor")
    assert page.status_code == 200
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page.get_data(as_text=True)).group(1)
    assert client.post("/account/two-factor", data={"code": _code(secret, at)}).status_code == 303
    return secret


def _locked_out(client) -> None:
    """Half signed in: no staff page, no admin page, no patient page."""
    for path in ("/nurse/", "/nurse/patients", "/admin", "/admin/staff", "/nurse/reports"):
        r = client.get(path)
        assert r.status_code in (302, 403) and "/login" in r.headers.get("Location", "/login"), path


def test_a_nurse_enrols_then_signs_in_with_a_code_that_cannot_be_replayed(app, session, client, time_machine):
    time_machine.move_to(NOW, tick=False)
    nurse = make_staff(session, make_clinic(session, now=NOW), now=NOW)
    session.commit()
    login(client, nurse)
    assert b'href="/account/two-factor"' in client.get("/nurse/").data  # reachable from the header
    page = client.get("/account/two-factor")
    assert page.status_code == 200 and b"<svg" in page.data and page.data.count(b"<script") == 1  # htmx only
    again = client.get("/account/two-factor")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.get_data(as_text=True)).group(1)
    assert secret.encode() in again.data  # a reload shows the same secret
    wrong = client.post("/account/two-factor", data={"code": "000000" if _code(secret, NOW) != "000000" else "111111"})
    assert wrong.status_code == 422 and b"not right" in wrong.data
    assert client.post("/account/two-factor", data={"code": "12ab"}).status_code == 422
    assert client.post("/account/two-factor", data={"code": _code(secret, NOW)}).status_code == 303
    session.expire_all()
    assert session.get(StaffUser, nurse.id).totp_secret == secret
    client.post("/logout")

    # password right: half signed in, asked for the code
    time_machine.move_to(NOW + timedelta(minutes=5), tick=False)
    r = login(client, nurse)
    assert r.status_code == 303 and r.headers["Location"].endswith("/login/code")
    _locked_out(client)
    assert client.get("/login/code").status_code == 200
    bad = client.post("/login/code", data={"code": "abcdef"})
    assert bad.status_code == 422 and b"6 digits" in bad.data
    code = _code(secret, NOW + timedelta(minutes=5))
    ok = client.post("/login/code", data={"code": code})
    assert ok.status_code == 303 and client.get("/nurse/").status_code == 200
    client.post("/logout")

    # the same code again, within its 30 s window: refused (a code works once)
    time_machine.move_to(NOW + timedelta(minutes=5, seconds=10), tick=False)
    other = app.test_client()
    login(other, nurse)
    replay = other.post("/login/code", data={"code": code})
    assert replay.status_code == 422 and b"used already" in replay.data
    _locked_out(other)
    time_machine.move_to(NOW + timedelta(minutes=5, seconds=40), tick=False)
    assert other.post("/login/code", data={"code": _code(secret, NOW + timedelta(minutes=5, seconds=40))}) \
        .status_code == 303
    assert other.get("/nurse/").status_code == 200

    # the code page without a half-signed-in session sends you to sign in
    assert app.test_client().get("/login/code").status_code == 303
    # audited, never with the secret or a code
    actions = [e.action for e in session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))]
    assert "staff_totp_enabled" in actions and actions.count("login_password_ok") == 2
    everything = repr([e.detail for e in session.scalars(sa.select(AuditEvent))])
    assert secret not in everything and code not in everything


def test_wrong_codes_are_rate_limited(make_app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    with make_app(RATELIMIT_ENABLED=True, TOTP_RATE_LIMIT="3 per 15 minutes") as app:
        nurse = make_staff(session, make_clinic(session, now=NOW), now=NOW)
        nurse.totp_secret = pyotp.random_base32()
        session.commit()
        client = app.test_client()
        login(client, nurse)
        right = _code(nurse.totp_secret, NOW)
        wrong = "000000" if right != "000000" else "111111"
        codes = [client.post("/login/code", data={"code": wrong}).status_code for _ in range(4)]
        assert codes == [422, 422, 422, 429]
        assert client.post("/login/code", data={"code": right}).status_code == 429
        assert client.get("/nurse/").status_code == 302
        # the password again, from another address: a new half-signed-in session, but no new tries
        again = app.test_client()
        assert again.post("/login", data={"email": nurse.email, "password": PASSWORD},
                          environ_overrides={"REMOTE_ADDR": "192.0.2.77"}).status_code == 303
        assert again.post("/login/code", data={"code": right},
                          environ_overrides={"REMOTE_ADDR": "192.0.2.77"}).status_code == 429


def test_a_clinic_that_requires_it_sends_staff_to_enrol_before_anything_else(app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    clinic = make_clinic(session, now=NOW)
    admin = make_staff(session, clinic, role=StaffRole.ADMIN, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    session.commit()
    a, n = app.test_client(), app.test_client()
    login(a, admin)
    login(n, nurse)

    # the admin must have a second factor first
    refused = a.post("/admin/staff/two-factor", data={"required": "y"})
    assert refused.status_code == 409 and b"your own account first" in refused.data
    _enrol(a, NOW)
    assert a.post("/admin/staff/two-factor", data={"required": "y"}).status_code == 303
    assert b"1 session(s)" in a.get("/admin/staff").data
    assert n.get("/nurse/").status_code == 302  # signed out at once

    r = login(n, nurse)
    assert r.status_code == 303 and r.headers["Location"].endswith("/account/two-factor")
    _locked_out(n)
    r = n.get("/login/code")  # not the code page: there is no code yet
    assert r.status_code == 303 and r.headers["Location"].endswith("/account/two-factor")
    time_machine.move_to(NOW + timedelta(minutes=1), tick=False)
    secret = _enrol(n, NOW + timedelta(minutes=1))  # ... and enrolling signs her in
    assert n.get("/nurse/").status_code == 200

    # the admin resets her second factor (a lost phone): she must enrol again at the next sign-in
    page = a.get(f"/admin/staff/{nurse.id}")
    assert b"Reset two-step sign-in" in page.data
    assert a.post(f"/admin/staff/{nurse.id}/two-factor-reset").status_code == 303
    session.expire_all()
    assert session.get(StaffUser, nurse.id).totp_secret is None
    (reset,) = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "staff_totp_reset")).all()
    assert reset.actor_id == admin.id and reset.detail == {"old": True, "new": False, "sessions_ended": 1}
    assert n.get("/nurse/").status_code == 302  # the clinic requires it: her session ended with it
    assert login(n, nurse).headers["Location"].endswith("/account/two-factor")
    assert secret.encode() not in n.get("/account/two-factor").data  # a new secret

    # optional again: sign-in without a code
    assert a.post("/admin/staff/two-factor", data={}).status_code == 303
    assert login(app.test_client(), nurse).headers["Location"].endswith("/nurse/")

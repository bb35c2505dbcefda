"""Sessions, cookies, CSRF, rate limits and static analysis (issue 7, reliability.md §4)."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from tests.web.test_authorization import TOKEN
import sqlalchemy as sa

from app import create_app
from recovery.store.models import AuditEvent, StaffUser, WebSession
from tests.support.factories import PASSWORD, login, make_clinic, make_staff
from tests.support.settings import app_config

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]


def _nurse(session):
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    session.commit()
    return nurse


def test_production_session_cookie_is_host_prefixed_secure_httponly_lax(make_app, session):
    with make_app(ENV_NAME="production", SESSION_COOKIE_NAME="__Host-session",
                  SESSION_COOKIE_SECURE=True) as prod:
        nurse = _nurse(session)
        client = prod.test_client()
        r = client.post("/login", data={"email": nurse.email, "password": PASSWORD},
                        base_url="https://recovery.example.org")
        assert r.status_code == 303
        raw = [v for k, v in r.headers.items() if k == "Set-Cookie" and v.startswith("__Host-session=")]
        assert raw, r.headers
        cookie = raw[0].lower()
        for attr in ("secure", "httponly", "samesite=lax", "path=/"):
            assert attr in cookie
        assert "domain=" not in cookie


def test_the_app_refuses_to_start_in_production_with_the_dev_secret(db_url):
    from recovery.config import DEV_SECRET
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(app_config(SQLALCHEMY_DATABASE_URI=db_url, ENV_NAME="production", SECRET_KEY=DEV_SECRET))


def test_sign_in_makes_a_new_session_and_logout_ends_it_on_the_server(client, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    nurse = _nurse(session)
    assert login(client, nurse).status_code == 303
    stolen = client.get_cookie("session").value
    assert client.get("/nurse/patients").status_code == 200
    client.post("/logout")
    assert session.scalar(sa.select(WebSession.revoked_at)) is not None
    thief = client.application.test_client()
    thief.set_cookie("session", stolen)
    r = thief.get("/nurse/patients")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_nurse_session_expires_after_15_minutes_idle(client, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    nurse = _nurse(session)
    login(client, nurse)
    time_machine.move_to(NOW + timedelta(minutes=14), tick=False)
    assert client.get("/nurse/patients").status_code == 200  # activity keeps it alive
    time_machine.move_to(NOW + timedelta(minutes=28), tick=False)
    assert client.get("/nurse/patients").status_code == 200
    time_machine.move_to(NOW + timedelta(minutes=44), tick=False)
    assert client.get("/nurse/patients").status_code == 302


def test_background_refresh_does_not_keep_an_idle_session_alive(client, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    nurse = _nurse(session)
    login(client, nurse)
    for minute in range(1, 17):  # the worklist polls; nobody touches the keyboard
        time_machine.move_to(NOW + timedelta(minutes=minute), tick=False)
        r = client.get("/nurse/patients", headers={"X-Background-Refresh": "1", "HX-Request": "true"})
    # htmx gets told to go to the sign-in page instead of pasting it into the polled region
    assert r.headers.get("HX-Redirect") == "/login" and r.data == b""
    assert client.get("/nurse/patients").status_code == 302


def test_absolute_session_limit(client, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    nurse = _nurse(session)
    login(client, nurse)
    t = NOW
    while t < NOW + timedelta(hours=12):
        t += timedelta(minutes=10)
        time_machine.move_to(t, tick=False)
        r = client.get("/nurse/patients")
    assert r.status_code == 302


def test_disabling_an_account_ends_its_sessions(client, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    nurse = _nurse(session)
    login(client, nurse)
    session.get(StaffUser, nurse.id).active = False
    session.commit()
    assert client.get("/nurse/patients").status_code == 302
    assert login(client, nurse).status_code == 422


def test_failed_sign_ins_are_audited_without_the_password(client, session):
    nurse = _nurse(session)
    client.post("/login", data={"email": nurse.email, "password": "Not-The-Password-42"})
    rows = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "login_failed")).all()
    assert len(rows) == 1 and "Not-The-Password" not in str(rows[0].detail)


def test_login_is_rate_limited(make_app, session):
    with make_app(RATELIMIT_ENABLED=True) as app:
        nurse = _nurse(session)
        client = app.test_client()
        codes = [client.post("/login", data={"email": nurse.email, "password": f"wrong-{i}-password"}).status_code
                 for i in range(6)]
        assert codes[:5] == [422] * 5 and codes[5] == 429
        # even the right password waits out the window
        assert client.post("/login", data={"email": nurse.email, "password": PASSWORD}).status_code == 429


def test_patient_links_are_rate_limited(make_app):
    with make_app(RATELIMIT_ENABLED=True, LINK_RATE_LIMIT="5 per hour") as app:
        client = app.test_client()
        codes = [client.get(f"/l/guess-{i}").status_code for i in range(6)]
        assert codes == [404] * 5 + [429]


def test_every_state_changing_form_route_needs_a_csrf_token(make_app):
    with make_app(WTF_CSRF_ENABLED=True) as app:
        client = app.test_client()
        adapter = app.url_map.bind("localhost")
        checked = 0
        for rule in app.url_map.iter_rules():
            methods = rule.methods - {"GET", "HEAD", "OPTIONS"}
            if not methods or rule.endpoint.startswith("hooks."):
                continue  # Twilio webhooks are signed instead (tests/web/test_hooks.py)
            if rule.endpoint in TOKEN:
                continue  # no cookie, so nothing to forge: a clinic API token (tests/web/test_fhir_api.py)
            for method in methods:
                url = adapter.build(rule.endpoint, {a: 1 if a.endswith("id") else "x" for a in rule.arguments},
                                    method=method)
                r = client.open(url, method=method, data={"anything": "1"})
                assert r.status_code in (400, 403), f"{method} {rule.rule} accepted a request without CSRF: {r.status_code}"
                checked += 1
        assert checked >= 3


def test_bandit_finds_nothing_medium_or_higher():
    bandit = Path(sys.executable).parent / "bandit"
    result = subprocess.run([str(bandit), "-q", "-r", "recovery", "app.py", "-ll", "-ii", "-f", "txt"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

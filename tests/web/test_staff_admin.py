"""Staff administration (issue 13 §1): invite with a set-password link, the link's life (single use,
72 h, void after a reset), roles, disable and re-enable, and every refusal the admin can meet.
Two-step sign-in is tests/web/test_two_factor.py; nurse 403 on every admin route is
tests/web/test_admin_access.py, another clinic's 404 is tests/web/test_authorization.py."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from recovery.services import staff_accounts
from recovery.services.staff_accounts import Actor, StaffProblem

from recovery.store.models import AuditEvent, StaffPasswordLink, StaffRole, StaffUser, WebSession
from tests.support.factories import login, make_clinic, make_staff

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
NEW_PASSWORD = "lantern orchard velvet 42"


def link_token(page) -> str:
    return re.search(r'value="https?://[^"]+/staff/password/([A-Za-z0-9_-]+)"', page.get_data(as_text=True)).group(1)


def _admin(session, clinic=None):
    clinic = clinic or make_clinic(session, now=NOW)
    return make_staff(session, clinic, role=StaffRole.ADMIN, now=NOW)


def _audit(session, action):
    return session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


def test_an_admin_invites_a_nurse_who_sets_her_password_once_and_signs_in(app, session, client, time_machine):
    time_machine.move_to(NOW, tick=False)
    admin = _admin(session)
    session.commit()
    login(client, admin)
    page = client.get("/admin/staff")
    assert page.status_code == 200 and admin.email.encode() in page.data and b"(you)" in page.data
    assert b'href="/admin/staff"' in client.get("/admin").data  # listed on the admin home

    # bad input comes back with 422 and what was typed
    bad = client.post("/admin/staff/invite", data={"name": "Nora Nurse", "email": "not-an-email", "role": "nurse"})
    assert bad.status_code == 422 and b'value="Nora Nurse"' in bad.data and b"Enter an email address" in bad.data
    bad = client.post("/admin/staff/invite", data={"name": "", "email": "nora@example.org", "role": "boss"})
    assert bad.status_code == 422 and b"Enter their name" in bad.data and b'value="nora@example.org"' in bad.data
    dup = client.post("/admin/staff/invite", data={"name": "Again", "email": admin.email.upper(), "role": "nurse"})
    assert dup.status_code == 422 and b"already exists" in dup.data

    invited = client.post("/admin/staff/invite", data={"name": "Nora Nurse", "email": " Nora@Example.org ",
                                                       "role": "nurse"})
    assert invited.status_code == 200 and b"works once, for 72 hours" in invited.data
    token = link_token(invited)
    nora = session.scalar(sa.select(StaffUser).where(StaffUser.email == "nora@example.org"))
    assert nora.role == StaffRole.NURSE and nora.clinic_id == admin.clinic_id
    stored = session.scalar(sa.select(StaffPasswordLink).where(StaffPasswordLink.staff_id == nora.id))
    assert stored.token_hash != token and len(stored.token_hash) == 64  # only the digest
    assert stored.expires_at == NOW + timedelta(hours=72)
    listed = client.get("/admin/staff").get_data(as_text=True)
    assert "Invited (no password yet)" in listed and "Never" in listed
    client.post("/logout")

    # she cannot sign in before setting a password
    nurse = app.test_client()
    assert nurse.post("/login", data={"email": "nora@example.org", "password": "!no-password-yet"}).status_code == 422
    # a GET shows the form and never uses the link
    for _ in range(2):
        form = nurse.get(f"/staff/password/{token}")
        assert form.status_code == 200 and b"Welcome, Nora Nurse" in form.data
    short = nurse.post(f"/staff/password/{token}", data={"password": "short", "confirm": "short"})
    assert short.status_code == 422 and b"at least 12 characters" in short.data
    common = nurse.post(f"/staff/password/{token}", data={"password": "password1234", "confirm": "password1234"})
    assert common.status_code == 422 and b"too easy to guess" in common.data
    own_name = nurse.post(f"/staff/password/{token}", data={"password": "nora@example.org", "confirm": "nora@example.org"})
    assert own_name.status_code == 422 and b"too easy to guess" in own_name.data
    differ = nurse.post(f"/staff/password/{token}", data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"})
    assert differ.status_code == 422 and b"not the same" in differ.data
    done = nurse.post(f"/staff/password/{token}", data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"].endswith("/login")
    again = nurse.get(f"/staff/password/{token}")
    assert again.status_code == 410 and b"used already" in again.data
    assert nurse.post(f"/staff/password/{token}", data={"password": "another good one 77",
                                                        "confirm": "another good one 77"}).status_code == 410

    assert login(nurse, nora, NEW_PASSWORD).status_code == 303
    assert nurse.get("/nurse/").status_code == 200
    session.expire_all()
    assert session.get(StaffUser, nora.id).last_sign_in_at == NOW
    login(client, admin)
    assert "Invited" not in client.get("/admin/staff").get_data(as_text=True)

    # audited with who and what; never the password or the token
    (inv,) = _audit(session, "staff_invited")
    assert inv.actor_id == admin.id and inv.subject_id == nora.id and inv.detail["role"] == "nurse"
    (pw,) = _audit(session, "staff_password_set")
    assert pw.actor_id == nora.id
    everything = repr([(e.action, e.detail) for e in session.scalars(sa.select(AuditEvent))])
    assert token not in everything and NEW_PASSWORD not in everything


def test_links_that_expired_were_replaced_or_never_existed_show_a_clear_page(app, session, client, time_machine):
    time_machine.move_to(NOW, tick=False)
    admin = _admin(session)
    nurse = make_staff(session, admin.clinic, now=NOW)
    session.commit()
    login(client, admin)
    first = link_token(client.post(f"/admin/staff/{nurse.id}/password"))
    second = link_token(client.post(f"/admin/staff/{nurse.id}/password"))
    anon = app.test_client()
    old = anon.get(f"/staff/password/{first}")
    assert old.status_code == 410 and b"newer link" in old.data  # a reset voids the earlier link
    assert anon.get(f"/staff/password/{second}").status_code == 200
    unknown = anon.get("/staff/password/" + "x" * 43)
    assert unknown.status_code == 404 and b"not a set-password link" in unknown.data
    assert anon.get("/staff/password/%00%ff").status_code in (404, 400)

    time_machine.move_to(NOW + timedelta(hours=72), tick=False)
    expired = anon.post(f"/staff/password/{second}", data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert expired.status_code == 410 and b"expired" in expired.data
    # the old password was never touched by the reset
    assert login(app.test_client(), nurse).status_code == 303


def test_disabling_ends_sessions_at_once_and_the_last_admin_is_kept(app, session, client, time_machine):
    time_machine.move_to(NOW, tick=False)
    admin = _admin(session)
    nurse = make_staff(session, admin.clinic, now=NOW)
    session.commit()
    login(client, admin)
    nurse_client = app.test_client()
    login(nurse_client, nurse)
    assert nurse_client.get("/nurse/").status_code == 200

    # refusals: their own account, the last active admin (by disabling or by a role change)
    mine = client.post(f"/admin/staff/{admin.id}/disable")
    assert mine.status_code == 409 and b"your own account" in mine.data
    assert client.post(f"/admin/staff/{admin.id}/role", data={"role": "nurse"}).status_code == 409
    bad_role = client.post(f"/admin/staff/{nurse.id}/role", data={"role": "superuser"})
    assert bad_role.status_code == 422

    # promote the nurse, demote her back: audited with old and new
    assert client.post(f"/admin/staff/{nurse.id}/role", data={"role": "admin"}).status_code == 303
    assert client.post(f"/admin/staff/{nurse.id}/role", data={"role": "nurse"}).status_code == 303
    changes = [(e.detail["old"], e.detail["new"]) for e in _audit(session, "staff_role_changed")]
    assert changes == [("nurse", "admin"), ("admin", "nurse")]

    r = client.post(f"/admin/staff/{nurse.id}/disable")
    assert r.status_code == 303
    page = client.get(f"/admin/staff/{nurse.id}")
    assert b"1 session(s) ended" in page.data and b"Disabled" in page.data
    assert nurse_client.get("/nurse/").status_code == 302  # her open session is over, now
    assert login(app.test_client(), nurse).status_code == 422
    assert session.scalar(sa.select(sa.func.count()).select_from(WebSession).where(
        WebSession.staff_id == nurse.id, WebSession.revoked_at.is_(None))) == 0
    assert client.post(f"/admin/staff/{nurse.id}/disable").status_code == 409  # already disabled
    assert client.post(f"/admin/staff/{nurse.id}/password").status_code == 409  # re-enable first

    assert client.post(f"/admin/staff/{nurse.id}/enable").status_code == 303
    assert login(app.test_client(), nurse).status_code == 303
    (off,) = _audit(session, "staff_disabled")
    assert off.detail["old"] == {"active": True} and off.detail["new"] == {"active": False}
    assert off.actor_id == admin.id and off.detail["sessions_ended"] == 1

    # the last active admin stays, whoever asks (the pages never let an admin reach it: they
    # are an active admin themselves; the use-case refuses it for any caller)
    with pytest.raises(StaffProblem, match="last active admin"):
        staff_accounts.disable(session, admin, now=NOW, actor=Actor(None))
    with pytest.raises(StaffProblem, match="last active admin"):
        staff_accounts.change_role(session, admin, "nurse", now=NOW, actor=Actor(None))
    session.rollback()


def test_the_set_password_form_is_rate_limited(make_app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    with make_app(RATELIMIT_ENABLED=True, SET_PASSWORD_RATE_LIMIT="2 per hour") as app:
        anon = app.test_client()
        codes = [anon.post("/staff/password/" + "x" * 43, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
                 .status_code for _ in range(3)]
        assert codes == [404, 404, 429]
        assert anon.get("/staff/password/" + "x" * 43).status_code == 404  # showing the form is not counted

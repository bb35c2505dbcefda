"""The admin area: admins of the signed-in clinic only; a nurse gets 403 on every /admin page."""
from __future__ import annotations

from recovery.store.models import StaffRole
from tests.support.factories import login, make_clinic, make_staff


def test_admin_home_is_for_admins_and_refused_to_nurses_and_strangers(app, session, client, frozen):
    clinic = make_clinic(session)
    admin = make_staff(session, clinic, role=StaffRole.ADMIN)
    nurse = make_staff(session, clinic)
    session.commit()

    assert client.get("/admin").status_code == 302  # signed out: to the sign-in page

    login(client, nurse)
    assert client.get("/admin").status_code == 403
    assert b">Admin</a>" not in client.get("/nurse/").data
    client.post("/logout", data={})  # CSRF off in tests
    client.delete_cookie("session")

    other = app.test_client()
    login(other, admin)
    page = other.get("/admin")
    assert page.status_code == 200
    assert b"Administration" in page.data
    assert b">Admin</a>" in other.get("/nurse/").data


def test_every_admin_route_refuses_a_nurse(app, session, client, frozen):
    clinic = make_clinic(session)
    nurse = make_staff(session, clinic)
    session.commit()
    login(client, nurse)
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")]
    assert rules
    for rule in rules:
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<{arg}>", "1").replace(f"<int:{arg}>", "1").replace(f"<id:{arg}>", "1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            assert client.open(path, method=method).status_code == 403, (method, path)

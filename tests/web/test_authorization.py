"""Object-level authorisation on every route (issue 7; OWASP ASVS 8.2.2, reliability.md 4.1).

Every rule in `app.url_map` must be classified below, or this test fails: a new route cannot slip
in without saying who may use it. For each route that names a record (a patient, an alert, a
check-in), another patient, a nurse of another clinic and an anonymous user all get 403 or 404,
and the record's rightful user does not (so the check cannot pass vacuously). Routes scoped to the
session's own patient or clinic are checked for leaks across patients and clinics.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from recovery.services import alerting, checkins
from recovery.store.enrolments import current_enrolment
from tests.support.factories import enrol, login, make_clinic, make_staff, open_link, patient_link

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)

PUBLIC = {"static", "auth.home", "auth.login", "auth.logout", "patient.signed_out", "patient.new_link",
          "patient.sign_out",  # sign-out ends whatever session the caller has, nothing else
          "auth.second_factor",  # only a half-signed-in session of its own scope gets past it (test_two_factor.py)
          "fhir.metadata"}  # the FHIR CapabilityStatement: says what the API does, nothing about anyone
SIGNED = {"hooks.sms", "hooks.status"}  # Twilio signature instead of a user (tests/web/test_hooks.py)
CAPABILITY = {"patient.link", "patient.redeem",  # the 256-bit token is the key (test below)
              "auth.set_password"}  # the staff set-password link: single use, 72 h (tests/web/test_staff_admin.py)
# Scoped to the signed-in nurse's clinic or the patient's own record; no id in the URL.
NURSE_SCOPED = {"nurse.worklist", "nurse.patients", "nurse.enrol", "reports.dashboard", "reports.export",
                "auth.two_factor_setup"}  # the signed-in staff member's own second factor
# The admin area (issue 13 §1): admins of the signed-in clinic; a nurse gets 403 (tests/web/test_admin_access.py).
ADMIN_SCOPED = {"admin.home", "admin.staff", "admin.invite_staff", "admin.require_second_factor",
                "admin.on_call", "admin.add_staff_rung", "admin.add_phone_rung", "admin.clinic_settings",
                "admin.api_tokens", "admin.create_api_token",
                "admin.plan", "admin.change_plan", "admin.import_plan", "admin.export_plan"}
# Admin routes that name a staff member: another clinic's admin gets 404 (test below).
ADMIN_OBJECT = {"admin.staff_member", "admin.change_role", "admin.disable_staff", "admin.enable_staff",
                "admin.reset_password", "admin.reset_second_factor"}
# Admin routes naming another object of the clinic: a rung of the on-call ladder or a test page
# (tests/web/test_admin_clinic.py), an API token (tests/web/test_fhir_api.py); another clinic's admin
# gets 404, proven there for each with the rightful admin's success.
ADMIN_OTHER_OBJECT = {"admin.move_rung", "admin.remove_rung", "admin.send_test_page", "admin.test_page_status",
                      "admin.revoke_api_token"}
# A clinic API token instead of a user (the FHIR API and HL7 v2, issue 15): the token's clinic only
# (test below, tests/web/test_fhir_api.py and tests/web/test_hl7_adt.py).
TOKEN = {"fhir.read_patient", "fhir.search_patients", "fhir.everything", "fhir.search", "fhir.read",
         "fhir.transaction", "hl7.adt"}
PATIENT_SCOPED = {"patient.today", "patient.calendar", "patient.language", "checkin.start", "checkin.begin", "checkin.report"}
# Routes that name a record: endpoint -> (owner kind, which object, extra URL values)
OBJECT = {
    "nurse.patient": ("nurse", "patient", {}),
    "nurse.correct_times": ("nurse", "patient", {}),
    "nurse.end_monitoring": ("nurse", "patient", {}),
    "nurse.edit_patient": ("nurse", "patient", {}),
    "nurse.record_pdf": ("nurse", "patient", {}),
    "nurse.send_text": ("nurse", "patient", {}),
    "nurse.count_text": ("nurse", "patient", {}),
    "nurse.resend_link": ("nurse", "patient", {}),
    "nurse.pause_texts": ("nurse", "patient", {}),
    "nurse.resume_texts": ("nurse", "patient", {}),
    "nurse.peg_baseline": ("nurse", "patient", {}),
    "nurse.followup": ("nurse", "patient", {}),
    "nurse.clear_followup": ("nurse", "patient", {}),
    "nurse.new_episode": ("nurse", "patient", {}),
    "nurse.episode": ("nurse", "enrolment", {}),
    "alerts.acknowledge": ("nurse", "alert", {}),
    "alerts.resolve": ("nurse", "alert", {}),
    "alerts.resolve_form": ("nurse", "alert", {}),
    "checkin.resume": ("patient", "checkin", {}),
    "checkin.step": ("patient", "checkin", {"group_id": "emergency"}),
    "checkin.answer": ("patient", "checkin", {"group_id": "emergency"}),
    "checkin.draft": ("patient", "checkin", {"group_id": "emergency"}),
    "checkin.emergency": ("patient", "checkin", {}),
    "checkin.review": ("patient", "checkin", {}),
    "checkin.submit": ("patient", "checkin", {}),
    "checkin.done": ("patient", "checkin", {}),
    "checkin.peg_step": ("patient", "checkin", {"screen": "peg_pain"}),
    "checkin.peg_answer": ("patient", "checkin", {"screen": "peg_pain"}),
}
DENIED = (403, 404)


@pytest.fixture
def world(app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    clinic_a, clinic_b = make_clinic(session, now=NOW), make_clinic(session, now=NOW)
    nurse_a, nurse_b = make_staff(session, clinic_a, now=NOW), make_staff(session, clinic_b, now=NOW)
    ann = enrol(session, clinic_a, procedure_end=NOW - timedelta(hours=30), now=NOW, first="Annabel")
    bob = enrol(session, clinic_a, procedure_end=NOW - timedelta(hours=30), now=NOW, first="Bartholomew")
    carl = enrol(session, clinic_b, procedure_end=NOW - timedelta(hours=30), now=NOW, first="Carlotta")
    checkin = checkins.start_checkin(session, enrolment=current_enrolment(ann), patient=ann, slot=None,
                                     source="web", now=NOW)
    alert = alerting.raise_rules(session, patient=ann, enrolment=current_enrolment(ann), rule_ids=["U20"],
                                 now=NOW)[0]
    tokens = {p.first_name: patient_link(session, p, now=NOW) for p in (ann, bob, carl)}
    session.commit()
    return {"nurse_a": nurse_a, "nurse_b": nurse_b, "ann": ann, "bob": bob, "carl": carl,
            "ids": {"patient": ann.id, "alert": alert.id, "checkin": checkin.id,
                    "enrolment": current_enrolment(ann).id}, "tokens": tokens}


def _client(app, world, who):
    c = app.test_client()
    if who == "anonymous":
        return c
    if who.startswith("nurse"):
        assert login(c, world[who]).status_code == 303
    else:
        assert open_link(c, world["tokens"][world[who].first_name]).status_code == 303
    return c


def _url(app, endpoint, values):
    return app.url_map.bind("localhost").build(endpoint, values)


def _call(client, rule, url):
    method = sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
    return client.open(url, method=method, data={"note": "x", "disposition": "other"} if method == "POST" else None)


def test_every_route_is_classified(app):
    known = (PUBLIC | SIGNED | CAPABILITY | NURSE_SCOPED | ADMIN_SCOPED | ADMIN_OBJECT | ADMIN_OTHER_OBJECT
             | PATIENT_SCOPED | TOKEN | set(OBJECT))
    endpoints = {r.endpoint for r in app.url_map.iter_rules()}
    assert endpoints - known == set(), "classify these routes in tests/web/test_authorization.py"
    assert known - endpoints == set(), "these classified routes no longer exist"


@pytest.mark.parametrize("endpoint", sorted(OBJECT))
def test_records_are_reachable_only_by_their_own_patient_or_clinic(app, world, endpoint):
    owner_kind, obj, extra = OBJECT[endpoint]
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    url = _url(app, endpoint, {f"{obj}_id": world["ids"][obj], **extra})
    intruders = ["anonymous", "nurse_b", "bob"] + (["ann"] if owner_kind == "nurse" else ["nurse_a"])
    for who in intruders:
        r = _call(_client(app, world, who), rule, url)
        assert r.status_code in DENIED, f"{who} got {r.status_code} for {rule.rule}"
        assert b"Annabel" not in r.data
    owner = _call(_client(app, world, "nurse_a" if owner_kind == "nurse" else "ann"), rule, url)
    assert owner.status_code not in DENIED, f"the owner was refused {rule.rule}: {owner.status_code}"


def test_nurse_lists_show_only_their_own_clinic(app, world):
    a, b = _client(app, world, "nurse_a"), _client(app, world, "nurse_b")
    for endpoint in ("nurse.worklist", "nurse.patients", "reports.dashboard"):
        url = _url(app, endpoint, {})
        assert b"Annabel" in a.get(url).data or endpoint == "nurse.worklist" and b"Patient asked" in a.get(url).data \
            or endpoint == "reports.dashboard" and b"Alert handling" in a.get(url).data
        page_b = b.get(url).data
        assert b"Annabel" not in page_b and b"Bartholomew" not in page_b and b"Patient asked" not in page_b
    for who in ("ann", "anonymous"):
        c = _client(app, world, who)
        for endpoint in ("nurse.patients", "reports.dashboard", "reports.export"):
            r = c.get(_url(app, endpoint, {}))
            assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_admin_pages_refuse_nurses_patients_and_anonymous(app, world):
    clients = {who: _client(app, world, who) for who in ("nurse_a", "ann", "anonymous")}  # a link works once
    for endpoint in sorted(ADMIN_SCOPED):
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        url = _url(app, endpoint, {})
        assert _call(clients["nurse_a"], rule, url).status_code == 403, endpoint
        for who in ("ann", "anonymous"):
            r = _call(clients[who], rule, url)
            assert r.status_code in (302, 403), (who, endpoint, r.status_code)
            assert r.status_code == 403 or "/login" in r.headers["Location"]


def test_admin_pages_naming_a_staff_member_are_404_to_another_clinics_admin(app, session, world):
    from recovery.store.models import StaffRole
    admin_a = make_staff(session, world["ann"].clinic, role=StaffRole.ADMIN, now=NOW)
    admin_b = make_staff(session, world["carl"].clinic, role=StaffRole.ADMIN, now=NOW)
    session.commit()
    a, b = app.test_client(), app.test_client()
    assert login(a, admin_a).status_code == 303 and login(b, admin_b).status_code == 303
    member = world["nurse_a"]
    others = {who: _client(app, world, who) for who in ("nurse_a", "anonymous", "ann")}
    for endpoint in sorted(ADMIN_OBJECT):
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        url = _url(app, endpoint, {"staff_id": member.id})
        r = _call(b, rule, url)
        assert r.status_code == 404 and member.email.encode() not in r.data, (endpoint, r.status_code)
        for who, c in others.items():
            assert _call(c, rule, url).status_code == 403, (who, endpoint)
    # the rightful admin is not refused (a GET, and a harmless POST: a role it already has)
    assert a.get(f"/admin/staff/{member.id}").status_code == 200
    assert a.post(f"/admin/staff/{member.id}/role", data={"role": "nurse"}).status_code == 303


def test_patient_pages_show_only_the_patients_own_record(app, world):
    bob = _client(app, world, "bob")
    today = bob.get("/me")
    assert b"Bartholomew" in today.data and b"Annabel" not in today.data
    assert b"Annabel" not in bob.get("/me/calendar.ics").data
    for endpoint in sorted(PATIENT_SCOPED):
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        r = _call(_client(app, world, "anonymous"), rule, _url(app, endpoint, {}))
        assert r.status_code in (302, 403, 404) and b"Annabel" not in r.data
        r = _call(_client(app, world, "nurse_a"), rule, _url(app, endpoint, {}))
        assert r.status_code in (302, 403, 404), f"a nurse session is not a patient session: {endpoint}"


def test_a_link_token_opens_only_its_own_patient(app, world):
    c = app.test_client()
    assert open_link(c, world["tokens"]["Bartholomew"]).status_code == 303
    assert b"Bartholomew" in c.get("/me").data
    assert app.test_client().get("/l/" + world["tokens"]["Annabel"][:-2] + "xx").status_code == 404


def test_token_routes_refuse_no_token_a_session_and_another_clinics_token(app, world, session):
    from recovery.services.api_tokens import create_token
    ann = world["ann"]
    own = create_token(session, clinic=ann.clinic, scopes=["fhir.read", "fhir.write"], label="a", now=NOW).secret
    other = create_token(session, clinic=world["carl"].clinic, scopes=["fhir.read", "fhir.write"], label="b",
                         now=NOW).secret
    session.commit()
    values = {"fhir.read_patient": {"patient_id": ann.id}, "fhir.everything": {"patient_id": ann.id},
              "fhir.search": {"kind": "Flag"}, "fhir.read": {"kind": "Patient", "rid": str(ann.id)}}
    query = {"fhir.search": f"?patient={ann.id}", "fhir.search_patients": ""}
    sessions = {who: _client(app, world, who) for who in ("anonymous", "nurse_a", "ann")}
    for endpoint in sorted(TOKEN):
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        url = _url(app, endpoint, values.get(endpoint, {})) + query.get(endpoint, "")
        method = sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        for who, c in sessions.items():  # a browser session is not a token
            r = c.open(url, method=method, json={})
            assert r.status_code == 401 and b"Annabel" not in r.data, (who, endpoint, r.status_code)
        ref = f'"Patient/{ann.id}"'.encode()
        r = app.test_client().open(url, method=method, json={}, headers={"Authorization": f"Bearer {other}"})
        assert r.status_code in (200, 400, 404, 422) and b"Annabel" not in r.data and ref not in r.data, endpoint
        r = app.test_client().open(url, method=method, json={}, headers={"Authorization": f"Bearer {own}"})
        assert endpoint in ("fhir.transaction", "hl7.adt") or (r.status_code == 200 and (b"Annabel" in r.data or ref in r.data)), endpoint

"""Issue 11 item 3: bad input gets a clear 4xx and writes nothing half-done (each of these gave a 500).

The systematic sweep over every route is tests/system/test_fuzz_routes.py; these are the tester's own
reproductions, one by one."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recovery.services import alerting, checkins
from recovery.store.enrolments import current_enrolment
from recovery.store.models import AuditEvent, Checkin, Enrolment, InboundMessage, Patient
from tests.support.factories import enrol, login, make_clinic, make_staff, open_link, patient_link
from tests.web.test_foundation_web import enrolment_form
from tests.web.test_hooks import SID, sent_row, signed, status_form, table_counts

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
HUGE_IDS = [str(2**63), str(2**64 + 5), "9" * 40]
OBJECT_URLS = ["/nurse/patients/{}", "/nurse/patients/{}/times", "/nurse/alerts/{}/acknowledge",
               "/nurse/alerts/{}/resolve", "/me/checkin/{}", "/me/checkin/{}/step/emergency",
               "/me/checkin/{}/step/emergency/draft", "/me/checkin/{}/emergency", "/me/checkin/{}/review",
               "/me/checkin/{}/done"]


@pytest.fixture
def world(app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, first="Annabel")
    checkins.start_checkin(session, enrolment=current_enrolment(patient), patient=patient, slot=None,
                           source="web", now=NOW)
    alerting.raise_rules(session, patient=patient, enrolment=current_enrolment(patient), rule_ids=["U20"], now=NOW)
    token = patient_link(session, patient, now=NOW)
    session.commit()
    return {"nurse": nurse, "patient": patient, "token": token}


def nurse_client(app, world):
    c = app.test_client()
    assert login(c, world["nurse"]).status_code == 303
    return c


def patient_client(app, world):
    c = app.test_client()
    assert open_link(c, world["token"]).status_code == 303
    return c


@pytest.mark.parametrize("template", OBJECT_URLS)
def test_an_object_id_beyond_the_database_range_is_not_found(app, session, world, template):
    client = nurse_client(app, world) if template.startswith("/nurse") else patient_client(app, world)
    method = "POST" if template.endswith(("/times", "/acknowledge", "/draft")) else "GET"
    before = table_counts(session)
    for value in HUGE_IDS + ["١٢", "²", "１"]:  # Arabic-Indic, superscript and full-width digits
        r = client.open(template.format(value), method=method, data={"note": "x"})
        assert r.status_code == 404, (template, value, r.status_code)
        assert b"Page not found" in r.data
    assert table_counts(session) == before


@pytest.mark.parametrize("ob", [str(2**63), "9" * 400, "²", "١٢", "-1", "1.5"])
def test_a_malformed_ob_in_a_status_callback_is_a_400_that_changes_nothing(app, session, client, sms, ob):
    _, r = sent_row(app, session, sms)
    before = table_counts(session)
    resp = signed(client, f"/twilio/status?ob={ob}", status_form(r.provider_sid, "delivered"))
    assert resp.status_code == 400 and b"ob" in resp.data
    assert table_counts(session) == before


def test_a_message_sid_longer_than_64_characters_is_refused(app, session, client, sms):
    p, r = sent_row(app, session, sms)
    before = table_counts(session)
    long_sid = "SM" + "a" * 70
    resp = signed(client, "/twilio/sms", {"MessageSid": long_sid, "From": p.mobile_e164, "Body": "hello"})
    assert resp.status_code == 400 and b"MessageSid" in resp.data
    resp = signed(client, f"/twilio/status?ob={r.id}", status_form(long_sid, "delivered"))
    assert resp.status_code == 400
    assert table_counts(session) == before


@pytest.mark.parametrize("field, value", [
    ("procedure_end", "0001-01-01T00:00"), ("procedure_end", "9999-12-31T23:59"),
    ("discharge_at", "9999-12-31T23:59"), ("discharge_at", "0001-01-01T00:00")])
def test_enrolment_times_outside_the_calendar_are_a_422(app, session, world, field, value):
    client = nurse_client(app, world)
    before = table_counts(session)
    r = client.post("/nurse/patients/new", data=enrolment_form(**{field: value}))
    assert r.status_code == 422, r.status_code
    assert b'value="Maria"' in r.data  # the form comes back as typed
    assert table_counts(session) == before


def test_a_procedure_more_than_90_days_ago_is_refused(app, session, world):
    client = nurse_client(app, world)
    before = table_counts(session)
    r = client.post("/nurse/patients/new", data=enrolment_form(procedure_end="2024-01-10T10:30",
                                                                discharge_at="2024-01-10T13:00"))
    assert r.status_code == 422 and b"more than 90 days ago" in r.data
    assert table_counts(session) == before
    # 89 days is still accepted
    ok = (NOW - timedelta(days=89)).astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%dT%H:%M")
    assert client.post("/nurse/patients/new", data=enrolment_form(procedure_end=ok, discharge_at="")).status_code == 303


@pytest.mark.parametrize("over, message", [
    ({"procedure_end": "0001-01-01T00:00"}, b"more than 90 days ago"),
    ({"procedure_end": "9999-12-31T23:59"}, b"in the future"),
    ({"discharge_at": "9999-12-31T23:59"}, b"Discharge"),
    ({"procedure_end": "2024-01-10T10:30"}, b"more than 90 days ago")])
def test_correcting_the_times_outside_the_range_is_a_422(app, session, world, over, message):
    client = nurse_client(app, world)
    pid = world["patient"].id
    end_before = session.scalar(sa.select(Enrolment.procedure_end).where(Enrolment.patient_id == pid))
    before = table_counts(session)
    form = {"procedure_end": "2026-03-08T09:00", "discharge_at": "", "reason": "typo", **over}
    r = client.post(f"/nurse/patients/{pid}/times", data=form)
    assert r.status_code == 422 and message in r.data, r.data[-3000:]
    after = table_counts(session)
    # re-showing the record is itself a record view (audited); nothing else was written
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {"audit_event": 1}
    assert session.scalar(sa.select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == "record_viewed"
    session.expire_all()
    assert session.scalar(sa.select(Enrolment.procedure_end).where(Enrolment.patient_id == pid)) == end_before


@pytest.mark.parametrize("first_name, message", [
    ("\u200b\u200c\u2060\ufeff", b"Enter the patient&#39;s first name."),
    ("\x01\x02\x7f", b"Enter the patient&#39;s first name."),
    ("\x00", b"Enter the patient&#39;s first name."),
    ("Ma\u202eria", b"text-direction"),
    ("\u2066Maria\u2069", b"text-direction"),
])
def test_names_of_invisible_characters_or_with_bidi_controls_are_refused(app, session, world, first_name,
                                                                          message):
    client = nurse_client(app, world)
    before = table_counts(session)
    r = client.post("/nurse/patients/new", data=enrolment_form(first_name=first_name))
    assert r.status_code == 422 and message in r.data
    assert table_counts(session) == before


def test_a_name_with_a_nul_byte_is_stored_without_it(app, session, world):
    client = nurse_client(app, world)
    r = client.post("/nurse/patients/new", data=enrolment_form(last_name="Lo\x00pez"))
    assert r.status_code == 303
    assert session.scalar(sa.select(Patient.last_name).where(Patient.first_name == "Maria")) == "Lopez"


def test_a_nul_byte_in_the_sign_in_email_and_the_search_is_not_a_500(app, session, world):
    client = app.test_client()
    r = client.post("/login", data={"email": "nurse\x00@example.org", "password": "whatever-it-is"})
    assert r.status_code == 422
    client = nurse_client(app, world)
    r = client.get("/nurse/patients?q=Ann%00abel")
    assert r.status_code == 200 and b"Annabel" in r.data


def test_a_nul_byte_in_a_text_body_is_stored_without_it(app, session, client, world):
    p = world["patient"]
    resp = signed(client, "/twilio/sms", {"MessageSid": SID, "From": p.mobile_e164, "Body": "pain\x00 is 3"})
    assert resp.status_code == 200
    assert session.scalar(sa.select(InboundMessage.body)) == "pain is 3"


def test_a_checkin_post_with_a_nul_in_an_answer_is_a_422(app, session, world):
    client = patient_client(app, world)
    cid = session.scalar(sa.select(Checkin.id))
    before = table_counts(session)
    r = client.post(f"/me/checkin/{cid}/step/emergency",
                    data={"cardioresp": "none\x00", "neuro": ["none"], "bladder_bowel": "\x00"})
    assert r.status_code == 422
    assert table_counts(session) == before


@pytest.mark.parametrize("request_id", ["r" * 100, "a\tforged", "x y", "é"])
def test_a_request_id_header_that_is_not_an_id_is_replaced(app, session, world, request_id):
    """X-Request-Id is stored with every audit row (36 characters): a longer one was a 500 on PostgreSQL."""
    r = app.test_client().post("/login", data={"email": world["nurse"].email, "password": "not the password"},
                               headers={"X-Request-Id": request_id})
    assert r.status_code == 422
    stored = session.scalar(sa.select(AuditEvent.request_id).where(AuditEvent.action == "login_failed"))
    assert stored and stored != request_id and len(stored) == 36
    r = app.test_client().post("/login", data={"email": world["nurse"].email, "password": "not the password"},
                               headers={"X-Request-Id": "req-42.a_b"})
    assert session.scalar(sa.select(AuditEvent.request_id).order_by(AuditEvent.id.desc()).limit(1)) == "req-42.a_b"


@pytest.mark.parametrize("field", ["baseline_back_pain", "no_driving_days", "followup_day"])
def test_a_number_of_hundreds_of_digits_is_a_422(app, session, world, field):
    """Found by tests/system/test_fuzz_routes.py: WTForms' NumberRange turned it into a float (OverflowError)."""
    client = nurse_client(app, world)
    before = table_counts(session)
    r = client.post("/nurse/patients/new", data=enrolment_form(**{field: "9" * 400}))
    assert r.status_code == 422 and b"Enter a smaller number." in r.data
    assert table_counts(session) == before

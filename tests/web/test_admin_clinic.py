"""The on-call ladder (/admin/on-call) and the clinic settings (/admin/clinic) through the web: every
flow, its audit rows, bad input (422, nothing written, what was typed kept), and refusals (a nurse
403, another clinic's admin 404 on anything naming a rung or a test page)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from recovery.dispatch.settings import DispatchSettings
from recovery.dispatch.status import apply_status
from recovery.scheduler.tick import tick
from recovery.store.models import AuditEvent, Clinic, OnCallStep, OutboundMessage, StaffRole
from tests.support.factories import enrol, login, make_clinic, make_staff

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)


def settings(app):
    return DispatchSettings.from_config(app.config, max_per_second=0, send_concurrency=1, rng=random.Random(5))


def audits(session, action):
    return session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


def ladder(session, clinic):
    session.expire_all()
    return [(s.position, s.staff_id, s.name) for s in
            session.scalars(sa.select(OnCallStep).where(OnCallStep.clinic_id == clinic.id).order_by(OnCallStep.position))]


def test_an_admin_builds_the_ladder_reorders_it_and_a_test_page_reports_its_delivery(app, session, client, sms, frozen):
    clinic = make_clinic(session)
    admin = make_staff(session, clinic, role=StaffRole.ADMIN)
    nurse = make_staff(session, clinic, on_call=1)
    session.commit()
    login(client, admin)
    page = client.get("/admin/on-call")
    assert page.status_code == 200 and nurse.name.encode() in page.data
    assert b"On-call ladder" in client.get("/admin").data

    # a landline and an empty name come back with 422, what was typed kept, nothing written
    bad = client.post("/admin/on-call/phone", data={"phone-name": "", "phone-mobile": "(202) 456-1111x"})
    assert bad.status_code == 422 and b"Enter the name" in bad.data and b'value="(202) 456-1111x"' in bad.data
    assert len(ladder(session, clinic)) == 1
    r = client.post("/admin/on-call/phone", data={"phone-name": "Dr Night", "phone-mobile": "(202) 555-0172"})
    assert r.status_code == 303
    assert client.post("/admin/on-call/phone", data={"phone-name": "Again", "phone-mobile": "+12025550172"}
                       ).status_code == 422  # already on the ladder
    assert ladder(session, clinic) == [(1, nurse.id, None), (2, None, "Dr Night")]
    phone = session.scalar(sa.select(OnCallStep).where(OnCallStep.name == "Dr Night"))
    assert phone.mobile_e164 == "+12025550172"

    # the admin adds themself, then moves the phone rung to the top
    assert client.post("/admin/on-call/staff", data={"staff-staff_id": str(admin.id)}).status_code == 303
    assert client.post("/admin/on-call/staff", data={"staff-staff_id": "999999"}).status_code == 422
    assert client.post(f"/admin/on-call/{phone.id}/move", data={"direction": "up"}).status_code == 303
    assert client.post(f"/admin/on-call/{phone.id}/move", data={"direction": "up"}).status_code == 303  # top: no-op
    assert client.post(f"/admin/on-call/{phone.id}/move", data={"direction": "sideways"}).status_code == 422
    assert ladder(session, clinic) == [(1, None, "Dr Night"), (2, nurse.id, None), (3, admin.id, None)]
    assert client.post(f"/admin/on-call/{ladder_id(session, admin.id)}/remove", data={}).status_code == 303
    assert ladder(session, clinic) == [(1, None, "Dr Night"), (2, nurse.id, None)]
    moved = audits(session, "on_call_rung_moved")
    assert len(moved) == 1 and [x["name"] for x in moved[0].detail["before"]] == [nurse.name, "Dr Night", admin.name]
    assert "+1202" not in str([a.detail for a in audits(session, "on_call_rung_added")])  # no numbers in audit

    # a test page: queued, sent by the scheduler, delivered by Twilio's callback; the page follows
    r = client.post(f"/admin/on-call/{phone.id}/test", data={})
    assert r.status_code == 303
    status_url = r.headers["Location"]
    shown = client.get(status_url)
    assert b">queued<" in shown.data and b"Check again" in shown.data and b'hx-trigger="every 2s"' in shown.data
    tick(session, sms, NOW, settings(app))
    assert sms.sent[-1].to == "+12025550172" and "test page" in sms.sent[-1].body
    fragment = client.get(status_url, headers={"HX-Request": "true"})
    assert b">sent<" in fragment.data and b"<html" not in fragment.data
    row = session.scalar(sa.select(OutboundMessage).where(OutboundMessage.kind == "test_page"))
    apply_status(session, outbox_id=row.id, sid=row.provider_sid, status="delivered", error_code=None,
                 now=NOW + timedelta(seconds=5))
    session.commit()
    done = client.get(status_url)
    assert b">delivered<" in done.data and b"hx-trigger" not in done.data  # final: it stops polling
    assert audits(session, "on_call_test_page")[0].subject_id == row.id


def ladder_id(session, staff_id):
    return session.scalar(sa.select(OnCallStep.id).where(OnCallStep.staff_id == staff_id))


def test_ladder_and_settings_are_refused_to_nurses_and_to_another_clinics_admin(app, session, client, sms, frozen):
    clinic, other = make_clinic(session), make_clinic(session)
    admin = make_staff(session, clinic, role=StaffRole.ADMIN)
    nurse = make_staff(session, clinic)
    stranger = make_staff(session, other, role=StaffRole.ADMIN)
    session.add(OnCallStep(clinic_id=clinic.id, position=1, name="Dr Night", mobile_e164="+12025550172"))
    session.commit()
    rung = session.scalar(sa.select(OnCallStep.id))
    login(client, admin)
    status_url = client.post(f"/admin/on-call/{rung}/test", data={}).headers["Location"]
    page_id = int(status_url.rsplit("/", 1)[1])
    named = [("POST", f"/admin/on-call/{rung}/move", {"direction": "down"}), ("POST", f"/admin/on-call/{rung}/remove", {}),
             ("POST", f"/admin/on-call/{rung}/test", {}), ("GET", f"/admin/on-call/pages/{page_id}", None)]
    for who, code in ((stranger, 404), (nurse, 403)):
        c = app.test_client()
        login(c, who)
        for method, url, data in named:
            assert c.open(url, method=method, data=data).status_code == code, (who.name, url)
        assert c.get("/admin/on-call").status_code == (200 if code == 404 else 403)
        assert b"Dr Night" not in c.get("/admin/on-call").data
        assert c.post("/admin/clinic", data={"care_phone": "(202) 555-0111"}).status_code in (403, 422)
    assert session.scalar(sa.select(sa.func.count()).select_from(OnCallStep)) == 1
    assert session.get(Clinic, clinic.id).care_phone == "(202) 555-0100"
    # a nurse's OutboundMessage (a patient text) is not a test page for anyone
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW)
    session.commit()
    text_id = session.scalar(sa.select(OutboundMessage.id).where(OutboundMessage.patient_id == patient.id))
    assert client.get(f"/admin/on-call/pages/{text_id}").status_code == 404


GOOD = {"sms_name": "Northside Care", "care_phone": "(202) 555-0123", "after_hours_phone": "(202) 555-0124",
        "emergency_number": "911", "timezone": "America/Chicago", "sender_number": "+12025550999",
        "messaging_service_sid": "", **{f"open_{d}": "08:00" for d in range(5)},
        **{f"close_{d}": "18:00" for d in range(5)}}


def test_clinic_settings_validate_each_field_keep_input_audit_and_reach_the_next_text(app, session, client, sms, frozen):
    clinic = make_clinic(session)
    admin = make_staff(session, clinic, role=StaffRole.ADMIN)
    session.commit()
    login(client, admin)
    form = client.get("/admin/clinic")
    assert form.status_code == 200 and b'value="(202) 555-0100"' in form.data

    bad = dict(GOOD, sms_name="Spine Center", care_phone="call us", emergency_number="123", timezone="Mars/Base",
               messaging_service_sid="MGnothex", open_0="18:00", close_0="08:00", open_1="8am", open_5="09:00",
               close_5="")
    r = client.post("/admin/clinic", data=bad)
    assert r.status_code == 422
    for words in (b"Not usable in texts", b"Write the number with digits", b"Not a valid choice", b"Choose the clinic",
                  b"MG followed by 32", b"closing time must be after", b"HH:MM", b"give both opening"):
        assert words in r.data, words
    assert b'value="call us"' in r.data and b'value="Spine Center"' in r.data and b'value="8am"' in r.data
    assert audits(session, "clinic_settings_changed") == []
    both = client.post("/admin/clinic", data=dict(GOOD, messaging_service_sid="MG" + "a" * 32))
    assert both.status_code == 422 and b"not both" in both.data

    assert client.post("/admin/clinic", data=GOOD).status_code == 303
    session.expire_all()
    c = session.get(Clinic, clinic.id)
    assert (c.sms_name, c.care_phone, c.timezone, c.sender_number) == ("Northside Care", "(202) 555-0123",
                                                                       "America/Chicago", "+12025550999")
    assert c.service_hours == {str(d): ["08:00", "18:00"] for d in range(5)}
    [change] = audits(session, "clinic_settings_changed")
    assert change.detail["changes"]["care_phone"] == {"old": "(202) 555-0100", "new": "(202) 555-0123"}
    assert change.detail["changes"]["service_hours"]["old"] is None
    assert client.post("/admin/clinic", data=GOOD).status_code == 303
    assert len(audits(session, "clinic_settings_changed")) == 1  # nothing changed: no audit row
    shown = client.get("/admin/clinic").data
    assert b'value="08:00"' in shown and b'value="Northside Care"' in shown

    # the next text rendered (the sign-up confirmation, S00) names the clinic as set, from its sender
    enrol(session, c, procedure_end=NOW - timedelta(hours=2), now=NOW)
    session.commit()
    tick(session, sms, NOW, settings(app))
    assert sms.sent and sms.sent[0].body.startswith("Northside Care:")
    assert sms.sent[0].sender.from_number == "+12025550999"


def test_a_setting_that_would_push_a_text_past_one_sms_is_named_by_its_field():
    """The plan's texts are checked with the new name and numbers (today's plan leaves room for the
    longest allowed values, so a near-full text shows the check works)."""
    from types import SimpleNamespace

    from recovery.domain import texts
    from recovery.services.clinic_settings import ClinicSettings, text_problems
    full = SimpleNamespace(id="S99", text="{clinic}: " + "x" * 120, translations=())
    plan = SimpleNamespace(sms_name="Demo Clinic", budget=texts.DEFAULT_BUDGET, messages=[full])
    short = ClinicSettings("Short", "(202) 555-0100", None, "911", "America/New_York", None, None, None)
    assert text_problems(plan, short) == {}
    long = ClinicSettings("Northside Community Care Team", "(202) 555-0100", None, "911", "America/New_York",
                          None, None, None)
    assert text_problems(plan, long) == {}  # 151 characters: still one SMS
    plan.messages = [SimpleNamespace(id="S99", text="{clinic}: " + "x" * 135, translations=())]
    assert list(text_problems(plan, long)) == ["sms_name"] and "S99 would be 166" in text_problems(plan, long)["sms_name"]


def test_a_setting_that_would_push_a_translation_past_its_segments_is_named_with_the_language():
    """The Spanish text of a message is checked too, in its real encoding (UCS-2 for á: 67 units a
    segment when split), with the new name: the English check alone passed S24's Spanish at three
    segments with a long clinic name."""
    from types import SimpleNamespace

    from recovery.domain import texts
    from recovery.services.clinic_settings import ClinicSettings, text_problems
    message = SimpleNamespace(id="S98", text="{clinic}: short", translations=(("es", "{clinic}: " + "á" * 110),))
    plan = SimpleNamespace(sms_name="Demo Clinic", budget=texts.DEFAULT_BUDGET, messages=[message])
    short = ClinicSettings("Short", "(202) 555-0100", None, "911", "America/New_York", None, None, None)
    assert text_problems(plan, short) == {}  # 117 UCS-2 units: two segments
    long = ClinicSettings("Northside Community Care Team", "(202) 555-0100", None, "911", "America/New_York",
                          None, None, None)
    assert text_problems(plan, long) == {"sms_name": "S98 in Spanish would be 3 SMS segments (UCS-2), more than 2: "
                                                     "use a shorter one."}


def test_no_shipped_translation_makes_the_clinic_name_budget_shorter_than_english(app):
    """The longest name the English texts leave room for fits every language's texts too."""
    from recovery.services.clinic_settings import ClinicSettings, text_problems
    from recovery.files import templates as templates_repo
    import re
    from pathlib import Path
    from types import SimpleNamespace
    schedules = app.config["SCHEDULES_DIR"]
    def settings(n):
        return ClinicSettings("N" * n, "(202) 555-0100", None, "911", "America/New_York", None, None, None)
    newest = sorted(p.stem for p in (Path(schedules) / "clinics").glob("*.toml") if not re.search(r"_v\d+$", p.stem))
    for clinic_file in [None, *newest]:
        plan = templates_repo.clinic_template(schedules, clinic_file, "kyphoplasty")
        english_only = SimpleNamespace(sms_name=plan.sms_name, budget=plan.budget,
                                       messages=[SimpleNamespace(id=m.id, text=m.text, translations=())
                                                 for m in plan.messages])
        longest = max(n for n in range(1, 31) if text_problems(english_only, settings(n)) == {})
        assert longest >= 12 and text_problems(plan, settings(longest)) == {}, (clinic_file, longest)

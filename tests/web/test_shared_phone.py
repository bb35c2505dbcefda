"""Issue 13 §2 "Shared family numbers": a mobile another active patient of the clinic has is allowed
only after the nurse confirms a shared family phone; texts from it go to a nurse task (M7), not
into one patient's check-in; STOP from it stops texts for everyone on it."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from recovery.domain.alerts import rule_title
from recovery.scheduler.tick import tick
from recovery.services.episodes import end_monitoring
from recovery.store.models import Alert, AlertEvent, AuditEvent, Checkin, InboundMessage, Patient
from tests.services.test_dispatch import NOW, plant, settings
from tests.services.test_inbound import INVITE, conv_of, inbound, replies, text
from tests.support.factories import enrol, make_clinic, make_staff
from tests.web.test_episode import T0, nurse_client, world  # noqa: F401  (fixture)
from tests.web.test_episode_edit import form as edit_form, fresh
from tests.web.test_foundation_web import enrolment_form

FAMILY = "+12025550143"  # (202) 555-0143, enrolment_form's number


def audits(session, action, patient_id=None):
    stmt = sa.select(AuditEvent).where(AuditEvent.action == action)
    if patient_id is not None:
        stmt = stmt.where(AuditEvent.patient_id == patient_id)
    return session.scalars(stmt).all()


def test_enrolling_on_another_active_patients_mobile_asks_for_the_shared_phone_box(app, session, world):
    clinic, nurse, first = world["clinic"], world["nurse"], world["p"]
    first.mobile_e164 = FAMILY
    session.commit()
    c = nurse_client(app, nurse)
    r = c.post("/nurse/patients/new", data=enrolment_form(first_name="Jose", procedure_end="2026-03-10T08:00",
                                                          discharge_at="2026-03-10T10:00"))
    assert r.status_code == 422
    assert b"already has this mobile number" in r.data and b'name="shared_phone"' in r.data
    assert first.last_name.encode() in r.data  # the nurse sees who else is on it
    assert session.scalar(sa.select(sa.func.count()).select_from(Patient)) == 1  # nothing written
    r = c.post("/nurse/patients/new", data=enrolment_form(first_name="Jose", procedure_end="2026-03-10T08:00",
                                                          discharge_at="2026-03-10T10:00", shared_phone="y"))
    assert r.status_code == 303, r.data[-1500:]
    jose = session.scalar(sa.select(Patient).where(Patient.first_name == "Jose"))
    assert jose.mobile_e164 == FAMILY
    for p in (first, jose):  # both patients' records say who confirmed it
        (row,) = audits(session, "shared_number_confirmed", p.id)
        assert row.actor_id == nurse.id and sorted(row.detail["patients"]) == sorted([first.id, jose.id])
    page = c.get(f"/nurse/patients/{first.id}")
    assert b"Shared family phone" in page.data and b"Jose" in page.data


def test_another_clinics_patient_or_an_ended_episode_is_not_sharing(app, session, world):
    clinic, nurse, first = world["clinic"], world["nurse"], world["p"]
    other = make_clinic(session, now=T0)
    enrol(session, other, procedure_end=T0, now=T0 + timedelta(hours=2), mobile="+12025550188")
    first.mobile_e164 = FAMILY
    session.commit()
    end_monitoring(session, enrolment=first.enrolments[-1], patient=first, reason="completed", note=None,
                   staff=nurse, now=T0 + timedelta(hours=2))
    session.commit()
    c = nurse_client(app, nurse)
    r = c.post("/nurse/patients/new", data=enrolment_form(procedure_end="2026-03-10T08:00",
                                                          discharge_at="2026-03-10T10:00"))
    assert r.status_code == 303, r.data[-1500:]
    # the other clinic's patient on 555-0188 is not this clinic's business
    p = session.scalar(sa.select(Patient).where(Patient.mobile_e164 == FAMILY, Patient.id != first.id))
    r = c.post(f"/nurse/patients/{p.id}/edit", data=edit_form(mobile="(202) 555-0188"))
    assert r.status_code == 303, r.data[-1500:]
    assert not audits(session, "shared_number_confirmed")


def test_editing_to_another_patients_mobile_needs_the_box(app, session, world):
    clinic, nurse, p = world["clinic"], world["nurse"], world["p"]
    sister = enrol(session, clinic, procedure_end=T0, now=T0 + timedelta(hours=2), mobile="+12025550188")
    session.commit()
    c = nurse_client(app, nurse)
    r = c.post(f"/nurse/patients/{p.id}/edit", data=edit_form(mobile="(202) 555-0188"))
    assert r.status_code == 422 and b"already has this mobile number" in r.data and b'name="shared_phone"' in r.data
    assert fresh(session, p).mobile_e164 != "+12025550188"
    r = c.post(f"/nurse/patients/{p.id}/edit", data=edit_form(mobile="(202) 555-0188", shared_phone="y"))
    assert r.status_code == 303, r.data[-1500:]
    assert fresh(session, p).mobile_e164 == "+12025550188"
    assert len(audits(session, "shared_number_confirmed", sister.id)) == 1
    (changed,) = audits(session, "patient_details_changed", p.id)
    assert changed.detail["shared_with"] == [sister.id]


def answers(session, patient):
    """Replies to the patient's texts (the opt-in confirmation S00 left out)."""
    return [m for m in replies(session, patient) if m != "S00"]


def _family(session):
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    ana = enrol(session, clinic, procedure_end=NOW - timedelta(days=5), now=NOW, first="Ana", mobile=FAMILY)
    ben = enrol(session, clinic, procedure_end=NOW - timedelta(days=3), now=NOW, first="Ben", mobile=FAMILY,
                shared_phone=True, staff=nurse)
    session.commit()
    return ana, ben


def test_a_text_from_a_shared_phone_goes_to_a_nurse_task_not_a_checkin(app, session, client, sms, frozen):
    frozen.move_to(NOW)
    ana, ben = _family(session)
    plant(session, ana, due=NOW, message_id="S06", kind="checkin_invite", slot="day5", text=INVITE)
    tick(session, sms, NOW, settings(app))
    assert conv_of(session, ana).state == "awaiting_pain"  # the invitation still opened Ana's conversation
    frozen.move_to(NOW + timedelta(minutes=10))
    text(client, FAMILY, "7")
    assert session.scalar(sa.select(Checkin.id)) is None  # the score went into nobody's check-in
    assert conv_of(session, ana).state == "awaiting_pain"
    (msg,) = inbound(session)
    assert (msg.handled_as, msg.patient_id) == ("shared_phone", None)  # in no patient's inbox
    (task,) = session.scalars(sa.select(Alert)).all()
    assert (task.rules, task.level.value, task.patient_id) == (["M7"], "URGENT", ben.id)
    (opened,) = session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == task.id)).all()
    assert opened.detail["shared_text"] == "7" and opened.detail["inbound_message_id"] == msg.id
    assert {c["id"] for c in opened.detail["candidates"]} == {ana.id, ben.id}
    # the neutral reply, without either name
    assert answers(session, ben) == ["S29"] and answers(session, ana) == []
    tick(session, sms, NOW + timedelta(minutes=10), settings(app))
    (body,) = [m.body for m in sms.sent if "This phone is shared" in m.body]
    assert body.startswith("Thanks for your text. This phone is shared, so your care team will call")
    assert "Ana" not in body and "Ben" not in body
    # a second text while the task is open is added to its history
    frozen.move_to(NOW + timedelta(minutes=20))
    text(client, FAMILY, "it is Ana, my leg hurts")
    assert len(session.scalars(sa.select(Alert)).all()) == 1
    events = session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == task.id)
                             .order_by(AlertEvent.id)).all()
    assert events[-1].kind == "repeated" and events[-1].detail["shared_text"] == "it is Ana, my leg hurts"
    assert rule_title("M7").startswith("Text from a shared family phone")


def test_the_task_shows_the_text_and_both_patients_on_the_record(app, session, client, frozen):
    frozen.move_to(NOW)
    ana, ben = _family(session)
    text(client, FAMILY, "call me please")
    nurse = session.scalar(sa.select(AuditEvent.actor_id).where(AuditEvent.action == "shared_number_confirmed"))
    from recovery.store.models import StaffUser
    page = nurse_client(app, session.get(StaffUser, nurse)).get(f"/nurse/patients/{ben.id}")
    assert b"call me please" in page.data and b"Ana Test" in page.data and b"Ben Test" in page.data


def test_stop_from_a_shared_phone_stops_everyone_on_it_and_help_still_answers(app, session, client, frozen):
    frozen.move_to(NOW)
    ana, ben = _family(session)
    text(client, FAMILY, "HELP")
    assert answers(session, ben) == ["S24"]
    text(client, FAMILY, "STOP")
    assert fresh(session, ana).sms_opted_out and fresh(session, ben).sms_opted_out
    assert sorted(r for a in session.scalars(sa.select(Alert)) for r in a.rules) == ["M5", "M5"]
    assert [m.handled_as for m in inbound(session)] == ["help", "opt_out"]
    text(client, FAMILY, "START")
    assert not fresh(session, ana).sms_opted_out and not fresh(session, ben).sms_opted_out


def test_when_one_episode_ends_the_number_is_single_again(app, session, client, frozen):
    frozen.move_to(NOW)
    ana, ben = _family(session)
    nurse_id = session.scalar(sa.select(AuditEvent.actor_id).where(AuditEvent.action == "shared_number_confirmed"))
    from recovery.store.models import StaffUser
    end_monitoring(session, enrolment=ben.enrolments[-1], patient=ben, reason="completed", note=None,
                   staff=session.get(StaffUser, nurse_id), now=NOW)
    session.commit()
    text(client, FAMILY, "hello")
    (msg,) = session.scalars(sa.select(InboundMessage)).all()
    assert (msg.handled_as, msg.patient_id) == ("inbox", ana.id)


def test_a_new_link_asked_for_from_a_shared_phone_goes_to_each_patient_by_first_name(client, session, frozen):
    from recovery.store.models import OutboundMessage
    frozen.move_to(NOW)
    ana, ben = _family(session)
    r = client.post("/new-link", data={"mobile": "(202) 555-0143"})
    assert r.status_code == 200
    links = session.scalars(sa.select(OutboundMessage).where(OutboundMessage.message_id == "LINK")).all()
    assert sorted(row.patient_id for row in links) == sorted([ana.id, ben.id])  # each its own link, its own name
    assert all(row.text_template.startswith("Hi {first},") for row in links)


def test_the_resolve_panel_shows_the_texts_and_links_both_patients(app, session, client, frozen):
    from recovery.store.models import StaffUser
    frozen.move_to(NOW)
    ana, ben = _family(session)
    text(client, FAMILY, "who is this for")
    task = session.scalar(sa.select(Alert))
    nurse = session.get(StaffUser, session.scalar(sa.select(AuditEvent.actor_id).where(
        AuditEvent.action == "shared_number_confirmed")))
    page = nurse_client(app, nurse).get(f"/nurse/alerts/{task.id}/resolve")
    assert page.status_code == 200
    assert "“who is this for”".encode() in page.data
    for p in (ana, ben):
        assert f'href="/nurse/patients/{p.id}"'.encode() in page.data

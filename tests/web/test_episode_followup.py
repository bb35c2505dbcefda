"""Issue 13 §2, through the nurse's pages: a real follow-up appointment (day, time, place; booked,
changed, cleared; the Today page and the .ics follow it) and a new episode for the same person once
the current one has ended (its own plan, timeline, texts; the link shows it; the earlier one stays
readable; the roster shows the patient once)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from icalendar import Calendar

from recovery.services import checkins, clinic_plans
from recovery.store.enrolments import active_enrolment, current_enrolment
from recovery.store.models import (AuditEvent, Checkin, Enrolment, EnrolmentStatus, OutboundMessage, OutboxStatus, Patient,
                                   StaffRole)
from tests.support.factories import enrol, login, make_clinic, make_staff, open_link, patient_link, template_for

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=NY)
NOW = T0 + timedelta(hours=3)
BOOK = {"day": "2026-04-02", "time": "14:15", "place": "Spine clinic, 2nd floor"}


@pytest.fixture
def world(app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    clinic = make_clinic(session, now=T0, template_file="demo-clinic")
    other = make_clinic(session, now=T0)
    nurse, stranger = make_staff(session, clinic, now=T0), make_staff(session, other, now=T0)
    p = enrol(session, clinic, procedure_end=T0.astimezone(UTC), now=NOW, first="Dora")
    session.commit()
    return {"clinic": clinic, "nurse": nurse, "stranger": stranger, "p": p, "tm": time_machine}


def client_for(app, staff):
    c = app.test_client()
    assert login(c, staff).status_code == 303
    return c


def fresh(session, p) -> Patient:
    session.expire_all()
    return session.get(Patient, p.id)


def planned(session, enrolment_id, code):
    return session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.enrolment_id == enrolment_id, OutboundMessage.message_id == code,
        OutboundMessage.recipient == "patient", OutboundMessage.status == OutboxStatus.PLANNED)).all()


# ---- the follow-up appointment ------------------------------------------------------------------

def test_booking_changing_and_clearing_the_appointment(app, session, world):
    p, nurse = world["p"], world["nurse"]
    c = client_for(app, nurse)
    page = c.get(f"/nurse/patients/{p.id}")
    assert b"Follow-up appointment" in page.data and b"Book the appointment" in page.data
    assert c.get(f"/nurse/patients/{p.id}/followup").status_code == 200
    r = c.post(f"/nurse/patients/{p.id}/followup", data=BOOK)
    assert r.status_code == 303, r.data[:2000]
    e = current_enrolment(fresh(session, p))
    assert e.followup_at == datetime(2026, 4, 2, 14, 15, tzinfo=NY).astimezone(UTC)
    assert e.followup_place == "Spine clinic, 2nd floor"
    (s17,) = planned(session, e.id, "S17")
    assert s17.send_after.astimezone(NY).date() == datetime(2026, 4, 1).date()
    page = c.get(f"/nurse/patients/{p.id}").get_data(as_text=True)
    assert "Thu 2 Apr 2026, 14:15" in page and "Spine clinic, 2nd floor" in page
    # change: the form shows what is booked; a new time moves S17 again, one row
    form = c.get(f"/nurse/patients/{p.id}/followup").get_data(as_text=True)
    assert 'value="2026-04-02"' in form and 'value="14:15"' in form
    assert c.post(f"/nurse/patients/{p.id}/followup", data=BOOK | {"day": "2026-04-16", "place": "Room 4"}).status_code == 303
    e = current_enrolment(fresh(session, p))
    (s17,) = planned(session, e.id, "S17")
    assert s17.send_after.astimezone(NY).date() == datetime(2026, 4, 15).date()
    assert c.post(f"/nurse/patients/{p.id}/followup/clear").status_code == 303
    e = current_enrolment(fresh(session, p))
    assert e.followup_at is None and e.followup_place is None
    actions = [a.action for a in session.scalars(sa.select(AuditEvent).where(
        AuditEvent.patient_id == p.id, AuditEvent.action.like("followup_%")).order_by(AuditEvent.id))]
    assert actions == ["followup_booked", "followup_changed", "followup_cleared"]


@pytest.mark.parametrize("data, message", [
    ({}, b"Enter the day of the appointment"),
    (BOOK | {"day": "2 April"}, b"year-month-day"),
    (BOOK | {"time": "2pm"}, b"hours:minutes"),
    (BOOK | {"time": ""}, b"Enter the time of the appointment"),
    (BOOK | {"place": "  "}, b"Enter where the appointment is"),
    (BOOK | {"place": "x" * 121}, b"120 characters"),
    (BOOK | {"day": "2026-03-09"}, b"must be after the procedure"),
    (BOOK | {"day": "2026-03-10", "time": "10:30"}, b"The plan cannot take this time"),  # before discharge
])
def test_a_bad_appointment_comes_back_422_with_the_reason_and_nothing_changes(app, session, world, data, message):
    p = world["p"]
    c = client_for(app, world["nurse"])
    r = c.post(f"/nurse/patients/{p.id}/followup", data=data)
    assert r.status_code == 422 and message in r.data, r.data[:3000]
    assert current_enrolment(fresh(session, p)).followup_at is None


def test_another_clinics_nurse_gets_404_and_a_patient_is_refused(app, session, world):
    p = world["p"]
    c = client_for(app, world["stranger"])
    for method, url in (("GET", f"/nurse/patients/{p.id}/followup"), ("POST", f"/nurse/patients/{p.id}/followup"),
                        ("POST", f"/nurse/patients/{p.id}/followup/clear"),
                        ("GET", f"/nurse/patients/{p.id}/episodes/new"),
                        ("POST", f"/nurse/patients/{p.id}/episodes/new"),
                        ("GET", f"/nurse/episodes/{current_enrolment(p).id}")):
        r = c.open(url, method=method, data=BOOK if method == "POST" else None)
        assert r.status_code == 404 and b"Dora" not in r.data, (method, url, r.status_code)
    token = patient_link(session, p, now=NOW)
    session.commit()
    patient = app.test_client()
    assert open_link(patient, token).status_code == 303
    for method, url in (("GET", f"/nurse/patients/{p.id}/followup"), ("POST", f"/nurse/patients/{p.id}/followup"),
                        ("POST", f"/nurse/patients/{p.id}/episodes/new")):
        r = patient.open(url, method=method, data=BOOK if method == "POST" else None)
        assert r.status_code in (302, 403) and (r.status_code == 403 or "/login" in r.headers["Location"]), url
    assert current_enrolment(fresh(session, p)).followup_at is None


def test_the_today_page_and_the_calendar_show_the_appointment_with_its_place(app, session, world):
    p = world["p"]
    assert client_for(app, world["nurse"]).post(f"/nurse/patients/{p.id}/followup", data=BOOK).status_code == 303
    token = patient_link(session, p, now=NOW)
    session.commit()
    patient = app.test_client()
    assert open_link(patient, token).status_code == 303
    today = patient.get("/me").get_data(as_text=True)
    assert "Your follow-up appointment" in today and "Thursday 2 Apr, 2:15 pm" in today
    assert "Where: Spine clinic, 2nd floor" in today
    cal = Calendar.from_ical(patient.get("/me/calendar.ics").data)
    (visit,) = [ev for ev in cal.walk("VEVENT") if str(ev["SUMMARY"]) == "Follow-up visit"]
    assert str(visit["LOCATION"]) == "Spine clinic, 2nd floor"
    start = visit.decoded("DTSTART")
    assert start == datetime(2026, 4, 2, 14, 15, tzinfo=NY) and str(visit["DTSTART"].params["TZID"]) == "America/New_York"
    assert visit.decoded("DTEND") - start == timedelta(hours=1)
    assert "confirm the time" not in str(visit["DESCRIPTION"])


def test_the_appointment_in_spanish(app, session, world):
    p = world["p"]
    p.language = "es"
    session.commit()
    assert client_for(app, world["nurse"]).post(f"/nurse/patients/{p.id}/followup", data=BOOK).status_code == 303
    token = patient_link(session, p, now=NOW)
    session.commit()
    patient = app.test_client()
    assert open_link(patient, token).status_code == 303
    today = patient.get("/me").get_data(as_text=True)
    assert "Su cita de seguimiento" in today and "Dónde: Spine clinic, 2nd floor" in today
    ics = patient.get("/me/calendar.ics").get_data(as_text=True)
    assert "Su cita de seguimiento con su equipo" in ics.replace("\r\n ", "")


# ---- a new episode ------------------------------------------------------------------------------

EPISODE = {"procedure_type": "vertebroplasty", "procedure_end": "2026-05-04T11:00"}


def test_a_new_episode_needs_the_current_one_ended_first(app, session, world):
    p = world["p"]
    c = client_for(app, world["nurse"])
    page = c.get(f"/nurse/patients/{p.id}/episodes/new")
    assert page.status_code == 200 and b"End it first" in page.data
    r = c.post(f"/nurse/patients/{p.id}/episodes/new", data=EPISODE)
    assert r.status_code == 422 and b"has not ended. End it first" in r.data
    assert len(fresh(session, p).enrolments) == 1


def test_a_new_episode_for_the_same_person(app, session, world):
    p, nurse, clinic, tm = world["p"], world["nurse"], world["clinic"], world["tm"]
    first = current_enrolment(p)
    checkin = checkins.start_checkin(session, enrolment=first, patient=p, slot=None, source="web", now=NOW)
    session.commit()
    c = client_for(app, nurse)
    assert c.post(f"/nurse/patients/{p.id}/end", data={"reason": "completed"}).status_code == 303
    # the admin publishes a new plan version between the episodes: the new one gets it
    from tests.web.test_admin_plan import _form
    admin = make_staff(session, clinic, role=StaffRole.ADMIN, now=T0)
    session.commit()
    a = client_for(app, admin)
    assert a.post("/admin/plan", data=_form(a.get("/admin/plan").data) | {"TL03_end": "T0+72h",
                                                                          "action": "publish"}).status_code == 303
    tm.move_to(datetime(2026, 5, 4, 13, 0, tzinfo=NY), tick=False)
    c = client_for(app, nurse)  # weeks later: a new sign-in
    page = c.get(f"/nurse/patients/{p.id}")
    assert b"Start a new episode" in page.data
    for bad, message in (({"procedure_type": "vertebroplasty"}, b"Enter when the procedure ended"),
                         (EPISODE | {"procedure_type": "x"}, b"Not a valid choice"),
                         (EPISODE | {"procedure_end": "2026-06-04T11:00"}, b"future")):
        r = c.post(f"/nurse/patients/{p.id}/episodes/new", data=bad)
        assert r.status_code == 422 and message in r.data, (bad, r.data[:3000])
    r = c.post(f"/nurse/patients/{p.id}/episodes/new", data=EPISODE | {"baseline_back_pain": "4", "brace": "y"})
    assert r.status_code == 303, r.data[:3000]
    p = fresh(session, p)
    assert len(p.enrolments) == 2
    second = current_enrolment(p)
    assert second.id != first.id and active_enrolment(session, p) is second
    assert second.procedure_type == "vertebroplasty" and second.baseline_back_pain == 4 and second.brace
    assert second.procedure_end == datetime(2026, 5, 4, 11, 0, tzinfo=NY).astimezone(UTC)
    newest = clinic_plans.newest(session, clinic.id)
    assert second.plan_version_id == newest.id and second.template_version == template_for(clinic).version
    assert session.get(Enrolment, first.id).status == EnrolmentStatus.ENDED
    assert planned(session, second.id, "S16") and not planned(session, first.id, "S16")
    (event,) = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "episode_started")).all()
    assert event.detail["previous_enrolment"] == first.id and event.actor_id == nurse.id
    # the patient page is the new episode; the earlier one is listed and readable
    page = c.get(f"/nurse/patients/{p.id}").get_data(as_text=True)
    assert "Episodes" in page and f"/nurse/episodes/{first.id}" in page and "Vertebroplasty" in page
    assert "No check-ins yet." in page  # the first episode's check-in is not the new one's
    old = c.get(f"/nurse/episodes/{first.id}")
    assert old.status_code == 200
    old_page = old.get_data(as_text=True)
    assert "An earlier episode" in old_page and "No check-ins yet." not in old_page
    assert "End monitoring" not in old_page and "Correct and re-plan texts" not in old_page
    viewed = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "record_viewed",
                                                         AuditEvent.patient_id == p.id)).all()
    assert any(v.detail.get("enrolment") == first.id for v in viewed)
    assert c.get(f"/nurse/episodes/{second.id}").status_code == 303  # the current one is the patient page
    # the roster shows the patient once, with the current episode
    roster = c.get("/nurse/patients").get_data(as_text=True)
    assert roster.count(f"/nurse/patients/{p.id}\"") == 1
    # the patient's link shows the new episode (not "your texts have ended")
    token = patient_link(session, p, now=datetime(2026, 5, 4, 13, 0, tzinfo=NY))
    session.commit()
    patient = app.test_client()
    assert open_link(patient, token).status_code == 303
    today = patient.get("/me")
    assert today.status_code == 200 and b"have ended" not in today.data and b"Day of your procedure" in today.data
    # a symptom report started now belongs to the new episode
    assert checkin.enrolment_id == first.id
    assert patient.post("/me/checkin/report").status_code == 303
    started = session.scalars(sa.select(Checkin).where(Checkin.patient_id == p.id).order_by(Checkin.id.desc())).first()
    assert started.id != checkin.id and started.enrolment_id == second.id

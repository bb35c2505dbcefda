"""Issue 13 §2 "Edit a patient": mobile (re-validated; a new number clears "number not working"
and retries nothing old), caregiver and consent, consent to texts, time zone (re-plans), language."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recovery.store.models import AuditEvent, OutboundMessage, OutboxStatus, Patient
from recovery.store.enrolments import current_enrolment
from tests.support.factories import enrol, make_clinic, make_staff
from tests.services.test_dispatch import rows
from tests.web.test_episode import T0, local, nurse_client, ticks, world  # noqa: F401  (fixture)

FORM = {"mobile": "(202) 555-0188", "timezone": "America/New_York", "language": "en", "sms_consent": "y",
        "caregiver_name": "", "caregiver_mobile": "", "caregiver_consent": ""}


def form(**over):
    data = {**FORM, **over}
    return {k: v for k, v in data.items() if v != "" or k in ("caregiver_name", "caregiver_mobile")}


def fresh(session, p) -> Patient:
    return session.scalar(sa.select(Patient).where(Patient.id == p.id).execution_options(populate_existing=True))


def changes(session, p):
    return [a.detail for a in session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "patient_details_changed", AuditEvent.patient_id == p.id).order_by(AuditEvent.id))]


def test_the_form_shows_the_current_details_and_its_view_is_audited(app, session, world):
    p, nurse = world["p"], world["nurse"]
    page = nurse_client(app, nurse).get(f"/nurse/patients/{p.id}/edit")
    assert page.status_code == 200
    assert f'value="{p.mobile_e164}"'.encode() in page.data and b"selected value=\"America/New_York\"" in page.data
    assert session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "record_viewed",
                                                      AuditEvent.patient_id == p.id,
                                                      AuditEvent.detail["page"].as_string() == "edit"))


def test_a_new_number_clears_not_working_retries_nothing_and_gets_the_planned_texts(app, session, sms, world):
    p, nurse = world["p"], world["nurse"]
    ticks(app, sms, local(0, 12), local(0, 13))
    e = current_enrolment(p)
    failed = rows(session, enrolment_id=e.id)[0]
    failed.status, failed.status_reason = OutboxStatus.FAILED, "invalid_number"
    p.number_status = "invalid"
    old_number = p.mobile_e164
    session.commit()
    world["tm"].move_to(local(0, 14), tick=False)
    r = nurse_client(app, nurse).post(f"/nurse/patients/{p.id}/edit", data=form(mobile="(202) 555-0188"))
    assert r.status_code == 303, r.data[-2000:]
    p = fresh(session, p)
    assert (p.mobile_e164, p.number_status) == ("+12025550188", "ok")
    (detail,) = changes(session, p)
    assert detail["changes"] == {"mobile_e164": {"old": old_number, "new": "+12025550188"}}
    assert detail["number_status"] == {"old": "invalid", "new": "ok"}
    before_old = len(sms.sent_to(old_number))
    ticks(app, sms, local(0, 14), local(1, 12), every=timedelta(hours=1))
    assert len(sms.sent_to(old_number)) == before_old
    assert sms.sent_to("+12025550188")
    got = session.scalar(sa.select(OutboundMessage).where(OutboundMessage.id == failed.id)
                         .execution_options(populate_existing=True))
    assert got.status == OutboxStatus.FAILED and got.attempts == failed.attempts  # not retried


@pytest.mark.parametrize("over,field_error", [
    ({"mobile": "12"}, b"mobile"), ({"mobile": ""}, b"Enter a mobile number for texts."),
    ({"mobile": "(202) 555-0188\u202e"}, b"hidden text-direction"),
    ({"timezone": "Mars/Olympus"}, b"Not a valid choice"),
    ({"language": "xx"}, b"Not a valid choice"),
    ({"caregiver_consent": "y"}, b"Add the caregiver&#39;s mobile number"),
    ({"caregiver_mobile": "555"}, b"Caregiver mobile"),
    ({"caregiver_name": "x" * 121}, b"Caregiver name"),
])
def test_bad_details_are_422_with_the_error_and_change_nothing(app, session, world, over, field_error):
    p, nurse = world["p"], world["nurse"]
    before = (p.mobile_e164, p.timezone, p.caregiver_consent)
    r = nurse_client(app, nurse).post(f"/nurse/patients/{p.id}/edit", data=form(**over))
    assert r.status_code == 422 and field_error in r.data, r.data[-3000:]
    assert b"Please check" in r.data
    p = fresh(session, p)
    assert (p.mobile_e164, p.timezone, p.caregiver_consent) == before
    assert changes(session, p) == []


def test_a_new_time_zone_replans_the_texts_still_ahead(app, session, world):
    p, nurse = world["p"], world["nurse"]
    e = current_enrolment(p)
    ahead = {r.occurrence_key: r.send_after for r in rows(session, enrolment_id=e.id, recipient="patient",
                                                           status=OutboxStatus.PLANNED) if r.occurrence_key == "S06:day3"}
    assert ahead["S06:day3"] == datetime(2026, 3, 13, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    r = nurse_client(app, nurse).post(f"/nurse/patients/{p.id}/edit",
                                      data=form(mobile=p.mobile_e164, timezone="America/Los_Angeles"))
    assert r.status_code == 303
    planned = [r for r in rows(session, enrolment_id=e.id, recipient="patient", status=OutboxStatus.PLANNED)
               if r.occurrence_key == "S06:day3"]
    assert [r.send_after for r in planned] == [datetime(2026, 3, 13, 9, 0, tzinfo=ZoneInfo("America/Los_Angeles"))]
    (detail,) = changes(session, p)
    assert detail["changes"] == {"timezone": {"old": "America/New_York", "new": "America/Los_Angeles"}}
    assert detail["texts_cancelled"] > 0 and detail["texts_planned"] > 0


def test_consent_withdrawn_cancels_the_texts_and_given_again_plans_those_ahead(app, session, world):
    p, nurse = world["p"], world["nurse"]
    e = current_enrolment(p)
    c = nurse_client(app, nurse)
    n_planned = len(rows(session, enrolment_id=e.id, status=OutboxStatus.PLANNED))
    assert c.post(f"/nurse/patients/{p.id}/edit", data=form(mobile=p.mobile_e164, sms_consent="")).status_code == 303
    assert rows(session, enrolment_id=e.id, status=OutboxStatus.PLANNED) == []
    assert len([r for r in rows(session, enrolment_id=e.id) if r.status_reason == "no_consent"]) == n_planned
    world["tm"].move_to(local(1, 12), tick=False)
    c = nurse_client(app, nurse)
    assert c.post(f"/nurse/patients/{p.id}/edit", data=form(mobile=p.mobile_e164)).status_code == 303
    again = rows(session, enrolment_id=e.id, status=OutboxStatus.PLANNED)
    assert again and all(r.send_after > local(1, 12) for r in again)


def test_caregiver_copies_follow_their_consent_and_a_new_caregiver_number_is_not_opted_out(app, session, world):
    p, nurse = world["p"], world["nurse"]
    e = current_enrolment(p)
    c = nurse_client(app, nurse)
    r = c.post(f"/nurse/patients/{p.id}/edit", data=form(mobile=p.mobile_e164, caregiver_name="Ana",
                                                         caregiver_mobile="(202) 555-0199", caregiver_consent="y"))
    assert r.status_code == 303
    copies = rows(session, enrolment_id=e.id, recipient="caregiver", status=OutboxStatus.PLANNED)
    assert copies and all(r.kind == "reminder" for r in copies)
    p = fresh(session, p)
    p.caregiver_opted_out = True
    session.commit()
    r = c.post(f"/nurse/patients/{p.id}/edit", data=form(mobile=p.mobile_e164, caregiver_name="Ana",
                                                         caregiver_mobile="(202) 555-0198", caregiver_consent=""))
    assert r.status_code == 303
    assert rows(session, enrolment_id=e.id, recipient="caregiver", status=OutboxStatus.PLANNED) == []
    p = fresh(session, p)
    assert (p.caregiver_mobile_e164, p.caregiver_consent, p.caregiver_opted_out) == ("+12025550198", False, False)
    assert changes(session, p)[-1]["caregiver_opted_out"] == {"old": True, "new": False}


def test_an_unchanged_form_writes_no_audit_row(app, session, world):
    p, nurse = world["p"], world["nurse"]
    r = nurse_client(app, nurse).post(f"/nurse/patients/{p.id}/edit", data=form(mobile=p.mobile_e164))
    assert r.status_code == 303
    assert changes(session, p) == []


def test_another_clinics_nurse_gets_404(app, session, world):
    p = world["p"]
    other = make_staff(session, make_clinic(session, now=T0), now=T0)
    session.commit()
    c = nurse_client(app, other)
    assert c.get(f"/nurse/patients/{p.id}/edit").status_code == 404
    assert c.post(f"/nurse/patients/{p.id}/edit", data=form()).status_code == 404
    assert fresh(session, p).mobile_e164 != "+12025550188"
    assert app.test_client().get(f"/nurse/patients/{p.id}/edit").status_code == 403


def test_a_time_zone_change_during_a_pause_plans_nothing_inside_it(app, session, sms, world):
    """Found by tests/system/test_episode_machine.py: re-planning revived the texts the pause had cancelled
    (the sender then cancelled them again; now they are not planned at all)."""
    p, nurse = world["p"], world["nurse"]
    c = nurse_client(app, nurse)
    assert c.post(f"/nurse/patients/{p.id}/pause", data={"until": "2026-03-14"}).status_code == 303
    assert c.post(f"/nurse/patients/{p.id}/edit", data=form(mobile=p.mobile_e164,
                                                            timezone="America/Chicago")).status_code == 303
    e = current_enrolment(p)
    session.refresh(e)
    planned = rows(session, enrolment_id=e.id, status=OutboxStatus.PLANNED)
    assert planned and all(r.send_after >= e.paused_until for r in planned if r.kind != "event_reply")
    ticks(app, sms, local(0, 13), local(3, 12), every=timedelta(hours=2))
    session.rollback()  # a fresh read after the ticks' commits
    went = [r for r in rows(session, enrolment_id=e.id) if r.sent_at is not None]
    assert [r.kind for r in went] == ["event_reply"]  # only the opt-in confirmation (S00)

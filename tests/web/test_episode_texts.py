"""Issue 13 §2: "Resend a link" and "a one-off text" (segment counter on the server, through the
outbox and quiet hours unless urgent, audited; never to an ended or paused enrolment or an
opted-out number)."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from recovery.store.models import AuditEvent, OutboundMessage, OutboxStatus, Patient
from recovery.store.enrolments import current_enrolment
from tests.support.factories import make_clinic, make_staff, open_link, patient_link
from tests.web.test_episode import T0, local, nurse_client, ticks, world  # noqa: F401  (fixture)


def nurse_rows(session, p, kind):
    return session.scalars(sa.select(OutboundMessage).where(OutboundMessage.patient_id == p.id,
                                                            OutboundMessage.kind == kind)
                           .execution_options(populate_existing=True)).all()


def text_form(body="{first}, please call us on {phone} when you can.", **over):
    return {"body": body, "nonce": uuid.uuid4().hex, **over}


def test_the_form_counts_segments_on_the_server_and_live_with_htmx(app, session, world):
    p, nurse = world["p"], world["nurse"]
    c = nurse_client(app, nurse)
    page = c.get(f"/nurse/patients/{p.id}/text")
    assert page.status_code == 200 and b'name="nonce"' in page.data and b"1 SMS segment" in page.data
    assert b'hx-post="/nurse/patients/%d/text/count"' % p.id in page.data
    r = c.post(f"/nurse/patients/{p.id}/text/count", data={"body": "a" * 161}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and b"2 SMS segments" in r.data and b"GSM-7" in r.data
    r = c.post(f"/nurse/patients/{p.id}/text/count", data={"body": "Dzie\u0144 dobry"})
    assert b"1 SMS segment" in r.data and b"UCS-2" in r.data
    # the name and a real-length link are counted: 150 characters plus {link} is two segments
    r = c.post(f"/nurse/patients/{p.id}/text/count", data={"body": "b" * 150 + " {link}"})
    assert b"2 SMS segments" in r.data
    # without JavaScript: "Count segments" re-renders the form with the count, sends nothing
    r = c.post(f"/nurse/patients/{p.id}/text", data=text_form(body="c" * 200, action="check"))
    assert r.status_code == 200 and b"2 SMS segments" in r.data
    assert nurse_rows(session, p, "nurse_text") == []


def test_a_routine_text_waits_for_quiet_hours_to_end_and_an_urgent_one_goes_at_once(app, session, sms, world):
    p, nurse = world["p"], world["nurse"]
    ticks(app, sms, local(0, 12), local(0, 23))  # the day's plan goes first
    world["tm"].move_to(local(0, 22, 10), tick=False)
    c = nurse_client(app, nurse)
    assert c.post(f"/nurse/patients/{p.id}/text", data=text_form("Quiet one {first}")).status_code == 303
    assert c.post(f"/nurse/patients/{p.id}/text",
                  data=text_form("Loud one {first}", urgent="y")).status_code == 303
    before = {s.body for s in sms.sent_to(p.mobile_e164)}
    ticks(app, sms, local(0, 22, 15), local(0, 23, 45))
    night = {s.body for s in sms.sent_to(p.mobile_e164)} - before
    assert night == {f"Loud one {p.first_name}"}
    ticks(app, sms, local(1, 8, 0), local(1, 8, 30))
    assert f"Quiet one {p.first_name}" in {s.body for s in sms.sent_to(p.mobile_e164)}
    audits = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "nurse_text_queued",
                                                         AuditEvent.patient_id == p.id)).all()
    assert [a.detail["urgent"] for a in audits] == [False, True] and all(a.actor_id == nurse.id for a in audits)
    assert all("Quiet" not in str(a.detail) for a in audits)  # the words are in the outbox, not the audit


def test_the_same_form_sent_twice_queues_one_text(app, session, world):
    p, nurse = world["p"], world["nurse"]
    c = nurse_client(app, nurse)
    data = text_form()
    assert c.post(f"/nurse/patients/{p.id}/text", data=data).status_code == 303
    assert c.post(f"/nurse/patients/{p.id}/text", data=data).status_code == 303
    assert len(nurse_rows(session, p, "nurse_text")) == 1


@pytest.mark.parametrize("over,message", [
    ({"body": ""}, b"Write the text."), ({"body": "   "}, b"Write the text."),
    ({"body": "Your {diagnosis} is fine"}, b"placeholder {diagnosis} is not allowed"),
    ({"body": "a stray { brace"}, b"stray"),
    ({"body": "Your fracture is healing"}, b"reveals health information"),
    ({"body": "d" * 470}, b"4 SMS segments"),
    ({"body": "e" * 601}, b"600 characters"),
    ({"nonce": ""}, b"out of date"), ({"nonce": "../../x"}, b"out of date"),
])
def test_a_bad_text_is_422_with_the_reason_and_queues_nothing(app, session, world, over, message):
    p, nurse = world["p"], world["nurse"]
    r = nurse_client(app, nurse).post(f"/nurse/patients/{p.id}/text", data=text_form(**over))
    assert r.status_code == 422 and message in r.data, r.data[-3000:]
    assert nurse_rows(session, p, "nurse_text") == []


@pytest.mark.parametrize("state", ["paused", "ended", "opted_out", "invalid_number", "no_consent"])
def test_nothing_is_sent_by_hand_to_an_ended_or_paused_episode_or_a_number_that_cannot_be_texted(
        app, session, sms, world, state):
    p, nurse = world["p"], world["nurse"]
    c = nurse_client(app, nurse)
    if state == "paused":
        assert c.post(f"/nurse/patients/{p.id}/pause", data={"until": "2026-03-20"}).status_code == 303
    elif state == "ended":
        assert c.post(f"/nurse/patients/{p.id}/end", data={"reason": "deceased"}).status_code == 303
    else:
        p = session.get(Patient, p.id)
        setattr(p, {"opted_out": "sms_opted_out", "invalid_number": "number_status",
                    "no_consent": "sms_consent"}[state],
                {"opted_out": True, "invalid_number": "invalid", "no_consent": False}[state])
        session.commit()
    page = c.get(f"/nurse/patients/{p.id}/text")
    assert page.status_code == 200 and b'name="body"' not in page.data
    r = c.post(f"/nurse/patients/{p.id}/text", data=text_form(urgent="y"))
    assert r.status_code == 409 and b"Not sent" in r.data
    r = c.post(f"/nurse/patients/{p.id}/link", data={"nonce": uuid.uuid4().hex})
    assert r.status_code == 409 and b"No link sent" in r.data
    assert nurse_rows(session, p, "nurse_text") == [] and nurse_rows(session, p, "nurse_link") == []
    assert b"Text a new link" not in c.get(f"/nurse/patients/{p.id}").data


def test_send_time_refuses_a_hand_text_queued_before_monitoring_ended(app, session, sms, world):
    p, nurse = world["p"], world["nurse"]
    world["tm"].move_to(local(0, 22, 10), tick=False)
    c = nurse_client(app, nurse)
    assert c.post(f"/nurse/patients/{p.id}/text", data=text_form("Tomorrow {first}")).status_code == 303
    assert c.post(f"/nurse/patients/{p.id}/end", data={"reason": "deceased"}).status_code == 303
    (row,) = nurse_rows(session, p, "nurse_text")
    assert (row.status, row.status_reason) == (OutboxStatus.CANCELLED, "enrolment_ended")
    ticks(app, sms, local(1, 8), local(1, 9))
    assert not any("Tomorrow" in s.body for s in sms.sent_to(p.mobile_e164))


def test_a_resent_link_opens_today_and_the_earlier_link_keeps_working(app, session, sms, world):
    p, nurse = world["p"], world["nurse"]
    old = patient_link(session, p, now=T0 + timedelta(hours=2))
    session.commit()
    world["tm"].move_to(local(0, 13), tick=False)
    c = nurse_client(app, nurse)
    page = c.get(f"/nurse/patients/{p.id}").get_data(as_text=True)
    nonce = re.search(r'action="/nurse/patients/\d+/link">\s*<input[^>]*>\s*<input type="hidden" name="nonce" '
                      r'value="([0-9a-f]{32})"', page).group(1)
    assert c.post(f"/nurse/patients/{p.id}/link", data={"nonce": nonce}).status_code == 303
    assert c.post(f"/nurse/patients/{p.id}/link", data={"nonce": nonce}).status_code == 303  # once
    assert len(nurse_rows(session, p, "nurse_link")) == 1
    ticks(app, sms, local(0, 13), local(0, 13))
    (text,) = [s.body for s in sms.sent_to(p.mobile_e164) if "here is the link" in s.body]
    token = re.search(r"/l/([A-Za-z0-9_-]+)", text).group(1)
    session.commit()  # the test's own transaction began before the tick's commit
    for t in (token, old):
        browser = app.test_client()
        assert open_link(browser, t).status_code == 303
        assert p.first_name.encode() in browser.get("/me").data
    (event,) = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "link_resent",
                                                           AuditEvent.patient_id == p.id)).all()
    assert event.actor_id == nurse.id
    r = c.post(f"/nurse/patients/{p.id}/link", data={"nonce": "nope"})
    assert r.status_code == 422 and b"out of date" in r.data


def test_another_clinics_nurse_cannot_text_or_count(app, session, world):
    p = world["p"]
    other = make_staff(session, make_clinic(session, now=T0), now=T0)
    session.commit()
    c = nurse_client(app, other)
    assert c.get(f"/nurse/patients/{p.id}/text").status_code == 404
    assert c.post(f"/nurse/patients/{p.id}/text", data=text_form()).status_code == 404
    assert c.post(f"/nurse/patients/{p.id}/text/count", data={"body": "x"}).status_code == 404
    assert c.post(f"/nurse/patients/{p.id}/link", data={"nonce": uuid.uuid4().hex}).status_code == 404
    assert nurse_rows(session, p, "nurse_text") == [] and nurse_rows(session, p, "nurse_link") == []

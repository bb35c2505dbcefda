"""Escalation up the clinic's on-call ladder (alerting.escalate_due, run by the scheduler each tick):
every step is on the alert's history and in the outbox (recipient "staff"); acknowledging stops it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from recovery.clock import utcnow
from recovery.services import alerting
from recovery.store.models import Alert, AlertEvent, AuditEvent, OutboundMessage
from tests.support.factories import enrol, make_clinic, make_staff

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)  # Mon 9 Mar, 11:00 in New York


@pytest.fixture
def ladder(session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    duty = make_staff(session, clinic, now=NOW)  # the nurse at the worklist, not on the ladder
    rung1 = make_staff(session, clinic, on_call=1, now=NOW)
    rung2 = make_staff(session, clinic, on_call=2, now=NOW)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, sms_consent=False)
    session.commit()
    return clinic, duty, rung1, rung2, patient


def raise_now(session, patient, rules):
    alert = alerting.raise_rules(session, patient=patient, enrolment=patient.enrolments[0], rule_ids=rules,
                                 now=utcnow())[0]
    session.commit()
    return alert


def pages(session, alert_id):
    return session.scalars(sa.select(OutboundMessage).where(OutboundMessage.alert_id == alert_id,
                                                            OutboundMessage.recipient == "staff")
                           .order_by(OutboundMessage.id)).all()


def history(session, alert_id):
    return session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                           .order_by(AlertEvent.id)).all()


def tick(session):
    n = alerting.escalate_due(session, utcnow())
    session.commit()
    return n


def test_unacknowledged_emergency_pages_rung1_at_once_then_rung2_after_15_min(session, ladder, frozen):
    clinic, duty, rung1, rung2, patient = ladder
    alert = raise_now(session, patient, ["E2"])
    # rung 1 at once: in the outbox as a staff text, urgent (no quiet hours), and on the history
    [first] = pages(session, alert.id)
    assert (first.staff_id, first.kind, first.urgent, first.send_after) == (rung1.id, "staff_page", True, NOW)
    assert first.patient_id is None and "EMERGENCY alert waiting 0 min" in first.text_template
    assert patient.first_name not in first.text_template and "breath" not in first.text_template  # no PHI
    assert [e.kind for e in history(session, alert.id)] == ["opened", "escalated"]
    assert alert.escalation_step == 1 and alert.next_escalation_at == NOW + timedelta(minutes=15)
    frozen.move_to(NOW + timedelta(minutes=14, seconds=59))
    assert tick(session) == 0 and len(pages(session, alert.id)) == 1
    frozen.move_to(NOW + timedelta(minutes=15))
    assert tick(session) == 1
    second = pages(session, alert.id)[1]
    assert second.staff_id == rung2.id and "waiting 15 min" in second.text_template
    events = history(session, alert.id)
    assert [e.kind for e in events] == ["opened", "escalated", "escalated"]
    assert [(e.detail["step"], e.detail["to_staff_id"]) for e in events[1:]] == [(1, rung1.id), (2, rung2.id)]
    assert events[2].detail["reason"] == "not acknowledged in time" and events[2].at == NOW + timedelta(minutes=15)
    audit_steps = session.scalars(sa.select(AuditEvent.detail).where(AuditEvent.action == "alert_escalated",
                                                                      AuditEvent.subject_id == alert.id)).all()
    assert [d["step"] for d in audit_steps] == [1, 2]
    assert tick(session) == 0  # the same tick twice pages nobody twice
    # the ladder is used up at +30 min: that is on the history too, and the paging stops
    frozen.move_to(NOW + timedelta(minutes=30))
    assert tick(session) == 0
    assert history(session, alert.id)[-1].kind == "ladder_exhausted"
    session.expire_all()
    assert session.get(Alert, alert.id).next_escalation_at is None
    frozen.move_to(NOW + timedelta(hours=2))
    assert tick(session) == 0 and len(pages(session, alert.id)) == 2


def test_acknowledging_stops_the_escalation(session, ladder, frozen):
    clinic, duty, rung1, rung2, patient = ladder
    alert = raise_now(session, patient, ["E1"])
    frozen.move_to(NOW + timedelta(minutes=10))
    alerting.acknowledge(session, alert, duty, utcnow(), note="Calling the patient")
    session.commit()
    for minutes in (15, 30, 60):
        frozen.move_to(NOW + timedelta(minutes=minutes))
        assert tick(session) == 0
    assert [p.staff_id for p in pages(session, alert.id)] == [rung1.id]
    assert [e.kind for e in history(session, alert.id)] == ["opened", "escalated", "acknowledged"]


def test_urgent_escalates_after_its_response_time_not_at_once(session, ladder, frozen):
    clinic, duty, rung1, rung2, patient = ladder
    neuro = raise_now(session, patient, ["U5"])  # neuro: call within 1 h
    fever = raise_now(session, patient, ["U1"])  # others: 4 h
    assert pages(session, neuro.id) == [] and pages(session, fever.id) == []
    frozen.move_to(NOW + timedelta(minutes=59))
    assert tick(session) == 0
    frozen.move_to(NOW + timedelta(hours=1))
    assert tick(session) == 1 and [p.staff_id for p in pages(session, neuro.id)] == [rung1.id]
    frozen.move_to(NOW + timedelta(hours=2))
    assert tick(session) == 1 and [p.staff_id for p in pages(session, neuro.id)] == [rung1.id, rung2.id]
    frozen.move_to(NOW + timedelta(hours=4))
    assert tick(session) == 1 and [p.staff_id for p in pages(session, fever.id)] == [rung1.id]
    assert "URGENT alert waiting 240 min" in pages(session, fever.id)[0].text_template


def test_watch_never_pages(session, ladder, frozen):
    clinic, duty, rung1, rung2, patient = ladder
    alert = raise_now(session, patient, ["W8"])
    assert alert.next_escalation_at is None
    frozen.move_to(NOW + timedelta(days=5))
    assert tick(session) == 0 and pages(session, alert.id) == []


def test_a_rung_that_cannot_be_texted_is_skipped_on_the_record(session, ladder, frozen):
    clinic, duty, rung1, rung2, patient = ladder
    rung1.active = False
    session.commit()
    alert = raise_now(session, patient, ["E4"])
    assert [p.staff_id for p in pages(session, alert.id)] == [rung2.id]
    kinds = [(e.kind, e.detail.get("step")) for e in history(session, alert.id)]
    assert kinds == [("opened", None), ("escalation_skipped", 1), ("escalated", 2)]
    assert history(session, alert.id)[1].detail["why"] == "account disabled"


def test_a_clinic_without_a_ladder_says_so_once(session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, sms_consent=False)
    session.commit()
    alert = raise_now(session, patient, ["E1"])
    assert [e.kind for e in history(session, alert.id)] == ["opened", "ladder_exhausted"]
    assert alert.next_escalation_at is None
    frozen.move_to(NOW + timedelta(minutes=15))
    assert tick(session) == 0 and [e.kind for e in history(session, alert.id)] == ["opened", "ladder_exhausted"]


def test_worse_news_after_acknowledgement_reopens_and_the_ladder_goes_on_up(session, ladder, frozen):
    """Each rung is paged at most once per alert: a reopened alert goes on from the rung it reached."""
    clinic, duty, rung1, rung2, patient = ladder
    rung3 = make_staff(session, clinic, on_call=3, now=NOW)
    session.commit()
    alert = raise_now(session, patient, ["E1"])
    frozen.move_to(NOW + timedelta(minutes=15))
    tick(session)  # rung 2 paged
    alerting.acknowledge(session, alert, duty, utcnow())
    session.commit()
    # a new emergency rule of the same family: back on the list, unacknowledged; the alert was
    # paged when it became an EMERGENCY, so nobody is paged at once
    frozen.move_to(NOW + timedelta(minutes=40))
    again = raise_now(session, patient, ["E2"])
    assert again.id == alert.id and again.status.value == "open" and again.rules == ["E1", "E2"]
    assert [p.staff_id for p in pages(session, alert.id)] == [rung1.id, rung2.id]
    assert again.escalation_step == 2 and again.next_escalation_at == NOW + timedelta(minutes=55)
    assert history(session, alert.id)[-1].detail["reopened"] is True
    # not acknowledged again in time: the next rung up, not rung 1 a second time
    frozen.move_to(NOW + timedelta(minutes=55))
    assert tick(session) == 1
    assert [p.staff_id for p in pages(session, alert.id)] == [rung1.id, rung2.id, rung3.id]
    # the same rule again changes nothing and pages nobody
    raise_now(session, patient, ["E2"])
    assert len(pages(session, alert.id)) == 3 and history(session, alert.id)[-1].kind == "repeated"


def test_an_acknowledged_urgent_raised_to_emergency_pages_the_next_rung_at_once(session, ladder, frozen):
    clinic, duty, rung1, rung2, patient = ladder
    alert = raise_now(session, patient, ["U16"])
    frozen.move_to(NOW + timedelta(hours=1))
    assert tick(session) == 1  # rung 1 paged for the URGENT
    alerting.acknowledge(session, alert, duty, utcnow())
    session.commit()
    frozen.move_to(NOW + timedelta(hours=1, minutes=10))
    raised = raise_now(session, patient, ["E5"])
    assert raised.status.value == "open" and raised.level == "EMERGENCY"
    assert [p.staff_id for p in pages(session, alert.id)] == [rung1.id, rung2.id]


def test_urgent_raised_to_emergency_pages_at_once(session, ladder, frozen):
    clinic, duty, rung1, rung2, patient = ladder
    alert = raise_now(session, patient, ["U16"])  # heart racing: URGENT, cardioresp family
    assert pages(session, alert.id) == []
    frozen.move_to(NOW + timedelta(minutes=5))
    raised = raise_now(session, patient, ["E5"])
    assert raised.id == alert.id and raised.level == "EMERGENCY"
    assert [p.staff_id for p in pages(session, alert.id)] == [rung1.id]
    assert raised.respond_by == NOW + timedelta(minutes=20)


def test_emergency_from_the_web_checkin_escalates_unless_acknowledged(client, session, ladder, frozen):
    """The demo path: an emergency answer on the web form, never submitted, goes up the ladder."""
    from tests.support.factories import open_link, patient_link
    clinic, duty, rung1, rung2, patient = ladder
    token = patient_link(session, patient, purpose="checkin", now=NOW, slot="day1")
    session.commit()
    open_link(client, token)
    r = client.get(client.get("/me/checkin").headers["Location"])
    step = r.headers["Location"]
    client.post(step, data={"cardioresp": ["chest_pain"], "neuro": ["none"], "bladder_bowel": "no_change"})
    alert = session.scalar(sa.select(Alert).where(Alert.patient_id == patient.id))
    assert [p.staff_id for p in pages(session, alert.id)] == [rung1.id]
    frozen.move_to(NOW + timedelta(minutes=15))
    assert tick(session) == 1
    assert [p.staff_id for p in pages(session, alert.id)] == [rung1.id, rung2.id]

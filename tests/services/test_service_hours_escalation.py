"""Issue 13 §1 decision: outside the clinic's service hours an URGENT alert pages the on-call ladder on
the next tick instead of waiting for its response time; inside them, and for a clinic without service
hours, as before; EMERGENCY unchanged. Phone rungs (a name and a number, no account) are paged through
the real send pipeline, from the clinic's own sender when it has one."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from recovery.dispatch.settings import DispatchSettings
from recovery.messaging import Sender
from recovery.scheduler.tick import tick
from recovery.services import alerting, on_call
from recovery.store.models import Alert, AlertEvent, OnCallStep, OutboundMessage, OutboxStatus
from tests.support.factories import enrol, make_clinic, make_staff

UTC = timezone.utc
MON_22 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # Mon 9 Mar 22:00 in New York (EDT)
TUE_10 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # Tue 10 Mar 10:00 in New York
WEEKDAYS_8_TO_18 = {str(d): ["08:00", "18:00"] for d in range(5)}


def settings(app):
    return DispatchSettings.from_config(app.config, max_per_second=0, send_concurrency=1, rng=random.Random(3))


def clinic_with_ladder(session, *, hours):
    clinic = make_clinic(session)
    clinic.service_hours = hours
    staff = make_staff(session, clinic, mobile="+12025550171", on_call=1)
    session.add(OnCallStep(clinic_id=clinic.id, position=2, name="Dr Night", mobile_e164="+12025550172"))
    patient = enrol(session, clinic, procedure_end=MON_22 - timedelta(hours=30), now=MON_22 - timedelta(hours=29),
                    sms_consent=False)
    session.commit()
    return clinic, staff, patient


def raise_urgent(session, patient, now):
    alert = alerting.raise_rules(session, patient=patient, enrolment=patient.enrolments[0], rule_ids=["U1"],
                                 now=now)[0]
    session.commit()
    return alert


def ticks(session, sms, app, at):
    """Two scheduler ticks at `at`: the first escalates (queues the page), the second sends it."""
    tick(session, sms, at, settings(app))
    tick(session, sms, at, settings(app))


def pages(session, alert_id):
    return session.scalars(sa.select(OutboundMessage).where(OutboundMessage.alert_id == alert_id)
                           .order_by(OutboundMessage.id).execution_options(populate_existing=True)).all()


def test_an_urgent_alert_at_22_pages_rung_1_on_the_next_tick_then_the_phone_rung(app, session, sms, frozen):
    clinic, staff, patient = clinic_with_ladder(session, hours=WEEKDAYS_8_TO_18)
    clinic.sender_number = "+12025550999"
    session.commit()
    alert = raise_urgent(session, patient, MON_22)
    assert alert.outside_service_hours is True and alert.next_escalation_at == MON_22
    assert pages(session, alert.id) == []  # the raise itself pages nobody: the tick does
    ticks(session, sms, app, MON_22 + timedelta(seconds=5))
    [first] = pages(session, alert.id)
    assert (first.staff_id, first.clinic_id, first.status) == (staff.id, clinic.id, OutboxStatus.SENT)
    escalated = session.scalar(sa.select(AlertEvent).where(AlertEvent.alert_id == alert.id,
                                                           AlertEvent.kind == "escalated"))
    assert escalated.detail["reason"] == "outside service hours"
    # nobody acknowledges: rung 2, a phone rung, after the response time (4 h for U1), no sooner
    tick(session, sms, MON_22 + timedelta(hours=3), settings(app))
    assert len(pages(session, alert.id)) == 1
    ticks(session, sms, app, MON_22 + timedelta(hours=4, seconds=10))
    second = pages(session, alert.id)[1]
    assert (second.staff_id, second.to_e164, second.status) == (None, "+12025550172", OutboxStatus.SENT)
    assert [(s.to, s.sender) for s in sms.sent] == [
        ("+12025550171", Sender(from_number="+12025550999")), ("+12025550172", Sender(from_number="+12025550999"))]
    history = session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == alert.id,
                                                          AlertEvent.kind == "escalated").order_by(AlertEvent.id)).all()
    assert history[1].detail == {"step": 2, "reason": "not acknowledged in time",
                                 "to_rung_id": history[1].detail["to_rung_id"], "to_name": "Dr Night"}
    assert "+1202" not in str(history[1].detail)  # a phone rung's number is never on the record


def test_inside_service_hours_and_without_them_an_urgent_alert_waits_for_its_response_time(app, session, sms, frozen):
    for hours, at, recorded in ((WEEKDAYS_8_TO_18, TUE_10, False), (None, MON_22, None)):
        clinic, staff, patient = clinic_with_ladder(session, hours=hours)
        alert = raise_urgent(session, patient, at)
        assert alert.outside_service_hours is recorded
        assert alert.next_escalation_at == at + timedelta(hours=4)
        tick(session, sms, at + timedelta(minutes=1), settings(app))
        assert pages(session, alert.id) == []
        ticks(session, sms, app, at + timedelta(hours=4, minutes=1))
        [page] = pages(session, alert.id)
        assert page.staff_id == staff.id and page.status == OutboxStatus.SENT
        assert sms.sent[-1].sender is None  # no clinic sender: the configured one


def test_an_emergency_outside_hours_is_unchanged_and_an_acknowledged_urgent_is_not_paged(app, session, sms, frozen):
    clinic, staff, patient = clinic_with_ladder(session, hours=WEEKDAYS_8_TO_18)
    emergency = alerting.raise_rules(session, patient=patient, enrolment=patient.enrolments[0], rule_ids=["E2"],
                                     now=MON_22)[0]
    session.commit()
    assert len(pages(session, emergency.id)) == 1  # paged at once, as always
    assert emergency.next_escalation_at == MON_22 + timedelta(minutes=15)
    urgent = session.scalar(sa.select(Alert).where(Alert.id == raise_urgent(session, patient, MON_22).id))
    alerting.acknowledge(session, urgent, staff, MON_22 + timedelta(seconds=1))
    session.commit()
    tick(session, sms, MON_22 + timedelta(seconds=5), settings(app))
    assert pages(session, urgent.id) == []


def test_a_test_page_to_a_phone_rung_goes_through_the_outbox_and_reports_its_delivery(app, session, sms, frozen):
    clinic, staff, patient = clinic_with_ladder(session, hours=None)
    admin = make_staff(session, clinic)
    phone_rung = on_call.ladder(session, clinic.id)[1]
    row = on_call.send_test_page(session, clinic=clinic, step=phone_rung, admin=admin, now=TUE_10)
    session.commit()
    assert on_call.delivery_word(row) == "queued" and row.urgent and row.alert_id is None
    tick(session, sms, TUE_10, settings(app))
    session.refresh(row)
    assert on_call.delivery_word(row) == "sent" and sms.sent[-1].to == "+12025550172"
    assert "test page" in sms.sent[-1].body
    assert on_call.find_test_page(session, clinic.id + 1, row.id) is None


def test_an_alert_that_becomes_urgent_outside_service_hours_pages_on_the_next_tick(app, session, sms, frozen):
    clinic, staff, patient = clinic_with_ladder(session, hours=WEEKDAYS_8_TO_18)
    [watch] = alerting.raise_rules(session, patient=patient, enrolment=patient.enrolments[0], rule_ids=["M2"],
                                   now=TUE_10)
    session.commit()
    assert watch.outside_service_hours is False and watch.next_escalation_at is None
    tue_22 = TUE_10 + timedelta(hours=12)
    [same] = alerting.raise_rules(session, patient=patient, enrolment=patient.enrolments[0], rule_ids=["M2x2"],
                                  now=tue_22)
    session.commit()
    assert same.id == watch.id and same.level == "URGENT" and same.next_escalation_at == tue_22
    assert same.outside_service_hours is False  # recorded when it opened
    ticks(session, sms, app, tue_22 + timedelta(seconds=5))
    [page] = pages(session, same.id)
    assert page.staff_id == staff.id and page.status == OutboxStatus.SENT

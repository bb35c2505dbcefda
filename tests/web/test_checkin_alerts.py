"""A check-in and the alert it raises, through the web as patients and nurses use it (issue 10,
items 1 and 4).

Item 1: a nurse task resolved "reviewed – expected" (M5 after a STOP text) must not break later
check-ins; and whatever goes wrong reading or scoring the history, the answers just given still
show the emergency screen and open the EMERGENCY alert.

Item 4: one check-in opens at most one alert, at its highest level, with all its rules; its
submission updates the alert its drafts opened; after that alert was resolved, a submission
with nothing new only adds to its history, and new rules open one alert with just those.
"""
from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from recovery.services import alerting, checkins
from recovery.store.models import Alert, AlertEvent, AlertStatus, AuditEvent, Checkin, OutboundMessage
from tests.support.factories import login
from tests.web.test_checkin_web import (CALM, NOW, checkin_client, location, post_step, start_slot, walk,
                                    world)  # noqa: F401 - world is a fixture
from tests.web.test_hooks import signed

HX = {"HX-Request": "true"}
CHEST_PAIN = {"cardioresp": ["chest_pain"], "neuro": ["none"], "bladder_bowel": "no_change"}
EMERGENCY_SCREEN = b"Call 911 now. Do not drive yourself. Your care team has been told."


def text_in(client, sender: str, body: str):
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0123456789abcdef" * 2,
            "From": sender, "To": "+15005550006", "Body": body, "NumMedia": "0"}
    r = signed(client, "/twilio/sms", form)
    assert r.status_code == 200, r.data
    return r


def alerts_of(session, patient):
    return session.scalars(sa.select(Alert).where(Alert.patient_id == patient.id).order_by(Alert.id)
                           .execution_options(populate_existing=True)).all()


def staff_pages(session, patient):
    return session.scalars(sa.select(OutboundMessage).join(Alert, Alert.id == OutboundMessage.alert_id)
                           .where(Alert.patient_id == patient.id, OutboundMessage.recipient == "staff")).all()


def nurse_client(client, nurse):
    c = client.application.test_client()
    assert login(c, nurse).status_code in (302, 303)
    return c


def nurse_resolves(nurse_c, alert_id: int, disposition: str, **extra):
    r = nurse_c.post(f"/nurse/alerts/{alert_id}/resolve", data={"disposition": disposition, "note": "",
                                                                "next": "/nurse/", **extra})
    assert r.status_code == 303, r.data[:2000]
    return r


def m5_reviewed_expected(client, session, patient, nurse):
    """The issue's set-up: STOP by text opens an M5 task, a nurse resolves it "reviewed – expected"."""
    text_in(client.application.test_client(), patient.mobile_e164, "STOP")
    (task,) = [a for a in alerts_of(session, patient) if a.rules == ["M5"]]
    nurse_resolves(nurse_client(client, nurse), task.id, "reviewed_expected")
    session.expire_all()
    assert session.get(Alert, task.id).status == AlertStatus.RESOLVED
    return task


def emergency_alert(session, patient):
    found = [a for a in alerts_of(session, patient) if a.level == "EMERGENCY"]
    assert len(found) == 1, [(a.level, a.rules) for a in alerts_of(session, patient)]
    return found[0]


# ---------------------------------------------------------------------------------------------
# Item 1: a resolved nurse task must never break the emergency path
# ---------------------------------------------------------------------------------------------

def test_after_m5_reviewed_expected_a_plain_post_of_chest_pain_shows_the_emergency_screen(client, session, world):
    clinic, nurse, patient = world
    m5_reviewed_expected(client, session, patient, nurse)
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    r = post_step(client, cid, "emergency", CHEST_PAIN)
    assert r.status_code == 303 and location(r) == f"/me/checkin/{cid}/emergency"
    screen = client.get(location(r))
    assert screen.status_code == 200 and EMERGENCY_SCREEN in screen.data
    alert = emergency_alert(session, patient)
    assert alert.rules == ["E1"] and alert.status == AlertStatus.OPEN and alert.checkin_id == cid
    assert len(staff_pages(session, patient)) == 1  # on-call paged at once


def test_after_m5_reviewed_expected_an_htmx_draft_of_chest_pain_shows_the_emergency_screen(client, session, world):
    clinic, nurse, patient = world
    m5_reviewed_expected(client, session, patient, nurse)
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    r = client.post(f"/me/checkin/{cid}/step/emergency/draft", data={"cardioresp": ["chest_pain"]}, headers=HX)
    assert r.status_code == 200 and r.headers["HX-Redirect"] == f"/me/checkin/{cid}/emergency"
    assert EMERGENCY_SCREEN in client.get(r.headers["HX-Redirect"]).data
    assert emergency_alert(session, patient).rules == ["E1"]


def test_after_m5_reviewed_expected_the_review_submit_shows_the_emergency_screen(client, session, world):
    """Answers given before the STOP, sent after the nurse resolved M5: the submit scores the
    history again, which is where the M5 acknowledgement used to blow up."""
    clinic, nurse, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    r = walk(client, cid, answers={**CALM, "emergency": CHEST_PAIN})
    assert location(r) == f"/me/checkin/{cid}/emergency"
    walk(client, cid, answers={**CALM, "emergency": CHEST_PAIN})
    m5_reviewed_expected(client, session, patient, nurse)
    done = client.post(f"/me/checkin/{cid}/review")
    assert done.status_code == 303 and location(done) == f"/me/checkin/{cid}/done"
    page = client.get(location(done))
    assert page.status_code == 200 and EMERGENCY_SCREEN in page.data
    session.expire_all()
    c = session.get(Checkin, cid)
    assert c.status == "submitted" and c.level == "EMERGENCY" and "E1" in c.fired_rules
    alert = emergency_alert(session, patient)
    assert "E1" in alert.rules and alert.status == AlertStatus.OPEN


def test_only_triage_rule_acknowledgements_reach_mr3(session, world):
    """Task ids (M1-M6, M4e, R1) mean nothing to MR3; a reviewed-expected U rule still counts."""
    clinic, nurse, patient = world
    for rules in (["M5"], ["R1"], ["M4e"], ["U20"]):
        (alert,) = alerting.raise_rules(session, patient=patient, enrolment=patient.enrolments[0],
                                        rule_ids=rules, now=NOW)
        alerting.resolve(session, alert, nurse, NOW, "reviewed_expected")
    session.commit()
    assert [r for r, _ in alerting.reviewed_expected_acks(session, patient.id)] == ["U20"]


class _Boom(RuntimeError):
    pass


def _fault_in_acks(session, patient_id):
    raise _Boom("the acknowledgements could not be read")


def _fault_in_sql(session, patient_id):
    # a real database error part-way through reading the history (on PostgreSQL this would abort
    # the whole transaction without a savepoint)
    session.execute(sa.text("SELECT no_such_column FROM alert_event"))


@pytest.mark.parametrize("fault", [_fault_in_acks, _fault_in_sql], ids=["python-error", "sql-error"])
@pytest.mark.parametrize("path", ["plain", "draft", "review"])
def test_a_fault_reading_history_still_gives_the_emergency_screen_and_alert(client, session, world, monkeypatch,
                                                                            caplog, fault, path):
    clinic, nurse, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    if path == "review":  # everything answered (calm) while the history could still be read
        walk(client, cid)
        checkin = session.get(Checkin, cid)
        # the chest pain is only in the stored answers: the submit scores it first
        checkin.answers = {**checkin.answers, "cardioresp": ["chest_pain"]}
        session.commit()
    monkeypatch.setattr(alerting, "reviewed_expected_acks", fault)
    with caplog.at_level(logging.WARNING, logger="recovery.services.checkins"):
        if path == "plain":
            r = post_step(client, cid, "emergency", CHEST_PAIN)
            assert location(r) == f"/me/checkin/{cid}/emergency"
        elif path == "draft":
            r = client.post(f"/me/checkin/{cid}/step/emergency/draft", data={"cardioresp": ["chest_pain"]},
                            headers=HX)
            assert r.headers["HX-Redirect"] == f"/me/checkin/{cid}/emergency"
        else:
            r = client.post(f"/me/checkin/{cid}/review")
            assert location(r) == f"/me/checkin/{cid}/done"
        target = r.headers.get("HX-Redirect") or location(r)
        assert EMERGENCY_SCREEN in client.get(target).data
    alert = emergency_alert(session, patient)
    assert "E1" in alert.rules and len(staff_pages(session, patient)) == 1
    # the fault is logged (which check-in, what kind of error), with no answer or phone number in it
    [record] = [r for r in caplog.records if r.name == "recovery.services.checkins"]
    message = record.getMessage()
    assert f"check-in {cid}" in message and ("_Boom" in message or "Error" in message)
    assert "chest" not in message.lower() and patient.mobile_e164[-4:] not in message
    assert record.exc_info is None  # a traceback would carry the error's own text
    # and the record says the check-in was scored without its history
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "checkin_scored_without_history", AuditEvent.subject_id == cid)) >= 1


# ---------------------------------------------------------------------------------------------
# Item 4: one check-in, one alert; one page per alert
# ---------------------------------------------------------------------------------------------

# The rest of the check-in after the chest pain brings news: a fever (U1, URGENT) and a little
# dizziness (W8, WATCH).
NEWS = {**CALM, "emergency": CHEST_PAIN,
        "temperature": {"temp_status": "measured", "temp_value": "38.4", "temp_unit": "C", "chills": "no"},
        "sepsis": {"sepsis_screen": ["none"]},
        "feel": {**CALM["feel"], "dizzy": "a_little"}}


def _finish(client, cid, answers):
    r = walk(client, cid, answers=answers)
    if location(r).endswith("/emergency"):  # the emergency screen invites the patient to carry on
        r = walk(client, cid, answers=answers)
    assert location(r).endswith("/review"), location(r)
    done = client.post(f"/me/checkin/{cid}/review")
    assert done.status_code == 303
    return client.get(location(done))


def _chest_pain_alert(client, session, patient):
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    r = post_step(client, cid, "emergency", CHEST_PAIN)
    screen = client.get(location(r))
    assert b"Continue my check-in" in screen.data
    return cid, emergency_alert(session, patient)


def test_resolved_sent_to_ed_then_continue_and_submit_opens_one_alert_with_only_the_new_rules(client, session,
                                                                                              world):
    """The issue's reproduction: chest pain, on-call paged, the nurse sends the patient to the ED; the
    patient taps "Continue my check-in" and submits. Before: a second EMERGENCY (paged again), an
    URGENT and a WATCH."""
    clinic, nurse, patient = world
    cid, first = _chest_pain_alert(client, session, patient)
    assert len(staff_pages(session, patient)) == 1
    nurse_resolves(nurse_client(client, nurse), first.id, "sent_to_ed")
    page = _finish(client, cid, NEWS)
    assert EMERGENCY_SCREEN in page.data  # the patient still reads the emergency message
    session.expire_all()
    c = session.get(Checkin, cid)
    assert {"E1", "U1", "W8"} <= set(c.fired_rules), c.fired_rules
    alerts = alerts_of(session, patient)
    assert len(alerts) == 2, [(a.level, a.rules, a.status) for a in alerts]
    old, new = alerts
    # the resolved EMERGENCY stays resolved, with the finished check-in in its history
    assert old.id == first.id and old.status == AlertStatus.RESOLVED and old.rules == ["E1"]
    last = session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == old.id)
                           .order_by(AlertEvent.id)).all()[-1]
    assert last.kind == "checkin_completed" and last.detail["checkin_id"] == cid
    assert last.detail["new_rules_alert_id"] == new.id
    # one new alert, with just the new rules, at their level, nobody paged at once (URGENT)
    assert new.status == AlertStatus.OPEN and new.level == "URGENT" and "E1" not in new.rules
    assert set(new.rules) == set(c.fired_rules) - {"E1"} and new.checkin_id == cid
    assert len(staff_pages(session, patient)) == 1
    # the worklist shows the one new alert only; the patient page links the two
    nurse_c = nurse_client(client, nurse)
    html = nurse_c.get("/nurse/").data.decode()
    assert "1 open alert:" in html and f'id="alert-{new.id}"' in html
    record = nurse_c.get(f"/nurse/patients/{patient.id}").data.decode()
    assert f"after alert #{old.id} of the same check-in was resolved" in record
    assert f"new: U1, W8, on alert #{new.id}" in record


def test_resolved_then_submitted_with_nothing_new_only_adds_to_the_history(client, session, world):
    clinic, nurse, patient = world
    cid, first = _chest_pain_alert(client, session, patient)
    nurse_c = nurse_client(client, nurse)
    nurse_resolves(nurse_c, first.id, "emergency_services")
    page = _finish(client, cid, {**CALM, "emergency": CHEST_PAIN})
    assert EMERGENCY_SCREEN in page.data
    session.expire_all()
    (alert,) = alerts_of(session, patient)
    assert alert.status == AlertStatus.RESOLVED and alert.rules == ["E1"]
    kinds = session.scalars(sa.select(AlertEvent.kind).where(AlertEvent.alert_id == alert.id)
                            .order_by(AlertEvent.id)).all()
    assert kinds == ["opened", "escalated", "resolved", "checkin_completed"]
    assert len(staff_pages(session, patient)) == 1  # nobody paged again
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "alert_checkin_completed", AuditEvent.subject_id == alert.id)) == 1
    # the nurse sees on the patient page that the patient finished, with the answers
    html = nurse_c.get(f"/nurse/patients/{patient.id}").data.decode()
    assert "The patient finished the check-in" in html
    history = html[html.index(f'id="alert-{alert.id}"'):]
    assert "4 out of 10" in history[:history.index("</article>")]


def test_an_unresolved_alert_is_updated_by_the_submit_one_row_one_page(client, session, world):
    clinic, nurse, patient = world
    cid, first = _chest_pain_alert(client, session, patient)
    nurse_c = nurse_client(client, nurse)
    assert nurse_c.post(f"/nurse/alerts/{first.id}/acknowledge").status_code == 303
    _finish(client, cid, NEWS)
    session.expire_all()
    (alert,) = alerts_of(session, patient)
    c = session.get(Checkin, cid)
    assert alert.id == first.id and alert.level == "EMERGENCY" and set(alert.rules) == set(c.fired_rules)
    assert alert.rules[0] == "E1"
    # lower-level rules added to an acknowledged EMERGENCY do not take it off the nurse who has it
    assert alert.status == AlertStatus.ACKNOWLEDGED
    assert len(staff_pages(session, patient)) == 1


def test_a_checkin_without_drafts_opens_one_alert_at_its_highest_level(client, session, world):
    clinic, nurse, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    _finish(client, cid, {**NEWS, "emergency": CALM["emergency"]})
    session.expire_all()
    (alert,) = alerts_of(session, patient)
    assert alert.level == "URGENT" and set(alert.rules) == set(session.get(Checkin, cid).fired_rules)
    assert len(alert.rules) >= 2


def test_two_emergency_rules_in_one_checkin_are_one_alert_and_one_page(session, world):
    from flask import current_app

    from recovery.domain.questionnaire.answers import coerce_answers
    from recovery.files import templates as templates_repo
    from tests.support.factories import template_for
    clinic, nurse, patient = world
    enrolment, template = patient.enrolments[0], template_for(clinic)
    ruleset = templates_repo.ruleset(current_app.config["RULESET_PATH"])
    c = checkins.start_checkin(session, enrolment=enrolment, patient=patient, slot="day1", source="web", now=NOW)
    for answers, minutes in (({"cardioresp": ["chest_pain"]}, 0), ({"confused_or_very_sleepy": True}, 2)):
        checkins.record_answers(session, checkin=c, enrolment=enrolment, patient=patient,
                                answers=coerce_answers(answers), template=template, ruleset=ruleset,
                                now=NOW + timedelta(minutes=minutes))
    session.commit()
    (alert,) = alerts_of(session, patient)
    assert alert.rules == ["E1", "E11"] and len(staff_pages(session, patient)) == 1


def test_a_later_checkin_gets_its_own_alert_and_its_own_page(client, session, world, frozen):
    """A new emergency the next day is news: its own alert, paged at once, even while yesterday's
    EMERGENCY sits acknowledged."""
    clinic, nurse, patient = world
    cid, first = _chest_pain_alert(client, session, patient)
    alerting.acknowledge(session, session.get(Alert, first.id), nurse, NOW)
    session.commit()
    frozen.move_to(NOW + timedelta(hours=3))
    r = client.post("/me/checkin/report")
    report_id = int(re.search(r"/me/checkin/(\d+)", location(r)).group(1))
    post_step(client, report_id, "emergency", CHEST_PAIN)
    alerts = alerts_of(session, patient)
    assert [(a.checkin_id, a.level, a.status.value) for a in alerts] == [
        (cid, "EMERGENCY", "acknowledged"), (report_id, "EMERGENCY", "open")]
    assert len(staff_pages(session, patient)) == 2


def test_a_corrupt_earlier_checkin_does_not_stop_the_emergency(client, session, world, caplog):
    """No injection: an earlier check-in whose stored answers the engine refuses (a pain of 42)."""
    clinic, nurse, patient = world
    session.add(Checkin(enrolment_id=patient.enrolments[0].id, patient_id=patient.id, slot=None, source="web",
                        status="submitted", answers={"back_pain": 42}, started_at=NOW - timedelta(hours=5),
                        updated_at=NOW - timedelta(hours=5), submitted_at=NOW - timedelta(hours=5),
                        fired_rules=[]))
    session.commit()
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    with caplog.at_level(logging.WARNING, logger="recovery.services.checkins"):
        r = post_step(client, cid, "emergency", CHEST_PAIN)
    assert location(r) == f"/me/checkin/{cid}/emergency"
    assert emergency_alert(session, patient).rules == ["E1"]
    [record] = [r for r in caplog.records if r.name == "recovery.services.checkins"]
    assert "42" not in record.getMessage()

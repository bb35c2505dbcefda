"""Texts from patients and caregivers through the signed /twilio/sms webhook: STOP/START/HELP,
the reply-by-text check-in, free text to the nurse inbox."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from recovery.scheduler.tick import tick
from recovery.files import templates as templates_repo
from recovery.services.enrolment import EnrolmentInput, enrol_patient
from recovery.store.models import (Alert, AuditEvent, Checkin, InboundMessage, OutboundMessage, OutboxStatus, Patient,
                             SmsConversation)
from tests.support.factories import enrol, make_clinic
from tests.services.test_dispatch import NOW, alert_rules, patient_at, plant, row, rows, settings
from tests.web.test_hooks import signed, table_counts

INVITE = "Hi {first}, please do today's 2-minute recovery check-in: {link}"


def text(client, sender: str, body: str, sid: str | None = None):
    form = {"MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0123456789abcdef" * 2,
            "From": sender, "To": "+15005550006", "Body": body, "NumMedia": "0"}
    resp = signed(client, "/twilio/sms", form)
    assert resp.status_code == 200 and resp.mimetype == "text/xml", resp.data
    return resp


def inbound(session):
    return session.scalars(sa.select(InboundMessage).order_by(InboundMessage.id)
                           .execution_options(populate_existing=True)).all()


def replies(session, patient):
    """The replies planned for the patient (a cancelled one is left out)."""
    return [r.message_id for r in rows(session, patient_id=patient.id)
            if r.kind == "event_reply" and r.status != OutboxStatus.CANCELLED]


def conv_of(session, patient):
    return session.scalar(sa.select(SmsConversation).where(SmsConversation.patient_id == patient.id)
                          .execution_options(populate_existing=True))


def alerts_of(session, patient):
    return session.scalars(sa.select(Alert).where(Alert.patient_id == patient.id)
                           .execution_options(populate_existing=True)).all()


@pytest.fixture
def invited(app, session, sms, frozen):
    """A day-5 patient whose check-in invitation just went out (the conversation is open)."""
    frozen.move_to(NOW)
    p = patient_at(session, first="Rosa")
    plant(session, p, due=NOW, message_id="S06", kind="checkin_invite", slot="day5", text=INVITE)
    tick(session, sms, NOW, settings(app))
    assert conv_of(session, p).state == "awaiting_pain"
    frozen.move_to(NOW + timedelta(minutes=20))
    return p


# ---------------------------------------------------------------------------------------------
# Reply-by-text check-in
# ---------------------------------------------------------------------------------------------

def test_pain_then_no_submits_a_text_checkin(app, session, client, sms, frozen, invited):
    p = invited
    text(client, p.mobile_e164, " 2 ")
    checkin = session.scalar(sa.select(Checkin).where(Checkin.patient_id == p.id))
    assert (checkin.source, checkin.slot, checkin.status, checkin.answers) == ("sms", "day5", "in_progress",
                                                                               {"back_pain": 2})
    conv = conv_of(session, p)
    assert (conv.state, conv.checkin_id) == ("awaiting_redflag", checkin.id)
    assert replies(session, p) == ["S25"]
    tick(session, sms, NOW + timedelta(minutes=20), settings(app))
    assert sms.sent[-1].body == ("Thanks Rosa. Any chest pain, trouble breathing, new leg weakness or numbness, "
                                 "bladder or bowel problems, or fever? Reply Y or N")
    text(client, p.mobile_e164, "n")
    session.refresh(checkin)
    assert checkin.status == "submitted" and checkin.level in ("OK", "WATCH")
    assert conv_of(session, p).state == "idle"
    assert replies(session, p) == ["S25", "S22"]
    assert [m.handled_as for m in inbound(session)] == ["checkin_pain", "red_flag_no"]
    assert alerts_of(session, p) == []


def test_yes_to_the_red_flag_question_opens_an_urgent_task_at_once(app, session, client, sms, frozen, invited):
    p = invited
    text(client, p.mobile_e164, "3/10")
    text(client, p.mobile_e164, "YES")  # an answer here, not the opt-in keyword
    (alert,) = alerts_of(session, p)
    assert (alert.rules, alert.level) == (["R1"], "URGENT")
    assert alert.respond_by == NOW + timedelta(minutes=20) + timedelta(minutes=60)
    checkin = session.scalar(sa.select(Checkin).where(Checkin.patient_id == p.id))
    assert checkin.status == "submitted" and alert.checkin_id == checkin.id
    assert replies(session, p) == ["S25", "S20"]  # "a nurse will call you today", not "saved"
    assert [r.status_reason for r in rows(session, message_id="S22")] == ["superseded"]
    tick(session, sms, NOW + timedelta(minutes=21), settings(app))
    assert "A nurse will call you today" in sms.sent[-1].body
    assert [m.handled_as for m in inbound(session)] == ["checkin_pain", "red_flag_yes"]
    session.refresh(p)
    assert not p.sms_opted_out


def test_a_severe_pain_score_is_scored_like_the_web_form(app, session, client, sms, frozen, invited):
    p = invited
    text(client, p.mobile_e164, "ten")
    text(client, p.mobile_e164, "N")
    checkin = session.scalar(sa.select(Checkin).where(Checkin.patient_id == p.id))
    assert checkin.level == "URGENT" and "U7" in checkin.fired_rules
    assert replies(session, p) == ["S25", "S20"]


def test_a_bad_reply_gets_one_reprompt_then_it_is_a_text_for_the_nurse(app, session, client, sms, frozen, invited):
    p = invited
    text(client, p.mobile_e164, "11")
    assert replies(session, p) == ["S26"] and conv_of(session, p).reprompted
    text(client, p.mobile_e164, "7.5")
    assert replies(session, p) == ["S26", "S21"]
    assert conv_of(session, p).state == "idle"
    text(client, p.mobile_e164, "6")  # the conversation is over: just a text now
    assert replies(session, p) == ["S26", "S21", "S21"]
    assert [m.handled_as for m in inbound(session)] == ["reprompt", "inbox", "inbox"]
    assert session.scalar(sa.select(Checkin)) is None


def test_the_red_flag_question_is_reprompted_once_too(app, session, client, sms, frozen, invited):
    p = invited
    text(client, p.mobile_e164, "1")
    text(client, p.mobile_e164, "dunno")
    assert replies(session, p) == ["S25", "S27"]
    text(client, p.mobile_e164, "y")
    assert [a.rules for a in alerts_of(session, p)] == [["R1"]]


def test_a_long_message_during_the_checkin_goes_to_the_nurse_unparsed(app, session, client, sms, frozen, invited):
    p = invited
    text(client, p.mobile_e164, "I have chest pain since this morning, should I worry")
    assert [m.handled_as for m in inbound(session)] == ["inbox"]
    assert replies(session, p) == ["S21"] and alerts_of(session, p) == []  # MR6: never parsed for triage
    assert conv_of(session, p).state == "awaiting_pain"  # a number still works afterwards
    text(client, p.mobile_e164, "2")
    assert replies(session, p) == ["S21", "S25"]


def test_no_conversation_after_it_expired_or_when_done_on_the_web(app, session, client, sms, frozen, invited):
    p = invited
    frozen.move_to(NOW + timedelta(hours=25))
    text(client, p.mobile_e164, "4")
    assert [m.handled_as for m in inbound(session)] == ["inbox"]
    q = patient_at(session, first="Ines")
    plant(session, q, due=NOW + timedelta(hours=25), message_id="S06", kind="checkin_invite", slot="day5",
          text=INVITE)
    tick(session, sms, NOW + timedelta(hours=25), settings(app))
    e = q.enrolments[-1]
    session.add(Checkin(enrolment_id=e.id, patient_id=q.id, slot="day5", source="web", status="submitted",
                        answers={}, started_at=NOW, updated_at=NOW, submitted_at=NOW, fired_rules=[]))
    session.commit()
    text(client, q.mobile_e164, "4")
    assert inbound(session)[-1].handled_as == "inbox"
    assert session.scalar(sa.select(sa.func.count()).select_from(Checkin)) == 1


# ---------------------------------------------------------------------------------------------
# Keywords
# ---------------------------------------------------------------------------------------------

def test_stop_opts_out_at_once_suppresses_due_texts_and_opens_m5(app, session, client, sms, frozen):
    frozen.move_to(NOW)
    p = patient_at(session)
    due = plant(session, p, due=NOW - timedelta(minutes=1))
    future = plant(session, p, due=NOW + timedelta(hours=3), message_id="S09")
    text(client, p.mobile_e164, "Stop.")
    session.refresh(p)
    assert p.sms_opted_out and not p.caregiver_opted_out
    assert (row(session, due.id).status, row(session, due.id).status_reason) == (OutboxStatus.SUPPRESSED, "opted_out")
    assert row(session, future.id).status == OutboxStatus.PLANNED  # decided at send time, so START can bring it back
    (alert,) = alerts_of(session, p)
    assert (alert.rules, alert.level) == (["M5"], "URGENT")
    assert inbound(session)[0].handled_as == "opt_out" and replies(session, p) == []
    tick(session, sms, NOW + timedelta(hours=3), settings(app))
    assert row(session, future.id).status_reason == "opted_out" and sms.sent == ()


def test_start_opts_back_in_and_the_texts_resume(app, session, client, sms, frozen):
    frozen.move_to(NOW)
    p = patient_at(session)
    future = plant(session, p, due=NOW + timedelta(hours=1))
    text(client, p.mobile_e164, "STOP")
    text(client, p.mobile_e164, "yes")
    session.refresh(p)
    assert not p.sms_opted_out
    assert [m.handled_as for m in inbound(session)] == ["opt_out", "opt_in"]
    tick(session, sms, NOW + timedelta(hours=1), settings(app))
    assert row(session, future.id).status == OutboxStatus.SENT
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.patient_id == p.id)).all()
    assert "sms_opted_out" in actions and "sms_opted_in" in actions


def demo_clinic_patient(session, **kw):
    """A day-5 patient of a clinic with its own file (it names the clinic: "Demo Clinic")."""
    clinic = make_clinic(session, template_file="demo-clinic", now=NOW)
    p = enrol(session, clinic, procedure_end=NOW - timedelta(days=5), now=NOW, **kw)
    session.execute(sa.delete(OutboundMessage).where(OutboundMessage.patient_id == p.id))
    session.commit()
    return p


def test_help_gets_the_help_reply_with_the_clinics_name_and_number_at_any_hour(app, session, client, sms, frozen):
    night = NOW.replace(hour=3)  # 23:00 in New York
    frozen.move_to(night)
    p = demo_clinic_patient(session)
    text(client, p.mobile_e164, "help")
    tick(session, sms, night, settings(app))
    assert sms.sent[0].body == ("Demo Clinic recovery texts. Questions: call (202) 555-0100. Emergency: call 911. "
                                "Reply STOP to stop, START to restart.")


def test_a_patient_enrolled_on_version_1_keeps_its_help_text(app, session, client, sms, frozen):
    """Wording is versioned clinical content: the v2 texts do not reach a v1 enrolment."""
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    v1 = templates_repo.find_template(app.config["SCHEDULES_DIR"], "kyphoplasty", "1")
    data = EnrolmentInput(first_name="Olga", last_name="Old", mobile_e164="+12025550777", timezone=clinic.timezone,
                          procedure_type="kyphoplasty", procedure_end=NOW - timedelta(days=5), sms_consent=True)
    enrolment = enrol_patient(session, clinic=clinic, staff=None, data=data, template=v1, now=NOW)
    session.commit()
    assert (enrolment.template_id, enrolment.template_version) == ("kyphoplasty", "1")
    assert rows(session, message_id="S00") == []  # no opt-in confirmation in v1
    text(client, "+12025550777", "INFO")
    tick(session, sms, NOW, settings(app))
    (help_row,) = rows(session, message_id="S24")
    assert help_row.body == ("This is the recovery text line of your care team. Questions: (202) 555-0100. "
                             "Emergency: call 911. Reply STOP to end texts, START to restart.")


# ---------------------------------------------------------------------------------------------
# Opt-outs in the patient's own words
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["stop texting me", "Stop. Thank you", "no more texts", "STOP please",
                                  "Please don't text me again", "unsubscribe me please"])
def test_a_plain_request_to_stop_opts_out_tells_the_nurse_and_is_confirmed_once(app, session, client, sms, frozen,
                                                                                 body):
    frozen.move_to(NOW)
    p = demo_clinic_patient(session, first="Rosa")
    due = plant(session, p, due=NOW - timedelta(minutes=1))
    future = plant(session, p, due=NOW + timedelta(hours=3), message_id="S09")
    text(client, p.mobile_e164, body)
    session.refresh(p)
    assert p.sms_opted_out and not p.caregiver_opted_out
    assert inbound(session)[0].handled_as == "opt_out_in_words"
    (alert,) = alerts_of(session, p)  # the nurse is told: an URGENT task to phone the patient
    assert (alert.rules, alert.level) == (["M5"], "URGENT")
    assert alert.events[0].detail["source"] == "sms_words"
    assert row(session, due.id).status_reason == "opted_out"
    assert replies(session, p) == ["S28"]
    tick(session, sms, NOW + timedelta(minutes=1), settings(app))
    # Twilio confirms a keyword STOP itself; for words it does not, so we send the one confirmation
    assert [s.body for s in sms.sent] == ["Demo Clinic: you will not get any more texts. Your care team will phone "
                                          "you instead. Reply START to get texts again."]
    text(client, p.mobile_e164, "I said stop texting me")
    tick(session, sms, NOW + timedelta(hours=3), settings(app))
    assert len(sms.sent) == 1 and replies(session, p) == ["S28"]  # once, and nothing else goes
    assert row(session, future.id).status_reason == "opted_out"
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.patient_id == p.id)).all()
    assert actions.count("sms_opted_out") == 1


def test_the_confirmation_is_not_sent_more_than_5_minutes_late(app, session, client, sms, frozen):
    frozen.move_to(NOW)
    p = demo_clinic_patient(session)
    text(client, p.mobile_e164, "no more texts please")
    tick(session, sms, NOW + timedelta(minutes=6), settings(app))
    assert sms.sent == () and [r.status_reason for r in rows(session, message_id="S28")] == ["stale"]


@pytest.mark.parametrize("body", ["the pain won't stop", "I had to stop walking, my leg is weak",
                                  "should I stop the pain pills?", "Please don't stop the texts"])
def test_stop_in_a_symptom_or_a_question_is_a_text_for_the_nurse(app, session, client, sms, frozen, invited, body):
    p = invited
    text(client, p.mobile_e164, body)
    session.refresh(p)
    assert not p.sms_opted_out and alerts_of(session, p) == []
    assert inbound(session)[0].handled_as == "inbox" and replies(session, p) == ["S21"]


def test_y_and_n_still_answer_the_pending_red_flag_question(app, session, client, sms, frozen, invited):
    p = invited
    text(client, p.mobile_e164, "4")
    text(client, p.mobile_e164, "No.")  # an answer, not an opt-out
    assert [m.handled_as for m in inbound(session)] == ["checkin_pain", "red_flag_no"]
    session.refresh(p)
    assert not p.sms_opted_out


def test_no_more_texts_while_the_red_flag_question_is_pending_is_an_opt_out(app, session, client, sms, frozen,
                                                                             invited):
    p = invited
    text(client, p.mobile_e164, "4")
    text(client, p.mobile_e164, "No more texts")
    session.refresh(p)
    assert p.sms_opted_out and inbound(session)[-1].handled_as == "opt_out_in_words"
    assert conv_of(session, p).state == "idle"


def test_a_caregiver_asking_in_words_stops_only_the_caregiver(app, session, client, sms, frozen):
    frozen.move_to(NOW)
    p = demo_clinic_patient(session, caregiver_name="Luis Diaz", caregiver_mobile_e164="+12025559876",
                            caregiver_consent=True)
    text(client, "+12025559876", "Please stop sending me these messages")
    session.refresh(p)
    assert p.caregiver_opted_out and not p.sms_opted_out and alerts_of(session, p) == []
    msg = inbound(session)[0]
    assert (msg.sender_role, msg.handled_as) == ("caregiver", "opt_out_in_words")
    tick(session, sms, NOW, settings(app))
    assert [(s.to, s.body.split(":")[0]) for s in sms.sent] == [("+12025559876", "Demo Clinic")]


def test_a_caregivers_stop_only_stops_the_caregiver(app, session, client, sms, frozen):
    frozen.move_to(NOW)
    p = patient_at(session, caregiver_name="Luis Diaz", caregiver_mobile_e164="+12025559876", caregiver_consent=True)
    copy = plant(session, p, due=NOW - timedelta(minutes=1), recipient="caregiver")
    own = plant(session, p, due=NOW - timedelta(minutes=1), message_id="S09")
    text(client, "+12025559876", "QUIT")
    session.refresh(p)
    assert p.caregiver_opted_out and not p.sms_opted_out
    assert alerts_of(session, p) == []  # no M5: the patient still gets texts
    assert row(session, copy.id).status == OutboxStatus.SUPPRESSED and row(session, own.id).status == OutboxStatus.PLANNED
    msg = inbound(session)[0]
    assert (msg.sender_role, msg.patient_id, msg.handled_as) == ("caregiver", p.id, "opt_out")
    text(client, "+12025559876", "How is she doing?")  # caregivers' texts go to the nurse too
    assert inbound(session)[-1].handled_as == "inbox"


def test_stop_reaches_every_record_with_that_number(app, session, client, sms, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    a = enrol(session, clinic, procedure_end=NOW - timedelta(days=2), now=NOW, mobile="+12025550999")
    b = enrol(session, clinic, procedure_end=NOW - timedelta(days=3), now=NOW, mobile="+12025550998",
              caregiver_mobile_e164="+12025550999", caregiver_consent=True)
    session.commit()
    text(client, "+12025550999", "unsubscribe")
    session.refresh(a)
    session.refresh(b)
    assert a.sms_opted_out and b.caregiver_opted_out and not b.sms_opted_out


def test_opted_out_patients_texts_are_stored_but_get_no_reply(app, session, client, sms, frozen, invited):
    p = invited
    text(client, p.mobile_e164, "stop")
    text(client, p.mobile_e164, "7")
    assert [m.handled_as for m in inbound(session)] == ["opt_out", "inbox"]
    assert replies(session, p) == [] and session.scalar(sa.select(Checkin)) is None


def test_a_replayed_text_changes_nothing_the_second_time(app, session, client, sms, frozen, invited):
    p = invited
    sid = "SM" + "4" * 32
    text(client, p.mobile_e164, "STOP", sid=sid)
    before = table_counts(session)
    session.refresh(p)
    p.sms_opted_out = False  # even if state moved on meanwhile, the replay is not applied again
    session.commit()
    before = table_counts(session)
    text(client, p.mobile_e164, "STOP", sid=sid)
    assert table_counts(session) == before
    session.refresh(p)
    assert not p.sms_opted_out


def test_a_spanish_patient_replies_in_spanish_and_gets_spanish_replies(app, session, client, sms, frozen):
    """Issue 14: the reply-by-text check-in, HELP and the opt-out in Spanish (ALTO is not one of
    Twilio's own keywords, so the app confirms it, in Spanish)."""
    frozen.move_to(NOW)
    p = demo_clinic_patient(session, first="Rosa", language="es")
    plant(session, p, due=NOW, message_id="S06", kind="checkin_invite", slot="day5", text=INVITE)
    tick(session, sms, NOW, settings(app))
    frozen.move_to(NOW + timedelta(minutes=20))
    text(client, p.mobile_e164, "siete")
    text(client, p.mobile_e164, "Sí")  # the answer to the red-flag question, not START
    text(client, p.mobile_e164, "ayuda")
    tick(session, sms, NOW + timedelta(minutes=21), settings(app))
    bodies = [s.body for s in sms.sent[1:]]
    assert bodies[0].startswith("Gracias Rosa. ¿Tiene dolor de pecho") and bodies[0].endswith("Responda S o N")
    assert "Una enfermera le llamará hoy" in bodies[1] and bodies[2].startswith("Mensajes de seguimiento de Demo Clinic.")
    assert "R1" in alert_rules(session, p)
    text(client, p.mobile_e164, "ALTO")
    session.refresh(p)
    assert p.sms_opted_out and inbound(session)[-1].handled_as == "opt_out_in_words"
    tick(session, sms, NOW + timedelta(minutes=22), settings(app))
    assert sms.sent[-1].body == ("Demo Clinic: ya no le enviaremos mensajes. Su equipo le va a llamar por teléfono. "
                                 "Responda INICIO para recibir mensajes otra vez.")
    text(client, p.mobile_e164, "INICIO")
    session.refresh(p)
    assert not p.sms_opted_out

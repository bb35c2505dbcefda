"""Texts from patients and caregivers (the /twilio/sms webhook's use-case).

Every inbound text is stored once (InboundMessage.provider_sid is unique, so a webhook replay
changes nothing) and handled in the caller's transaction, in this order:

1. STOP-family keyword → that number is opted out at once, for every patient or caregiver who
   has it (Twilio blocks the number for our sender as a whole). Due texts to it are suppressed;
   later ones are suppressed one by one at send time while the opt-out lasts, so START brings
   them back. A patient's opt-out opens the URGENT task M5: monitoring goes on (protocol §2.2),
   the web check-in still works. A caregiver's STOP only affects the caregiver.
   A text that plainly asks to stop in other words ("stop texting me", "Stop. Thank you"; the
   rule is in sms_keywords) is the same opt-out (handled_as "opt_out_in_words", M5 from source
   "sms_words"); as Twilio does not see it, we send the one confirmation S28 ourselves.
2. Y/N while the red-flag question is pending → its answer ("YES" is an answer here, not START).
3. START/YES/UNSTOP (INICIO/SÍ/SI) → opted in again. HELP/INFO/AYUDA → the help reply S24. The
   Spanish opt-out words (ALTO, PARAR, BAJA, CANCELAR) opt out like STOP, but Twilio does not see
   them, so they get the one confirmation S28 as an opt-out in words does (in the patient's language).
4. Reply-by-text check-in (protocol §2.1 UI notes): after an invitation or reminder (the
   dispatcher opens the conversation when it sends one), 0-10 is the back pain score: a check-in
   with source "sms" is started for that slot and scored at once, and S25 asks the red-flag
   question. Y → URGENT task R1 at once, the check-in is submitted, the reply is S20 ("a nurse will
   call you today"); N → submitted and scored as usual. A short unreadable reply gets ONE
   re-prompt (S26/S27); after that, or for anything longer, the text is free text.
5. Anything else → the nurse inbox (handled_as "inbox") and the auto-reply S21. Free text is never
   parsed for triage (MR6).

A shared family phone (two or more patients with an active enrolment on the number;
services/shared_numbers.py) cannot say whose text it is: STOP (all its patients opt out, as
always), START and HELP work as above, but nothing goes into a patient's check-in or conversation
and no patient's inbox (patient_id None): the text opens (or adds to) the URGENT nurse task M7, whose history holds
the text and the patients on the phone, and the sender gets the neutral S29 ("your care team will
call"; no name, no diagnosis). The inbound row belongs to no patient (patient_id None).

Replies go through the outbox as urgent event replies (they answer what the patient just did).
Nothing here logs a number or a message body.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain import contact
from recovery.files import templates as templates_repo
from recovery.services import alerting, clinic_plans
from recovery.services.checkins import record_answers, start_checkin, submit_checkin
from recovery.services.contactability import mark_opted_out
from recovery.services.enrolment import overrides_for
from recovery.services.shared_numbers import active_holders
from recovery.store.enrolments import active_enrolment
from recovery.store import audit
from recovery.store.db import UTCDateTime
from recovery.store.models import (Checkin, CheckinStatus, Clinic, Enrolment, InboundMessage, OutboundMessage,
                                   OutboxStatus, Patient, SmsConversation)
from recovery.domain.sms_keywords import (Keyword, asks_to_stop, classify, is_short_reply, parse_pain,
                                          twilio_handles, yes_no)
from recovery.domain.timeline import plan_reply
from recovery.domain.triage import Level
from recovery.store.outbox import OPT_OUT_REF, add_if_new, new_row, reply_for_event

log = logging.getLogger("recovery.services.inbound")

HELP_REPLY, RED_FLAG_QUESTION, PAIN_REPROMPT, RED_FLAG_REPROMPT, AUTO_REPLY = "S24", "S25", "S26", "S27", "S21"
SHARED_REPLY, SHARED_TASK = "S29", "M7"
SHARED_TEXT_MAX = 500  # of the text, in the task's history (the inbound row keeps it whole)
URGENT_REPLY = "S20"
MAX_BODY = 1600  # Twilio's longest concatenated inbound text


@dataclass(frozen=True)
class InboundSettings:
    schedules_dir: str
    ruleset_path: str
    reply_window: timedelta = timedelta(hours=24)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> InboundSettings:
        return cls(schedules_dir=str(config["SCHEDULES_DIR"]), ruleset_path=str(config["RULESET_PATH"]),
                   reply_window=timedelta(hours=float(config["SMS_REPLY_HOURS"])))


@dataclass(frozen=True)
class InboundResult:
    handled_as: str
    replay: bool = False
    inbound_id: int | None = None


def _pick(patients: list[Patient], session: Session) -> Patient | None:
    """Of several records with one number, the one with an active enrolment, newest first."""
    if not patients:
        return None
    active = [p for p in patients if active_enrolment(session, p) is not None]
    return max(active or patients, key=lambda p: p.id)


class _Inbound:
    def __init__(self, session: Session, settings: InboundSettings, now: datetime, request_id: str | None,
                 message: InboundMessage, patients: list[Patient], carers: list[Patient],
                 shared: list[Patient] | None = None):
        self.session, self.settings, self.now, self.request_id = session, settings, now, request_id
        self.message, self.patients, self.carers = message, patients, carers
        self.shared = shared or []  # two or more: a shared family phone's active patients
        self.patient = _pick(patients, session)
        self.owner = self.patient or _pick(carers, session)
        self.role = message.sender_role

    # -- replies ---------------------------------------------------------------------------------
    def _template(self, enrolment: Enrolment):
        clinic = self.session.get(Clinic, enrolment.clinic_id)
        return clinic_plans.plan_for(self.session, self.settings.schedules_dir, enrolment, clinic)

    def reply(self, message_id: str, ref: str | None = None, checkin_id: int | None = None) -> bool:
        owner = self.owner
        recipient = "patient" if self.role == "patient" else "caregiver"
        if owner is None:
            return False
        blocked = owner.text_block if recipient == "patient" else contact.caregiver_block(
            mobile=owner.caregiver_mobile_e164, consent=owner.caregiver_consent, opted_out=owner.caregiver_opted_out)
        if blocked:
            return False  # the text could not be sent anyway; the inbound row is the record
        enrolment = active_enrolment(self.session, owner)
        if enrolment is None:
            return False
        try:
            planned = plan_reply(self._template(enrolment), message_id, event_at=self.now,
                                 tz=ZoneInfo(owner.timezone), ref=ref or f"in{self.message.id}",
                                 overrides=overrides_for(enrolment), language=owner.language)
        except (KeyError, LookupError):
            log.error("enrolment %d: template has no reply %s; none sent", enrolment.id, message_id)
            return False
        return add_if_new(self.session, new_row(enrolment=enrolment, patient_id=owner.id, recipient=recipient,
                                                message=planned, now=self.now, checkin_id=checkin_id))

    # -- keywords --------------------------------------------------------------------------------
    def opt_out(self, source: str = "sms_keyword") -> str:
        for p in self.patients:
            mark_opted_out(self.session, p, "patient", self.now, source=source)
            self._suppress_due(p, "patient")
            self._end_conversation(p)
        for p in self.carers:
            mark_opted_out(self.session, p, "caregiver", self.now, source=source)
            self._suppress_due(p, "caregiver")
        return "opt_out" if self.role != "unknown" else "unknown_sender"

    def opt_out_in_words(self) -> str:
        """An opt-out in the sender's own words: the same opt-out, plus the one confirmation that
        Twilio sends by itself only after a keyword (planned first: nothing is planned once opted out)."""
        enrolment = active_enrolment(self.session, self.owner) if self.owner is not None else None
        if enrolment is not None:
            message_id = reply_for_event(self._template(enrolment), "opted_out")
            if message_id:
                self.reply(message_id, ref=f"in{self.message.id}:{OPT_OUT_REF}")
        self.opt_out(source="sms_words")
        return "opt_out_in_words"

    def opt_in(self) -> str:
        for p, who in [(p, "patient") for p in self.patients] + [(p, "caregiver") for p in self.carers]:
            attr = "sms_opted_out" if who == "patient" else "caregiver_opted_out"
            if getattr(p, attr):
                setattr(p, attr, False)
                audit.record(self.session, at=self.now, actor_type="patient", actor_id=p.id, action="sms_opted_in",
                             patient_id=p.id, subject_type="patient", subject_id=p.id, detail={"who": who},
                             request_id=self.request_id)
        return "opt_in"

    def _suppress_due(self, patient: Patient, recipient: str) -> None:
        count = self.session.execute(
            sa.update(OutboundMessage)
            .where(OutboundMessage.patient_id == patient.id, OutboundMessage.recipient == recipient,
                   OutboundMessage.status == OutboxStatus.PLANNED, OutboundMessage.send_after <= self.now,
                   OutboundMessage.occurrence_key.not_like(f"%:{OPT_OUT_REF}"))  # the confirmation still goes
            .values(status=OutboxStatus.SUPPRESSED, status_reason="opted_out", updated_at=self.now,
                    final_at=self.now)
            .execution_options(synchronize_session=False)).rowcount or 0
        if count:
            audit.record(self.session, at=self.now, actor_type="system", actor_id=None, action="sms_suppressed",
                         patient_id=patient.id, subject_type="patient", subject_id=patient.id,
                         detail={"reason": "opted_out", "recipient": recipient, "count": count},
                         request_id=self.request_id)

    # -- the reply-by-text check-in --------------------------------------------------------------
    def conversation(self) -> SmsConversation | None:
        if self.patient is None or self.shared:  # a shared phone's text is nobody's check-in
            return None
        conv = self.session.scalar(sa.select(SmsConversation).where(SmsConversation.patient_id == self.patient.id))
        if conv is None or conv.state == "idle" or conv.expires_at <= self.now:
            return None
        return conv

    def _end_conversation(self, patient: Patient) -> None:
        conv = self.session.scalar(sa.select(SmsConversation).where(SmsConversation.patient_id == patient.id))
        if conv is not None and conv.state != "idle":
            conv.state, conv.updated_at = "idle", self.now

    def pain(self, conv: SmsConversation, score: int) -> str | None:
        p = self.patient
        enrolment = active_enrolment(self.session, p)
        if enrolment is None or self.session.scalar(sa.select(Checkin.id).where(
                Checkin.enrolment_id == enrolment.id, Checkin.slot == conv.slot,
                Checkin.status == CheckinStatus.SUBMITTED).limit(1)) is not None:
            conv.state, conv.updated_at = "idle", self.now  # done on the web meanwhile: just a text now
            return None
        template = self._template(enrolment)
        ruleset = templates_repo.ruleset(self.settings.ruleset_path)
        checkin = start_checkin(self.session, enrolment=enrolment, patient=p, slot=conv.slot, source="sms",
                                now=self.now, request_id=self.request_id)
        record_answers(self.session, checkin=checkin, enrolment=enrolment, patient=p, answers={"back_pain": score},
                       template=template, ruleset=ruleset, now=self.now, request_id=self.request_id)
        conv.state, conv.checkin_id, conv.reprompted = "awaiting_redflag", checkin.id, False
        conv.updated_at, conv.expires_at = self.now, self.now + self.settings.reply_window
        self.reply(RED_FLAG_QUESTION, checkin_id=checkin.id)
        return "checkin_pain"

    def red_flag(self, conv: SmsConversation, yes: bool) -> str:
        p = self.patient
        enrolment = active_enrolment(self.session, p)
        checkin = self.session.get(Checkin, conv.checkin_id) if conv.checkin_id else None
        conv.state, conv.updated_at = "idle", self.now
        if yes:
            alerting.raise_rules(self.session, patient=p, enrolment=enrolment, rule_ids=["R1"], now=self.now,
                                 checkin_id=checkin.id if checkin else None, source="sms_reply",
                                 request_id=self.request_id)
        level = None
        if checkin is not None and checkin.status != CheckinStatus.SUBMITTED and enrolment is not None:
            assessment = submit_checkin(self.session, checkin=checkin, enrolment=enrolment, patient=p, answers={},
                                        template=self._template(enrolment),
                                        ruleset=templates_repo.ruleset(self.settings.ruleset_path),
                                        now=self.now, request_id=self.request_id)
            level = assessment.level
        if yes and (level is None or level < Level.URGENT):
            # The nurse will call: say so (S20) instead of the neutral "saved" (S22).
            if checkin is not None:
                self.session.execute(
                    sa.update(OutboundMessage)
                    .where(OutboundMessage.checkin_id == checkin.id, OutboundMessage.message_id == "S22",
                           OutboundMessage.status == OutboxStatus.PLANNED)
                    .values(status=OutboxStatus.CANCELLED, status_reason="superseded", updated_at=self.now,
                            final_at=self.now)
                    .execution_options(synchronize_session=False))
            self.reply(URGENT_REPLY, ref=f"checkin-{checkin.id}" if checkin else None,
                       checkin_id=checkin.id if checkin else None)
        return "red_flag_yes" if yes else "red_flag_no"

    # -- a shared family phone ---------------------------------------------------------------------
    def shared_task(self, body: str) -> str:
        """The text goes to the nurse task M7 (on the newest active patient of the phone, the one
        the worklist names; the history names them all) and the sender gets the neutral S29."""
        owner = self.patient
        enrolment = active_enrolment(self.session, owner)
        candidates = [{"id": p.id, "name": p.display_name} for p in self.shared]
        alerting.raise_rules(self.session, patient=owner, enrolment=enrolment, rule_ids=[SHARED_TASK], now=self.now,
                             source="sms_shared_phone", request_id=self.request_id,
                             detail={"inbound_message_id": self.message.id, "shared_text": body[:SHARED_TEXT_MAX],
                                     "candidates": candidates})
        template = self._template(enrolment) if enrolment is not None else None
        has_reply = template is not None and any(m.id == SHARED_REPLY for m in template.messages)
        # A plan published before S29 existed: its free-text auto-reply (with one first name) instead
        self.reply(SHARED_REPLY if has_reply else AUTO_REPLY)
        return "shared_phone"

    # -- dispatch ----------------------------------------------------------------------------------
    def handle(self, body: str) -> str:
        keyword = classify(body)
        if keyword is Keyword.STOP:
            # ALTO/PARAR/BAJA: Twilio does not see an opt-out there, so the confirmation is ours
            return self.opt_out() if twilio_handles(body) else self.opt_out_in_words()
        if self.role == "unknown":
            return "unknown_sender"
        conv = self.conversation() if self.role == "patient" else None
        if conv is not None and conv.state == "awaiting_redflag":
            answer = yes_no(body)
            if answer is not None:
                return self.red_flag(conv, answer)
        if keyword is None and asks_to_stop(body):
            return self.opt_out_in_words()
        opted_out = any(p.sms_opted_out for p in self.patients) or any(p.caregiver_opted_out for p in self.carers)
        if keyword is Keyword.START and (opted_out or conv is None):
            return self.opt_in()  # ("YES" to a pending pain question is a slip: re-prompted below)
        if keyword is Keyword.HELP:
            self.reply(HELP_REPLY)
            return "help"
        if conv is not None and not self.patient.sms_opted_out:
            if conv.state == "awaiting_pain":
                score = parse_pain(body)
                if score is not None:
                    handled = self.pain(conv, score)
                    if handled:
                        return handled
            if conv.state != "idle" and is_short_reply(body):
                if not conv.reprompted:
                    conv.reprompted, conv.updated_at = True, self.now
                    self.reply(PAIN_REPROMPT if conv.state == "awaiting_pain" else RED_FLAG_REPROMPT)
                    return "reprompt"
                conv.state, conv.updated_at = "idle", self.now  # one re-prompt only; now it is a text
        if self.shared:
            return self.shared_task(body)
        self.reply(AUTO_REPLY)
        return "inbox"


def handle_sms(session: Session, *, sid: str, from_number: str, body: str, now: datetime,
               settings: InboundSettings, request_id: str | None = None) -> InboundResult:
    """Store and act on one inbound text, inside the caller's transaction (the caller commits)."""
    if not sid:
        raise ValueError("an inbound text needs its provider MessageSid")
    if session.scalar(sa.select(InboundMessage.id).where(InboundMessage.provider_sid == sid)) is not None:
        return InboundResult("replay", replay=True)
    patients = list(session.scalars(sa.select(Patient).where(Patient.mobile_e164 == from_number).order_by(Patient.id)))
    carers = list(session.scalars(sa.select(Patient).where(Patient.caregiver_mobile_e164 == from_number)
                                  .order_by(Patient.id)))
    role = "patient" if patients else "caregiver" if carers else "unknown"
    owner = _pick(patients, session) or _pick(carers, session)
    shared = active_holders(patients, session)
    message = InboundMessage(provider_sid=sid, patient_id=owner.id if owner else None, sender_role=role,
                             body=(body or "")[:MAX_BODY], handled_as="received", received_at=now)
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except sa.exc.IntegrityError:  # the same text delivered twice at once: the other one handles it
        return InboundResult("replay", replay=True)
    handler = _Inbound(session, settings, now, request_id, message, patients, carers, shared)
    message.handled_as = handler.handle(body or "")
    if message.handled_as == "shared_phone":
        message.patient_id = None  # whose text it is, is the nurse's question (task M7), not a patient's inbox
    audit.record(session, at=now, actor_type=role if role != "unknown" else "system",
                 actor_id=owner.id if owner else None, action="sms_received",
                 patient_id=owner.id if owner else None, subject_type="inbound_message", subject_id=message.id,
                 detail={"handled_as": message.handled_as}, request_id=request_id)
    return InboundResult(message.handled_as, inbound_id=message.id)


_OPEN_CONVERSATION = sa.text(
    "UPDATE sms_conversation SET state = 'awaiting_pain', slot = :slot, checkin_id = NULL, reprompted = :no,"
    " updated_at = :now, expires_at = :expires"
    " WHERE patient_id = :pid"
    " AND NOT (slot IS NOT NULL AND slot = :slot AND state = 'awaiting_redflag' AND expires_at > :now)"
).bindparams(sa.bindparam("now", type_=UTCDateTime()), sa.bindparam("expires", type_=UTCDateTime()),
             sa.bindparam("no", type_=sa.Boolean()))


def open_conversation(session: Session, patient_id: int, slot: str, now: datetime, window: timedelta) -> None:
    """After a check-in invitation or reminder went out, a reply 0-10 is that slot's pain score.
    A red-flag question already pending for the same slot is left alone."""
    params = dict(pid=patient_id, slot=slot, now=now, expires=now + window, no=False)
    if session.execute(_OPEN_CONVERSATION, params).rowcount:
        return
    if session.scalar(sa.select(SmsConversation.id).where(SmsConversation.patient_id == patient_id)) is not None:
        return  # a red-flag question for this slot is pending: leave it
    try:
        with session.begin_nested():
            session.add(SmsConversation(patient_id=patient_id, state="awaiting_pain", slot=slot, checkin_id=None,
                                        reprompted=False, updated_at=now, expires_at=now + window))
            session.flush()
    except sa.exc.IntegrityError:  # another process opened it first: take it over
        session.execute(_OPEN_CONVERSATION, params)

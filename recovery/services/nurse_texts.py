"""Texts a nurse sends by hand: a new link to the patient's Today page, and a one-off text.

Use-cases (a session, the nurse, `now`; the caller commits). Both go through the outbox like every
text, so the send pipeline's checks apply at send time too (consent, opt-out, a number not working,
an ended or paused enrolment: recovery/dispatch.py), and quiet hours hold them until 08:00 unless a
one-off text is marked urgent. They are refused here first, with words the nurse can act on.

Decisions:
* A resent link is a fresh Today link made when the text goes (only its hash is stored). Earlier
  links keep working until they expire (72 h): the patient lost the text, it did not leak; a
  nurse who fears it leaked ends the patient's sessions another way.
* A form carries a one-time `nonce` that is part of the outbox dedupe key: a double-clicked Send or
  a re-submitted page queues one text, not two.
* A one-off text may use {first}, {phone}, {emerg} and {link}; any other brace is refused, and so
  is a word that would tell the lock screen what the patient was treated for (texts.check_text).
  At most MAX_SEGMENTS SMS segments, counted on the text as it will be sent (sms_encoding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from recovery.domain import contact
from recovery.store import audit
from recovery.domain import sms_encoding
from recovery.domain import texts
from recovery.domain.episode_rules import episode_status
from recovery.services.link_requests import LINK_TEXT
from recovery.store.models import Clinic, Enrolment, OutboundMessage, Patient, StaffUser
from recovery.store.outbox import add_if_new, new_row
from recovery.domain.timeline import PlannedMessage
from recovery.services.tokens import LINK_TOKEN_BYTES

NURSE_TEXT, NURSE_LINK = "nurse_text", "nurse_link"
MAX_SEGMENTS = 3
MAX_CHARS = 600
TOKEN_CHARS = math.ceil(LINK_TOKEN_BYTES * 4 / 3)  # the link token the sender puts in {link} (base64url)


class TextRefused(Exception):
    """Nothing may be texted to this patient now (the message says why)."""


def refusal(patient: Patient, enrolment: Enrolment | None, now: datetime) -> str | None:
    """Why a nurse may not text this patient now, or None."""
    if enrolment is None:
        return "The patient has no episode of care."
    state = episode_status(enrolment.status.value, enrolment.paused_until, now)
    if state == "ended":
        return "Monitoring has ended: nothing is sent to this patient any more."
    if state == "paused":
        return "Texts to this patient are paused: start them again first."
    return _REFUSALS.get(patient.text_block)


_REFUSALS = {contact.NO_CONSENT: "The patient has not agreed to texts.",
             contact.OPTED_OUT: "The patient opted out of texts (STOP). Call them instead.",
             contact.NUMBER_INVALID: "The patient's number is marked as not working: correct it first."}


@dataclass(frozen=True)
class Draft:
    """A one-off text as the patient will get it: its problems and its SMS segments."""
    body: str
    rendered: str
    size: sms_encoding.Segments
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def draft(body: str, *, patient: Patient, clinic: Clinic, public_base_url: str) -> Draft:
    """Check a nurse's text and count its segments with the patient's real name and a real-length link."""
    problems: list[str] = []
    if not body.strip():
        problems.append("Write the text.")
    elif len(body) > MAX_CHARS:
        problems.append(f"Keep the text to {MAX_CHARS} characters.")
    check = texts.check_text(body)
    # Length and GSM-7 are counted below on the real text; everything else check_text finds is a refusal.
    problems += [p for p in check.problems if p != check.too_long and "not GSM-7" not in p]
    link = f"{public_base_url.rstrip('/')}/l/" + "x" * TOKEN_CHARS
    try:
        rendered = texts.render(body, first=patient.first_name, link=link, emerg=clinic.emergency_number,
                                phone=clinic.care_phone)
    except ValueError:
        rendered = body  # its placeholder problem is already listed
    size = sms_encoding.count(rendered)
    if size.count > MAX_SEGMENTS and len(body) <= MAX_CHARS:
        problems.append(f"That is {size.count} SMS segments; keep it to {MAX_SEGMENTS}.")
    return Draft(body, rendered, size, tuple(problems))


def _queue(session: Session, *, patient: Patient, enrolment: Enrolment, message: PlannedMessage,
           now: datetime) -> OutboundMessage | None:
    row = new_row(enrolment=enrolment, patient_id=patient.id, recipient="patient", message=message, now=now)
    return row if add_if_new(session, row) else None


def send_text(session: Session, *, patient: Patient, enrolment: Enrolment | None, clinic: Clinic, body: str,
              urgent: bool, nonce: str, staff: StaffUser, now: datetime, public_base_url: str,
              request_id: str | None = None) -> OutboundMessage | None:
    """Queue a one-off text. None when this nonce was already used (a double submit)."""
    why = refusal(patient, enrolment, now)
    if why:
        raise TextRefused(why)
    d = draft(body, patient=patient, clinic=clinic, public_base_url=public_base_url)
    if not d.ok:
        raise ValueError("; ".join(d.problems))
    message = PlannedMessage(id="NURSE", key=f"NURSE:{nonce}", kind=NURSE_TEXT, send_at=now, due_at=now,
                             text_template=body, urgent=urgent, quiet_moved=False)
    row = _queue(session, patient=patient, enrolment=enrolment, message=message, now=now)
    if row is not None:
        # The words stay in the outbox row (the patient page shows them); the audit says who and how.
        audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="nurse_text_queued",
                     patient_id=patient.id, subject_type="outbound_message", subject_id=row.id,
                     detail={"urgent": urgent, "segments": d.size.count, "encoding": d.size.encoding,
                             "characters": len(body)}, request_id=request_id)
    return row


def resend_link(session: Session, *, patient: Patient, enrolment: Enrolment | None, nonce: str,
                staff: StaffUser, now: datetime, request_id: str | None = None) -> OutboundMessage | None:
    """Queue a text with a new Today link. None when this nonce was already used."""
    why = refusal(patient, enrolment, now)
    if why:
        raise TextRefused(why)
    message = PlannedMessage(id="LINK", key=f"NLINK:{nonce}", kind=NURSE_LINK, send_at=now, due_at=now,
                             text_template=LINK_TEXT, urgent=False, quiet_moved=False)
    row = _queue(session, patient=patient, enrolment=enrolment, message=message, now=now)
    if row is not None:
        audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="link_resent",
                     patient_id=patient.id, subject_type="outbound_message", subject_id=row.id,
                     detail={"purpose": "today"}, request_id=request_id)
    return row

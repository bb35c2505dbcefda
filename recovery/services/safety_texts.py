"""Safety texts that did not reach the patient, for the nurse's patient page.

The plan's safety texts (template `safety`: S01 "have an adult stay with you tonight…", the
discharge-day S02 "call the emergency number if…") are never left out by the planner, but a text
can still fail to go: no consent, STOP, a number that cannot take texts, a delivery failure, an
enrolment more than 24 h after discharge, a sender that was down. The nurse then has to tell the
patient in person, so the page says which text and why.

Works on what the page has already read (the record's texts and the timeline): no query of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from recovery.domain import texts
from recovery.domain.timeline import SAFETY_LATE_WINDOW, Timeline
from recovery.services.records import TextLine
from recovery.store.models import Enrolment, OutboxStatus, Patient

# A planned safety text this long past its send time has not been sent by a working sender.
OVERDUE_AFTER = timedelta(minutes=15)

_SUPPRESSED = {
    "opted_out": "the patient asked us to stop texting (STOP, or in their own words)",
    "no_consent": "the patient has not agreed to texts",
    "number_invalid": "the mobile number cannot receive texts",
    "no_patient": "the patient record was not found",
    "stale": "the text service could not send it within 12 hours of its time",
}
_CANCELLED = {
    "enrolment_ended": "monitoring had ended",
    "replanned": "it was cancelled when the procedure time was corrected",
}


@dataclass(frozen=True)
class SafetyTextProblem:
    message_id: str  # S01
    key: str  # S01:TD
    text: str  # as the patient would have read it (link masked)
    planned_for: datetime  # aware UTC
    why: str  # plain words: "Not sent: the patient asked us to stop texting (STOP, or in their own words)."


def _hours(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} hours" if hours != 1 else "1 hour"


def safety_text_problems(messages: list[TextLine], *, patient: Patient, enrolment: Enrolment, timeline: Timeline,
                         emerg: str, phone: str, now: datetime) -> list[SafetyTextProblem]:
    """Each safety text of this enrolment's plan that was not sent (or is overdue), with why.
    `messages` are the patient's outbound texts (records.patient_record), oldest first."""
    planned = {m.key: m for m in timeline.safety_messages()}
    latest: dict[str, TextLine] = {}
    for line in messages:  # the patient's own copy; a later row for a key replaces an earlier one
        if line.direction == "out" and line.party == "patient" and line.key in planned:
            if line.key not in latest or line.id > latest[line.key].id:
                latest[line.key] = line
    problems = []
    for key, m in planned.items():
        line = latest.get(key)
        why = _why_not_sent(line, patient, enrolment, timeline, now)
        if why is None:
            continue
        try:
            body = texts.render(m.text_template, first=patient.first_name, link="[link]", emerg=emerg, phone=phone)
        except ValueError:
            body = m.text_template
        problems.append(SafetyTextProblem(message_id=m.id, key=key, text=body,
                                          planned_for=line.at if line is not None else m.send_at, why=why + "."))
    return sorted(problems, key=lambda p: (p.planned_for, p.key))


def _why_not_sent(line: TextLine | None, patient: Patient, enrolment: Enrolment, timeline: Timeline,
                  now: datetime) -> str | None:
    if line is None:
        if not patient.sms_consent:
            return "Not sent: the patient has not agreed to texts"
        late = enrolment.created_at - timeline.discharge
        if late > SAFETY_LATE_WINDOW:
            return (f"Not sent: the patient was enrolled {_hours(late)} after discharge, and safety texts "
                    f"go only up to {_hours(SAFETY_LATE_WINDOW)} after discharge")
        return "Not sent: it was never planned, as its time had passed when the plan was made or corrected"
    status, reason = OutboxStatus(line.status), line.reason or ""
    if status in (OutboxStatus.SENT, OutboxStatus.DELIVERED):
        return None
    if status in (OutboxStatus.PLANNED, OutboxStatus.CLAIMED):
        if line.at > now - OVERDUE_AFTER:
            return None
        return "Not sent yet: it is overdue and the text service has not sent it; check that the scheduler runs"
    if status == OutboxStatus.SUPPRESSED:
        return "Not sent: " + _SUPPRESSED.get(reason, reason.replace("_", " ") or "the sender held it back")
    if status == OutboxStatus.CANCELLED:
        return "Not sent: " + _CANCELLED.get(reason, reason.replace("_", " ") or "it was cancelled")
    code = f" (error {line.error})" if line.error else ""
    return f"Not delivered: the phone network reported it as {status.value}{code}"

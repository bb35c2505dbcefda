"""The follow-up appointment (issue 13 §2): a nurse books, changes or clears the real date, time and
place of the follow-up visit. Use-cases: they take a session, the nurse and `now`, write one audit
row with the old and the new value, and leave the commit to the caller.

Booking puts the follow-up milestone (domain.timeline.FOLLOW_UP, TL16) at the appointment's time,
so everything the plan times from it moves with it: the texts 7 days and 1 day before (S16, S17),
the bone-health text (S18) and the milestones that start or end at the visit. Planned texts not yet
sent are re-planned through the one re-plan (enrolment.replan_texts): a moved text's planned row is
cancelled and one row planned at the new time, never two; texts already sent are kept; quiet hours,
the daily limit and a pause apply as to any plan."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from recovery.domain.plan.model import Template
from recovery.domain.timeline import FOLLOW_UP, TimelineError
from recovery.services.enrolment import replan_texts, timeline_for
from recovery.store import audit
from recovery.store.models import Enrolment, EnrolmentStatus, Patient, StaffUser

PLACE_MAX = 120


class AppointmentRefused(Exception):
    """The appointment cannot be booked on this enrolment (ended, or its plan has no follow-up visit)."""


@dataclass(frozen=True)
class Booked:
    action: str  # followup_booked | followup_changed | followup_cleared | followup_unchanged
    cancelled: int  # planned texts cancelled or moved
    added: int  # texts planned


def appointment_problems(at: datetime | None, place: str | None, enrolment: Enrolment) -> dict[str, str]:
    """What is wrong with an appointment, by field ("at", "place"); empty when it can be booked."""
    problems = {}
    if at is None:
        problems["at"] = "Enter the date and time of the appointment."
    elif at <= enrolment.procedure_end:
        problems["at"] = "The appointment must be after the procedure."
    place = (place or "").strip()
    if not place:
        problems["place"] = "Enter where the appointment is, e.g. “Spine clinic, 2nd floor”."
    elif len(place) > PLACE_MAX:
        problems["place"] = f"Keep the place to {PLACE_MAX} characters."
    return problems


def _value(at: datetime | None, place: str | None) -> dict | None:
    return None if at is None else {"at": at.isoformat(), "place": place}


def book_followup(session: Session, *, enrolment: Enrolment, patient: Patient, template: Template,
                  at: datetime | None, place: str | None, staff: StaffUser, now: datetime,
                  request_id: str | None = None) -> Booked:
    """Book, change (`at` and `place`) or clear (`at` None) the follow-up appointment and re-plan the
    texts timed from it. Raises AppointmentRefused, ValueError (appointment_problems) or
    TimelineError (the plan cannot take that time), with nothing changed."""
    if enrolment.status != EnrolmentStatus.ACTIVE:
        raise AppointmentRefused("monitoring of this episode has ended")
    if not any(m.id == FOLLOW_UP for m in template.milestones):
        raise AppointmentRefused("this plan has no follow-up visit")
    place = (place or "").strip() or None
    if at is not None:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("the appointment time must be timezone-aware")
        at = at.astimezone(timezone.utc)
        problems = appointment_problems(at, place, enrolment)
        if problems:
            raise ValueError(next(iter(problems.values())))
    old_at, old_place = enrolment.followup_at, enrolment.followup_place
    if (old_at, old_place) == (at, place if at is not None else None):
        return Booked("followup_unchanged", 0, 0)
    probe = Enrolment(procedure_end=enrolment.procedure_end, discharge_at=enrolment.discharge_at,
                      overrides=enrolment.overrides, working=enrolment.working, brace=enrolment.brace,
                      followup_at=at, followup_place=place if at is not None else None)
    try:
        new_timeline = timeline_for(probe, patient, template)  # fails here, before anything changes
    except TimelineError as e:
        if e.milestone and e.milestone != FOLLOW_UP:
            raise TimelineError(f"the plan cannot take an appointment then ({e.problem})",
                                FOLLOW_UP, "at") from None
        raise
    enrolment.followup_at, enrolment.followup_place = at, (place if at is not None else None)
    cancelled, added = replan_texts(session, enrolment, patient, new_timeline, now, template=template)
    action = "followup_cleared" if at is None else ("followup_booked" if old_at is None else "followup_changed")
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action=action,
                 patient_id=patient.id, subject_type="enrolment", subject_id=enrolment.id,
                 detail={"old": _value(old_at, old_place), "new": _value(at, enrolment.followup_place),
                         "cancelled": cancelled, "added": added},
                 request_id=request_id)
    return Booked(action, cancelled, added)

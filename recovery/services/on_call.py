"""The clinic's on-call ladder (issue 13 §1, /admin/on-call): its rungs in order, adding, removing
and reordering them, and paging one through the outbox — the escalation of an alert
(services/alerting.py) and an admin's test page go the same way, so a test page proves the real
path: outbox row, scheduler, sender, delivery callback.

A rung is a staff member (texted at their account's mobile; skipped while disabled or without one)
or a name and a mobile number checked like a patient's (services/phones.py). Every change is
audited with the ladder before and after.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain.timeline import PlannedMessage
from recovery.store import audit
from recovery.store.models import Clinic, OnCallStep, OutboundMessage, OutboxStatus, StaffRole, StaffUser
from recovery.store.outbox import add_if_new, new_row

TEST_PAGE_ID = "TEST"
TEST_PAGE_KIND = "test_page"
TEST_PAGE_TEXT = ("Recovery Tracker: test page from your clinic's on-call ladder. "
                  "No action needed. Worklist: {link}")
# What an admin sees of an outbox row's status.
DELIVERY_WORDS = {
    OutboxStatus.PLANNED: "queued", OutboxStatus.CLAIMED: "queued", OutboxStatus.SENT: "sent",
    OutboxStatus.DELIVERED: "delivered", OutboxStatus.UNDELIVERED: "failed", OutboxStatus.FAILED: "failed",
    OutboxStatus.SUPPRESSED: "failed", OutboxStatus.CANCELLED: "failed",
}
FINAL_WORDS = frozenset({"delivered", "failed"})


class LadderError(ValueError):
    """A change the ladder refuses (the message says why, for the admin)."""


@dataclass(frozen=True)
class Rung:
    """One rung as the pages show it and as a page is addressed."""
    id: int
    position: int
    name: str
    number: str | None  # where a page goes now (None: it cannot be paged)
    staff_id: int | None
    problem: str | None  # why a page would skip it ("account disabled", "no mobile number")


def ladder(session: Session, clinic_id: int) -> list[OnCallStep]:
    return list(session.scalars(sa.select(OnCallStep).where(OnCallStep.clinic_id == clinic_id)
                                .order_by(OnCallStep.position)))


def describe(session: Session, step: OnCallStep) -> Rung:
    if step.staff_id is None:
        return Rung(step.id, step.position, step.name or "", step.mobile_e164, None, None)
    staff = session.get(StaffUser, step.staff_id)
    problem = ("account disabled" if staff is None or not staff.active
               else None if staff.mobile_e164 else "no mobile number")
    return Rung(step.id, step.position, staff.name if staff else "", None if problem else staff.mobile_e164,
                step.staff_id, problem)


def rungs(session: Session, clinic_id: int) -> list[Rung]:
    return [describe(session, s) for s in ladder(session, clinic_id)]


def staff_choices(session: Session, clinic_id: int) -> list[StaffUser]:
    """The clinic's active staff, who may be put on the ladder."""
    return list(session.scalars(sa.select(StaffUser).where(StaffUser.clinic_id == clinic_id, StaffUser.active.is_(True),
                                                           StaffUser.role.in_((StaffRole.NURSE, StaffRole.ADMIN)))
                                .order_by(StaffUser.name)))


def _snapshot(session: Session, clinic_id: int) -> list[dict]:
    # Names only, never numbers: audit detail is shown to admins and copied into reports.
    return [{"position": r.position, "rung_id": r.id, "staff_id": r.staff_id, "name": r.name}
            for r in rungs(session, clinic_id)]


def _audit(session: Session, clinic: Clinic, admin: StaffUser, now: datetime, action: str, before: list[dict],
           request_id: str | None, subject_id: int | None = None, **detail) -> None:
    audit.record(session, at=now, actor_type="staff", actor_id=admin.id, action=action, patient_id=None,
                 subject_type="on_call_step" if subject_id else "clinic", subject_id=subject_id or clinic.id,
                 detail={"clinic_id": clinic.id, "before": before, "after": _snapshot(session, clinic.id), **detail},
                 request_id=request_id)


def _lock(session: Session, clinic: Clinic) -> None:
    """Serialise ladder changes of one clinic (PostgreSQL: the clinic row; SQLite: the write lock)."""
    session.scalar(sa.select(Clinic.id).where(Clinic.id == clinic.id).with_for_update())


def add_staff_rung(session: Session, *, clinic: Clinic, staff_id: int, admin: StaffUser, now: datetime,
                   request_id: str | None = None) -> OnCallStep:
    _lock(session, clinic)
    staff = session.get(StaffUser, staff_id)
    if staff is None or staff.clinic_id != clinic.id or not staff.active:
        raise LadderError("Choose an active member of this clinic's staff.")
    if any(s.staff_id == staff_id for s in ladder(session, clinic.id)):
        raise LadderError(f"{staff.name} is already on the ladder.")
    return _append(session, clinic, admin, now, request_id, OnCallStep(clinic_id=clinic.id, staff_id=staff_id))


def add_phone_rung(session: Session, *, clinic: Clinic, name: str, mobile_e164: str, admin: StaffUser,
                   now: datetime, request_id: str | None = None) -> OnCallStep:
    """`mobile_e164` already checked by the form (services/phones.parse_mobile)."""
    _lock(session, clinic)
    if any(s.mobile_e164 == mobile_e164 for s in ladder(session, clinic.id)):
        raise LadderError("That number is already on the ladder.")
    return _append(session, clinic, admin, now, request_id,
                   OnCallStep(clinic_id=clinic.id, name=name, mobile_e164=mobile_e164))


def _append(session, clinic, admin, now, request_id, step: OnCallStep) -> OnCallStep:
    before = _snapshot(session, clinic.id)
    step.position = max((s.position for s in ladder(session, clinic.id)), default=0) + 1
    session.add(step)
    session.flush()
    _audit(session, clinic, admin, now, "on_call_rung_added", before, request_id, subject_id=step.id)
    return step


def rung_for_admin(session: Session, clinic_id: int, rung_id: int) -> OnCallStep | None:
    """The rung, or None when it is not this clinic's (the route answers 404)."""
    step = session.get(OnCallStep, rung_id)
    return step if step is not None and step.clinic_id == clinic_id else None


def remove_rung(session: Session, *, clinic: Clinic, step: OnCallStep, admin: StaffUser, now: datetime,
                request_id: str | None = None) -> None:
    """Remove a rung and close the gap (positions stay 1..n: an alert's escalation_step counts rungs)."""
    _lock(session, clinic)
    before = _snapshot(session, clinic.id)
    removed = step.id
    session.delete(step)
    session.flush()
    _renumber(session, ladder(session, clinic.id))
    _audit(session, clinic, admin, now, "on_call_rung_removed", before, request_id, subject_id=removed)


def move_rung(session: Session, *, clinic: Clinic, step: OnCallStep, direction: str, admin: StaffUser,
              now: datetime, request_id: str | None = None) -> bool:
    """Swap a rung with the one above ("up") or below ("down"); False when it is already at that end."""
    if direction not in ("up", "down"):
        raise LadderError("Move a rung up or down.")
    _lock(session, clinic)
    steps = ladder(session, clinic.id)
    i = next(i for i, s in enumerate(steps) if s.id == step.id)
    j = i - 1 if direction == "up" else i + 1
    if not 0 <= j < len(steps):
        return False
    before = _snapshot(session, clinic.id)
    steps[i], steps[j] = steps[j], steps[i]
    _renumber(session, steps)
    _audit(session, clinic, admin, now, "on_call_rung_moved", before, request_id, subject_id=step.id,
           direction=direction)
    return True


def _renumber(session: Session, steps: list[OnCallStep]) -> None:
    """Positions 1..n in this order; through negative ones first, as (clinic, position) is unique."""
    for k, s in enumerate(steps, start=1):
        s.position = -k
    session.flush()
    for s in steps:
        s.position = -s.position
    session.flush()


def queue_page(session: Session, *, clinic: Clinic, rung: Rung, message_id: str, key: str, kind: str,
               text: str, now: datetime, alert_id: int | None = None) -> OutboundMessage | None:
    """Put one urgent text to a rung in the outbox (no quiet hours for staff). None when the same
    page (key) is already there. The row names the clinic (its sender) and, for a phone rung, the
    number as it is now: removing the rung later does not redirect a page in flight."""
    message = PlannedMessage(id=message_id, key=key, kind=kind, send_at=now, due_at=now, text_template=text,
                             urgent=True, quiet_moved=False)
    row = new_row(enrolment=None, patient_id=None, recipient="staff", message=message, now=now,
                  staff_id=rung.staff_id, alert_id=alert_id)
    row.clinic_id = clinic.id
    if rung.staff_id is None:
        row.to_e164 = rung.number
    return row if add_if_new(session, row) else None


def send_test_page(session: Session, *, clinic: Clinic, step: OnCallStep, admin: StaffUser, now: datetime,
                   request_id: str | None = None) -> OutboundMessage:
    rung = describe(session, step)
    if rung.number is None:
        raise LadderError(f"{rung.name} cannot be paged: {rung.problem}.")
    row = queue_page(session, clinic=clinic, rung=rung, message_id=TEST_PAGE_ID, kind=TEST_PAGE_KIND,
                     key=f"TEST:rung{step.id}:{now:%Y%m%dT%H%M%S%f}", text=TEST_PAGE_TEXT, now=now)
    if row is None:  # the same microsecond twice: the page is already queued
        raise LadderError("That test page is already queued.")
    audit.record(session, at=now, actor_type="staff", actor_id=admin.id, action="on_call_test_page",
                 patient_id=None, subject_type="outbound_message", subject_id=row.id,
                 detail={"clinic_id": clinic.id, "rung_id": step.id, "position": step.position, "name": rung.name},
                 request_id=request_id)
    return row


def find_test_page(session: Session, clinic_id: int, message_id: int) -> OutboundMessage | None:
    """A test page of this clinic, or None (the route answers 404)."""
    row = session.get(OutboundMessage, message_id)
    if row is None or row.clinic_id != clinic_id or row.kind != TEST_PAGE_KIND:
        return None
    return row


def test_page_rung_id(row: OutboundMessage) -> int:
    """The rung a test page went to, from its occurrence key (TEST:rung<id>:<time>); 0 if none."""
    parts = row.occurrence_key.split(":")
    part = parts[1] if len(parts) >= 3 else ""
    return int(part[4:]) if part.startswith("rung") and part[4:].isdigit() else 0


def delivery_word(row: OutboundMessage) -> str:
    return DELIVERY_WORDS.get(row.status, "queued")

"""The optional TOTP second factor (RFC 6238, pyotp): enrol, check a code, reset.

A code is accepted for the current 30-second step or the one either side (a phone clock a little
off), and only for a step later than the last one accepted: a code seen over a shoulder or in a
proxy log cannot be used again, not even within its own window. The secret is never logged or
audited; enrolment keeps the new secret apart (`totp_pending_secret`) until a code from it is
confirmed, so a half-done enrolment never changes how the account signs in.
"""
from __future__ import annotations

import hmac
from datetime import datetime

import pyotp
from sqlalchemy.orm import Session

from recovery.services.sessions import revoke_all_for_staff
from recovery.services.staff_accounts import Actor, StaffProblem
from recovery.store import audit
from recovery.store.models import StaffUser

ISSUER = "Recovery Tracker"
DRIFT_STEPS = 1


def pending_secret(staff: StaffUser) -> str:
    """The secret being enrolled (made on first view, the same on a reload until confirmed)."""
    if not staff.totp_pending_secret:
        staff.totp_pending_secret = pyotp.random_base32()
    return staff.totp_pending_secret


def provisioning_uri(secret: str, staff: StaffUser, clinic_name: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=staff.email, issuer_name=f"{ISSUER} ({clinic_name})")


def _matching_step(secret: str, code: str, now: datetime, after: int | None) -> int | None:
    totp = pyotp.TOTP(secret)
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        at = now.timestamp() + offset * totp.interval
        step = totp.timecode(at)
        if (after is None or step > after) and hmac.compare_digest(totp.at(int(at)), code):
            return step
    return None


def check_code(staff: StaffUser, code: str, now: datetime) -> bool:
    """Does this code sign the account in? Marks its step used (the caller commits)."""
    if not staff.totp_secret:
        return False
    step = _matching_step(staff.totp_secret, code, now, staff.totp_last_step)
    if step is None:
        return False
    staff.totp_last_step = step
    return True


def confirm(session: Session, staff: StaffUser, code: str, *, now: datetime, request_id: str | None) -> bool:
    """Finish enrolment with a code from the pending secret: from now on sign-in asks for a code."""
    if not staff.totp_pending_secret:
        return False
    step = _matching_step(staff.totp_pending_secret, code, now, None)
    if step is None:
        return False
    was_on = staff.totp_secret is not None
    staff.totp_secret, staff.totp_pending_secret, staff.totp_last_step = staff.totp_pending_secret, None, step
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="staff_totp_enabled",
                 subject_type="staff_user", subject_id=staff.id, detail={"old": was_on, "new": True},
                 request_id=request_id)
    return True


def reset(session: Session, staff: StaffUser, *, now: datetime, actor: Actor) -> None:
    """An admin turns a member's second factor off (a lost phone); they can enrol again."""
    if not staff.totp_secret and not staff.totp_pending_secret:
        raise StaffProblem("Two-step sign-in is not set up for this account.")
    was_on = staff.totp_secret is not None
    staff.totp_secret = staff.totp_pending_secret = staff.totp_last_step = None
    # Where the clinic requires a second factor, no session may go on without one.
    ended = revoke_all_for_staff(session, staff.id, now) if staff.clinic.require_totp else 0
    audit.record(session, at=now, actor_type=actor.kind, actor_id=actor.staff_id, action="staff_totp_reset",
                 subject_type="staff_user", subject_id=staff.id,
                 detail={"old": was_on, "new": False, "sessions_ended": ended}, request_id=actor.request_id)

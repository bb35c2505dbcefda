"""Server-side web sessions for nurses and patients, and passwordless patient links.

A link GET never consumes the token (SMS apps and scanners pre-fetch links); only the POST from the
confirm page does, once. A check-in link opens a session scoped to check-ins: no history.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.orm import Session

from recovery.services.tokens import digest, new_link_token, new_token
from recovery.store import audit
from recovery.store.models import AccessLink, Patient, StaffUser, WebSession

STAFF_SCOPE = "staff"
PATIENT_SCOPE = "patient"
CHECKIN_SCOPE = "checkin"
# Half signed in: the password was right, the second step is still to come. Neither scope is
# "staff", so no page but the second step itself accepts such a session (access.py loads only
# staff sessions as a signed-in user).
SECOND_FACTOR_SCOPE = "2fa"  # give the code from the authenticator app
ENROL_SCOPE = "2fa_enrol"  # the clinic requires a second factor: set one up before anything else
PENDING_SCOPES = (SECOND_FACTOR_SCOPE, ENROL_SCOPE)
PENDING_TTL = timedelta(minutes=10)
# A busy page refreshes itself; only write last_seen when it moved this much (no write per poll).
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    staff_idle: timedelta
    staff_absolute: timedelta
    patient_absolute: timedelta


def start_staff_session(session: Session, staff: StaffUser, now: datetime,
                        policy: SessionPolicy) -> str:
    token = new_token()
    session.add(WebSession(token_hash=digest(token), staff_id=staff.id, scope=STAFF_SCOPE,
                           created_at=now, last_seen_at=now,
                           expires_at=now + policy.staff_absolute))
    return token


def start_pending_session(session: Session, staff: StaffUser, scope: str, now: datetime) -> str:
    assert scope in PENDING_SCOPES
    token = new_token()
    session.add(WebSession(token_hash=digest(token), staff_id=staff.id, scope=scope, created_at=now,
                           last_seen_at=now, expires_at=now + PENDING_TTL))
    return token


def load_pending(session: Session, token: str | None, now: datetime) -> WebSession | None:
    """The half-signed-in session for a cookie token (an active account's, not ended), or None."""
    if not token:
        return None
    ws = session.scalar(sa.select(WebSession).where(WebSession.token_hash == digest(token))
                        .options(so.joinedload(WebSession.staff)))
    if ws is None or ws.scope not in PENDING_SCOPES or ws.revoked_at is not None or now >= ws.expires_at:
        return None
    if ws.staff is None or not ws.staff.active:
        return None
    return ws


def start_patient_session(session: Session, patient_id: int, scope: str, now: datetime,
                          expires_at: datetime, checkin_slot: str | None = None) -> str:
    token = new_token()
    session.add(WebSession(token_hash=digest(token), patient_id=patient_id, scope=scope,
                           checkin_slot=checkin_slot, created_at=now, last_seen_at=now,
                           expires_at=expires_at))
    return token


_SESSION_BY_TOKEN = (sa.select(WebSession).where(WebSession.token_hash == sa.bindparam("digest"))
                     .options(so.joinedload(WebSession.staff),
                              so.joinedload(WebSession.patient).joinedload(Patient.clinic)))


def load_session(session: Session, token: str | None, now: datetime,
                 policy: SessionPolicy, activity: bool = True) -> WebSession | None:
    """The live session for a cookie token, or None. Touches last_seen at most once a minute, and
    only for real activity: a page refreshing itself must not keep an unattended session alive."""
    if not token:
        return None
    # the staff row, or the patient and their clinic, in the same statement: every request needs
    # them (lazy loads were two more)
    ws = session.scalar(_SESSION_BY_TOKEN, {"digest": digest(token)})
    if ws is None or not _live(ws.revoked_at, ws.expires_at, now):
        return None
    if ws.scope == STAFF_SCOPE:
        staff = ws.staff  # loaded once; the caller uses ws.staff without another query
        if not _staff_live(ws.last_seen_at, staff is not None and staff.active, now, policy):
            return None
    if activity and now - ws.last_seen_at >= _TOUCH_EVERY:
        ws.last_seen_at = now
    return ws


def _live(revoked_at: datetime | None, expires_at: datetime, now: datetime) -> bool:
    return revoked_at is None and now < expires_at


def _staff_live(last_seen_at: datetime, staff_active: bool, now: datetime, policy: SessionPolicy) -> bool:
    return staff_active and now - last_seen_at <= policy.staff_idle


def staff_session_select(*columns) -> sa.Select:
    """A select of what `staff_clinic_of` checks about a staff session (bind `token_hash`), plus
    `columns` of the caller's (grouped by the session and staff rows): a request that must stay
    cheaper than loading the session as objects (the worklist poll) checks it in its own statement."""
    return (sa.select(WebSession.scope, WebSession.revoked_at, WebSession.expires_at, WebSession.last_seen_at,
                      StaffUser.active, StaffUser.clinic_id, *columns)
            .join(StaffUser, StaffUser.id == WebSession.staff_id)
            .where(WebSession.token_hash == sa.bindparam("token_hash"))
            .group_by(WebSession.id, StaffUser.id))


def staff_clinic_of(row, now: datetime, policy: SessionPolicy) -> int | None:
    """The clinic of a live staff session from a `staff_session_select` row (the same rules as
    `load_session`), else None. Touches nothing: for a background refresh only."""
    if row is None or row.scope != STAFF_SCOPE or not _live(row.revoked_at, row.expires_at, now):
        return None
    return row.clinic_id if _staff_live(row.last_seen_at, row.active, now, policy) else None


def revoke(session: Session, ws: WebSession, now: datetime) -> None:
    ws.revoked_at = now


def revoke_all_for_staff(session: Session, staff_id: int, now: datetime) -> int:
    result = session.execute(
        sa.update(WebSession).where(WebSession.staff_id == staff_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now))
    return result.rowcount or 0


# ---- patient links -------------------------------------------------------------------------

def issue_link(session: Session, patient: Patient, purpose: str, now: datetime,
               ttl: timedelta, checkin_slot: str | None = None) -> str:
    """A single-use link token for a text (128 bits: short enough for an SMS, see tokens.py)."""
    token = new_link_token()
    session.add(AccessLink(token_hash=digest(token), patient_id=patient.id, purpose=purpose,
                           checkin_slot=checkin_slot, created_at=now, expires_at=now + ttl))
    return token


class LinkProblem(Exception):
    """Why a link cannot be used: 'unknown', 'expired' or 'used'; `patient_id` is whose link it
    was (None when unknown)."""

    def __init__(self, reason: str, patient_id: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.patient_id = patient_id


def peek_link(session: Session, token: str, now: datetime) -> AccessLink:
    """Look at a link without consuming it (GET)."""
    link = session.scalar(sa.select(AccessLink).where(AccessLink.token_hash == digest(token)))
    if link is None:
        raise LinkProblem("unknown")
    if link.used_at is not None:
        raise LinkProblem("used", link.patient_id)
    if now >= link.expires_at:
        raise LinkProblem("expired", link.patient_id)
    return link


def redeem_link(session: Session, token: str, now: datetime, policy: SessionPolicy,
                request_id: str | None = None) -> tuple[AccessLink, str]:
    """Consume a link (POST) and open a patient session. Single use: a conditional UPDATE, so two
    racing POSTs cannot both succeed."""
    link = peek_link(session, token, now)
    claimed = session.execute(
        sa.update(AccessLink).where(AccessLink.id == link.id, AccessLink.used_at.is_(None))
        .values(used_at=now)).rowcount
    if claimed != 1:
        raise LinkProblem("used", link.patient_id)
    scope = CHECKIN_SCOPE if link.purpose == "checkin" else PATIENT_SCOPE
    expires = min(now + policy.patient_absolute, link.expires_at + policy.patient_absolute)
    cookie_token = start_patient_session(session, link.patient_id, scope, now, expires,
                                         checkin_slot=link.checkin_slot)
    audit.record(session, at=now, actor_type="patient", actor_id=link.patient_id,
                 action="link_redeemed", patient_id=link.patient_id, subject_type="access_link",
                 subject_id=link.id, detail={"purpose": link.purpose}, request_id=request_id)
    return link, cookie_token

"""Staff sign-in as a use-case: find the account, check the password, and either record the failure
or rehash, start the server-side session and audit the sign-in. The route keeps what is HTTP's:
the rate limits, the hashing slots, the cookie session and Flask-Login."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.services.passwords import hash_password, needs_rehash, verify_password
from recovery.services.sessions import (ENROL_SCOPE, SECOND_FACTOR_SCOPE, STAFF_SCOPE, SessionPolicy,
                                       start_pending_session, start_staff_session)
from recovery.store import audit
from recovery.store.db import begin_write
from recovery.store.models import StaffUser, WebSession

@cache
def dummy_hash() -> str:
    """Verifying against a real hash for unknown e-mails keeps the timing the same (no account
    probing). Made on first use: at import it cost every process (each CLI command, each worker)
    0.3 s of argon2."""
    return hash_password("not-a-real-password-0000")


@dataclass(frozen=True)
class Candidate:
    """The account an e-mail names (staff_id None: none; its hash is then the dummy one)."""
    staff_id: int | None
    stored_hash: str


def find_account(session: Session, email: str) -> Candidate:
    """Look the account up, then end the transaction: none may stay open while argon2 runs (on
    SQLite it would hold the one write lock)."""
    staff = session.scalar(sa.select(StaffUser).where(sa.func.lower(StaffUser.email) == email))
    found = Candidate(staff.id, staff.password_hash) if staff else Candidate(None, dummy_hash())
    session.rollback()
    return found


def check_password(candidate: Candidate, password: str) -> tuple[bool, str | None]:
    """(the password matches, a new hash when the stored one uses old parameters). Slow: argon2."""
    ok = verify_password(candidate.stored_hash, password)
    return ok, (hash_password(password) if ok and needs_rehash(candidate.stored_hash) else None)


def complete(session: Session, candidate: Candidate, ok: bool, rehash: str | None, *, now: datetime,
             request_id: str | None, policy: SessionPolicy) -> tuple[StaffUser, str, str] | None:
    """Finish a sign-in in one write transaction. None: refused (audited and committed). Otherwise
    (staff, session token, its scope), audited; the caller commits once it holds the session.
    The scope is "staff" (signed in) or, for an account with a second factor or in a clinic that
    requires one, a half-signed-in scope that only the second step accepts (`finish_second_step`).
    A password changed while this one was being checked refuses the sign-in."""
    begin_write(session)
    staff = session.get(StaffUser, candidate.staff_id) if candidate.staff_id is not None else None
    if not (staff and ok and staff.active and staff.password_hash == candidate.stored_hash):
        audit.record(session, at=now, actor_type="staff", actor_id=staff.id if staff else None,
                     action="login_failed", request_id=request_id)
        session.commit()
        return None
    if rehash:
        staff.password_hash = rehash
    if staff.totp_secret or staff.clinic.require_totp:
        scope = SECOND_FACTOR_SCOPE if staff.totp_secret else ENROL_SCOPE
        token = start_pending_session(session, staff, scope, now)
        audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="login_password_ok",
                     detail={"next": scope}, request_id=request_id)
        return staff, token, scope
    return staff, _signed_in(session, staff, now, policy, request_id), STAFF_SCOPE


def _signed_in(session: Session, staff: StaffUser, now: datetime, policy: SessionPolicy,
               request_id: str | None) -> str:
    staff.last_sign_in_at = now
    token = start_staff_session(session, staff, now, policy)
    session.flush()
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="login", request_id=request_id)
    return token


def finish_second_step(session: Session, pending: WebSession, *, now: datetime, policy: SessionPolicy,
                       request_id: str | None) -> str:
    """The code was right (or the second factor was just set up): end the half-signed-in session
    and sign in. Returns the new staff session's token; the caller commits."""
    pending.revoked_at = now
    return _signed_in(session, pending.staff, now, policy, request_id)

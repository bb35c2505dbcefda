"""Staff accounts as use-cases (issue 13 §1): invite, create (the CLI), change role, disable,
re-enable, reset the password, set a password through a link, require a second factor.

Each takes a session and `now`, writes one audit row with what changed (old and new values; never
a password, a token or a TOTP secret) and leaves the commit to the caller. An invited account has
no usable password until its link is used: `UNUSABLE_HASH` matches no password (argon2 rejects it
as a hash), so the sign-in refuses it like a wrong password.

Set-password links are single use and valid `LINK_TTL`; only their SHA-256 is stored (256-bit
tokens need no slow hash, see tokens.py). A newer link for an account voids the older ones, and
disabling an account voids them too.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.services.passwords import hash_password, password_problem
from recovery.services.sessions import revoke_all_for_staff
from recovery.services.tokens import digest, new_token
from recovery.store import audit
from recovery.store.models import Clinic, StaffPasswordLink, StaffRole, StaffUser

LINK_TTL = timedelta(hours=72)
UNUSABLE_HASH = "!no-password-yet"
ROLES = {"nurse": "Nurse", "admin": "Admin"}


class StaffProblem(Exception):
    """A change refused for a reason the admin should read (the last admin, their own account, ...)."""


class LinkProblem(Exception):
    """Why a set-password link cannot be used: 'unknown', 'used', 'expired' or 'void'."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a staff member (the admin) or the system (the CLI)."""
    staff_id: int | None
    request_id: str | None = None

    @property
    def kind(self) -> str:
        return "staff" if self.staff_id is not None else "system"


def _audit(session: Session, actor: Actor, now: datetime, action: str, staff: StaffUser, **detail) -> None:
    audit.record(session, at=now, actor_type=actor.kind, actor_id=actor.staff_id, action=action,
                 subject_type="staff_user", subject_id=staff.id, detail=detail, request_id=actor.request_id)


def normal_email(email: str) -> str:
    return email.strip().lower()


def email_taken(session: Session, email: str) -> bool:
    return session.scalar(sa.select(StaffUser.id).where(sa.func.lower(StaffUser.email) == normal_email(email))) \
        is not None


def staff_of_clinic(session: Session, clinic_id: int) -> list[StaffUser]:
    return list(session.scalars(sa.select(StaffUser).where(StaffUser.clinic_id == clinic_id)
                                .order_by(StaffUser.active.desc(), sa.func.lower(StaffUser.name), StaffUser.id)))


def has_password(staff: StaffUser) -> bool:
    return staff.password_hash != UNUSABLE_HASH


def _active_admins(session: Session, clinic_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(StaffUser).where(
        StaffUser.clinic_id == clinic_id, StaffUser.active.is_(True), StaffUser.role == StaffRole.ADMIN)) or 0


def _add(session: Session, clinic: Clinic, *, name: str, email: str, role: str, password_hash: str,
         mobile_e164: str | None, now: datetime) -> StaffUser:
    email = normal_email(email)
    duplicate = f"A staff account with the email {email} already exists."
    if email_taken(session, email):
        raise StaffProblem(duplicate)
    staff = StaffUser(clinic_id=clinic.id, email=email, name=name.strip(), role=StaffRole(role),
                      password_hash=password_hash, mobile_e164=mobile_e164, active=True, created_at=now)
    try:
        with session.begin_nested():  # created meanwhile by someone else: the unique email says so
            session.add(staff)
            session.flush()
    except sa.exc.IntegrityError:
        raise StaffProblem(duplicate) from None
    return staff


def create_with_password(session: Session, clinic: Clinic, *, name: str, email: str, role: str, password: str,
                         mobile_e164: str | None, now: datetime, actor: Actor = Actor(None)) -> StaffUser:
    """An account with a password set at once (the `create-staff` CLI)."""
    problem = password_problem(password, name=name, email=email)
    if problem:
        raise StaffProblem(problem)
    staff = _add(session, clinic, name=name, email=email, role=role, password_hash=hash_password(password),
                 mobile_e164=mobile_e164, now=now)
    _audit(session, actor, now, "staff_created", staff, role=role)
    return staff


def _new_link(session: Session, staff: StaffUser, purpose: str, actor: Actor, now: datetime) -> str:
    session.execute(sa.update(StaffPasswordLink).where(
        StaffPasswordLink.staff_id == staff.id, StaffPasswordLink.used_at.is_(None),
        StaffPasswordLink.voided_at.is_(None)).values(voided_at=now))
    token = new_token()
    session.add(StaffPasswordLink(token_hash=digest(token), staff_id=staff.id, purpose=purpose,
                                  created_by_id=actor.staff_id, created_at=now, expires_at=now + LINK_TTL))
    return token


def invite(session: Session, clinic: Clinic, *, name: str, email: str, role: str, now: datetime,
           actor: Actor) -> tuple[StaffUser, str]:
    """A new account without a password, and the set-password link (token) the admin hands over."""
    staff = _add(session, clinic, name=name, email=email, role=role, password_hash=UNUSABLE_HASH,
                 mobile_e164=None, now=now)
    token = _new_link(session, staff, "invite", actor, now)
    _audit(session, actor, now, "staff_invited", staff, role=role, link_expires_at=(now + LINK_TTL).isoformat())
    return staff, token


def reset_password(session: Session, staff: StaffUser, *, now: datetime, actor: Actor) -> str:
    """A new set-password link; any earlier one stops working. The current password keeps working
    until the new one is set (disable the account to lock it at once)."""
    if not staff.active:
        raise StaffProblem("Re-enable the account first.")
    token = _new_link(session, staff, "reset", actor, now)
    _audit(session, actor, now, "staff_password_reset", staff, link_expires_at=(now + LINK_TTL).isoformat())
    return token


def change_role(session: Session, staff: StaffUser, role: str, *, now: datetime, actor: Actor) -> bool:
    """False: it already had that role (nothing written)."""
    new = StaffRole(role)
    old = staff.role
    if new == old:
        return False
    if staff.id == actor.staff_id:
        raise StaffProblem("You cannot change your own role; ask another admin.")
    if old == StaffRole.ADMIN and staff.active and _active_admins(session, staff.clinic_id) <= 1:
        raise StaffProblem("This is the clinic's last active admin: make someone else an admin first.")
    staff.role = new
    _audit(session, actor, now, "staff_role_changed", staff, old=old.value, new=new.value)
    return True


def disable(session: Session, staff: StaffUser, *, now: datetime, actor: Actor) -> int:
    """Disable the account and end every session it has at once. Returns sessions ended."""
    if not staff.active:
        raise StaffProblem("This account is already disabled.")
    if staff.id == actor.staff_id:
        raise StaffProblem("You cannot disable your own account.")
    if staff.role == StaffRole.ADMIN and _active_admins(session, staff.clinic_id) <= 1:
        raise StaffProblem("This is the clinic's last active admin: it cannot be disabled.")
    staff.active = False
    ended = revoke_all_for_staff(session, staff.id, now)
    session.execute(sa.update(StaffPasswordLink).where(
        StaffPasswordLink.staff_id == staff.id, StaffPasswordLink.used_at.is_(None),
        StaffPasswordLink.voided_at.is_(None)).values(voided_at=now))
    _audit(session, actor, now, "staff_disabled", staff, old={"active": True}, new={"active": False},
           sessions_ended=ended)
    return ended


def enable(session: Session, staff: StaffUser, *, now: datetime, actor: Actor) -> None:
    if staff.active:
        raise StaffProblem("This account is already active.")
    staff.active = True
    _audit(session, actor, now, "staff_enabled", staff, old={"active": False}, new={"active": True})


# ---- set-password links ---------------------------------------------------------------------

def peek_link(session: Session, token: str, now: datetime) -> StaffPasswordLink:
    """The link, if it can still be used (a GET never uses it)."""
    link = session.scalar(sa.select(StaffPasswordLink).where(StaffPasswordLink.token_hash == digest(token)))
    if link is None:
        raise LinkProblem("unknown")
    if link.used_at is not None:
        raise LinkProblem("used")
    if link.voided_at is not None or not link.staff.active:
        raise LinkProblem("void")
    if now >= link.expires_at:
        raise LinkProblem("expired")
    return link


def set_password(session: Session, token: str, password: str, *, now: datetime,
                 request_id: str | None = None) -> StaffUser:
    """Use the link once: set the password and end the account's other sessions. A password the
    policy refuses raises StaffProblem and leaves the link usable."""
    link = peek_link(session, token, now)
    staff = link.staff
    problem = password_problem(password, name=staff.name, email=staff.email)
    if problem:
        raise StaffProblem(problem)
    claimed = session.execute(sa.update(StaffPasswordLink).where(
        StaffPasswordLink.id == link.id, StaffPasswordLink.used_at.is_(None),
        StaffPasswordLink.voided_at.is_(None)).values(used_at=now)).rowcount
    if claimed != 1:  # two tabs racing: one wins
        raise LinkProblem("used")
    staff.password_hash = hash_password(password)
    ended = revoke_all_for_staff(session, staff.id, now)
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="staff_password_set",
                 subject_type="staff_user", subject_id=staff.id,
                 detail={"link": link.purpose, "sessions_ended": ended}, request_id=request_id)
    return staff


# ---- the clinic's second-factor rule ----------------------------------------------------------

def require_second_factor(session: Session, clinic: Clinic, required: bool, *, admin: StaffUser, now: datetime,
                          actor: Actor) -> int:
    """Turn the clinic's "every staff member uses a second factor" rule on or off. Turning it on
    ends the sessions of everyone without one: they enrol right after their password next time.
    The admin must have a second factor first (they would lock themselves out otherwise).
    Returns the sessions ended."""
    if clinic.require_totp == required:
        return 0
    if required and not admin.totp_secret:
        raise StaffProblem("Set up two-step sign-in for your own account first.")
    clinic.require_totp = required
    ended = 0
    if required:
        for staff in session.scalars(sa.select(StaffUser).where(StaffUser.clinic_id == clinic.id,
                                                                StaffUser.totp_secret.is_(None))):
            ended += revoke_all_for_staff(session, staff.id, now)
    audit.record(session, at=now, actor_type=actor.kind, actor_id=actor.staff_id, action="clinic_require_totp",
                 subject_type="clinic", subject_id=clinic.id,
                 detail={"old": not required, "new": required, "sessions_ended": ended}, request_id=actor.request_id)
    return ended

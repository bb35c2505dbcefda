"""Clinic API tokens for the FHIR API (issue 15): made by an admin or `flask api-token create`,
shown once, stored as a SHA-256 digest (a 256-bit secret needs no slow hash: recovery/services/
tokens.py), revocable, and audited on every use. Use-cases: they take a session and `now`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.services.tokens import digest, new_token
from recovery.store import audit
from recovery.store.models import ApiToken, Clinic

READ, WRITE = "fhir.read", "fhir.write"
SCOPES = (READ, WRITE)
PREFIX = "rt_"  # makes a leaked token recognisable to secret scanners


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once; never stored


def create_token(session: Session, *, clinic: Clinic, scopes: list[str], label: str, now: datetime,
                 staff_id: int | None = None, request_id: str | None = None) -> IssuedToken:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise TokenError(f"scopes must be among {', '.join(SCOPES)}" + (f" (not {', '.join(unknown)})" if unknown else ""))
    label = (label or "").strip()[:120] or "API token"
    secret = PREFIX + new_token()
    row = ApiToken(clinic_id=clinic.id, token_hash=digest(secret), label=label,
                   scopes=sorted(set(scopes)), created_at=now, created_by_id=staff_id)
    session.add(row)
    session.flush()
    audit.record(session, at=now, actor_type="staff" if staff_id else "system", actor_id=staff_id,
                 action="api_token_created", subject_type="api_token", subject_id=row.id,
                 detail={"clinic": clinic.slug, "scopes": row.scopes, "label": label}, request_id=request_id)
    return IssuedToken(row, secret)


def revoke_token(session: Session, *, token: ApiToken, now: datetime, staff_id: int | None = None,
                 request_id: str | None = None) -> bool:
    """False when it was revoked already (nothing written)."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = now
    audit.record(session, at=now, actor_type="staff" if staff_id else "system", actor_id=staff_id,
                 action="api_token_revoked", subject_type="api_token", subject_id=token.id,
                 detail={"label": token.label}, request_id=request_id)
    return True


def clinic_tokens(session: Session, clinic_id: int) -> list[ApiToken]:
    return list(session.scalars(sa.select(ApiToken).where(ApiToken.clinic_id == clinic_id)
                                .order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())))


def token_for_clinic(session: Session, clinic_id: int, token_id: int) -> ApiToken | None:
    row = session.get(ApiToken, token_id)
    return row if row is not None and row.clinic_id == clinic_id else None


def authenticate(session: Session, secret: str | None, now: datetime) -> ApiToken | None:
    """The live token this secret is, or None (unknown, malformed or revoked)."""
    if not secret or not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    row = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == digest(secret)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def record_use(session: Session, token: ApiToken, *, now: datetime, method: str, path: str, status: int,
               patient_ids: list[int] | tuple[int, ...] = (), request_id: str | None = None) -> None:
    """Every use of a token is audited: one row for the request, and one PHI read per patient it
    showed (the same `record_viewed`-style trail a nurse's page view leaves)."""
    token.last_used_at = now
    audit.record(session, at=now, actor_type="api_token", actor_id=token.id, action="api_token_used",
                 subject_type="api_token", subject_id=token.id,
                 detail={"method": method, "path": path[:200], "status": status,
                         "patients": len(patient_ids)}, request_id=request_id)
    for pid in sorted(set(patient_ids)):
        audit.record(session, at=now, actor_type="api_token", actor_id=token.id, action="fhir_read",
                     patient_id=pid, subject_type="patient", subject_id=pid, request_id=request_id)

"""Clinic API tokens on a request (the FHIR API and the HL7 v2 endpoint): who is asking, whether
the token may do this, and the audit row of every use. Each blueprint answers refusals in its own
format (an OperationOutcome, an HL7 ACK)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import g, request

from recovery.clock import utcnow
from recovery.services import api_tokens
from recovery.store.db import begin_write, db
from recovery.store.models import ApiToken, Clinic

UNAUTHORIZED = "A valid clinic API token is needed: Authorization: Bearer rt_…"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="recovery-tracker"'}


@dataclass
class Caller:
    token: ApiToken
    clinic: Clinic
    now: datetime
    shown: set[int] = field(default_factory=set)  # patients whose data the answer carries


def authenticate(needed: str) -> tuple[int, str] | None:
    """Sets g.api_caller for a live token with the scope `needed`; else (status, message)."""
    g.api_caller = None
    begin_write(db.session)  # every use of a token is audited
    auth = request.headers.get("Authorization", "")
    secret = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    now = utcnow()
    token = api_tokens.authenticate(db.session, secret, now)
    if token is None:
        return 401, UNAUTHORIZED
    g.api_caller = Caller(token, db.session.get(Clinic, token.clinic_id), now)
    if needed not in token.scopes:
        return 403, f"This token does not have the scope {needed}."
    return None


def audit(response):
    """after_request: the token's use, and a PHI read per patient shown."""
    caller = g.get("api_caller")
    if caller is not None and response.status_code < 500:
        api_tokens.record_use(db.session, caller.token, now=caller.now, method=request.method, path=request.path,
                              status=response.status_code, patient_ids=sorted(caller.shown),
                              request_id=g.get("request_id"))
    return response

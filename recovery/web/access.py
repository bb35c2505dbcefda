"""Who is asking: a nurse (Flask-Login over a server-side WebSession) or a patient (a WebSession
opened by a link). Object-level checks live next to the loaders (`patient_for_staff`)."""
from __future__ import annotations

from datetime import timedelta
from functools import wraps

from flask import Flask, abort, current_app, g, make_response, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import UserMixin, current_user

from recovery.clock import utcnow
from recovery.store.db import begin_write, db
from recovery.store.models import Patient, StaffRole, StaffUser, WebSession
from recovery.services.sessions import (CHECKIN_SCOPE, PATIENT_SCOPE, STAFF_SCOPE, SessionPolicy,
                               load_session)
from recovery.web.extensions import login_manager

PATIENT_COOKIE_KEY = "pt"
# Sent by self-refreshing regions (the worklist poll): not user activity for the idle time-out.
BACKGROUND_HEADER = "X-Background-Refresh"


class StaffPrincipal(UserMixin):
    """What Flask-Login holds: the staff row plus the server-side session it came through."""

    def __init__(self, staff: StaffUser, web_session: WebSession, token: str):
        self.staff = staff
        self.web_session = web_session
        self._token = token

    def get_id(self) -> str:
        return self._token

    @property
    def id(self) -> int:
        return self.staff.id

    @property
    def clinic_id(self) -> int:
        return self.staff.clinic_id


def policy() -> SessionPolicy:
    cfg = current_app.config
    return SessionPolicy(staff_idle=timedelta(minutes=cfg["STAFF_IDLE_MINUTES"]),
                         staff_absolute=timedelta(hours=cfg["STAFF_ABSOLUTE_HOURS"]),
                         patient_absolute=timedelta(days=cfg["PATIENT_SESSION_DAYS"]))


@login_manager.user_loader
def _load_staff(token: str):
    ws = load_session(db.session, token, utcnow(), policy(),
                      activity=request.headers.get(BACKGROUND_HEADER) != "1")
    if ws is None or ws.scope != STAFF_SCOPE:
        return None
    return StaffPrincipal(ws.staff, ws, token)


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, whose life is the patient's server-side session's, to the second
    (Flask would give it PERMANENT_SESSION_LIFETIME from now on every response)."""

    def get_expiration_time(self, app: Flask, session_):
        ws = g.get("patient_session")
        if session_.permanent and ws is not None:
            return ws.expires_at
        return super().get_expiration_time(app, session_)

    def should_set_cookie(self, app: Flask, session_) -> bool:
        """Unchanged, a patient's cookie is not sent again: it would be the same cookie with the
        same expiry (the server-side session's), signed anew on every page (issue 17). Only when
        its signature (checked against PERMANENT_SESSION_LIFETIME from when it was signed) could
        lapse before the session does is it refreshed as Flask would."""
        ws = g.get("patient_session")
        if (not session_.modified and session_.permanent and ws is not None
                and ws.expires_at <= ws.created_at + app.permanent_session_lifetime):
            return False
        return super().should_set_cookie(app, session_)


def init_app(app: Flask) -> None:
    app.session_interface = _SessionInterface()

    @app.before_request
    def _fresh_identity() -> None:
        # Re-check the server-side session on every request, even when an app context outlives
        # one request (tests, CLI): Flask-Login would otherwise reuse the user cached in `g`.
        g.pop("_login_user", None)

    @app.before_request
    def _begin_transaction() -> None:
        # Writes take SQLite's write lock up front (BEGIN IMMEDIATE); plain page views stay readers.
        if request.method not in ("GET", "HEAD", "OPTIONS") or (
                request.blueprint == "nurse" and not _worklist_poll()):  # nurse views audit each record viewed
            begin_write(db.session)

    @app.before_request
    def _load_patient() -> None:
        g.patient_session = None
        token = session.get(PATIENT_COOKIE_KEY)
        if token:
            ws = load_session(db.session, token, utcnow(), policy())
            if ws is not None and ws.scope in (PATIENT_SCOPE, CHECKIN_SCOPE):
                g.patient_session = ws
            else:
                session.pop(PATIENT_COOKIE_KEY, None)  # signed out, expired or revoked: the browser forgets it

    @app.after_request
    def _commit(response):
        # Views commit their own work; what is left (a session touch) commits with any response
        # short of a server error. A failed commit turns the response into a 500.
        if response.status_code < 500:
            db.session.commit()
        else:
            db.session.rollback()
        return response


def background_refresh() -> bool:
    """The request is a self-refreshing region's, not the nurse's doing (BACKGROUND_HEADER)."""
    return request.headers.get(BACKGROUND_HEADER) == "1"


def staff_cookie_token() -> str | None:
    """The staff session token the signed cookie carries (Flask-Login keeps it as the user id), not
    yet checked: for a request that checks it in its own statement (the worklist poll)."""
    token = session.get("_user_id")
    return token if isinstance(token, str) else None


def _worklist_poll() -> bool:
    """The worklist refreshing itself: it writes nothing (no audit row, and a background refresh
    does not touch the session), so it must not queue for SQLite's write lock every 5 s."""
    return request.endpoint == "nurse.worklist" and background_refresh()


def _names_an_object() -> bool:
    """A URL that points at one record (a patient, an alert, a check-in). Anonymous requests for
    those get 403 rather than a sign-in redirect: they never learn whether the record exists."""
    return any(k.endswith("_id") for k in (request.view_args or {}))


def staff_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            if _names_an_object():
                abort(403)
            if request.headers.get("HX-Request") == "true":
                # An htmx swap (e.g. the worklist poll) must not paste the login page into a region.
                resp = make_response("", 200)
                resp.headers["HX-Redirect"] = url_for("auth.login")
                return resp
            return login_manager.unauthorized()
        return view(*args, **kwargs)
    return wrapped


def admin_required(view):
    @wraps(view)
    @staff_required
    def wrapped(*args, **kwargs):
        if current_user.staff.role != StaffRole.ADMIN:
            abort(403)
        return view(*args, **kwargs)
    return wrapped


def patient_for_staff(patient_id: int) -> Patient:
    """The patient, if the signed-in nurse's clinic holds them; 404 otherwise (no existence leak)."""
    patient = db.session.get(Patient, patient_id)
    if patient is None or patient.clinic_id != current_user.clinic_id:
        abort(404)
    return patient


def patient_required(*scopes: str):
    """The patient session with one of the given scopes, or back to the 'open your link' page."""
    allowed = scopes or (PATIENT_SCOPE,)

    def deco(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            ws = g.get("patient_session")
            if ws is None:
                if _names_an_object():
                    abort(403)
                return redirect(url_for("patient.signed_out"))
            if ws.scope not in allowed:
                abort(403)
            # loaded with the session (recovery/services/sessions.py): no statement of its own
            g.patient = ws.patient if ws.patient is not None else db.session.get(Patient, ws.patient_id)
            return view(*args, **kwargs)
        return wrapped
    return deco

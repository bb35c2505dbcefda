"""Nurse sign-in and sign-out."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import (Blueprint, abort, current_app, flash, g, make_response, redirect, render_template, request, session,
                   url_for)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from recovery.clock import utcnow
from recovery.services import sign_in
from recovery.services.passwords import HashingBusy, HashSlots
from recovery.services.sessions import SECOND_FACTOR_SCOPE, STAFF_SCOPE, load_session, revoke
from recovery.store import audit
from recovery.store.db import db
from recovery.web import ratelimits
from recovery.web.access import StaffPrincipal, policy
from recovery.web.extensions import limiter
from recovery.web.redirects import same_origin_path

bp = Blueprint("auth", __name__)
# The cookie key of a half-signed-in session (password right, second step to come): recovery/web/account.py
PENDING_KEY = "half_signed_in"
log = logging.getLogger(__name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter your work email."), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."),
                                                     Length(max=128)])


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _login_ip_limit() -> str:
    return current_app.config["LOGIN_IP_RATE_LIMIT"]


def _counted_in_the_view(response) -> bool:
    """Flask-Limiter only tests these limits before the view; the view counts a failed attempt
    itself, while it still holds its hashing slot, so that concurrent wrong sign-ins on this host
    cannot all slip past the test before any of them is counted."""
    return False


def _over_a_limit() -> bool:
    try:
        return any(not limiter.limiter.test(lim.limit, *lim.request_args) for lim in limiter.current_limits)
    except Exception as exc:  # noqa: BLE001 - the store failed after Flask-Limiter's own check passed
        log.warning("sign-in limit not re-checked: %s", type(exc).__name__)
        return False


def _count_failure() -> None:
    try:
        for lim in limiter.current_limits:
            limiter.limiter.hit(lim.limit, *lim.request_args)
    except Exception as exc:  # noqa: BLE001 - as above; Flask-Limiter falls back to memory next time
        log.warning("failed sign-in not counted: %s", type(exc).__name__)


def _hash_slots() -> HashSlots:
    cfg = current_app.config
    return HashSlots(Path(current_app.instance_path) / "hash-slots", cfg["HASH_CONCURRENCY"],
                     cfg["HASH_WAIT_SECONDS"])


def _forget_failures_of_this_account() -> None:
    """A correct sign-in clears this address's count for this email (not the per-address one)."""
    try:
        for lim in limiter.current_limits:
            if ratelimits.ACCOUNT_KEY_MARK in lim.key:
                limiter.limiter.clear(lim.limit, *lim.request_args)
    except Exception as exc:  # noqa: BLE001 - the sign-in is committed; a store hiccup must not undo it
        log.warning("could not clear the failed sign-in count: %s", type(exc).__name__)


# Both limits are tested before the view runs (a request over either is refused before any hashing)
# and again once a hashing slot is held; only a wrong email or password counts, so a nurse signing in
# again and again during a busy shift never locks herself out.
@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=ratelimits.address_and_email_key,
               deduct_when=_counted_in_the_view)
@limiter.limit(_login_ip_limit, methods=["POST"], key_func=ratelimits.address_key,
               deduct_when=_counted_in_the_view)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("nurse.worklist"))
    form = LoginForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("auth/login.html", form=form), 422
        now = utcnow()
        candidate = sign_in.find_account(db.session, ratelimits.sign_in_email(form.email.data))
        try:
            with _hash_slots().hold():
                if _over_a_limit():
                    abort(429)
                ok, rehash = sign_in.check_password(candidate, form.password.data)
                if not (ok and candidate.staff_id is not None):
                    _count_failure()
        except HashingBusy:
            form.password.errors.append("Sign-in is very busy right now. Please press Sign in again.")
            resp = make_response(render_template("auth/login.html", form=form), 503)
            resp.headers["Retry-After"] = "1"
            return resp
        signed_in = sign_in.complete(db.session, candidate, ok, rehash, now=now, request_id=g.request_id,
                                     policy=policy())
        if signed_in is None:
            form.password.errors.append("That email and password do not match an active account.")
            return render_template("auth/login.html", form=form), 422
        staff, token, scope = signed_in
        session.clear()  # a fresh session on sign-in (no fixation)
        if scope != STAFF_SCOPE:  # half signed in: the code, or setting up the app, comes next
            session[PENDING_KEY] = token
            db.session.commit()
            _forget_failures_of_this_account()
            return redirect(url_for("auth.second_factor" if scope == SECOND_FACTOR_SCOPE
                                    else "auth.two_factor_setup"), 303)
        ws = load_session(db.session, token, now, policy())
        login_user(StaffPrincipal(staff, ws, token))
        db.session.commit()
        _forget_failures_of_this_account()
        return redirect(same_origin_path(request.args.get("next")) or url_for("nurse.worklist"), 303)
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        now = utcnow()
        revoke(db.session, current_user.web_session, now)
        audit.record(db.session, at=now, actor_type="staff", actor_id=current_user.staff.id,
                     action="logout", request_id=g.request_id)
        db.session.commit()
        logout_user()
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("auth.login"), 303)


@bp.get("/")
def home():
    if current_user.is_authenticated:
        return redirect(url_for("nurse.worklist"))
    if g.get("patient_session") is not None:
        return redirect(url_for("patient.today"))
    return render_template("home.html")

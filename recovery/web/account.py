"""A staff member's own account: set a password through a link an admin handed over, two-step
sign-in (the code after the password), and setting up the authenticator app.

The set-password link is a capability: whoever holds the token may set that account's password,
once. A GET only shows the form (mail scanners and link previews fetch links); the POST uses it.

Half signed in (password right, code or set-up still to come) is a server-side session of a scope
of its own, held in the cookie under `PENDING_KEY`; Flask-Login never loads it as a user, so it
opens nothing but the two pages here.
"""
from __future__ import annotations

import segno
from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user

from recovery.clock import utcnow
from recovery.services import sign_in, staff_accounts, two_factor
from recovery.services.sessions import ENROL_SCOPE, SECOND_FACTOR_SCOPE, load_pending, load_session
from recovery.services.staff_accounts import LinkProblem, StaffProblem
from recovery.services.tokens import digest
from recovery.store.db import db
from recovery.web import ratelimits
from recovery.web.access import StaffPrincipal, policy
from recovery.web.auth import PENDING_KEY, bp
from recovery.web.extensions import limiter
from recovery.web.staff_forms import CodeForm, SetPasswordForm

def _set_password_limit() -> str:
    return current_app.config["SET_PASSWORD_RATE_LIMIT"]


def _code_limit() -> str:
    return current_app.config["TOTP_RATE_LIMIT"]


def _wrong_code(response) -> bool:
    return response.status_code == 422


def _account_key() -> str:
    """Per account, whatever the address or the half-signed-in session: signing in with the
    password again (a new half session) must not bring new guesses at the code."""
    if current_user.is_authenticated:
        who = str(current_user.staff.id)
    else:
        pending = load_pending(db.session, session.get(PENDING_KEY), utcnow())
        who = str(pending.staff_id) if pending is not None else "none"
    return "tf:" + ratelimits.hashed("second-factor", who)


# ---- set a password through a link ----------------------------------------------------------

@bp.route("/staff/password/<token>", methods=["GET", "POST"])
@limiter.limit(_set_password_limit, methods=["POST"], key_func=ratelimits.address_key)
def set_password(token: str):
    now = utcnow()
    try:
        link = staff_accounts.peek_link(db.session, token, now)
    except LinkProblem as e:
        db.session.rollback()
        return render_template("auth/set_password_problem.html", reason=e.reason), 410 if e.reason != "unknown" \
            else 404
    form = SetPasswordForm() if request.method == "POST" else SetPasswordForm(formdata=None)
    ctx = dict(form=form, staff=link.staff, purpose=link.purpose, token=token)
    if request.method == "GET":
        return render_template("auth/set_password.html", **ctx)
    if not form.validate_on_submit():
        return render_template("auth/set_password.html", **ctx), 422
    try:
        staff = staff_accounts.set_password(db.session, token, form.password.data, now=now, request_id=g.request_id)
    except StaffProblem as e:
        db.session.rollback()
        form.password.errors = [*form.password.errors, str(e)]
        return render_template("auth/set_password.html", **ctx), 422
    except LinkProblem as e:
        db.session.rollback()
        return render_template("auth/set_password_problem.html", reason=e.reason), 410
    db.session.commit()
    flash(f"Your password is set, {staff.name}. Please sign in.")
    return redirect(url_for("auth.login"), 303)


# ---- the second step of signing in ----------------------------------------------------------

def _pending(scope: str):
    ws = load_pending(db.session, session.get(PENDING_KEY), utcnow())
    return ws if ws is not None and ws.scope == scope else None


def _sign_in_fully(ws) -> str:
    now = utcnow()
    token = sign_in.finish_second_step(db.session, ws, now=now, policy=policy(), request_id=g.request_id)
    session.clear()  # a fresh session on sign-in (no fixation)
    login_user(StaffPrincipal(ws.staff, load_session(db.session, token, now, policy()), token))
    db.session.commit()
    return token


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_code_limit, methods=["POST"], key_func=_account_key, deduct_when=_wrong_code)
def second_factor():
    ws = _pending(SECOND_FACTOR_SCOPE)
    if ws is None and _pending(ENROL_SCOPE) is not None:
        return redirect(url_for("auth.two_factor_setup"), 303)  # no code yet: set the app up first
    if ws is None:
        session.pop(PENDING_KEY, None)
        flash("Please sign in again.")
        return redirect(url_for("auth.login"), 303)
    form = CodeForm() if request.method == "POST" else CodeForm(formdata=None)
    if request.method == "GET":
        return render_template("auth/second_factor.html", form=form)
    if not form.validate_on_submit() or not two_factor.check_code(ws.staff, form.code.data, utcnow()):
        if not form.code.errors:
            form.code.errors = ["That code is not right (or was used already). Enter the code the app shows now."]
        db.session.rollback()
        return render_template("auth/second_factor.html", form=form), 422
    _sign_in_fully(ws)
    return redirect(url_for("nurse.worklist"), 303)


# ---- setting up the authenticator app -------------------------------------------------------

def _qr_svg(uri: str) -> str:
    """The otpauth:// URI as an inline SVG QR code, made here: no image service sees the secret."""
    return segno.make(uri, error="m").svg_inline(scale=5, title="QR code for your authenticator app",
                                                 dark="#000", light="#fff", svgclass="qr")


@bp.route("/account/two-factor", methods=["GET", "POST"])
@limiter.limit(_code_limit, methods=["POST"], key_func=_account_key, deduct_when=_wrong_code)
def two_factor_setup():
    enrolling = None if current_user.is_authenticated else _pending(ENROL_SCOPE)
    if not current_user.is_authenticated and enrolling is None:
        if request.method == "POST":
            abort(403)
        return redirect(url_for("auth.login"), 303)
    staff = current_user.staff if enrolling is None else enrolling.staff
    if request.method == "POST" and not staff.totp_pending_secret:
        return redirect(url_for("auth.two_factor_setup"), 303)  # no QR shown yet: show one first
    form = CodeForm() if request.method == "POST" else CodeForm(formdata=None)
    secret = two_factor.pending_secret(staff)  # written on first view (GET): the same QR on a reload
    clinic_name = staff.clinic.name
    ctx = dict(form=form, staff=staff, secret=secret, required=enrolling is not None,
               qr=_qr_svg(two_factor.provisioning_uri(secret, staff, clinic_name)),
               signed_in=enrolling is None)
    if request.method == "GET":
        db.session.commit()
        return render_template("auth/two_factor_setup.html", **ctx)
    if not form.validate_on_submit() or not two_factor.confirm(db.session, staff, form.code.data, now=utcnow(),
                                                               request_id=g.request_id):
        if not form.code.errors:
            form.code.errors = ["That code is not right. Check the app shows “Recovery Tracker” and enter "
                                "the code it shows now."]
        db.session.rollback()
        return render_template("auth/two_factor_setup.html", **ctx), 422
    if enrolling is not None:
        _sign_in_fully(enrolling)
        flash("Two-step sign-in is set up. You are signed in.")
        return redirect(url_for("nurse.worklist"), 303)
    db.session.commit()
    flash("Two-step sign-in is set up: from now on you give a code from the app after your password.")
    return redirect(url_for("nurse.worklist"), 303)

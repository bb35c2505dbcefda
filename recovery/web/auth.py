"""Nurse sign-in and sign-out."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from recovery import audit
from recovery.clock import utcnow
from recovery.db import db
from recovery.models import StaffUser
from recovery.passwords import hash_password, needs_rehash, verify_password
from recovery.sessions import revoke, start_staff_session
from recovery.web.access import StaffPrincipal, policy
from recovery.web.extensions import limiter
from recovery.web.redirects import same_origin_path

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)
# Verifying against a real hash for unknown e-mails keeps the timing the same (no account probing).
_DUMMY_HASH = hash_password("not-a-real-password-0000")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter your work email."), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."),
                                                     Length(max=128)])


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=lambda: f"{request.remote_addr}|"
               f"{(request.form.get('email') or '').strip().lower()}")
def login():
    if current_user.is_authenticated:
        return redirect(url_for("nurse.worklist"))
    form = LoginForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("auth/login.html", form=form), 422
        now = utcnow()
        email = form.email.data.strip().lower()
        staff = db.session.scalar(sa.select(StaffUser).where(sa.func.lower(StaffUser.email) == email))
        ok = verify_password(staff.password_hash if staff else _DUMMY_HASH, form.password.data)
        if not (staff and ok and staff.active):
            audit.record(db.session, at=now, actor_type="staff", actor_id=staff.id if staff else None,
                         action="login_failed", request_id=g.request_id)
            db.session.commit()
            form.password.errors.append("That email and password do not match an active account.")
            return render_template("auth/login.html", form=form), 422
        if needs_rehash(staff.password_hash):
            staff.password_hash = hash_password(form.password.data)
        session.clear()  # a fresh session on sign-in (no fixation)
        token = start_staff_session(db.session, staff, now, policy())
        db.session.flush()
        from recovery.sessions import load_session
        ws = load_session(db.session, token, now, policy())
        login_user(StaffPrincipal(staff, ws, token))
        audit.record(db.session, at=now, actor_type="staff", actor_id=staff.id, action="login",
                     request_id=g.request_id)
        db.session.commit()
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

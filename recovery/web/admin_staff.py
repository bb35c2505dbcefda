"""Staff administration at /admin/staff (issue 13 §1): the list, invite, role, disable and
re-enable, reset the password or the second factor, and the clinic's "require two-step sign-in".

Routes on the admin blueprint (admins of the signed-in clinic only; `_member` gives 404 for another
clinic's staff). Plain forms: every change is a POST that redirects, except invite and reset, whose
answer is the page with the one-time link (it cannot be shown again).
"""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_login import current_user

from recovery.clock import utcnow
from recovery.services import staff_accounts, two_factor
from recovery.services.staff_accounts import Actor, StaffProblem
from recovery.store.db import db
from recovery.store.models import StaffUser
from recovery.web.admin import bp, section
from recovery.web.staff_forms import ActionForm, InviteForm, RequireSecondFactorForm, RoleForm

section("admin.staff", "Staff", "invite nurses and admins, change roles, disable accounts, two-step sign-in")


def _actor() -> Actor:
    return Actor(current_user.staff.id, g.request_id)


def _member(staff_id: int) -> StaffUser:
    staff = db.session.get(StaffUser, staff_id)
    if staff is None or staff.clinic_id != current_user.clinic_id:
        abort(404)
    return staff


def _list_page(invite: InviteForm | None = None, require: RequireSecondFactorForm | None = None, code: int = 200):
    require = require or RequireSecondFactorForm(formdata=None, required=g.clinic.require_totp)
    return render_template("admin/staff.html", staff=staff_accounts.staff_of_clinic(db.session, g.clinic.id),
                           invite=invite or InviteForm(formdata=None), require=require,
                           has_password=staff_accounts.has_password, me=current_user.staff), code


def _member_page(staff: StaffUser, role: RoleForm | None = None, problem: str | None = None, code: int = 200):
    role = role or RoleForm(formdata=None, role=staff.role.value)
    if problem:
        role.form_errors.append(problem)
    return render_template("admin/staff_member.html", s=staff, form=role, action=ActionForm(formdata=None),
                           has_password=staff_accounts.has_password(staff), me=current_user.staff), code


def _link_page(staff: StaffUser, token: str, purpose: str):
    url = url_for("auth.set_password", token=token, _external=True)
    return render_template("admin/staff_link.html", s=staff, url=url, purpose=purpose,
                           hours=int(staff_accounts.LINK_TTL.total_seconds() // 3600))


@bp.get("/staff")
def staff():
    return _list_page()


@bp.post("/staff/invite")
def invite_staff():
    form = InviteForm()
    if not form.validate_on_submit():
        return _list_page(invite=form, code=422)
    try:
        member, token = staff_accounts.invite(db.session, g.clinic, name=form.name.data, email=form.email.data,
                                              role=form.role.data, now=utcnow(), actor=_actor())
    except StaffProblem as e:
        db.session.rollback()
        form.email.errors = [*form.email.errors, str(e)]
        return _list_page(invite=form, code=422)
    db.session.commit()
    return _link_page(member, token, "invite")


@bp.post("/staff/two-factor")
def require_second_factor():
    form = RequireSecondFactorForm()
    if not form.validate_on_submit():
        return _list_page(require=form, code=422)
    try:
        ended = staff_accounts.require_second_factor(db.session, g.clinic, bool(form.required.data),
                                                     admin=current_user.staff, now=utcnow(), actor=_actor())
    except StaffProblem as e:
        db.session.rollback()
        form.required.errors = [*form.required.errors, str(e)]
        return _list_page(require=form, code=409)
    db.session.commit()
    if g.clinic.require_totp:
        flash(f"Two-step sign-in is now required. {ended} session(s) of staff without it were ended; "
              "they set it up right after their password next time.")
    else:
        flash("Two-step sign-in is now optional.")
    return redirect(url_for("admin.staff"), 303)


@bp.get("/staff/<int:staff_id>")
def staff_member(staff_id: int):
    return _member_page(_member(staff_id))


@bp.post("/staff/<int:staff_id>/role")
def change_role(staff_id: int):
    member = _member(staff_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _member_page(member, role=form, code=422)
    try:
        changed = staff_accounts.change_role(db.session, member, form.role.data, now=utcnow(), actor=_actor())
    except StaffProblem as e:
        db.session.rollback()
        return _member_page(member, role=form, problem=str(e), code=409)
    db.session.commit()
    if changed:
        flash(f"{member.name} is now {staff_accounts.ROLES[member.role.value].lower()}.")
    return redirect(url_for("admin.staff_member", staff_id=member.id), 303)


def _button(staff_id: int, change, done: str = "", answer=None):
    """A button on the member's page: do `change`, then flash `done` and go back to the page (or
    give `answer(member, result)`, for a result that is shown once: a link)."""
    member = _member(staff_id)
    if not ActionForm().validate_on_submit():
        return _member_page(member, problem="This form is out of date: open it again.", code=422)
    try:
        result = change(member)
    except StaffProblem as e:
        db.session.rollback()
        return _member_page(member, problem=str(e), code=409)
    db.session.commit()
    if answer is not None:
        return answer(member, result)
    flash(done.format(name=member.name, result=result))
    return redirect(url_for("admin.staff_member", staff_id=member.id), 303)


@bp.post("/staff/<int:staff_id>/disable")
def disable_staff(staff_id: int):
    return _button(staff_id, lambda m: staff_accounts.disable(db.session, m, now=utcnow(), actor=_actor()),
                   "{name} is disabled: {result} session(s) ended, and they cannot sign in.")


@bp.post("/staff/<int:staff_id>/enable")
def enable_staff(staff_id: int):
    return _button(staff_id, lambda m: staff_accounts.enable(db.session, m, now=utcnow(), actor=_actor()),
                   "{name} can sign in again.")


@bp.post("/staff/<int:staff_id>/two-factor-reset")
def reset_second_factor(staff_id: int):
    return _button(staff_id, lambda m: two_factor.reset(db.session, m, now=utcnow(), actor=_actor()),
                   "Two-step sign-in is off for {name}; they can set it up again from their account page.")


@bp.post("/staff/<int:staff_id>/password")
def reset_password(staff_id: int):
    return _button(staff_id, lambda m: staff_accounts.reset_password(db.session, m, now=utcnow(), actor=_actor()),
                   answer=lambda m, token: _link_page(m, token, "reset"))

"""The on-call ladder (/admin/on-call) and the clinic settings (/admin/clinic), on the admin blueprint
(admins of the signed-in clinic; a rung or a test page of another clinic is 404).

Plain forms that redirect (303) on success and re-render with 422 and what was typed on a bad one;
a test page's status refreshes itself with htmx and has a "Check again" link without JavaScript.
"""
from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from recovery.services import clinic_plans
from recovery.clock import utcnow
from recovery.domain import service_hours as hours_rules
from recovery.services import clinic_settings, on_call
from recovery.services.phones import region_for_zone
from recovery.store.db import db
from recovery.web import render_page_or_fragment
from recovery.web.admin import bp, section
from recovery.web.admin_clinic_forms import ClinicSettingsForm, EmptyForm, MoveForm, PhoneRungForm, StaffRungForm

section("admin.on_call", "On-call ladder", "who is paged, in order, when an alert waits; send a test page")
section("admin.clinic_settings", "Clinic settings", "name in texts, numbers, time zone, sender, service hours")


# ---- the on-call ladder -------------------------------------------------------------------------

def _staff_form(formdata=None) -> StaffRungForm:
    form = StaffRungForm(formdata=formdata, prefix="staff")
    on = {r.staff_id for r in on_call.rungs(db.session, g.clinic.id)}
    form.staff_id.choices = [(str(s.id), s.name) for s in on_call.staff_choices(db.session, g.clinic.id)
                             if s.id not in on]
    return form


def _phone_form(formdata=None) -> PhoneRungForm:
    form = PhoneRungForm(formdata=formdata, prefix="phone")
    form.mobile.region = region_for_zone(g.clinic.timezone)
    return form


def _ladder_page(staff_form=None, phone_form=None, status: int = 200, notice: str | None = None):
    return render_template("admin/on_call.html", rungs=on_call.rungs(db.session, g.clinic.id),
                           staff_form=staff_form or _staff_form(), phone_form=phone_form or _phone_form(),
                           button=EmptyForm(formdata=None), notice=notice), status


def _rung(rung_id: int):
    step = on_call.rung_for_admin(db.session, g.clinic.id, rung_id)
    if step is None:
        abort(404)
    return step


@bp.get("/on-call", endpoint="on_call")
def on_call_page():
    return _ladder_page()


@bp.post("/on-call/staff")
def add_staff_rung():
    form = _staff_form(request.form)
    if not form.validate_on_submit():
        return _ladder_page(staff_form=form, status=422)
    try:
        on_call.add_staff_rung(db.session, clinic=g.clinic, staff_id=int(form.staff_id.data),
                               admin=current_user.staff, now=utcnow(), request_id=g.request_id)
    except on_call.LadderError as e:
        db.session.rollback()
        form.staff_id.errors.append(str(e))
        return _ladder_page(staff_form=form, status=422)
    db.session.commit()
    flash("Added to the on-call ladder.")
    return redirect(url_for("admin.on_call"), 303)


@bp.post("/on-call/phone")
def add_phone_rung():
    form = _phone_form(request.form)
    if not form.validate_on_submit():
        return _ladder_page(phone_form=form, status=422)
    try:
        on_call.add_phone_rung(db.session, clinic=g.clinic, name=form.name.data, mobile_e164=form.mobile.e164,
                               admin=current_user.staff, now=utcnow(), request_id=g.request_id)
    except on_call.LadderError as e:
        db.session.rollback()
        form.mobile.errors.append(str(e))
        return _ladder_page(phone_form=form, status=422)
    db.session.commit()
    flash(f"{form.name.data} added to the on-call ladder.")
    return redirect(url_for("admin.on_call"), 303)


@bp.post("/on-call/<int:rung_id>/move")
def move_rung(rung_id: int):
    step = _rung(rung_id)
    form = MoveForm()
    if not form.validate_on_submit() or form.direction.data not in ("up", "down"):
        return _ladder_page(status=422, notice="Move a rung up or down with its buttons.")
    on_call.move_rung(db.session, clinic=g.clinic, step=step, direction=form.direction.data,
                      admin=current_user.staff, now=utcnow(), request_id=g.request_id)
    db.session.commit()
    return redirect(url_for("admin.on_call") + f"#rung-{rung_id}", 303)


@bp.post("/on-call/<int:rung_id>/remove")
def remove_rung(rung_id: int):
    step = _rung(rung_id)
    name = on_call.describe(db.session, step).name
    on_call.remove_rung(db.session, clinic=g.clinic, step=step, admin=current_user.staff, now=utcnow(),
                        request_id=g.request_id)
    db.session.commit()
    flash(f"{name} removed from the on-call ladder.")
    return redirect(url_for("admin.on_call"), 303)


@bp.post("/on-call/<int:rung_id>/test")
def send_test_page(rung_id: int):
    step = _rung(rung_id)
    try:
        row = on_call.send_test_page(db.session, clinic=g.clinic, step=step, admin=current_user.staff,
                                     now=utcnow(), request_id=g.request_id)
    except on_call.LadderError as e:
        db.session.rollback()
        return _ladder_page(status=409, notice=str(e))
    db.session.commit()
    return redirect(url_for("admin.test_page_status", message_id=row.id), 303)


@bp.get("/on-call/pages/<int:message_id>")
def test_page_status(message_id: int):
    row = on_call.find_test_page(db.session, g.clinic.id, message_id)
    if row is None:
        abort(404)
    step = on_call.rung_for_admin(db.session, g.clinic.id, on_call.test_page_rung_id(row))
    word = on_call.delivery_word(row)
    return render_page_or_fragment("admin/test_page.html", "admin/_test_page_status.html", row=row,
                                   rung=on_call.describe(db.session, step) if step else None, word=word,
                                   final=word in on_call.FINAL_WORDS)


# ---- the clinic settings ------------------------------------------------------------------------

def _settings_form(formdata=None) -> ClinicSettingsForm:
    c = g.clinic
    form = ClinicSettingsForm(formdata=formdata, region=region_for_zone(c.timezone), current_zone=c.timezone)
    if formdata is None:
        for name in ("sms_name", "care_phone", "after_hours_phone", "emergency_number", "timezone",
                     "sender_number", "messaging_service_sid"):
            form[name].data = getattr(c, name)
        for d, (opens, closes) in clinic_settings.hours_of(c).items():
            form[f"open_{d}"].data, form[f"close_{d}"].data = f"{opens:%H:%M}", f"{closes:%H:%M}"
    return form


def _settings_page(form, status: int = 200):
    template = _template()
    return render_template("admin/clinic.html", form=form, weekdays=hours_rules.WEEKDAYS,
                           plan_name=template.sms_name if template else "",
                           default_sender=current_app.config.get("TWILIO_FROM_NUMBER")
                           or current_app.config.get("TWILIO_MESSAGING_SERVICE_SID") or ""), status


def _template():
    cfg = current_app.config
    try:
        return clinic_plans.plan_for_new(db.session, cfg["SCHEDULES_DIR"], g.clinic, cfg["DEFAULT_TEMPLATE"])
    except LookupError:
        return None


@bp.route("/clinic", methods=["GET", "POST"], endpoint="clinic_settings")
def clinic_settings_page():
    if request.method == "GET":
        return _settings_page(_settings_form())
    form = _settings_form(request.form)
    if not form.validate_on_submit():
        return _settings_page(form, 422)
    new = clinic_settings.ClinicSettings(
        sms_name=form.sms_name.data or None, care_phone=form.care_phone.data,
        after_hours_phone=form.after_hours_phone.data or None, emergency_number=form.emergency_number.data,
        timezone=form.timezone.data, sender_number=form.sender_e164,
        messaging_service_sid=form.messaging_service_sid.data or None,
        service_hours=hours_rules.to_json(form.hours))
    template = _template()
    problems = clinic_settings.text_problems(template, new) if template is not None else {}
    if problems:
        for name, message in problems.items():
            form[name].errors.append(message)
        return _settings_page(form, 422)
    changed = clinic_settings.change(db.session, clinic=g.clinic, new=new, admin=current_user.staff, now=utcnow(),
                                     request_id=g.request_id)
    db.session.commit()
    flash("Saved. Texts rendered from now on use the new settings." if changed else "Nothing was changed.")
    return redirect(url_for("admin.clinic_settings"), 303)

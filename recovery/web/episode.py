"""Nurse pages for a patient's episode of care: end monitoring, pause and resume texts, edit the
patient's details, resend a link and send a one-off text.

The routes live on the nurse blueprint (signed-in staff only; `patient_for_staff` gives 404 for
another clinic's patient). Plain forms that redirect: they work with JavaScript off.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from recovery.store import audit
from recovery.services import episodes
from recovery.services import nurse_texts
from recovery.clock import utcnow
from recovery.store.db import db
from recovery.domain.episode_rules import END_REASONS
from recovery.services.patient_details import PatientDetails, change_details
from recovery.services.patient_identity import MrnInUse
from recovery.services.phones import region_for_zone
from recovery.services.shared_numbers import NumberShared
from recovery.domain.plan.errors import OverrideError
from recovery.store.enrolments import current_enrolment
from recovery.domain.timeline import TimelineError
from recovery.web.access import patient_for_staff
from recovery.web.episode_forms import (EditPatientForm, EndMonitoringForm, OneOffTextForm, PauseForm,
                                        ResendLinkForm, new_nonce)
from recovery.web.nurse import bp, enrolment_template


@bp.context_processor
def _episode_helpers():
    return {"episode_status": episodes.status_of, "end_reasons": END_REASONS, "new_nonce": new_nonce,
            "text_refusal": nurse_texts.refusal, "roster_status": episodes.status_of}


def _episode(patient_id: int):
    p = patient_for_staff(patient_id)
    enrolment = current_enrolment(p)
    if enrolment is None:
        abort(404)
    return p, enrolment


def _back(p):
    return redirect(url_for("nurse.patient", patient_id=p.id), 303)


@bp.route("/patients/<int:patient_id>/end", methods=["GET", "POST"])
def end_monitoring(patient_id: int):
    p, enrolment = _episode(patient_id)
    now = utcnow()
    form = EndMonitoringForm() if request.method == "POST" else EndMonitoringForm(formdata=None)
    status = episodes.status_of(enrolment, now)
    if request.method == "GET" or status == "ended":
        code = 409 if request.method == "POST" else 200
        if code == 409:
            form.form_errors.append("Monitoring has already ended.")
        return render_template("nurse/episode_end.html", p=p, e=enrolment, form=form, status=status), code
    if not form.validate_on_submit():
        return render_template("nurse/episode_end.html", p=p, e=enrolment, form=form, status=status), 422
    note = (form.note.data or "").strip() or None
    result = episodes.end_monitoring(db.session, enrolment=enrolment, patient=p, reason=form.reason.data,
                                     note=note, staff=current_user.staff, now=now, request_id=g.request_id)
    db.session.commit()
    flash(f"Monitoring ended for {p.first_name} {p.last_name} ({END_REASONS[form.reason.data].lower()}). "
          f"{result.texts_cancelled} planned texts cancelled, {result.alerts_closed} open alerts closed. "
          "No more texts will be sent.")
    return _back(p)


@bp.route("/patients/<int:patient_id>/pause", methods=["GET", "POST"])
def pause_texts(patient_id: int):
    p, enrolment = _episode(patient_id)
    now = utcnow()
    tz = ZoneInfo(p.timezone)
    status = episodes.status_of(enrolment, now)
    form = PauseForm() if request.method == "POST" else PauseForm(formdata=None)
    ctx = dict(p=p, e=enrolment, form=form, status=status, tz=tz, now=now,
               from_ed=request.values.get("from") == "ed")
    if request.method == "GET":
        return render_template("nurse/episode_pause.html", **ctx)
    if status == "ended":
        form.form_errors.append("Monitoring has ended: there are no texts to pause.")
        return render_template("nurse/episode_pause.html", **ctx), 409
    valid = form.validate_on_submit()
    problem = episodes.pause_problem(form.until.data, tz, now) if not form.until.errors else None
    if problem:
        form.until.errors = [*form.until.errors, problem]
    if not valid or problem:
        return render_template("nurse/episode_pause.html", **ctx), 422
    cancelled = episodes.pause_texts(db.session, enrolment=enrolment, patient=p, until=form.until.data,
                                     staff=current_user.staff, now=now,
                                     note=(form.note.data or "").strip() or None, request_id=g.request_id)
    db.session.commit()
    flash(f"Texts to {p.first_name} {p.last_name} are paused until {form.until.data:%a %-d %b %Y}. "
          f"{cancelled} planned texts cancelled; replies to the patient's own texts and check-ins still go.")
    return _back(p)


@bp.post("/patients/<int:patient_id>/resume")
def resume_texts(patient_id: int):
    p, enrolment = _episode(patient_id)
    now = utcnow()
    try:  # (CSRFProtect has checked the token of every POST)
        added = episodes.resume_texts(db.session, enrolment=enrolment, patient=p,
                                      template=enrolment_template(g.clinic, enrolment),
                                      staff=current_user.staff, now=now, request_id=g.request_id)
    except episodes.EpisodeConflict as e:
        db.session.rollback()
        return render_template("nurse/episode_pause.html", p=p, e=enrolment, form=PauseForm(formdata=None),
                               status=episodes.status_of(enrolment, now), tz=ZoneInfo(p.timezone), now=now,
                               from_ed=False, notice=f"Not resumed: {e}."), 409
    db.session.commit()
    flash(f"Texts to {p.first_name} {p.last_name} start again. {added} planned texts added back.")
    return _back(p)


# ---- the patient's details ----------------------------------------------------------------------

def _edit_form(p, formdata=None):
    form = EditPatientForm(formdata=formdata, region=region_for_zone(g.clinic.timezone),
                           current_zone=p.timezone, current_language=p.language)
    if formdata is None:
        form.mobile.data, form.timezone.data, form.language.data = p.mobile_e164, p.timezone, p.language
        form.sms_consent.data, form.caregiver_name.data = p.sms_consent, p.caregiver_name
        form.caregiver_mobile.data, form.caregiver_consent.data = p.caregiver_mobile_e164, p.caregiver_consent
        form.mrn.data, form.birth_date.data = p.mrn, p.birth_date.isoformat() if p.birth_date else ""
    return form


@bp.route("/patients/<int:patient_id>/edit", methods=["GET", "POST"])
def edit_patient(patient_id: int):
    p = patient_for_staff(patient_id)
    enrolment = current_enrolment(p)
    now = utcnow()
    if request.method == "GET":
        audit.record(db.session, at=now, actor_type="staff", actor_id=current_user.staff.id, action="record_viewed",
                     patient_id=p.id, subject_type="patient", subject_id=p.id, detail={"page": "edit"},
                     request_id=g.request_id)
        db.session.commit()
        return render_template("nurse/patient_edit.html", p=p, form=_edit_form(p))
    form = _edit_form(p, request.form)
    if not form.validate_on_submit():
        return render_template("nurse/patient_edit.html", p=p, form=form), 422
    new = PatientDetails(mobile_e164=form.mobile.e164, timezone=form.timezone.data, language=form.language.data,
                         sms_consent=form.sms_consent.data, caregiver_name=form.caregiver_name.data or None,
                         caregiver_mobile_e164=form.caregiver_mobile.e164,
                         caregiver_consent=form.caregiver_consent.data, mrn=form.mrn.data,
                         birth_date=form.birth_date.day)
    template = enrolment_template(g.clinic, enrolment) if enrolment is not None else None
    try:
        result = change_details(db.session, patient=p, enrolment=enrolment, new=new, template=template,
                                staff=current_user.staff, now=now, request_id=g.request_id,
                                shared_phone=bool(form.shared_phone.data))
    except MrnInUse as e:
        db.session.rollback()
        form.mrn.errors = [*form.mrn.errors, str(e)]
        return render_template("nurse/patient_edit.html", p=p, form=form), 422
    except NumberShared as e:
        db.session.rollback()
        form.mobile.errors = [*form.mobile.errors, str(e)]
        return render_template("nurse/patient_edit.html", p=p, form=form, shared_with=e.others), 422
    except (TimelineError, OverrideError) as e:
        db.session.rollback()
        form.form_errors.append(f"The texts could not be re-planned: {e}")
        return render_template("nurse/patient_edit.html", p=p, form=form), 422
    db.session.commit()
    if not result.fields:
        flash("Nothing was changed.")
    else:
        words = ", ".join(FIELD_WORDS[f] for f in result.fields)
        flash(f"Saved: {words}. {result.cancelled} planned texts cancelled or moved, {result.planned} planned.")
    return _back(p)


FIELD_WORDS = {"mobile_e164": "mobile number", "timezone": "time zone", "language": "language",
               "sms_consent": "consent to texts", "caregiver_name": "caregiver's name",
               "caregiver_mobile_e164": "caregiver's mobile", "caregiver_consent": "caregiver's consent",
               "mrn": "medical record number", "birth_date": "date of birth"}


# ---- texts a nurse sends ------------------------------------------------------------------------

def _text_page(p, enrolment, form, now, d=None, status=200, notice=None):
    body = form.body.data or ""
    d = d or nurse_texts.draft(body, patient=p, clinic=g.clinic, public_base_url=current_app.config["PUBLIC_BASE_URL"])
    return render_template("nurse/patient_text.html", p=p, form=form, draft=d, notice=notice,
                           refusal=nurse_texts.refusal(p, enrolment, now), max_segments=nurse_texts.MAX_SEGMENTS,
                           max_chars=nurse_texts.MAX_CHARS), status


@bp.route("/patients/<int:patient_id>/text", methods=["GET", "POST"])
def send_text(patient_id: int):
    p = patient_for_staff(patient_id)
    enrolment = current_enrolment(p)
    now = utcnow()
    if request.method == "GET":
        form = OneOffTextForm(formdata=None)
        form.nonce.data = new_nonce()
        return _text_page(p, enrolment, form, now)
    form = OneOffTextForm()
    valid = form.validate_on_submit()
    d = nurse_texts.draft(form.body.data or "", patient=p, clinic=g.clinic,
                          public_base_url=current_app.config["PUBLIC_BASE_URL"])
    if request.form.get("action") == "check" and valid:  # "Count segments" without JavaScript
        return _text_page(p, enrolment, form, now, d)
    if d.problems and not form.body.errors:
        form.body.errors = [*form.body.errors, *d.problems]
    if not valid or not d.ok:
        return _text_page(p, enrolment, form, now, d, status=422)
    try:
        row = nurse_texts.send_text(db.session, patient=p, enrolment=enrolment, clinic=g.clinic, body=form.body.data,
                                    urgent=form.urgent.data, nonce=form.nonce.data, staff=current_user.staff,
                                    now=now, public_base_url=current_app.config["PUBLIC_BASE_URL"],
                                    request_id=g.request_id)
    except nurse_texts.TextRefused as e:
        db.session.rollback()
        return _text_page(p, enrolment, form, now, d, status=409, notice=f"Not sent: {e}")
    db.session.commit()
    if row is None:
        flash("That text was already queued (the form was sent twice); it goes once.")
    else:
        flash("Text queued: it goes " + ("at once." if form.urgent.data else
                                         "now, or at 08:00 the patient's time if it is quiet hours there."))
    return _back(p)


@bp.post("/patients/<int:patient_id>/text/count")
def count_text(patient_id: int):
    """The segment counter under the text box (htmx, as the nurse types)."""
    p = patient_for_staff(patient_id)
    body = (request.form.get("body") or "")[:5000]
    d = nurse_texts.draft(body, patient=p, clinic=g.clinic, public_base_url=current_app.config["PUBLIC_BASE_URL"])
    return render_template("nurse/_text_count.html", draft=d, max_segments=nurse_texts.MAX_SEGMENTS)


@bp.post("/patients/<int:patient_id>/link")
def resend_link(patient_id: int):
    p = patient_for_staff(patient_id)
    enrolment = current_enrolment(p)
    now = utcnow()
    form = ResendLinkForm()
    if not form.validate_on_submit():
        return _link_page(p, "The page was out of date: nothing was sent.", 422)
    try:
        row = nurse_texts.resend_link(db.session, patient=p, enrolment=enrolment, nonce=form.nonce.data,
                                      staff=current_user.staff, now=now, request_id=g.request_id)
    except nurse_texts.TextRefused as e:
        db.session.rollback()
        return _link_page(p, f"No link sent: {e}", 409)
    db.session.commit()
    flash("A new link is on its way to the patient's mobile (earlier links keep working until they expire)."
          if row is not None else "That link was already queued; it goes once.")
    return _back(p)


def _link_page(p, problem: str, status: int):
    form = ResendLinkForm(formdata=None)
    form.nonce.data = new_nonce()
    return render_template("nurse/patient_link.html", p=p, form=form, problem=problem), status

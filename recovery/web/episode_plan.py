"""Nurse pages for what a patient's care brings next (issue 13 §2): the real follow-up appointment
(book, change, clear), a new episode for another procedure, and an earlier episode's record.

Routes on the nurse blueprint (signed-in staff; `patient_for_staff` gives 404 for another clinic's
patient). Plain forms that redirect; a bad form comes back with its errors and status 422.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from recovery.clock import utcnow
from recovery.domain.plan.errors import OverrideError
from recovery.domain.timeline import TimelineError, local_to_utc
from recovery.files import instruments
from recovery.services import appointments, episodes
from recovery.services.enrolment import EpisodeInput, EpisodeStillActive, start_new_episode, timeline_for
from recovery.services.records import patient_record
from recovery.store.db import db
from recovery.store.enrolments import current_enrolment
from recovery.store.models import Enrolment, EnrolmentStatus
from recovery.web.access import patient_for_staff
from recovery.web.episode import _back, _episode
from recovery.web.episode_forms import FollowupForm
from recovery.web.forms import CorrectTimesForm, NewEpisodeForm
from recovery.web.nurse import _overrides_from, bp, clinic_template, enrolment_template

STILL_ACTIVE = ("Monitoring of the current episode has not ended. End it first (“End monitoring…” on the "
                "patient's page), then start the new episode.")


# ---- the follow-up appointment ------------------------------------------------------------------

def _followup_page(p, e, form, status=200, notice=None):
    return render_template("nurse/followup.html", p=p, e=e, form=form, notice=notice,
                           ended=episodes.status_of(e, utcnow()) == "ended"), status


@bp.route("/patients/<int:patient_id>/followup", methods=["GET", "POST"])
def followup(patient_id: int):
    p, e = _episode(patient_id)
    tz = ZoneInfo(p.timezone)
    if request.method == "GET":
        form = FollowupForm(formdata=None)
        if e.followup_at is not None:
            local = e.followup_at.astimezone(tz)
            form.day.data, form.time.data, form.place.data = local.date(), local.time(), e.followup_place
        return _followup_page(p, e, form)
    form = FollowupForm()
    if e.status != EnrolmentStatus.ACTIVE:
        return _followup_page(p, e, form, 409, "Monitoring of this episode has ended: no appointment to book.")
    valid = form.validate_on_submit()
    at = None
    if not (form.day.errors or form.time.errors) and form.day.data and form.time.data:
        at = local_to_utc(form.day.data, form.time.data, tz)
        problems = appointments.appointment_problems(at, form.place.data, e)
        if "at" in problems:
            form.day.errors = [*form.day.errors, problems["at"]]
    if not valid or at is None or form.day.errors:
        return _followup_page(p, e, form, 422)
    try:
        result = appointments.book_followup(db.session, enrolment=e, patient=p, template=enrolment_template(g.clinic, e),
                                            at=at, place=form.place.data, staff=current_user.staff, now=utcnow(),
                                            request_id=g.request_id)
    except appointments.AppointmentRefused as ex:
        db.session.rollback()
        return _followup_page(p, e, form, 409, f"Not booked: {ex}.")
    except (ValueError, TimelineError, OverrideError) as ex:
        db.session.rollback()
        form.day.errors = [*form.day.errors, f"The plan cannot take this time: {getattr(ex, 'problem', ex)}."]
        return _followup_page(p, e, form, 422)
    db.session.commit()
    flash(_booked_words(result, at, form.place.data, tz))
    return _back(p)


def _booked_words(result, at: datetime | None, place: str | None, tz) -> str:
    if result.action == "followup_unchanged":
        return "Nothing was changed."
    if result.action == "followup_cleared":
        head = "Follow-up appointment cleared: the plan's own follow-up day applies again."
    else:
        head = f"Follow-up appointment {at.astimezone(tz):%a %-d %b %Y, %H:%M}, {place}."
    return f"{head} {result.cancelled} planned texts moved or cancelled, {result.added} planned."


@bp.post("/patients/<int:patient_id>/followup/clear")
def clear_followup(patient_id: int):
    p, e = _episode(patient_id)
    try:  # (CSRFProtect has checked the token of every POST)
        result = appointments.book_followup(db.session, enrolment=e, patient=p, template=enrolment_template(g.clinic, e),
                                            at=None, place=None, staff=current_user.staff, now=utcnow(),
                                            request_id=g.request_id)
    except appointments.AppointmentRefused as ex:
        db.session.rollback()
        return _followup_page(p, e, FollowupForm(formdata=None), 409, f"Not cleared: {ex}.")
    db.session.commit()
    flash(_booked_words(result, None, None, ZoneInfo(p.timezone)))
    return _back(p)


# ---- a new episode ------------------------------------------------------------------------------

def _new_episode_page(p, form, status=200):
    current = current_enrolment(p)
    still_active = current is not None and current.status == EnrolmentStatus.ACTIVE
    return render_template("nurse/episode_new.html", p=p, form=form, still_active=still_active,
                           still_active_words=STILL_ACTIVE), status


@bp.route("/patients/<int:patient_id>/episodes/new", methods=["GET", "POST"])
def new_episode(patient_id: int):
    p = patient_for_staff(patient_id)
    if request.method == "GET":
        return _new_episode_page(p, NewEpisodeForm(formdata=None))
    form = NewEpisodeForm()
    now = utcnow()
    current = current_enrolment(p)
    if current is not None and current.status == EnrolmentStatus.ACTIVE:
        form.form_errors.append(STILL_ACTIVE)
        return _new_episode_page(p, form, 422)
    valid = form.validate_on_submit()
    times = form.check_times(ZoneInfo(p.timezone), now)
    if not (valid and times.ok):
        return _new_episode_page(p, form, 422)
    episode = EpisodeInput(procedure_type=form.procedure_type.data, procedure_end=times.procedure_end,
                           discharge_at=times.discharge_at, baseline_back_pain=form.baseline_back_pain.data,
                           baseline_leg_symptoms=form.baseline_leg_symptoms.data or [], working=form.working.data,
                           brace=form.brace.data, overrides=_overrides_from(form))
    try:
        start_new_episode(db.session, patient=p, clinic=g.clinic, staff=current_user.staff, episode=episode,
                          template=clinic_template(g.clinic), now=now, request_id=g.request_id)
    except EpisodeStillActive:
        db.session.rollback()
        form.form_errors.append(STILL_ACTIVE)
        return _new_episode_page(p, form, 422)
    except (OverrideError, TimelineError) as ex:
        db.session.rollback()
        form.form_errors.append(f"The recovery plan could not be built: {ex}")
        return _new_episode_page(p, form, 422)
    db.session.commit()
    flash(f"New episode started for {p.first_name} {p.last_name}: their link and texts follow it from now on."
          + ("" if p.sms_consent else " No texts will be sent: the patient has not agreed to texts."))
    return _back(p)


# ---- an earlier episode -------------------------------------------------------------------------

@bp.get("/episodes/<int:enrolment_id>")
def episode(enrolment_id: int):
    """An episode's record, read only: its timeline, check-ins, alerts and texts. The current episode
    is the patient's own page."""
    e = db.session.get(Enrolment, enrolment_id)
    if e is None or e.clinic_id != current_user.clinic_id:
        abort(404)
    p = patient_for_staff(e.patient_id)
    if current_enrolment(p) is e:
        return redirect(url_for("nurse.patient", patient_id=p.id), 303)
    now = utcnow()
    record = patient_record(db.session, p, staff_id=current_user.staff.id, now=now, request_id=g.request_id,
                            peg_instrument=instruments.peg(current_app.config["SCHEDULES_DIR"]),
                            enrolment_id=e.id)
    timeline = timeline_for(e, p, enrolment_template(g.clinic, e))
    db.session.commit()
    return render_template("nurse/patient.html", record=record, p=p, timeline=timeline, now=now,
                           tz=ZoneInfo(p.timezone), correct_form=CorrectTimesForm(formdata=None), safety_problems=[],
                           peg_summary=record.peg, past_episode=True)

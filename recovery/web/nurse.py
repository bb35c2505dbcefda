"""Nurse pages: worklist, patient list, enrolment, one patient's record."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import (Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request,
                   url_for)
from flask_login import current_user

from recovery.clock import utcnow
from recovery.domain.identity import month_first
from recovery.domain.plan.errors import OverrideError
from recovery.domain.timeline import TimelineError
from recovery.files import instruments
from recovery.services import clinic_plans
from recovery.services.enrolment import EnrolmentInput, correct_procedure_times, enrol_patient, timeline_for
from recovery.services.patient_identity import MrnInUse
from recovery.services.phones import region_for_zone
from recovery.services.records import ROSTER_ONLY, ROSTER_STATUSES, patient_list, patient_record
from recovery.services.safety_texts import safety_text_problems
from recovery.services.worklist import SHOWN, poll_version, version, worklist_rows
from recovery.services.shared_numbers import NumberShared, sharing
from recovery.store.db import begin_write, db
from recovery.store.enrolments import current_enrolment
from recovery.store.models import Clinic, EnrolmentStatus
from recovery.web import render_page_or_fragment, wants_fragment
from recovery.web.access import background_refresh, patient_for_staff, policy, staff_cookie_token, staff_required
from recovery.web.forms import CorrectTimesForm, EnrolmentForm

bp = Blueprint("nurse", __name__, url_prefix="/nurse")


@bp.before_request
def _unchanged_poll():
    """The worklist's poll, bringing the version it shows, when nothing changed: one statement
    (the staff session and the version), no objects, no template, 204 (htmx swaps nothing).
    Anything else, a signed-out or idle session included, takes the ordinary path below."""
    shown = request.args.get("v")
    if not shown or request.endpoint != "nurse.worklist" or not background_refresh() or not wants_fragment():
        return None
    token = staff_cookie_token()
    if not token:
        return None
    with db.engine.connect() as conn:  # outside the ORM session: a third of the cost of the poll
        now_shown = poll_version(conn, token, utcnow(), policy())
    return Response(status=204) if shown == now_shown else None


@bp.before_request
@staff_required
def _signed_in():
    g.clinic = db.session.get(Clinic, current_user.clinic_id)


def clinic_template(clinic: Clinic):
    return clinic_plans.plan_for_new(db.session, current_app.config["SCHEDULES_DIR"], clinic,
                                     current_app.config["DEFAULT_TEMPLATE"])


def enrolment_template(clinic: Clinic, enrolment):
    return clinic_plans.plan_for(db.session, current_app.config["SCHEDULES_DIR"], enrolment, clinic)


def _page_number(raw: str | None) -> int:
    """?page=: a whole number, else page 1 (the list clamps it to the pages there are)."""
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 1


@bp.get("/patients")
def patients():
    q = request.args.get("q", "")[:60]
    status = request.args.get("status", "")
    status = status if status in ROSTER_STATUSES else ""
    only = request.args.get("only", "")
    only = only if only in ROSTER_ONLY else ""
    now = utcnow()
    rows = patient_list(db.session, current_user.clinic_id, now, q, status=status, only=only,
                        page=_page_number(request.args.get("page")),
                        month_first=month_first(region_for_zone(g.clinic.timezone)))
    return render_page_or_fragment("nurse/patients.html", "nurse/_patient_rows.html", rows=rows, q=q,
                                   shown=status, statuses=ROSTER_STATUSES, only=only, onlys=ROSTER_ONLY,
                                   filters={k: v for k, v in (("q", q), ("status", status), ("only", only)) if v},
                                   now=now)


def _overrides_from(form: EnrolmentForm) -> dict:
    """The per-patient changes the nurse asked for. Empty fields follow the clinic's plan. The words
    come from the plan: TL03 says how long it lasts ('lasts'), so the plan rewords its own detail
    and the clinic's or template's S01 with the patient's length (Overrides.reworded)."""
    overrides: dict = {}
    days = form.no_driving_days.data
    if days:
        overrides.setdefault("milestones", {})["TL03"] = {"end": f"T0+{days * 24}h"}
    if form.followup_day.data:
        overrides.setdefault("milestones", {})["TL16"] = f"date T0+{form.followup_day.data}d"
    return overrides


@bp.route("/patients/new", methods=["GET", "POST"])
def enrol():
    form = EnrolmentForm(region=region_for_zone(g.clinic.timezone))
    if request.method == "GET":
        form.timezone.data = form.timezone.data or g.clinic.timezone
        return render_template("nurse/enrol.html", form=form)
    now = utcnow()
    valid = form.validate_on_submit()
    times = form.check_times(ZoneInfo(form.timezone.data), now) if not form.timezone.errors else None
    if not (valid and times and times.ok):
        return render_template("nurse/enrol.html", form=form), 422
    data = EnrolmentInput(
        first_name=form.first_name.data, last_name=form.last_name.data, mobile_e164=form.mobile.e164,
        timezone=form.timezone.data, procedure_type=form.procedure_type.data, procedure_end=times.procedure_end,
        discharge_at=times.discharge_at, language=form.language.data,
        sms_consent=form.sms_consent.data, caregiver_name=form.caregiver_name.data,
        caregiver_mobile_e164=form.caregiver_mobile.e164, caregiver_consent=form.caregiver_consent.data,
        baseline_back_pain=form.baseline_back_pain.data,
        baseline_leg_symptoms=form.baseline_leg_symptoms.data or [], working=form.working.data,
        brace=form.brace.data, overrides=_overrides_from(form), mrn=form.mrn.data, birth_date=form.birth_date.day,
        shared_phone=bool(form.shared_phone.data))
    try:
        enrolment = enrol_patient(db.session, clinic=g.clinic, staff=current_user.staff, data=data,
                                  template=clinic_template(g.clinic), now=now, request_id=g.request_id)
    except MrnInUse as e:
        db.session.rollback()
        form.mrn.errors = [*form.mrn.errors, str(e)]
        return render_template("nurse/enrol.html", form=form), 422
    except NumberShared as e:
        db.session.rollback()
        form.mobile.errors = [*form.mobile.errors, str(e)]
        return render_template("nurse/enrol.html", form=form, shared_with=e.others), 422
    except (OverrideError, TimelineError) as e:
        db.session.rollback()
        form.form_errors.append(f"The recovery plan could not be built: {e}")
        return render_template("nurse/enrol.html", form=form), 422
    db.session.commit()
    opted_out = enrolment.patient.sms_opted_out
    flash(f"{data.first_name} {data.last_name} is enrolled."
          + ("" if data.sms_consent else " No texts will be sent: the patient has not agreed to texts.")
          + (" No texts will be sent: this number replied STOP earlier (it gets texts again if it texts START);"
             " a phone follow-up task is on the worklist." if data.sms_consent and opted_out else ""))
    return redirect(url_for("nurse.patient", patient_id=enrolment.patient_id), 303)


@bp.get("/patients/<int:patient_id>")
def patient(patient_id: int):
    p = patient_for_staff(patient_id)
    now = utcnow()
    record = patient_record(db.session, p, staff_id=current_user.staff.id, now=now, request_id=g.request_id,
                            peg_instrument=instruments.peg(current_app.config["SCHEDULES_DIR"]))
    timeline = None
    if record.enrolment is not None:
        timeline = timeline_for(record.enrolment, p, enrolment_template(g.clinic, record.enrolment))
    html = patient_page(p, record, timeline, now)
    db.session.commit()
    return html


def patient_page(p, record, timeline, now, *, pdf: bool = False) -> str:
    """The patient page's HTML; with `pdf`, the same page for the PDF (web/record_pdf.py), whose
    print stylesheet leaves out the menus and forms."""
    return render_template("nurse/patient.html", record=record, p=p, timeline=timeline, now=now,
                           tz=ZoneInfo(p.timezone), correct_form=CorrectTimesForm(),
                           safety_problems=_safety_problems(p, record, timeline, now),
                           peg_summary=record.peg, shared_with=_sharing(p, record), pdf=pdf)


def _sharing(p, record):
    """The other active patients on this patient's mobile, while this episode is active."""
    active = record.enrolment is not None and record.enrolment.status == EnrolmentStatus.ACTIVE
    if not active:
        return []
    with db.session.no_autoflush:  # the view's audit row goes with the commit, not before this read
        return sharing(db.session, p)


def _safety_problems(p, record, timeline, now):
    if record.enrolment is None or timeline is None:
        return []
    return safety_text_problems(record.messages, patient=p, enrolment=record.enrolment, timeline=timeline,
                                emerg=g.clinic.emergency_number, phone=g.clinic.care_phone, now=now)


@bp.post("/patients/<int:patient_id>/times")
def correct_times(patient_id: int):
    p = patient_for_staff(patient_id)
    enrolment = current_enrolment(p)
    if enrolment is None:
        abort(404)
    form = CorrectTimesForm()
    now = utcnow()
    valid = form.validate_on_submit()
    times = form.check_times(ZoneInfo(p.timezone), now)
    if valid and times.ok:
        try:
            cancelled, added = correct_procedure_times(
                db.session, enrolment=enrolment, patient=p,
                template=enrolment_template(g.clinic, enrolment), procedure_end=times.procedure_end,
                discharge_at=times.discharge_at, staff=current_user.staff, reason=form.reason.data,
                now=now, request_id=g.request_id)
        except (TimelineError, OverrideError) as e:
            db.session.rollback()  # nothing half-done: the re-shown page commits only its view audit
            begin_write(db.session)
            enrolment = current_enrolment(p)
            form.form_errors.append(str(e))
        else:
            db.session.commit()
            flash(f"Procedure time corrected. {cancelled} planned texts moved or cancelled, {added} planned.")
            return redirect(url_for("nurse.patient", patient_id=p.id), 303)
    record = patient_record(db.session, p, staff_id=current_user.staff.id, now=now, request_id=g.request_id)
    timeline = timeline_for(enrolment, p, enrolment_template(g.clinic, enrolment))
    problems = _safety_problems(p, record, timeline, now)
    db.session.commit()
    return render_template("nurse/patient.html", record=record, p=p, timeline=timeline, now=now,
                           tz=ZoneInfo(p.timezone), correct_form=form, open_correct=True,
                           safety_problems=problems, shared_with=_sharing(p, record)), 422


@bp.get("/")
def worklist():
    now = utcnow()
    show_all = request.args.get("all") == "1"
    shown = request.args.get("v")
    if shown and wants_fragment() and shown == version(db.session, current_user.clinic_id, now):
        return "", 204  # the list is still right (a poll the nurse's own click sent: _unchanged_poll did not answer)
    rows = worklist_rows(db.session, current_user.clinic_id, now, limit=None if show_all else SHOWN)
    return render_page_or_fragment("nurse/worklist.html", "nurse/_worklist.html", rows=rows, now=now,
                                   show_all=show_all, version=rows.version(current_user.clinic_id, now))

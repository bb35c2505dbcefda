"""Patient pages: passwordless links, Today, the calendar file. Mobile first; no JavaScript needed."""
from __future__ import annotations

import logging

from flask import (Blueprint, Response, current_app, flash, g, redirect, render_template, request, session,
                   url_for)
from flask_babel import gettext
from limits import parse as parse_limit

from recovery.store import audit

from recovery.clock import utcnow
from recovery.services.enrolment import timeline_for
from recovery.services.link_requests import request_link
from recovery.store.enrolments import current_enrolment
from recovery.store.db import db
from recovery.store.models import Clinic, EnrolmentStatus, Patient
from recovery.web.calendar import build_ics
from recovery.services.sessions import (CHECKIN_SCOPE, PATIENT_SCOPE, LinkProblem, load_session, peek_link,
                               redeem_link, revoke)
from recovery.domain.today import today_view
from recovery.services import checkins, clinic_plans
from recovery.web import ratelimits
from recovery.web.access import PATIENT_COOKIE_KEY, patient_required, policy
from recovery.web.checkin import offer as checkin_offer
from recovery.web.extensions import limiter
from recovery.web.forms import parse_mobile
from recovery.web.i18n import DEFAULT, LANGUAGES, known_language, page_language, text
from recovery.web.redirects import same_origin_path
from recovery.services.patient_details import choose_language

bp = Blueprint("patient", __name__)
log = logging.getLogger(__name__)


def _link_limit() -> str:
    return current_app.config["LINK_RATE_LIMIT"]


def _link_problem(e: LinkProblem):
    """A used or expired link opened again in the browser of its own patient, still signed in
    (they tapped the text a second time): their Today page, not an error. Anyone else gets the
    explanation and "Text me a new link"."""
    ws = g.get("patient_session")
    if e.reason in ("used", "expired") and ws is not None and e.patient_id == ws.patient_id:
        return redirect(url_for("patient.today"), 303)
    if e.patient_id is not None:  # the explanation in the language of the patient the link was sent to
        patient = db.session.get(Patient, e.patient_id)
        g.patient_language = known_language(patient.language) if patient is not None else None
    return render_template("patient/link.html", problem=e.reason), 410 if e.reason != "unknown" else 404


@bp.get("/l/<token>")
@limiter.limit(_link_limit)
def link(token: str):
    """Show the confirm page. A GET never consumes the link: SMS apps pre-fetch links."""
    try:
        found = peek_link(db.session, token, utcnow())
    except LinkProblem as e:
        return _link_problem(e)
    patient = db.session.get(Patient, found.patient_id)
    g.patient_language = patient.language if patient is not None and patient.language in LANGUAGES else None
    return render_template("patient/link.html", problem=None, purpose=found.purpose)


@bp.post("/l/<token>")
@limiter.limit(_link_limit)
def redeem(token: str):
    now = utcnow()
    try:
        found, cookie_token = redeem_link(db.session, token, now, policy(), g.request_id)
    except LinkProblem as e:
        db.session.rollback()
        return _link_problem(e)
    if found.purpose == "checkin":
        # The button said "Start my check-in": start it in this POST (GET /me/checkin only looks)
        patient = db.session.get(Patient, found.patient_id)
        enrolment = current_enrolment(patient)
        if enrolment is not None and enrolment.status == EnrolmentStatus.ACTIVE:
            checkins.start_from_link(db.session, enrolment=enrolment, patient=patient, slot=found.checkin_slot,
                                     now=now, request_id=g.request_id)
    db.session.commit()
    session.clear()
    session[PATIENT_COOKIE_KEY] = cookie_token
    session.permanent = True
    g.patient_session = load_session(db.session, cookie_token, utcnow(), policy())  # the cookie's life
    if found.purpose == "checkin" and "checkin.start" in current_app.view_functions:
        return redirect(url_for("checkin.start"), 303)
    return redirect(url_for("patient.today"), 303)


@bp.get("/signed-out")
def signed_out():
    g.patient_language = known_language(request.args.get("lang"))  # the signed-out patient's, carried over
    return render_template("patient/signed_out.html")


@bp.post("/me/sign-out")
def sign_out():
    """Ends the patient's session on the server too: a copy of the cookie no longer opens anything."""
    ws = g.get("patient_session")
    if ws is not None:
        now = utcnow()
        revoke(db.session, ws, now)
        audit.record(db.session, at=now, actor_type="patient", actor_id=ws.patient_id, action="logout",
                     patient_id=ws.patient_id, request_id=g.request_id)
        db.session.commit()
    message = gettext("You have signed out. Your care team's next text will have a new link.")  # their language
    language = page_language()
    session.clear()
    flash(message)
    return redirect(url_for("patient.signed_out", lang=language) if language != DEFAULT
                    else url_for("patient.signed_out"), 303)


@bp.post("/me/language")
@patient_required(PATIENT_SCOPE, CHECKIN_SCOPE)
def language():
    """"English · Español" at the top of the patient's pages: the choice is stored (texts follow it)
    and audited; back to the page it was made on."""
    chosen = request.form.get("language")
    if chosen in LANGUAGES:
        enrolment = current_enrolment(g.patient)
        template = (clinic_plans.plan_for(db.session, current_app.config["SCHEDULES_DIR"], enrolment,
                                          db.session.get(Clinic, g.patient.clinic_id)) if enrolment else None)
        choose_language(db.session, patient=g.patient, enrolment=enrolment, template=template, language=chosen,
                        now=utcnow(), request_id=g.request_id)
        db.session.commit()
    back = same_origin_path(request.form.get("next"), under="/me") or url_for("patient.today")
    return redirect(back, 303)


def _may_text_a_link(patient_id: int) -> bool:
    """At most LINK_SEND_LIMIT new-link texts per patient, whichever worker or host takes the request.
    Only texts count (an unknown number, a bad one or a patient without consent costs nothing), and
    the page says the same either way, so the limit cannot tell anyone that a number is enrolled."""
    cfg = current_app.config
    if not cfg.get("RATELIMIT_ENABLED", True):
        return True
    try:
        return limiter.limiter.hit(parse_limit(cfg["LINK_SEND_LIMIT"]), cfg.get("RATELIMIT_KEY_PREFIX", ""),
                                   ratelimits.patient_key(patient_id), "link-send")
    except Exception as exc:  # noqa: BLE001 - a patient asking for their link is not refused for a store hiccup
        log.warning("new-link send limit not checked: %s", type(exc).__name__)
        return True


@bp.route("/new-link", methods=["GET", "POST"])
@limiter.limit(_link_limit, methods=["POST"])
def new_link():
    """Text a fresh link to an enrolled patient's own number. The reply never says whether the
    number is enrolled. The page is in the language of the page that led here (`lang`): nobody is
    signed in to ask."""
    g.patient_language = known_language(request.values.get("lang"))
    if request.method == "GET":
        return render_template("patient/new_link.html", sent=False, error=None)
    raw = (request.form.get("mobile") or "").strip()
    try:
        region = "GB" if raw.startswith("07") else "US"
        mobile = parse_mobile(raw, region)
    except ValueError as e:
        return render_template("patient/new_link.html", sent=False, error=text(str(e)), mobile=raw), 422
    request_link(db.session, mobile, utcnow(), g.request_id, may_send=_may_text_a_link)
    db.session.commit()
    return render_template("patient/new_link.html", sent=True, error=None)


def _timeline(patient):
    enrolment = current_enrolment(patient)
    clinic = db.session.get(Clinic, patient.clinic_id)
    template = clinic_plans.plan_for(db.session, current_app.config["SCHEDULES_DIR"], enrolment, clinic)
    return enrolment, clinic, timeline_for(enrolment, patient, template)


@bp.get("/me")
@patient_required(PATIENT_SCOPE, CHECKIN_SCOPE)
def today():
    now = utcnow()
    enrolment = current_enrolment(g.patient)
    if enrolment.status != EnrolmentStatus.ACTIVE:  # monitoring ended: a calm page, whom to call
        return render_template("patient/ended.html", p=g.patient,
                               clinic=db.session.get(Clinic, g.patient.clinic_id))
    enrolment, clinic, timeline = _timeline(g.patient)
    found = checkin_offer(enrolment, clinic, now)
    view = today_view(timeline, now, next_checkin_at=found.next.invite.send_at if found.next else None)
    return render_template("patient/today.html", p=g.patient, clinic=clinic, view=view, offer=found,
                           scope=g.patient_session.scope)


@bp.get("/me/calendar.ics")
@patient_required(PATIENT_SCOPE, CHECKIN_SCOPE)
def calendar():
    if current_enrolment(g.patient).status != EnrolmentStatus.ACTIVE:
        return redirect(url_for("patient.today"), 303)
    enrolment, clinic, timeline = _timeline(g.patient)
    body = build_ics(timeline, enrolment_id=enrolment.id, now=utcnow(), clinic_name=clinic.name)
    return Response(body, mimetype="text/calendar",
                    headers={"Content-Disposition": 'attachment; filename="recovery-plan.ics"'})

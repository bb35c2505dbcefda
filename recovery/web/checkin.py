"""The patient check-in (protocol §2): one question group per screen, progress shown, a review
screen, then only the neutral texts of §3.

Every screen is a plain form that posts, saves and redirects to the next screen (works with
JavaScript off). htmx only adds one thing: each changed answer is posted ahead as a draft, so an
emergency answer reaches the nurse and shows the emergency screen before the patient presses Next
(MR2). The emergency questions come first.
"""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import (Blueprint, Response, abort, current_app, g, redirect, render_template, request, url_for)

from recovery.clock import utcnow
from recovery.files import templates as templates_repo
from recovery.files import instruments
from recovery.services import checkins, clinic_plans, peg
from recovery.services.enrolment import timeline_for
from recovery.store.db import db
from recovery.store.models import Checkin, CheckinStatus, Clinic, Enrolment, EnrolmentStatus, TriageLevel
from recovery.domain.questionnaire.answers import dump_answers, pending_temp_confirmation
from recovery.domain.questionnaire.form import items_on
from recovery.domain.questionnaire.items import ITEMS, SCREENS
from recovery.domain.questionnaire.model import Kind, TEMP_CONFIRM_FIELD
from recovery.domain.today import checkin_opens
from recovery.services.records import answer_lines
from recovery.store.enrolments import current_enrolment
from recovery.services.sessions import CHECKIN_SCOPE, PATIENT_SCOPE
from recovery.web import wants_fragment
from recovery.web.access import patient_required
from recovery.web import i18n

bp = Blueprint("checkin", __name__, url_prefix="/me/checkin")
SCOPES = (PATIENT_SCOPE, CHECKIN_SCOPE)


def _ruleset():
    return templates_repo.ruleset(current_app.config["RULESET_PATH"])


def _template_for(enrolment, clinic):
    return clinic_plans.plan_for(db.session, current_app.config["SCHEDULES_DIR"], enrolment, clinic)


def _enrolment():
    enrolment = current_enrolment(g.patient)
    if enrolment is None:
        abort(404)
    if enrolment.status != EnrolmentStatus.ACTIVE:  # monitoring ended: Today says so, and whom to call
        abort(redirect(url_for("patient.today"), 303))
    return enrolment


def _own(checkin_id: int) -> Checkin:
    """The patient's own check-in. A session opened by a check-in link reaches only its slot's
    check-in and symptom reports that are unfinished or were started or sent during it (no
    history): a report begun on an earlier link and sent on this one shows its outcome."""
    # the check-in, its enrolment and whether it is the first, in one statement; g holds them for
    # _setting (the session's identity map holds rows only while something refers to them)
    row = db.session.execute(checkins.CHECKIN_WITH_ENROLMENT, {"checkin_id": checkin_id}).first()
    if row is None or row.Checkin.patient_id != g.patient.id:
        abort(404)
    c, enrolment = row.Checkin, row.Enrolment
    g.own_checkin = (c, enrolment, row.first)
    if enrolment is not None and enrolment.status != EnrolmentStatus.ACTIVE:
        abort(redirect(url_for("patient.today"), 303))
    ws = g.patient_session
    if ws.scope == CHECKIN_SCOPE:
        mine = (ws.checkin_slot is not None and c.slot == ws.checkin_slot) or (
            c.slot is None and (c.status != CheckinStatus.SUBMITTED or c.started_at >= ws.created_at
                                or (c.submitted_at is not None and c.submitted_at >= ws.created_at)))
        if not mine:
            abort(404)
    return c


def _setting(c: Checkin) -> checkins.Setting:
    own = g.get("own_checkin")
    first = own[2] if own is not None and own[0] is c else None
    return checkins.setting_for(db.session, c, template_for=_template_for, ruleset=_ruleset(), first=first)


def peg_ask(setting: checkins.Setting) -> peg.Ask | None:
    """The PEG screens this check-in asks after its questions (day 0, 14 and 42), or None."""
    return peg.ask_for(db.session, setting, instruments.peg(current_app.config["SCHEDULES_DIR"]))


def _peg_screens(ask: peg.Ask | None) -> int:
    return len(ask.screens) if ask else 0


def _next_url(c: Checkin, flow: checkins.Flow, after: str | None = None, ask: peg.Ask | None = None) -> str:
    nxt = flow.next_after(after) if after else flow.next_incomplete
    if nxt is None:
        screen = ask.next_screen() if ask else None
        if screen is not None:  # the outcome questions, once the symptom questions are answered
            return url_for(".peg_step", checkin_id=c.id, screen=screen)
        return url_for(".review", checkin_id=c.id)
    return url_for(".step", checkin_id=c.id, group_id=nxt.id)


def _raw_from_answers(answers) -> dict[str, list[str]]:
    """Stored answers as the form's raw values, so a screen shows what was already given."""
    raw: dict[str, list[str]] = {}
    for key, value in dump_answers(answers).items():
        kind = ITEMS[key].kind
        if kind is Kind.MULTI:
            raw[key] = list(value)
        elif kind is Kind.BOOL:
            raw[key] = ["yes" if value else "no"]
        else:
            raw[key] = [str(value)]
    return raw


def _render_step(setting: checkins.Setting, flow: checkins.Flow, group_id: str, raw: dict, errors: dict,
                 status: int = 200):
    group = flow.group(group_id)
    confirm = pending_temp_confirmation(errors)
    if confirm:
        raw = {**raw, "temp_value": []}  # re-typed, not corrected in place
    elif TEMP_CONFIRM_FIELD in request.form and errors:
        confirm = request.form.get(TEMP_CONFIRM_FIELD)
    previous = flow.before(group_id)
    return render_template(
        "patient/checkin_step.html", c=setting.checkin, clinic=setting.clinic, group=i18n.group(group),
        first_of_section=previous is None or previous.section != group.section,
        position=flow.position(group_id), total=flow.total + _peg_screens(peg_ask(setting)), raw=raw,
        errors={k: i18n.field_error(v) for k, v in errors.items()}, temp_confirm=confirm, confirm_field=TEMP_CONFIRM_FIELD,
        back_url=url_for(".step", checkin_id=setting.checkin.id, group_id=previous.id) if previous else None,
    ), status


# ---- starting ---------------------------------------------------------------------------------

def offer(enrolment, clinic, now) -> checkins.Offer:
    """What this session may do now (Today and the start page ask the same question): the open
    scheduled check-in (a check-in link's session: only the link's own), an unfinished symptom
    report, and when the next check-in comes."""
    ws = g.patient_session
    timeline = timeline_for(enrolment, g.patient, _template_for(enrolment, clinic))
    link_hours = float(current_app.config["CHECKIN_LINK_HOURS"])  # as long as the link in the text works
    return checkins.offer_for(db.session, enrolment, timeline, now, only_slot=ws.checkin_slot,
                              any_slot=ws.scope != CHECKIN_SCOPE,
                              link_valid=now < ws.created_at + timedelta(hours=link_hours))


def _render_start(clinic, found: checkins.Offer, already_done: bool = False):
    opens = checkin_opens(found.next.invite.send_at if found.next else None, ZoneInfo(g.patient.timezone), utcnow())
    return render_template("patient/checkin_start.html", clinic=clinic, already_done=already_done,
                           offer=found, next_checkin=opens)


@bp.get("")
@patient_required(*SCOPES)
def start():
    """What can be done now. Only looks: a GET never starts a check-in (a cross-site <img> or a
    prefetch must not write). A check-in link's button started its check-in when it was pressed
    (patient.redeem); here it is resumed while its window is open, or offered with a button."""
    now = utcnow()
    ws = g.patient_session
    enrolment = _enrolment()
    clinic = db.session.get(Clinic, g.patient.clinic_id)
    found = offer(enrolment, clinic, now)
    if ws.scope == CHECKIN_SCOPE:
        slot = ws.checkin_slot
        if slot is not None and (found.open is None or found.done):  # its window has closed, or it was sent
            return _render_start(clinic, found, already_done=checkins.slot_submitted(db.session, enrolment.id, slot))
        c = checkins.in_progress(db.session, enrolment.id, slot)
        if c is not None:
            return redirect(url_for(".resume", checkin_id=c.id), 303)
    return _render_start(clinic, found)


@bp.post("")
@patient_required(*SCOPES)
def begin():
    """Start (or resume) the scheduled check-in that is due now."""
    now = utcnow()
    ws = g.patient_session
    enrolment = _enrolment()
    if ws.scope == CHECKIN_SCOPE and ws.checkin_slot is None:  # a symptom report, from start
        return redirect(url_for(".start"), 303)
    due = offer(enrolment, db.session.get(Clinic, g.patient.clinic_id), now).due
    slot = due.slot if due else None
    if slot is None:  # a page left open since: the start page says what can be done now
        return redirect(url_for(".start"), 303)
    c = checkins.start_checkin(db.session, enrolment=enrolment, patient=g.patient, slot=slot,
                               source=checkins.SOURCE_WEB, now=now, request_id=g.request_id)
    db.session.commit()
    return redirect(url_for(".resume", checkin_id=c.id), 303)


@bp.post("/report")
@patient_required(*SCOPES)
def report():
    """"Report a symptom": a check-in at any time, not tied to the schedule."""
    c = checkins.start_checkin(db.session, enrolment=_enrolment(), patient=g.patient, slot=None,
                               source=checkins.SOURCE_WEB, now=utcnow(), request_id=g.request_id)
    db.session.commit()
    return redirect(url_for(".resume", checkin_id=c.id), 303)


@bp.get("/<int:checkin_id>")
@patient_required(*SCOPES)
def resume(checkin_id: int):
    c = _own(checkin_id)
    if c.status == CheckinStatus.SUBMITTED:
        return redirect(url_for(".done", checkin_id=c.id), 303)
    setting = _setting(c)
    return redirect(_next_url(c, checkins.flow_for(setting), ask=peg_ask(setting)), 303)


# ---- one screen -------------------------------------------------------------------------------

@bp.get("/<int:checkin_id>/step/<group_id>")
@patient_required(*SCOPES)
def step(checkin_id: int, group_id: str):
    c = _own(checkin_id)
    if c.status == CheckinStatus.SUBMITTED:
        return redirect(url_for(".done", checkin_id=c.id), 303)
    setting = _setting(c)
    flow = checkins.flow_for(setting)
    if flow.group(group_id) is None:  # not asked (any more) with the answers given
        section = next((s for s in flow.steps if s.section == group_id), None)  # an old section URL
        if section is not None:
            return redirect(url_for(".step", checkin_id=c.id, group_id=section.id), 303)
        return redirect(_next_url(c, flow, ask=peg_ask(setting)), 303)
    return _render_step(setting, flow, group_id, _raw_from_answers(flow.answers), {})


_SCREEN_IDS = frozenset(s.id for s in SCREENS)


def _is_screen(group_id: str) -> bool:
    return group_id in _SCREEN_IDS


def _asks(flow: checkins.Flow, group_id: str) -> bool:
    """A screen of this check-in, or a section with screens in it (a page rendered before the
    screens held one question each, posted now: its answers are read, not lost)."""
    return flow.group(group_id) is not None or any(s.section == group_id for s in flow.steps)


def _posted() -> dict[str, list[str]]:
    return {key: request.form.getlist(key) for key in request.form.keys()}


@bp.post("/<int:checkin_id>/step/<group_id>")
@patient_required(*SCOPES)
def answer(checkin_id: int, group_id: str):
    c = _own(checkin_id)
    if c.status == CheckinStatus.SUBMITTED:
        return redirect(url_for(".done", checkin_id=c.id), 303)
    setting = _setting(c)
    if not _asks(checkins.flow_for(setting), group_id):
        return redirect(url_for(".resume", checkin_id=c.id), 303)
    posted = _posted()
    # A whole section, posted from a page rendered before the screens held one question each:
    # its valid answers are kept (and scored, MR2) as a draft's are; a wrong one is asked again
    # on its own screen.
    whole_section = items_on(group_id, posted) != (items_on(group_id) if _is_screen(group_id) else ())
    result = checkins.answer_step(db.session, setting, group_id, posted, now=utcnow(), draft=whole_section,
                                  request_id=g.request_id)
    if whole_section:
        db.session.commit()
    if result.new_emergency:
        db.session.commit()
        return redirect(url_for(".emergency", checkin_id=c.id), 303)
    if not result.ok:  # a screen stores nothing when its answer is wrong
        screen = group_id if not whole_section else next(
            (s.id for s in result.flow.steps if set(s.item_ids()) & set(result.errors)), None)
        if screen is None:
            return redirect(_next_url(c, result.flow, ask=peg_ask(setting)), 303)
        errors = {k: v for k, v in result.errors.items() if k in result.flow.group(screen).item_ids()}
        return _render_step(setting, result.flow, screen, posted, errors, 422)
    db.session.commit()
    return redirect(_next_url(c, result.flow, after=group_id, ask=peg_ask(setting)), 303)


@bp.post("/<int:checkin_id>/step/<group_id>/draft")
@patient_required(*SCOPES)
def draft(checkin_id: int, group_id: str):
    """Sent by the page (htmx) as each answer changes: store the valid answers and score them now."""
    c = _own(checkin_id)
    target = url_for(".step", checkin_id=c.id, group_id=group_id)
    if c.status != CheckinStatus.SUBMITTED:
        setting = _setting(c)
        if _asks(checkins.flow_for(setting), group_id):
            result = checkins.answer_step(db.session, setting, group_id, _posted(), now=utcnow(),
                                          draft=True, request_id=g.request_id)
            db.session.commit()
            if result.new_emergency:
                target = url_for(".emergency", checkin_id=c.id)
                if wants_fragment():
                    return Response(status=200, headers={"HX-Redirect": target})
    if wants_fragment():
        return Response(status=204)
    return redirect(target, 303)


# ---- emergency, review, done ------------------------------------------------------------------

@bp.get("/<int:checkin_id>/emergency")
@patient_required(*SCOPES)
def emergency(checkin_id: int):
    c = _own(checkin_id)
    if c.level != TriageLevel.EMERGENCY:
        return redirect(url_for(".resume", checkin_id=c.id), 303)
    clinic = db.session.get(Clinic, g.patient.clinic_id)
    return render_template("patient/emergency.html", c=c, clinic=clinic,
                           message=i18n.outcome_message(c, clinic),
                           continue_url=(None if c.status == CheckinStatus.SUBMITTED
                                         else url_for(".resume", checkin_id=c.id)))


def _render_review(setting: checkins.Setting, flow: checkins.Flow, problem: str | None = None,
                   status: int = 200, ask: peg.Ask | None = None):
    # One card per section ("Your pain"), one line per answer with a link to its own screen.
    sections: list[tuple[str, str, list[tuple[object, str]]]] = []
    for screen in flow.steps:
        if not sections or sections[-1][0] != screen.section:
            sections.append((screen.section, i18n.text(screen.title), []))
        prompts = {i.id: i.prompt for i in screen.items}
        for line in answer_lines(flow.answers, screen.item_ids(), say=i18n.text):
            sections[-1][2].append((line, i18n.text(prompts.get(line.item_id, line.question)), screen.id))
    total = flow.total + _peg_screens(ask)
    back_url = url_for(".step", checkin_id=setting.checkin.id, group_id=flow.last.id) if flow.last else None
    if ask:
        back_url = url_for(".peg_step", checkin_id=setting.checkin.id, screen=ask.screens[-1])
    return render_template("patient/checkin_review.html", c=setting.checkin, clinic=setting.clinic,
                           sections=sections, position=total, total=total, problem=problem, peg=ask,
                           back_url=back_url), status


@bp.get("/<int:checkin_id>/review")
@patient_required(*SCOPES)
def review(checkin_id: int):
    c = _own(checkin_id)
    if c.status == CheckinStatus.SUBMITTED:
        return redirect(url_for(".done", checkin_id=c.id), 303)
    setting = _setting(c)
    flow = checkins.flow_for(setting)
    ask = peg_ask(setting)
    if flow.next_incomplete is not None or (ask is not None and not ask.complete):
        return redirect(_next_url(c, flow, ask=ask), 303)
    return _render_review(setting, flow, ask=ask)


@bp.post("/<int:checkin_id>/review")
@patient_required(*SCOPES)
def submit(checkin_id: int):
    c = _own(checkin_id)
    setting = _setting(c)
    try:
        checkins.finish(db.session, setting, now=utcnow(), request_id=g.request_id)
    except checkins.CheckinClosed:
        return redirect(url_for(".done", checkin_id=c.id), 303)
    except checkins.Incomplete as e:  # nothing was stored
        return _render_review(setting, checkins.flow_for(setting),
                              problem=i18n.text(e.group.items[0].prompt), status=422, ask=peg_ask(setting))
    db.session.commit()
    return redirect(url_for(".done", checkin_id=c.id), 303)


@bp.get("/<int:checkin_id>/done")
@patient_required(*SCOPES)
def done(checkin_id: int):
    c = _own(checkin_id)
    if c.status != CheckinStatus.SUBMITTED:
        return redirect(url_for(".resume", checkin_id=c.id), 303)
    clinic = db.session.get(Clinic, g.patient.clinic_id)
    message = i18n.outcome_message(c, clinic)
    if c.level == TriageLevel.EMERGENCY:
        return render_template("patient/emergency.html", c=c, clinic=clinic, message=message, continue_url=None)
    return render_template("patient/checkin_done.html", c=c, clinic=clinic, message=message)


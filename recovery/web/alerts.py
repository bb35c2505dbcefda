"""Nurse actions on an alert: acknowledge (one tap) and record what was done (a disposition and a
note). Every disposition resolves the alert except "No answer – will try again", which keeps it
open with a follow-up time picked on the same form (30 min unless the nurse chooses another).

Plain POST forms that redirect (they work with JavaScript off). With htmx, acknowledge swaps its
worklist row and resolve swaps the resolve panel, which sits outside the polled list so a poll
never touches what the nurse is typing. htmx does not swap 4xx responses by default, so an htmx
request gets its validation or conflict message with status 200; a plain request gets 422 / 409.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, request, url_for
from flask_login import current_user
from wtforms import RadioField, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length, ValidationError

from recovery.clock import utcnow
from recovery.domain.alerts import DEFAULT_FOLLOW_UP_MINUTES, DISPOSITIONS, FOLLOW_UP_MINUTES, resolves
from recovery.services import alerting
from recovery.services.worklist import shared_phone_texts, worklist_row
from recovery.store.db import db
from recovery.store.models import Clinic
from recovery.web import render_page_or_fragment, wants_fragment
from recovery.web.access import staff_required
from recovery.web.forms import Form
from recovery.web.redirects import same_origin_path

bp = Blueprint("alerts", __name__, url_prefix="/nurse/alerts")
CHANGED_EVENT = "worklist-changed"
# Dispositions after which the patient is in hospital: the nurse is offered "pause texts" at once.
PAUSE_OFFER = frozenset({"sent_to_ed"})  # the polled list listens for it and refreshes at once


def _minutes(value) -> int | None:
    return int(value) if str(value).isdigit() else None


class ResolveForm(Form):
    disposition = RadioField("What was done", choices=list(DISPOSITIONS.items()),
                             validators=[InputRequired("Choose what was done.")],
                             validate_choice=True)
    follow_up = SelectField("Call again", coerce=_minutes, default=DEFAULT_FOLLOW_UP_MINUTES, validate_choice=False,
                            choices=[(m, f"in {m} min" if m < 60 else f"in {m // 60} hour{'s' if m > 60 else ''}")
                                     for m in FOLLOW_UP_MINUTES])
    note = TextAreaField("Note", validators=[Length(max=1000, message="Keep the note to 1000 characters.")])

    def validate_follow_up(self, field):
        if field.data not in FOLLOW_UP_MINUTES:
            raise ValidationError("Choose when to call again.")

    def validate_note(self, field):
        if self.disposition.data == "other" and not (field.data or "").strip():
            raise ValidationError("Say what was done in the note.")


@bp.before_request
@staff_required
def _signed_in():
    g.clinic = db.session.get(Clinic, current_user.clinic_id)


def _back(default: str) -> str:
    """Where a plain form returns: a nurse page it came from, never another site."""
    return same_origin_path(request.form.get("next"), under="/nurse/") or default


def _row_or_404(alert_id: int, now):
    row = worklist_row(db.session, alert_id, current_user.clinic_id, now)
    if row is None:
        abort(404)
    return row


def _alert_page(row, form, now, *, notice: str | None = None, done: str | None = None, status: int = 200,
                pause_offer: bool = False):
    resp = render_page_or_fragment("nurse/alert.html", "nurse/_resolve_form.html",
                                   status=200 if wants_fragment() else status,
                                   row=row, form=form, now=now, notice=notice, done=done, pause_offer=pause_offer,
                                   shared_texts=shared_phone_texts(db.session, row.alert))
    if wants_fragment() and (done or status == 409):
        resp.headers["HX-Trigger"] = CHANGED_EVENT
    return resp


@bp.post("/<int:alert_id>/acknowledge")
def acknowledge(alert_id: int):
    now = utcnow()
    alert = alerting.load_for_change(db.session, alert_id, current_user.clinic_id)
    if alert is None:
        abort(404)
    try:
        alerting.acknowledge(db.session, alert, current_user.staff, now, request_id=g.request_id)
    except alerting.AlertConflict as e:
        db.session.rollback()
        row = _row_or_404(alert_id, now)
        message = f"Not acknowledged: {e}."
        if wants_fragment():
            return render_page_or_fragment("nurse/worklist.html", "nurse/_alert_row.html", row=row,
                                           now=now, notice=message)
        return _alert_page(row, ResolveForm(formdata=None), now, notice=message, status=409)
    db.session.commit()
    if wants_fragment():
        return render_page_or_fragment("nurse/worklist.html", "nurse/_alert_row.html",
                                       row=_row_or_404(alert_id, now), now=now, notice=None)
    flash(f"Alert acknowledged for {alert.patient.first_name} {alert.patient.last_name}.")
    return redirect(_back(url_for("nurse.worklist")), 303)


@bp.get("/<int:alert_id>/resolve")
def resolve_form(alert_id: int):
    now = utcnow()
    return _alert_page(_row_or_404(alert_id, now), ResolveForm(formdata=None), now)


@bp.post("/<int:alert_id>/resolve")
def resolve(alert_id: int):
    now = utcnow()
    form = ResolveForm()
    alert = alerting.load_for_change(db.session, alert_id, current_user.clinic_id)
    if alert is None:
        abort(404)
    if not form.validate_on_submit():
        return _alert_page(_row_or_404(alert_id, now), form, now, status=422)
    disposition = form.disposition.data
    try:
        alerting.record_outcome(db.session, alert, current_user.staff, now, disposition,
                                note=(form.note.data or "").strip() or None,
                                follow_up_minutes=form.follow_up.data, request_id=g.request_id)
    except alerting.AlertConflict as e:
        db.session.rollback()
        return _alert_page(_row_or_404(alert_id, now), form, now, notice=f"Not resolved: {e}.", status=409)
    db.session.commit()
    who = f"{alert.patient.first_name} {alert.patient.last_name}"
    if resolves(disposition):
        message = f"Resolved the alert for {who}: {DISPOSITIONS[disposition]}."
    else:
        at = alert.follow_up_at.astimezone(ZoneInfo(g.clinic.timezone)).strftime("%H:%M")
        message = (f"{DISPOSITIONS[disposition]}: the alert for {who} stays open and comes back to the top "
                   f"of the worklist at {at}.")
    if wants_fragment():
        return _alert_page(_row_or_404(alert_id, now), form, now, done=message,
                           pause_offer=disposition in PAUSE_OFFER)
    flash(message)
    if disposition in PAUSE_OFFER:  # in hospital now: offer to hold the routine texts (recovery/web/episode.py)
        return redirect(url_for("nurse.pause_texts", patient_id=alert.patient_id, **{"from": "ed"}), 303)
    return redirect(_back(url_for("nurse.worklist")), 303)

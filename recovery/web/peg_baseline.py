"""The PEG on the nurse's patient page (issue 16): baseline, day 14, 6 weeks and the change, beside
the pain chart, and the form on which a nurse enters the baseline at enrolment (the patient is then
not asked it in their first check-in).

Routes on the nurse blueprint (signed-in staff; another clinic's patient is a 404). A plain form
that redirects; a wrong or missing answer re-renders the patient page with 422, keeping what was typed.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, g, redirect, render_template, url_for
from flask_login import current_user
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from recovery.clock import utcnow
from recovery.domain import peg as peg_rules
from recovery.files import instruments
from recovery.services import peg
from recovery.services.enrolment import timeline_for
from recovery.services.records import patient_record
from recovery.store.enrolments import current_enrolment
from recovery.store.db import begin_write, db
from recovery.store.models import EnrolmentStatus
from recovery.web.access import patient_for_staff
from recovery.web.forms import CorrectTimesForm, Form
from recovery.web.nurse import _safety_problems, bp, enrolment_template

_RANGE = "Enter a number from 0 to 10."


class PegBaselineForm(Form):
    peg_pain = IntegerField("Average pain", validators=[InputRequired(_RANGE), NumberRange(0, 10, _RANGE)])
    peg_enjoyment = IntegerField("Enjoyment of life", validators=[InputRequired(_RANGE), NumberRange(0, 10, _RANGE)])
    peg_activity = IntegerField("General activity", validators=[InputRequired(_RANGE), NumberRange(0, 10, _RANGE)])

    def worded(self, instrument: peg_rules.Instrument) -> PegBaselineForm:
        """Labels and hints from the instrument's data: the nurse reads the questions out as written."""
        for item_id in peg_rules.ITEM_IDS:
            f, w = getattr(self, peg_rules.screen_id(item_id)), instrument.wording(item_id)
            f.label.text = w.question
            f.peg_hint = f"0 = {w.low}, 10 = {w.high}"
        return self


def _instrument() -> peg_rules.Instrument:
    return instruments.peg(current_app.config["SCHEDULES_DIR"])


def peg_card(enrolment):
    return peg.summary(db.session, enrolment, _instrument())


@bp.context_processor
def _peg_helpers():

    def peg_baseline_form():
        return g.get("peg_form") or PegBaselineForm(formdata=None).worded(_instrument())

    return {"peg_card": peg_card, "peg_baseline_form": peg_baseline_form}


@bp.post("/patients/<int:patient_id>/peg-baseline")
def peg_baseline(patient_id: int):
    p = patient_for_staff(patient_id)
    enrolment = current_enrolment(p)
    if enrolment is None:
        abort(404)
    instrument = _instrument()
    form = PegBaselineForm().worded(instrument)
    now = utcnow()
    if enrolment.status != EnrolmentStatus.ACTIVE:
        form.form_errors.append("Monitoring has ended: no baseline PEG can be entered.")
        return _patient_page(p, form, 409)
    if form.validate_on_submit():
        values = {i: getattr(form, peg_rules.screen_id(i)).data for i in peg_rules.ITEM_IDS}
        try:
            row = peg.record_baseline(db.session, enrolment=enrolment, staff=current_user.staff, values=values,
                                      instrument=instrument, now=now, request_id=g.request_id)
        except peg.AlreadyRecorded:
            db.session.rollback()
            form.form_errors.append("A baseline PEG is already recorded for this patient; it was not changed.")
            return _patient_page(p, form, 409)
        db.session.commit()
        flash(f"Baseline PEG recorded for {p.first_name} {p.last_name}: score {peg_rules.score(values):.1f} of 10.")
        return redirect(url_for("nurse.patient", patient_id=p.id, _anchor="peg-h"), 303)
    return _patient_page(p, form, 422)


def _patient_page(p, form: PegBaselineForm, status: int):
    """The patient page again, with the form as it was sent (its view is audited, as any view)."""
    begin_write(db.session)  # after a rollback: the view's audit row writes
    g.peg_form = form
    now = utcnow()
    record = patient_record(db.session, p, staff_id=current_user.staff.id, now=now, request_id=g.request_id)
    timeline = timeline_for(record.enrolment, p, enrolment_template(g.clinic, record.enrolment))
    problems = _safety_problems(p, record, timeline, now)
    db.session.commit()
    return render_template("nurse/patient.html", record=record, p=p, timeline=timeline, now=now,
                           tz=ZoneInfo(p.timezone), correct_form=CorrectTimesForm(formdata=None),
                           safety_problems=problems, open_peg=True), status

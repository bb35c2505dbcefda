"""Forms of a patient's episode of care (recovery/web/episode.py). They parse and validate; the
use-cases in recovery/episodes.py decide."""
from __future__ import annotations

from wtforms import DateField, RadioField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from recovery.episode_rules import END_REASONS
from recovery.web.forms import Form


class DayField(DateField):
    """A day (a date input; typed by hand without JavaScript or on an old browser)."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Enter the day as year-month-day, e.g. 2026-03-20.") from None


class EndMonitoringForm(Form):
    reason = RadioField("Why monitoring ends", choices=list(END_REASONS.items()),
                        validators=[InputRequired("Choose why monitoring ends.")], validate_choice=True)
    note = TextAreaField("Note (optional; needed for “Other”)",
                         validators=[Length(max=1000, message="Keep the note to 1000 characters.")])

    def validate_note(self, field):
        if self.reason.data == "other" and not (field.data or "").strip():
            raise ValidationError("Say why monitoring ends.")


class PauseForm(Form):
    until = DayField("Start texts again on", format="%Y-%m-%d",
                      validators=[InputRequired("Enter the day texts should start again, e.g. 2026-03-20.")])
    note = TextAreaField("Why (optional)", validators=[Optional(), Length(max=300, message="Keep it to 300 characters.")])

"""Forms of a patient's episode of care (recovery/web/episode.py). They parse and validate; the
use-cases in recovery/episodes.py decide."""
from __future__ import annotations

import uuid

from wtforms import (BooleanField, DateField, HiddenField, RadioField, SelectField, StringField, TextAreaField,
                     TimeField)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp, ValidationError

from recovery.web.i18n import LANGUAGES
from recovery.domain.episode_rules import END_REASONS
from recovery.web.forms import (COMMON_ZONES, SHARED_PHONE_LABEL, EnrolmentForm, Form, IdentityMixin, MobileField,
                                valid_zone)


class DayField(DateField):
    """A day (a date input; typed by hand without JavaScript or on an old browser)."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Enter the day as year-month-day, e.g. 2026-03-20.") from None


class ClockField(TimeField):
    """A time of day (a time input; typed by hand without JavaScript)."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Enter the time as hours:minutes, e.g. 14:30.") from None


class EndMonitoringForm(Form):
    reason = RadioField("Why monitoring ends", choices=list(END_REASONS.items()),
                        validators=[InputRequired("Choose why monitoring ends.")], validate_choice=True)
    note = TextAreaField("Note (optional; needed for “Other”)",
                         validators=[Length(max=1000, message="Keep the note to 1000 characters.")])

    def validate_note(self, field):
        if self.reason.data == "other" and not (field.data or "").strip():
            raise ValidationError("Say why monitoring ends.")


class FollowupForm(Form):
    """The follow-up appointment, in the patient's time zone (services/appointments.py)."""
    day = DayField("Day", format="%Y-%m-%d",
                   validators=[InputRequired("Enter the day of the appointment, e.g. 2026-04-21.")])
    time = ClockField("Time", format="%H:%M",
                     validators=[InputRequired("Enter the time of the appointment, e.g. 14:30.")])
    place = StringField("Place", validators=[DataRequired("Enter where the appointment is, e.g. “Spine clinic, 2nd floor”."),
                                             Length(max=120, message="Keep the place to 120 characters.")])


class PauseForm(Form):
    until = DayField("Start texts again on", format="%Y-%m-%d",
                      validators=[InputRequired("Enter the day texts should start again, e.g. 2026-03-20.")])
    note = TextAreaField("Why (optional)", validators=[Optional(), Length(max=300, message="Keep it to 300 characters.")])


class EditPatientForm(IdentityMixin, Form):
    mobile = MobileField("Mobile number", validators=[DataRequired("Enter a mobile number for texts.")])
    timezone = SelectField("Patient's time zone", validators=[valid_zone])
    language = SelectField("Language for texts", choices=list(LANGUAGES.items()), default="en")
    sms_consent = BooleanField("The patient agrees to receive recovery texts")
    caregiver_name = StringField("Caregiver name (optional)", validators=[Optional(), Length(max=120)])
    caregiver_mobile = MobileField("Caregiver mobile (optional)", validators=[Optional()])
    caregiver_consent = BooleanField("The caregiver agrees to receive copies of reminders")
    shared_phone = BooleanField(SHARED_PHONE_LABEL)

    validate_caregiver_consent = EnrolmentForm.validate_caregiver_consent

    def __init__(self, *args, region: str = "US", current_zone: str | None = None,
                 current_language: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        zones = list(COMMON_ZONES)
        if current_zone and current_zone not in zones:
            zones.insert(0, current_zone)  # a zone set at enrolment or by the CLI stays choosable
        self.timezone.choices = [(z, z.replace("_", " ")) for z in zones]
        if current_language and current_language not in dict(self.language.choices):
            self.language.choices = [(current_language, current_language), *self.language.choices]
        self.mobile.region = region
        self.caregiver_mobile.region = region
        self.set_identity_region(region)


def new_nonce() -> str:
    return uuid.uuid4().hex


NONCE = [InputRequired("This form is out of date: open it again."),
         Regexp(r"^[0-9a-f]{32}$", message="This form is out of date: open it again.")]


class OneOffTextForm(Form):
    body = TextAreaField("Text", validators=[Length(max=2000, message="Keep the text shorter.")])
    urgent = BooleanField("Urgent: send at once, even during quiet hours (21:00–08:00 for the patient)")
    nonce = HiddenField(validators=NONCE)


class ResendLinkForm(Form):
    nonce = HiddenField(validators=NONCE)

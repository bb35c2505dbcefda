"""Nurse-side forms (Flask-WTF: CSRF + validation). Forms parse and validate; use-cases decide."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from flask_wtf import FlaskForm
from wtforms import (BooleanField, DateTimeLocalField, IntegerField, RadioField, SelectField,
                     SelectMultipleField, StringField, TextAreaField)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

COMMON_ZONES = [
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "America/Anchorage", "Pacific/Honolulu", "America/Toronto", "America/Vancouver", "Europe/London",
    "Europe/Dublin", "Europe/Paris", "Europe/Berlin", "Australia/Sydney", "Australia/Perth",
    "Pacific/Auckland",
]
LEG_SYMPTOMS = [
    ("numb_or_tingling_legs_feet", "Numbness or tingling in legs or feet"),
    ("legs_weak_or_giving_way", "Leg weakness or legs giving way"),
    ("numb_between_legs_or_bottom", "Numbness between the legs or around the bottom"),
]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def parse_mobile(raw: str, region: str) -> str:
    """E.164 for a mobile number, or ValueError with a message a nurse can act on."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError("Enter a phone number, for example (202) 555-0143 or +44 7700 900123.")
    if not phonenumbers.is_valid_number(number):
        raise ValueError("That is not a valid phone number. Check the digits and the country code.")
    kind = phonenumbers.number_type(number)
    if kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.TOLL_FREE,
                phonenumbers.PhoneNumberType.PREMIUM_RATE):
        raise ValueError("This looks like a landline. Texts need a mobile number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class MobileField(StringField):
    """A phone field whose `.e164` holds the normalised number after validation."""
    e164: str | None = None

    def __init__(self, *args, region: str = "US", **kwargs):
        super().__init__(*args, **kwargs)
        self.region = region

    def pre_validate(self, form):
        self.e164 = None
        if self.data and self.data.strip():
            try:
                self.e164 = parse_mobile(self.data.strip(), self.region)
            except ValueError as e:
                raise ValidationError(str(e))


def valid_zone(form, field):
    if field.data not in available_timezones():
        raise ValidationError("Choose the patient's time zone from the list.")


class EnrolmentForm(FlaskForm):
    first_name = StringField("First name", validators=[DataRequired("Enter the patient's first name."), Length(max=60)])
    last_name = StringField("Last name", validators=[DataRequired("Enter the patient's last name."), Length(max=60)])
    mobile = MobileField("Mobile number", validators=[DataRequired("Enter a mobile number for texts.")])
    timezone = SelectField("Patient's time zone", validators=[valid_zone])
    language = SelectField("Language for texts", choices=[("en", "English")], default="en")
    sms_consent = BooleanField("The patient agrees to receive recovery texts")
    procedure_type = RadioField("Procedure", choices=[("kyphoplasty", "Balloon kyphoplasty"),
                                                      ("vertebroplasty", "Vertebroplasty")],
                                validators=[InputRequired("Choose the procedure.")])
    procedure_end = DateTimeLocalField("Procedure ended at (patient's local time)", format="%Y-%m-%dT%H:%M",
                                       validators=[InputRequired("Enter when the procedure ended, e.g. 2026-03-07 10:30.")])
    discharge_at = DateTimeLocalField("Discharged at (optional)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    baseline_back_pain = IntegerField("Usual back pain in the week before the procedure (0–10)",
                                      validators=[Optional(), NumberRange(0, 10, "Enter a number from 0 to 10.")])
    baseline_leg_symptoms = MultiCheckboxField("Leg symptoms before the procedure", choices=LEG_SYMPTOMS)
    working = BooleanField("Works (send the back-to-work text)")
    brace = BooleanField("Wears a brace (send brace reminders)")
    no_driving_days = IntegerField("No driving for (days)",
                                   validators=[Optional(), NumberRange(2, 90, "Between 2 and 90 days.")])
    followup_day = IntegerField("Follow-up visit on day",
                                validators=[Optional(), NumberRange(7, 120, "Between day 7 and day 120.")])
    caregiver_name = StringField("Caregiver name (optional)", validators=[Optional(), Length(max=120)])
    caregiver_mobile = MobileField("Caregiver mobile (optional)", validators=[Optional()])
    caregiver_consent = BooleanField("The caregiver agrees to receive copies of reminders")

    def __init__(self, *args, region: str = "US", **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = [(z, z.replace("_", " ")) for z in COMMON_ZONES]
        self.mobile.region = region
        self.caregiver_mobile.region = region

    def validate_caregiver_consent(self, field):
        if field.data and not (self.caregiver_mobile.data or "").strip():
            raise ValidationError("Add the caregiver's mobile number, or untick this box.")

    def local_to_utc(self, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        # fold=0: in an autumn repeated hour, the first occurrence; a spring-gap time moves forward
        return value.replace(tzinfo=ZoneInfo(self.timezone.data)).astimezone(ZoneInfo("UTC"))

    def validate_discharge_at(self, field):
        if field.data and self.procedure_end.data and field.data < self.procedure_end.data:
            raise ValidationError("Discharge cannot be before the end of the procedure.")


class CorrectTimesForm(FlaskForm):
    procedure_end = DateTimeLocalField("Procedure ended at (patient's local time)", format="%Y-%m-%dT%H:%M",
                                       validators=[InputRequired("Enter when the procedure ended.")])
    discharge_at = DateTimeLocalField("Discharged at (optional)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    reason = TextAreaField("Why the change", validators=[DataRequired("Say why the time is being corrected."),
                                                         Length(max=300)])

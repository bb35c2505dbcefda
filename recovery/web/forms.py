"""Nurse-side forms (Flask-WTF: CSRF + validation). Forms parse and validate; use-cases decide."""
from __future__ import annotations

import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

from flask_wtf import FlaskForm
from wtforms import (BooleanField, DateTimeLocalField, IntegerField, PasswordField, RadioField, SelectField,
                     SelectMultipleField, StringField, TextAreaField)
from wtforms.validators import (DataRequired, InputRequired, Length, NumberRange, Optional, StopValidation,
                                ValidationError)
from wtforms.widgets import CheckboxInput, ListWidget

from recovery.web.i18n import LANGUAGES
from recovery.services.phones import parse_mobile  # noqa: F401  (re-exported: the web's one phone helper)
from recovery.clock import utcnow
from recovery.domain.identity import MRN_MAX, birth_date_problem, month_first, parse_day
from recovery.domain.procedure_times import CheckedTimes, check_times

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


# Text-direction embeddings, overrides and isolates: pasted into a name they make it display as
# something else ("Maria" + U+202E + "zepoL" reads "MariaLopez" backwards) in every list a nurse sees.
DIRECTION_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
DIRECTION_MESSAGE = ("This contains hidden text-direction characters (often pasted from another program). "
                     "Please type it again.")


def _invisible(ch: str) -> bool:
    return ch.isspace() or (unicodedata.category(ch) in ("Cf", "Cc") and ch not in DIRECTION_CONTROLS)


def trim_invisible(value):
    """Blanks and invisible characters (zero-width spaces, BOMs) around a text are not part of it:
    a name made only of them is empty and gets the field's "Enter …" message."""
    if not isinstance(value, str):
        return value
    start, end = 0, len(value)
    while start < end and _invisible(value[start]):
        start += 1
    while end > start and _invisible(value[end - 1]):
        end -= 1
    return value[start:end]


MAX_WHOLE_NUMBER = 10**9  # far beyond any count of days or points; bigger ones overflow float checks


def reasonable_number(form, field):
    if isinstance(field.data, int) and abs(field.data) > MAX_WHOLE_NUMBER:
        raise StopValidation("Enter a smaller number.")


def no_direction_controls(form, field):
    if isinstance(field.data, str) and not DIRECTION_CONTROLS.isdisjoint(field.data):
        raise ValidationError(DIRECTION_MESSAGE)


class Form(FlaskForm):
    """The base of our forms: every text field (not passwords) is trimmed of invisible characters
    and refuses text-direction controls; every whole-number field refuses a number of hundreds of
    digits before its range check turns it into a float. (recovery/web/input.py has already
    removed control characters from every request.)"""

    class Meta:
        def bind_field(self, form, unbound_field, options):
            cls = unbound_field.field_class
            validators = tuple(unbound_field.kwargs.get("validators", ()))
            if issubclass(cls, StringField) and not issubclass(cls, PasswordField):
                options["filters"] = (trim_invisible, *unbound_field.kwargs.get("filters", ()))
                options["validators"] = (*validators, no_direction_controls)
            elif issubclass(cls, IntegerField):
                options["validators"] = (reasonable_number, *validators)
            return super().bind_field(form, unbound_field, options)


class TimesMixin:
    """procedure_end / discharge_at, checked by the one range check (recovery/domain/procedure_times.py)."""

    def check_times(self, tz: ZoneInfo, now: datetime) -> CheckedTimes:
        """The times in UTC, with any problem added to its field's errors."""
        checked = check_times(self.procedure_end.data, self.discharge_at.data, tz, now)
        for name, message in checked.errors.items():
            getattr(self, name).errors.append(message)
        return checked


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


SHARED_PHONE_LABEL = "This is a shared family phone (the patients on it know texts come to it)"


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


class BirthDateField(StringField):
    """A date of birth typed as 1950-03-07 or the clinic's usual way (03/07/1950 in the US,
    07/03/1950 elsewhere); `.day` holds the date after validation. What was typed is kept on a
    re-shown form."""
    day = None

    def __init__(self, *args, region: str = "US", **kwargs):
        super().__init__(*args, **kwargs)
        self.region = region

    @property
    def example(self) -> str:
        return "03/07/1950" if month_first(self.region) else "07/03/1950"

    def pre_validate(self, form):
        self.day = None
        if not (self.data or "").strip():
            return
        day = parse_day(self.data, month_first=month_first(self.region))
        if day is None:
            raise ValidationError(f"Enter the date of birth as {self.example} or 1950-03-07.")
        problem = birth_date_problem(day, utcnow().date())
        if problem:
            raise ValidationError(problem)
        self.day = day


class IdentityMixin:
    """Date of birth and medical record number, both optional (MRN unique per clinic: the use-case
    says so, services/patient_identity.py)."""
    birth_date = BirthDateField("Date of birth (optional)", validators=[Optional()])
    mrn = StringField("Medical record number (optional)",
                      validators=[Optional(), Length(max=MRN_MAX, message=f"Keep it to {MRN_MAX} characters.")])

    def set_identity_region(self, region: str) -> None:
        self.birth_date.region = region


def valid_zone(form, field):
    if field.data not in available_timezones():
        raise ValidationError("Choose the patient's time zone from the list.")


class EpisodeMixin(TimesMixin):
    """The fields of one episode of care (a procedure): on the enrolment form and on a new episode
    of a patient already known (NewEpisodeForm)."""
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


class EnrolmentForm(IdentityMixin, EpisodeMixin, Form):
    first_name = StringField("First name", validators=[DataRequired("Enter the patient's first name."), Length(max=60)])
    last_name = StringField("Last name", validators=[DataRequired("Enter the patient's last name."), Length(max=60)])
    mobile = MobileField("Mobile number", validators=[DataRequired("Enter a mobile number for texts.")])
    timezone = SelectField("Patient's time zone", validators=[valid_zone])
    language = SelectField("Language for texts", choices=list(LANGUAGES.items()), default="en")
    sms_consent = BooleanField("The patient agrees to receive recovery texts")
    caregiver_name = StringField("Caregiver name (optional)", validators=[Optional(), Length(max=120)])
    caregiver_mobile = MobileField("Caregiver mobile (optional)", validators=[Optional()])
    caregiver_consent = BooleanField("The caregiver agrees to receive copies of reminders")
    shared_phone = BooleanField(SHARED_PHONE_LABEL)

    def __init__(self, *args, region: str = "US", **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = [(z, z.replace("_", " ")) for z in COMMON_ZONES]
        self.mobile.region = region
        self.caregiver_mobile.region = region
        self.set_identity_region(region)

    def validate_caregiver_consent(self, field):
        if field.data and not (self.caregiver_mobile.data or "").strip():
            raise ValidationError("Add the caregiver's mobile number, or untick this box.")


class NewEpisodeForm(EpisodeMixin, Form):
    """A new procedure for a patient already enrolled once (services/enrolment.start_new_episode)."""


class CorrectTimesForm(TimesMixin, Form):
    procedure_end = DateTimeLocalField("Procedure ended at (patient's local time)", format="%Y-%m-%dT%H:%M",
                                       validators=[InputRequired("Enter when the procedure ended.")])
    discharge_at = DateTimeLocalField("Discharged at (optional)", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    reason = TextAreaField("Why the change", validators=[DataRequired("Say why the time is being corrected."),
                                                         Length(max=300)])

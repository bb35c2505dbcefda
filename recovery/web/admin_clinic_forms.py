"""Forms of the on-call ladder and the clinic settings (recovery/web/admin_clinic.py). They parse and
validate each field; the use-cases (services/on_call.py, services/clinic_settings.py) decide."""
from __future__ import annotations

import re
from zoneinfo import available_timezones

from wtforms import HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from recovery.domain import service_hours as hours_rules
from recovery.domain import texts
from recovery.services.clinic_settings import EMERGENCY_NUMBERS
from recovery.services.phones import to_e164
from recovery.web.forms import COMMON_ZONES, Form, MobileField

SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
SHORT_CODE = re.compile(r"[0-9]{5,6}")


class StaffRungForm(Form):
    staff_id = SelectField("Staff member", coerce=str, validators=[InputRequired("Choose who to add.")])


class PhoneRungForm(Form):
    name = StringField("Name", validators=[DataRequired("Enter the name of the person at this number."),
                                           Length(max=120, message="Keep the name to 120 characters.")])
    mobile = MobileField("Mobile number", validators=[DataRequired("Enter a mobile number for pages.")])


class MoveForm(Form):
    direction = HiddenField(validators=[InputRequired()])


class EmptyForm(Form):
    """A button: only the CSRF token."""


def phone_number(form, field):
    """A number patients are told to call: any valid number (landlines too), kept as written, since
    texts show it as the clinic writes it."""
    if field.data:
        if not re.fullmatch(r"[0-9+()\-. ]+", field.data):
            raise ValidationError("Write the number with digits, spaces, brackets, + and - only.")
        try:
            to_e164(field.data, form.region)
        except ValueError:
            raise ValidationError("Enter a phone number, for example (202) 555-0100.") from None


class ClinicSettingsForm(Form):
    sms_name = StringField("Name in texts (optional: the plan's name otherwise)",
                           validators=[Optional(), Length(max=texts.CLINIC_NAME_MAX,
                                                          message=f"Keep it to {texts.CLINIC_NAME_MAX} characters.")])
    care_phone = StringField("Care-team number", validators=[DataRequired("Enter the care team's number."),
                                                             Length(max=32, message="Keep it to 32 characters."),
                                                             phone_number])
    after_hours_phone = StringField("After-hours number (optional)",
                                    validators=[Optional(), Length(max=32, message="Keep it to 32 characters."),
                                                phone_number])
    emergency_number = SelectField("Emergency number", choices=[(n, n) for n in EMERGENCY_NUMBERS],
                                   validate_choice=True)
    timezone = SelectField("Default time zone (new patients, service hours, reports)", validate_choice=False)
    sender_number = StringField("Sender number (optional)", validators=[Optional(), Length(max=20)])
    messaging_service_sid = StringField("Or a Twilio messaging service SID (optional)",
                                        validators=[Optional(), Length(max=34)])

    def __init__(self, *args, region: str = "US", current_zone: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.region = region
        zones = list(COMMON_ZONES)
        if current_zone and current_zone not in zones:
            zones.insert(0, current_zone)
        self.timezone.choices = [(z, z.replace("_", " ")) for z in zones]
        self.hours = {}  # weekday -> (open, close) once validated
        self.sender_e164: str | None = None

    def validate_timezone(self, field):
        # The zones the enrolment form offers (a patient's default comes from here), each a real IANA zone.
        if field.data not in dict(self.timezone.choices) or field.data not in available_timezones():
            raise ValidationError("Choose the clinic's time zone from the list.")

    def validate_sms_name(self, field):
        problems = texts.check_name(field.data) if field.data else []
        if problems:
            raise ValidationError(f"Not usable in texts: {problems[0]}.")

    def validate_sender_number(self, field):
        if not field.data:
            return
        if SHORT_CODE.fullmatch(field.data):
            self.sender_e164 = field.data
            return
        try:
            self.sender_e164 = to_e164(field.data, self.region)
        except ValueError:
            raise ValidationError("Enter the Twilio number in E.164 (+12025550100) or a 5–6 digit short code.") from None

    def validate_messaging_service_sid(self, field):
        if field.data and not SERVICE_SID.fullmatch(field.data):
            raise ValidationError("A messaging service SID is MG followed by 32 hexadecimal characters.")
        if field.data and self.sender_number.data:
            raise ValidationError("Give a sender number or a messaging service, not both.")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for d in range(7):
            o, c = self[f"open_{d}"], self[f"close_{d}"]
            if not (o.data or c.data):
                continue
            if not (o.data and c.data):
                (c if o.data else o).errors.append(f"{hours_rules.WEEKDAYS[d]}: give both opening and closing "
                                                   "times, or neither for a closed day.")
                ok = False
                continue
            try:
                opens, closes = hours_rules.clock(o.data), hours_rules.clock(c.data)
            except ValueError as e:
                bad = o
                try:
                    hours_rules.clock(o.data)
                    bad = c
                except ValueError:
                    pass
                bad.errors.append(f"{hours_rules.WEEKDAYS[d]}: {e}")
                ok = False
                continue
            try:
                self.hours[d] = hours_rules.window(d, opens, closes)
            except hours_rules.HoursError as e:
                c.errors.append(str(e))
                ok = False
        return ok


for _d, _day in enumerate(hours_rules.WEEKDAYS):
    setattr(ClinicSettingsForm, f"open_{_d}", StringField(f"{_day} opens",
                                                          validators=[Optional(), Length(max=5)]))
    setattr(ClinicSettingsForm, f"close_{_d}", StringField(f"{_day} closes",
                                                           validators=[Optional(), Length(max=5)]))

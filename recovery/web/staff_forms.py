"""Forms of the staff administration, the set-password page and two-step sign-in. They parse and
validate; the use-cases in recovery/services/staff_accounts.py and two_factor.py decide."""
from __future__ import annotations

from wtforms import BooleanField, EmailField, PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Regexp, ValidationError

from recovery.services.passwords import MAX_LENGTH
from recovery.services.staff_accounts import ROLES
from recovery.web.forms import Form


class InviteForm(Form):
    name = StringField("Name", validators=[DataRequired("Enter their name."), Length(max=120)])
    email = EmailField("Work email", validators=[DataRequired("Enter their work email."), Length(max=254),
                                                 Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                                                        message="Enter an email address like name@clinic.org.")])
    role = RadioField("Role", choices=list(ROLES.items()), default="nurse",
                      validators=[InputRequired("Choose a role.")], validate_choice=True)


class RoleForm(Form):
    role = RadioField("Role", choices=list(ROLES.items()), validators=[InputRequired("Choose a role.")],
                      validate_choice=True)


class ActionForm(Form):
    """A button that changes something (disable, re-enable, reset): only the CSRF token."""


class RequireSecondFactorForm(Form):
    required = BooleanField("Every staff member must use two-step sign-in (an authenticator app)")


class SetPasswordForm(Form):
    password = PasswordField("New password", validators=[DataRequired("Enter a password."),
                                                          Length(max=MAX_LENGTH)])
    confirm = PasswordField("The same password again", validators=[DataRequired("Enter the password again.")])

    def validate_confirm(self, field):
        if self.password.data and field.data != self.password.data:
            raise ValidationError("The two passwords are not the same.")


class CodeForm(Form):
    code = StringField("6-digit code from your authenticator app",
                       filters=[lambda v: v.replace(" ", "") if isinstance(v, str) else v],
                       validators=[DataRequired("Enter the 6-digit code."),
                                   Regexp(r"^[0-9]{6}$", message="Enter the 6 digits the app shows.")])

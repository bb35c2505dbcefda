"""/admin/api-tokens: the clinic's keys to the FHIR API (issue 15), on the admin blueprint. A new
token is shown once, on the answer to the form that made it (never stored, never in a redirect);
revoking is one button. Both are audited (recovery/services/api_tokens.py)."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_login import current_user
from wtforms import StringField
from wtforms.validators import Length, ValidationError

from recovery.clock import utcnow
from recovery.services import api_tokens as token_service
from recovery.store.db import db
from recovery.web.admin import bp, section
from recovery.web.forms import Form, MultiCheckboxField

SCOPE_CHOICES = [(token_service.READ, "Read the record (fhir.read)"),
                 (token_service.WRITE, "Enrol patients from the hospital's systems (fhir.write)")]

section("admin.api_tokens", "API tokens", "Keys for the hospital's systems to read the record and enrol patients (FHIR).")


class ApiTokenForm(Form):
    label = StringField("What it is for", validators=[Length(max=120, message="Keep it to 120 characters.")])
    scopes = MultiCheckboxField("It may", choices=SCOPE_CHOICES)

    def validate_scopes(self, field):
        if not field.data:
            raise ValidationError("Tick at least one.")


def _page(form: ApiTokenForm, secret: str | None = None, status: int = 200):
    rows = token_service.clinic_tokens(db.session, g.clinic.id)
    return render_template("admin/api_tokens.html", form=form, tokens=rows, secret=secret), status


@bp.get("/api-tokens")
def api_tokens():
    return _page(ApiTokenForm())


@bp.post("/api-tokens")
def create_api_token():
    form = ApiTokenForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    issued = token_service.create_token(db.session, clinic=g.clinic, scopes=form.scopes.data, label=form.label.data,
                                     now=utcnow(), staff_id=current_user.staff.id, request_id=g.request_id)
    db.session.commit()
    return _page(ApiTokenForm(formdata=None), secret=issued.secret)


@bp.post("/api-tokens/<int:token_id>/revoke")
def revoke_api_token(token_id: int):
    token = token_service.token_for_clinic(db.session, g.clinic.id, token_id)
    if token is None:
        abort(404)
    token_service.revoke_token(db.session, token=token, now=utcnow(), staff_id=current_user.staff.id,
                            request_id=g.request_id)
    db.session.commit()
    flash(f"Token {token.id} ({token.label}) is revoked: it no longer opens the API.")
    return redirect(url_for("admin.api_tokens"), 303)

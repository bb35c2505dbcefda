"""Enrolment from a hospital feed (a FHIR transaction Bundle or an HL7 v2 ADT^A03), judged by the
nurse's own enrolment form (recovery/web/forms.EnrolmentForm) and the one time check, then enrolled
by the same use-case. The feed's reader (recovery/domain/fhir/transaction.py, recovery/services/
hl7_adt.py) has put its fields in the form's names and remembered where each came from, so every
problem is named by the element of the message it is about."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from werkzeug.datastructures import MultiDict

from recovery.services import clinic_plans
from recovery.domain.fhir.transaction import Enrolment as Parsed
from recovery.domain.plan.errors import OverrideError
from recovery.domain.timeline import TimelineError
from recovery.services import fhir_enrolment
from recovery.services.enrolment import EnrolmentInput
from recovery.services.phones import region_for_zone
from recovery.store.db import begin_write, db
from recovery.store.models import ApiToken, Clinic, Enrolment
from recovery.web.forms import EnrolmentForm
from recovery.web.input import clean_text


@dataclass
class Outcome:
    problems: list[tuple[str, str]] = field(default_factory=list)  # (element, message); empty: enrolled
    enrolment: Enrolment | None = None
    created: bool = False


def enrol_from(parsed: Parsed, *, clinic: Clinic, token: ApiToken, now: datetime, request_id: str | None,
               fallback: str) -> Outcome:
    """`fallback`: the element named for a problem of no particular field."""
    if not parsed.readable:
        return Outcome(parsed.problems)
    if parsed.procedure_key:
        found = fhir_enrolment.existing(db.session, clinic, parsed.procedure_key)
        if found is not None:
            return Outcome(enrolment=found)
    tz = ZoneInfo(clinic.timezone)
    fields = {k: clean_text(v, multiline=False) if isinstance(v, str) else v for k, v in parsed.form.items()}
    fields["timezone"] = clinic.timezone  # the form's default: the clinic's zone is the patient's
    form = EnrolmentForm(formdata=MultiDict(fields), meta={"csrf": False}, region=region_for_zone(clinic.timezone))
    valid = form.validate()
    times = form.check_times(tz, now)
    if parsed.problems or not (valid and times.ok):
        named = {where for where, _ in parsed.problems}  # a field the message got wrong is not also "missing"
        return Outcome(parsed.problems + [(parsed.where.get(name, fallback), str(message))
                                          for name, messages in form.errors.items() for message in messages
                                          if parsed.where.get(name, fallback) not in named])
    data = EnrolmentInput(
        first_name=form.first_name.data, last_name=form.last_name.data, mobile_e164=form.mobile.e164,
        timezone=clinic.timezone, procedure_type=form.procedure_type.data, procedure_end=times.procedure_end,
        discharge_at=times.discharge_at, language=form.language.data, sms_consent=form.sms_consent.data)
    template = clinic_plans.plan_for_new(db.session, current_app.config["SCHEDULES_DIR"], clinic,
                                         current_app.config["DEFAULT_TEMPLATE"])
    try:
        result = fhir_enrolment.enrol_from_feed(
            db.session, clinic=clinic, token=token, data=data, mrn=parsed.mrn, birth_date=parsed.birth_date,
            procedure_key=parsed.procedure_key, template=template, now=now, request_id=request_id)
    except ValueError as e:  # OverrideError, TimelineError and a taken MRN are ValueErrors
        db.session.rollback()
        begin_write(db.session)
        name = "procedure_end" if isinstance(e, (OverrideError, TimelineError)) else "mrn"
        return Outcome([(parsed.where.get(name, fallback), str(e))])
    except sa.exc.IntegrityError:  # the same message, sent twice at once: the other one enrolled
        db.session.rollback()
        begin_write(db.session)
        found = fhir_enrolment.existing(db.session, clinic, parsed.procedure_key)
        if found is None:
            raise
        return Outcome(enrolment=found)
    db.session.commit()
    return Outcome(enrolment=result.enrolment, created=True)

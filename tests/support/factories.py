"""Building blocks for tests: a clinic with staff, enrolled patients, signed-in clients."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import current_app

from recovery.services import clinic_plans
from recovery.services.enrolment import EnrolmentInput, enrol_patient
from recovery.services.passwords import hash_password
from recovery.services.sessions import issue_link
from recovery.store.models import Clinic, OnCallStep, Patient, StaffRole, StaffUser

PASSWORD = "correct horse battery"
# When a clinic or staff account was created, unless a test says: a fixed instant before every
# test's NOW, never the wall clock (a factory must give the same rows whenever the suite runs).
CREATED = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
_counter = iter(range(10_000))


def make_clinic(session, *, slug: str | None = None, tz: str = "America/New_York",
                template_file: str | None = None, now: datetime = CREATED) -> Clinic:
    n = next(_counter)
    clinic = Clinic(slug=slug or f"clinic-{n}", name=f"Clinic {n}", timezone=tz, template_file=template_file,
                    emergency_number="911", care_phone="(202) 555-0100", created_at=now)
    session.add(clinic)
    session.flush()
    return clinic


def make_staff(session, clinic: Clinic, *, role: StaffRole = StaffRole.NURSE, email: str | None = None,
               mobile: str | None = None, on_call: int | None = None, now: datetime = CREATED) -> StaffUser:
    n = next(_counter)
    staff = StaffUser(clinic_id=clinic.id, email=email or f"nurse{n}@example.org", name=f"Nurse {n}", role=role,
                      password_hash=_hash(), mobile_e164=mobile or f"+1202555{n % 10000:04d}", active=True,
                      created_at=now)
    session.add(staff)
    session.flush()
    if on_call is not None:
        session.add(OnCallStep(clinic_id=clinic.id, position=on_call, staff_id=staff.id))
    return staff


_HASH = None


def _hash() -> str:
    global _HASH
    if _HASH is None:  # argon2 is deliberately slow; hash once per run
        _HASH = hash_password(PASSWORD)
    return _HASH


def template_for(clinic: Clinic):
    """The plan a patient of this clinic enrolled now gets (its newest published version, if any)."""
    from recovery.store.db import db
    return clinic_plans.plan_for_new(db.session, current_app.config["SCHEDULES_DIR"], clinic,
                                     current_app.config["DEFAULT_TEMPLATE"])


def enrol(session, clinic: Clinic, *, staff: StaffUser | None = None, procedure_end: datetime,
          now: datetime, first: str = "Maria", mobile: str | None = None, tz: str | None = None,
          sms_consent: bool = True, **kwargs) -> Patient:
    """`now` is required: what is planned and what is already past depends on it."""
    n = next(_counter)
    data = EnrolmentInput(first_name=first, last_name=f"Test{n}", mobile_e164=mobile or f"+1202556{n % 10000:04d}",
                          timezone=tz or clinic.timezone, procedure_type="kyphoplasty",
                          procedure_end=procedure_end, discharge_at=kwargs.pop("discharge_at", None),
                          sms_consent=sms_consent, **kwargs)
    enrolment = enrol_patient(session, clinic=clinic, staff=staff, data=data, template=template_for(clinic), now=now)
    return session.get(Patient, enrolment.patient_id)


def patient_link(session, patient: Patient, purpose: str = "today", *, now: datetime,
                 ttl: timedelta = timedelta(hours=72), slot: str | None = None) -> str:
    return issue_link(session, patient, purpose, now, ttl, checkin_slot=slot)


def login(client, staff: StaffUser, password: str = PASSWORD):
    return client.post("/login", data={"email": staff.email, "password": password})


def open_link(client, token: str):
    return client.post(f"/l/{token}")

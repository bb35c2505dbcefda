"""`flask seed-demo`: a demo clinic with a nurse, an admin and patients at different points of
recovery (day 0, 2, 10, 40). Seeds only an empty database; prints the logins and patient links,
again (with new links) on each later run."""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from recovery.clock import utcnow
from recovery.domain import texts
from recovery.domain.timeline import recovery_day
from recovery.services import clinic_plans
from recovery.services.enrolment import EnrolmentInput, enrol_patient, timeline_for
from recovery.services.passwords import hash_password, verify_password
from recovery.store.enrolments import current_enrolment
from recovery.services.sessions import issue_link
from recovery.store.db import begin_write, db
from recovery.store.models import Clinic, OnCallStep, OutboundMessage, OutboxStatus, Patient, StaffRole, StaffUser
from recovery.store.outbox import OPT_IN_REF, add_if_new, new_row

DEMO_PASSWORD = "recovery-demo-2026"
DEMO_SLUG = "demo-clinic"
DEMO_STAFF = [
    ("nurse@demo.clinic", "Nina Nurse", StaffRole.NURSE, "+12025550181"),
    ("oncall@demo.clinic", "Omar On-call", StaffRole.NURSE, "+12025550182"),
    ("admin@demo.clinic", "Ada Admin", StaffRole.ADMIN, "+12025550183"),
]
# (first, last, mobile, days since the procedure, working, brace, baseline pain[, language])
DEMO_PATIENTS = [
    ("Dora", "Day-Zero", "+12025550111", 0, False, False, 8),
    ("Tom", "Two", "+12025550112", 2, True, False, 7),
    ("Tessa", "Ten", "+12025550113", 10, False, True, 6),
    ("Fred", "Forty", "+12025550114", 40, False, False, 7),
    ("Rosa", "Dos", "+12025550115", 2, False, False, 6, "es"),  # reads Spanish (issue 14)
    ("Luis", "Uno", "+12025550116", 1, False, False, 5, "es"),  # Spanish too: the flows the other way round
]


def seed(session, *, now, base_url: str) -> list[tuple[str, int, str]]:
    """Create the demo clinic. Returns (patient name, Today link) pairs."""
    clinic = Clinic(slug=DEMO_SLUG, name="Demo Spine Clinic", timezone="America/New_York",
                    template_file="demo-clinic", emergency_number="911", care_phone="(202) 555-0100",
                    created_at=now)
    session.add(clinic)
    session.flush()
    staff = []
    for email, name, role, mobile in DEMO_STAFF:
        s = StaffUser(clinic_id=clinic.id, email=email, name=name, role=role,
                      password_hash=hash_password(DEMO_PASSWORD), mobile_e164=mobile, active=True,
                      created_at=now)
        session.add(s)
        staff.append(s)
    session.flush()
    for position, s in enumerate(staff[1:], start=1):
        session.add(OnCallStep(clinic_id=clinic.id, position=position, staff_id=s.id))
    template = clinic_plans.plan_for_new(session, current_app.config["SCHEDULES_DIR"], clinic,
                                         current_app.config["DEFAULT_TEMPLATE"])
    tz = ZoneInfo(clinic.timezone)
    links = []
    for first, last, mobile, days, working, brace, pain, *language in DEMO_PATIENTS:
        # the procedure ended at 10:30 local, `days` days ago (3 hours ago for day 0)
        if days == 0:
            end = now - timedelta(hours=3)
        else:
            local_day = (now.astimezone(tz) - timedelta(days=days)).date()
            end = datetime.combine(local_day, time(10, 30), tz).astimezone(ZoneInfo("UTC"))
        data = EnrolmentInput(first_name=first, last_name=last, mobile_e164=mobile, timezone=clinic.timezone,
                              procedure_type="kyphoplasty", procedure_end=end,
                              discharge_at=end + timedelta(hours=2), sms_consent=True,
                              baseline_back_pain=pain, working=working, brace=brace,
                              language=language[0] if language else "en")
        enrolment = enrol_patient(session, clinic=clinic, staff=staff[0], data=data, template=template, now=now)
        patient = session.get(Patient, enrolment.patient_id)
        if days:
            _discharge_texts_delivered(session, enrolment, patient, template, clinic)
        token = issue_link(session, patient, "today", now, timedelta(days=30))
        links.append((f"{first} {last}", days, f"{base_url}/l/{token}"))
    return links


def _discharge_texts_delivered(session, enrolment, patient, template, clinic) -> None:
    """The back-dated demo patients stand for patients enrolled at discharge: give them the history
    of their discharge safety texts (delivered at the time), as a real record would have. Without
    it their nurse page would rightly say they never got S01 and S02."""
    timeline = timeline_for(enrolment, patient, template)
    # The opt-in confirmation S00 went first, at enrolment (at discharge, for these patients).
    opt_ins = session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.enrolment_id == enrolment.id, OutboundMessage.occurrence_key.like(f"%:{OPT_IN_REF}"))).all()
    for row in opt_ins:
        row.send_after = row.sent_at = row.final_at = timeline.discharge
        row.status, row.provider_status = OutboxStatus.DELIVERED, "delivered"
        row.body = texts.render(row.text_template, first=patient.first_name, link="", emerg=clinic.emergency_number,
                                phone=clinic.care_phone, clinic=template.sms_name)
    for m in timeline.messages:
        if not m.safety:
            continue
        row = new_row(enrolment=enrolment, patient_id=patient.id, recipient="patient", message=m, now=m.send_at)
        row.status, row.sent_at, row.final_at, row.provider_status = (
            OutboxStatus.DELIVERED, m.send_at, m.send_at, "delivered")
        row.body = texts.render(m.text_template, first=patient.first_name, link="[link]",
                                emerg=clinic.emergency_number, phone=clinic.care_phone)
        add_if_new(session, row)


def reissue(session, clinic: Clinic, *, now, base_url: str) -> list[tuple[str, int, str]]:
    """Fresh Today links for the demo clinic's demo patients (a second `make run`)."""
    names = {(first, last) for first, last, *_ in DEMO_PATIENTS}
    links = []
    for patient in session.scalars(sa.select(Patient).where(Patient.clinic_id == clinic.id).order_by(Patient.id)):
        enrolment = current_enrolment(patient)
        if (patient.first_name, patient.last_name) not in names or enrolment is None:
            continue  # someone enrolled by hand: not a demo patient
        token = issue_link(session, patient, "today", now, timedelta(days=30))
        day = recovery_day(enrolment.procedure_end, now, patient.timezone)
        links.append((f"{patient.first_name} {patient.last_name}", day, f"{base_url}/l/{token}"))
    return links


def _logins(session, clinic: Clinic | None) -> list[tuple[str, str, str]]:
    """(role, email, what to type) for the demo staff; a password someone changed is not printed."""
    if clinic is None:
        return [(role.value, email, f"password: {DEMO_PASSWORD}") for email, _, role, _ in DEMO_STAFF]
    rows = []
    for email, _, role, _ in DEMO_STAFF:
        staff = session.scalar(sa.select(StaffUser).where(StaffUser.email == email,
                                                          StaffUser.clinic_id == clinic.id))
        if staff is None or not staff.active:
            continue
        same = verify_password(staff.password_hash, DEMO_PASSWORD)
        rows.append((role.value, email, f"password: {DEMO_PASSWORD}" if same else "(password changed since seeding)"))
    return rows


@click.command()
@click.option("--url", "base_url", default=None, help="Base URL printed in the patient links")
@click.option("--json", "as_json", is_flag=True,
              help="Print the logins and links as one JSON object (for scripts: the browser tests' server)")
@with_appcontext
def seed_demo_command(base_url, as_json):
    """Seed the demo clinic if the database is empty, and print how to sign in.

    On a database that already has the demo clinic (a second `make run`), print the logins again
    with fresh patient links. A database without it (a real clinic) is left alone."""
    base_url = (base_url or current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    begin_write(db.session)
    now = utcnow()
    if db.session.scalar(sa.select(sa.func.count()).select_from(Clinic)):
        clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == DEMO_SLUG))
        if clinic is None:
            click.echo(json.dumps({"seeded": False, "base_url": base_url, "logins": [], "links": []}) if as_json
                       else "Database already has data and no demo clinic: not seeding, no links printed.")
            db.session.rollback()
            return
        links = reissue(db.session, clinic, now=now, base_url=base_url)
        logins = _logins(db.session, clinic)
        db.session.commit()
        note = "Already seeded: the same logins, new patient links (delete instance/recovery.sqlite to start again)."
    else:
        links = seed(db.session, now=now, base_url=base_url)
        db.session.commit()
        logins = _logins(db.session, None)
        note = None
    if as_json:
        click.echo(json.dumps({
            "seeded": True, "base_url": base_url, "note": note,
            "logins": [{"role": role, "email": email,
                        "password": DEMO_PASSWORD if secret == f"password: {DEMO_PASSWORD}" else None}
                       for role, email, secret in logins],
            "links": [{"name": name, "day": day, "url": link} for name, day, link in links]}))
        return
    click.echo("")
    click.echo("=" * 72)
    click.echo(f"  Recovery Tracker demo: {base_url}")
    if note:
        click.echo(f"  {note}")
    click.echo(f"  Nurse sign-in: {base_url}/login")
    for role, email, secret in logins:
        click.echo(f"    {role:6} {email:22} {secret}")
    click.echo("  Patient links (open on a phone-sized window; each works once):")
    for name, day, link in links:
        click.echo(f"    {name + f' (day {day})':24} {link}")
    click.echo("=" * 72)

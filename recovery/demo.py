"""`flask seed-demo`: a demo clinic with a nurse, an admin and patients at different points of
recovery (day 0, 2, 10, 40). Runs only on an empty database; prints the logins and patient links."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from recovery import templates_repo, texts
from recovery.clock import utcnow
from recovery.db import begin_write, db
from recovery.enrolment import EnrolmentInput, enrol_patient, timeline_for
from recovery.models import Clinic, OnCallStep, OutboundMessage, OutboxStatus, Patient, StaffRole, StaffUser
from recovery.outbox import OPT_IN_REF, add_if_new, new_row
from recovery.passwords import hash_password
from recovery.sessions import issue_link

DEMO_PASSWORD = "recovery-demo-2026"
DEMO_STAFF = [
    ("nurse@demo.clinic", "Nina Nurse", StaffRole.NURSE, "+12025550181"),
    ("oncall@demo.clinic", "Omar On-call", StaffRole.NURSE, "+12025550182"),
    ("admin@demo.clinic", "Ada Admin", StaffRole.ADMIN, "+12025550183"),
]
# (first, last, mobile, days since the procedure, working, brace, baseline pain)
DEMO_PATIENTS = [
    ("Dora", "Day-Zero", "+12025550111", 0, False, False, 8),
    ("Tom", "Two", "+12025550112", 2, True, False, 7),
    ("Tessa", "Ten", "+12025550113", 10, False, True, 6),
    ("Fred", "Forty", "+12025550114", 40, False, False, 7),
]


def seed(session, *, now, base_url: str) -> list[tuple[str, str]]:
    """Create the demo clinic. Returns (patient name, Today link) pairs."""
    clinic = Clinic(slug="demo-clinic", name="Demo Spine Clinic", timezone="America/New_York",
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
    template = templates_repo.clinic_template(current_app.config["SCHEDULES_DIR"], clinic.template_file,
                                              current_app.config["DEFAULT_TEMPLATE"])
    tz = ZoneInfo(clinic.timezone)
    links = []
    for first, last, mobile, days, working, brace, pain in DEMO_PATIENTS:
        # the procedure ended at 10:30 local, `days` days ago (3 hours ago for day 0)
        if days == 0:
            end = now - timedelta(hours=3)
        else:
            local_day = (now.astimezone(tz) - timedelta(days=days)).date()
            end = datetime.combine(local_day, time(10, 30), tz).astimezone(ZoneInfo("UTC"))
        data = EnrolmentInput(first_name=first, last_name=last, mobile_e164=mobile, timezone=clinic.timezone,
                              procedure_type="kyphoplasty", procedure_end=end,
                              discharge_at=end + timedelta(hours=2), sms_consent=True,
                              baseline_back_pain=pain, working=working, brace=brace)
        enrolment = enrol_patient(session, clinic=clinic, staff=staff[0], data=data, template=template, now=now)
        patient = session.get(Patient, enrolment.patient_id)
        if days:
            _discharge_texts_delivered(session, enrolment, patient, template, clinic)
        token = issue_link(session, patient, "today", now, timedelta(days=30))
        links.append((f"{first} {last} (day {days})", f"{base_url}/l/{token}"))
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


@click.command()
@click.option("--url", "base_url", default=None, help="Base URL printed in the patient links")
@with_appcontext
def seed_demo_command(base_url):
    """Seed the demo clinic if the database is empty, and print how to sign in."""
    base_url = (base_url or current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    begin_write(db.session)
    if db.session.scalar(sa.select(sa.func.count()).select_from(Clinic)):
        click.echo("Database already has data: not seeding. (Delete instance/recovery.sqlite to start again.)")
        db.session.rollback()
        return
    links = seed(db.session, now=utcnow(), base_url=base_url)
    db.session.commit()
    click.echo("")
    click.echo("=" * 72)
    click.echo(f"  Recovery Tracker demo: {base_url}")
    click.echo(f"  Nurse sign-in: {base_url}/login")
    for email, name, role, _ in DEMO_STAFF:
        click.echo(f"    {role.value:6} {email:22} password: {DEMO_PASSWORD}")
    click.echo("  Patient links (open on a phone-sized window; each works once):")
    for name, link in links:
        click.echo(f"    {name:24} {link}")
    click.echo("=" * 72)

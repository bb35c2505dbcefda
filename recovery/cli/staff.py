"""`flask create-staff`: a nurse or admin account, from the command line."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from recovery.cli.exit import fail


@click.command()
@click.option("--clinic", "clinic_slug", required=True, help="Clinic slug, e.g. demo-clinic")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["nurse", "admin"]), default="nurse")
@click.option("--mobile", default=None,
              help="Mobile for escalation texts, e.g. (202) 555-0190 or +44 7700 900123; stored as E.164")
@click.password_option()
@with_appcontext
def create_staff_command(clinic_slug, email, name, role, mobile, password):
    """Create a nurse or admin account."""
    import sqlalchemy as sa

    from recovery.clock import utcnow
    from recovery.services.passwords import hash_password, password_problem
    from recovery.services.phones import parse_mobile, region_for_zone
    from recovery.store import audit
    from recovery.store.db import begin_write, db
    from recovery.store.models import Clinic, StaffRole, StaffUser

    email = email.strip().lower()
    problem = password_problem(password)
    if problem:
        fail(problem)
    begin_write(db.session)
    clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == clinic_slug))
    if clinic is None:
        fail(f"no clinic with slug {clinic_slug!r}")
    mobile_e164 = None
    if mobile and mobile.strip():
        try:
            mobile_e164 = parse_mobile(mobile.strip(), region_for_zone(clinic.timezone))
        except ValueError as e:
            fail(f"--mobile: {e}")
    duplicate = f"a staff account with the email {email} already exists"
    if db.session.scalar(sa.select(StaffUser.id).where(sa.func.lower(StaffUser.email) == email)) is not None:
        fail(duplicate)
    now = utcnow()
    staff = StaffUser(clinic_id=clinic.id, email=email, name=name.strip(),
                      role=StaffRole(role), password_hash=hash_password(password),
                      mobile_e164=mobile_e164, active=True, created_at=now)
    db.session.add(staff)
    try:
        db.session.flush()
    except sa.exc.IntegrityError:  # created meanwhile by someone else
        db.session.rollback()
        fail(duplicate)
    audit.record(db.session, at=now, actor_type="system", actor_id=None, action="staff_created",
                 subject_type="staff_user", subject_id=staff.id, detail={"role": role})
    db.session.commit()
    click.echo(f"created {role} {email} in {clinic.name}")

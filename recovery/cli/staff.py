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
    from recovery.services.phones import parse_mobile, region_for_zone
    from recovery.services.staff_accounts import StaffProblem, create_with_password
    from recovery.store.db import begin_write, db
    from recovery.store.models import Clinic

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
    try:  # the same use-case as the admin's pages: one password policy, one audit row
        staff = create_with_password(db.session, clinic, name=name, email=email, role=role, password=password,
                                     mobile_e164=mobile_e164, now=utcnow())
    except StaffProblem as e:
        db.session.rollback()
        message = str(e).rstrip(".")
        fail(message[:1].lower() + message[1:])
    db.session.commit()
    click.echo(f"created {role} {staff.email} in {clinic.name}")

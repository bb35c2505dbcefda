"""Command-line entry points: `flask --app app <command>`."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


def register_cli(app: Flask) -> None:
    from recovery.cli_rules import rules_group
    from recovery.cli_timeline import timeline_command, timeline_days_command
    from recovery.demo import seed_demo_command
    from recovery.scheduler import scheduler_command

    app.cli.add_command(timeline_command, "timeline")
    app.cli.add_command(timeline_days_command, "timeline-days")
    app.cli.add_command(rules_group, "rules")
    app.cli.add_command(scheduler_command, "scheduler")
    app.cli.add_command(seed_demo_command, "seed-demo")
    app.cli.add_command(create_staff_command, "create-staff")


@click.command()
@click.option("--clinic", "clinic_slug", required=True, help="Clinic slug, e.g. demo-clinic")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["nurse", "admin"]), default="nurse")
@click.option("--mobile", default=None, help="E.164 mobile for escalation texts")
@click.password_option()
@with_appcontext
def create_staff_command(clinic_slug, email, name, role, mobile, password):
    """Create a nurse or admin account."""
    import sqlalchemy as sa

    from recovery import audit
    from recovery.clock import utcnow
    from recovery.db import db
    from recovery.models import Clinic, StaffRole, StaffUser
    from recovery.passwords import hash_password, password_problem

    problem = password_problem(password)
    if problem:
        raise click.UsageError(problem)
    clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == clinic_slug))
    if clinic is None:
        raise click.UsageError(f"no clinic with slug {clinic_slug!r}")
    now = utcnow()
    staff = StaffUser(clinic_id=clinic.id, email=email.strip().lower(), name=name,
                      role=StaffRole(role), password_hash=hash_password(password),
                      mobile_e164=mobile, active=True, created_at=now)
    db.session.add(staff)
    db.session.flush()
    audit.record(db.session, at=now, actor_type="system", actor_id=None, action="staff_created",
                 subject_type="staff_user", subject_id=staff.id, detail={"role": role})
    db.session.commit()
    click.echo(f"created {role} {email} in {clinic.name}")

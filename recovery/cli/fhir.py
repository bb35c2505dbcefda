"""`flask fhir export --clinic SLUG --out DIR`: the clinic's record as FHIR Bulk Data NDJSON."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from recovery.services import clinic_plans
from recovery.cli.exit import fail


@click.group("fhir")
def fhir_group():
    """FHIR R4 (docs/fhir.md)."""


@fhir_group.command("export")
@click.option("--clinic", "clinic_slug", required=True, help="Clinic slug, e.g. demo-clinic")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <Type>.ndjson and manifest.json (created if missing)")
@with_appcontext
def export_command(clinic_slug, out_dir):
    """Write one NDJSON file per resource type (Bulk Data layout); each patient exported is audited."""
    import sqlalchemy as sa

    from recovery.clock import utcnow
    from recovery.services.fhir import Reader
    from recovery.services.fhir_export import export_clinic
    from recovery.store.db import begin_write, db
    from recovery.store.models import Clinic

    begin_write(db.session)
    clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == clinic_slug))
    if clinic is None:
        fail(f"no clinic with slug {clinic_slug!r}")
    cfg = current_app.config
    reader = Reader(db.session, clinic, cfg["PUBLIC_BASE_URL"].rstrip("/") + "/fhir", utcnow(),
                    lambda e: clinic_plans.plan_for(db.session, cfg["SCHEDULES_DIR"], e, clinic))
    try:
        counts = export_clinic(reader, out_dir)
    except OSError as e:
        fail(f"--out: {e.strerror or e}")
    db.session.commit()
    for kind, n in counts.items():
        click.echo(f"{kind}.ndjson\t{n}")

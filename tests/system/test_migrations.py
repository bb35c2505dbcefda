"""The Alembic migrations, on SQLite and PostgreSQL: one head, a schema that is exactly the models,
and every step down and up again with data in the tables (house rule: every schema change, up and
down, on both databases)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from recovery.config import REPO_ROOT

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)


def _revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(_alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _alembic_config():
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    return cfg


def test_the_migrations_have_one_head_and_one_line():
    script = ScriptDirectory.from_config(_alembic_config())
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()} (re-chain the new migration)"
    assert len(script.get_bases()) == 1
    files = sorted(p.name for p in (REPO_ROOT / "migrations" / "versions").glob("*.py"))
    assert len(files) == len(_revisions())


@pytest.fixture
def empty_db(db_factory, tmp_path):
    """An empty database (no migration run yet) on the backend under test."""
    if db_factory.name == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    from tests.support.dbs import _admin_exec
    name = f"rt_mig_{uuid.uuid4().hex[:12]}"
    _admin_exec(f'CREATE DATABASE "{name}"')
    url = db_factory._url(name)
    yield url
    _admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrating_app(empty_db):
    from app import create_app
    from recovery.store.db import db
    from tests.support.settings import app_config
    app = create_app(app_config(SQLALCHEMY_DATABASE_URI=empty_db))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _tables() -> set[str]:
    from recovery.store.db import db
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def _schema_diff() -> list:
    from recovery.store.db import db
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, db.metadata)


def test_the_migrated_schema_is_exactly_the_models(migrating_app):
    from flask_migrate import upgrade
    upgrade()
    assert _schema_diff() == []


def _seed_rows() -> None:
    """Rows in the tables the migrations change: a clinic, a patient with an enrolment and its
    planned texts, a submitted check-in and the alert it opened."""
    from flask import current_app

    from recovery.files import templates as templates_repo
    from recovery.services import checkins
    from recovery.store.enrolments import current_enrolment
    from recovery.store.db import db
    from recovery.store.models import Alert, Checkin
    from tests.support.factories import enrol, make_clinic, make_staff, template_for
    session = db.session
    clinic = make_clinic(session, now=NOW)
    make_staff(session, clinic, now=NOW)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW - timedelta(hours=26))
    enrolment = current_enrolment(patient)
    checkin = checkins.start_checkin(session, enrolment=enrolment, patient=patient, slot=None, source="web", now=NOW)
    checkins.submit_checkin(session, checkin=checkin, enrolment=enrolment, patient=patient,
                            answers={"cardioresp": ["chest_pain"]}, template=template_for(clinic),
                            ruleset=templates_repo.ruleset(current_app.config["RULESET_PATH"]), now=NOW)
    session.commit()
    assert session.scalar(sa.select(sa.func.count()).select_from(Alert)) >= 1
    assert session.scalar(sa.select(sa.func.count()).select_from(Checkin)) == 1


def _count(table: str) -> int:
    from recovery.store.db import db
    with db.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_every_migration_goes_down_and_up_again_with_data(migrating_app):
    from flask_migrate import downgrade, upgrade

    from recovery.store.db import db
    revisions = _revisions()
    upgrade()
    _seed_rows()
    db.session.remove()
    kept = {t: _count(t) for t in ("patient", "enrolment", "checkin", "alert", "outbound_message", "audit_event")}
    for target in reversed(revisions[:-1]):  # one step down at a time, then all the way up again
        downgrade(revision=target)
        upgrade()
        assert _schema_diff() == [], f"after down to {target} and up again"
        assert {t: _count(t) for t in kept} == kept, f"rows lost going down to {target} and up again"
    downgrade(revision="base")
    assert _tables() == set()
    upgrade()
    assert _schema_diff() == []


def test_0012_followup_appointment_goes_down_and_up_with_the_enrolments_kept(migrating_app):
    """The appointment columns come and go; the enrolment rows stay (down: back to the plan's day)."""
    from flask_migrate import downgrade, upgrade

    from recovery.store.db import db
    upgrade()
    _seed_rows()
    db.session.remove()
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE enrolment SET followup_place = 'Spine clinic, 2nd floor'"))
    downgrade(revision="0011_plan_versions")
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("enrolment")}
    assert "followup_at" not in columns and "followup_place" not in columns and _count("enrolment") == 1
    upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT followup_at, followup_place FROM enrolment")).all() == [(None, None)]

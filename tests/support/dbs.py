"""Test databases: one migrated template per backend per run, copied for each test.

SQLite always runs. PostgreSQL runs when a server answers on 127.0.0.1:5432 (trust auth, user
postgres); without one the PostgreSQL variants skip with a clear message, except under CI=true,
where a missing server is a failure.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"


def require_pg() -> None:
    problem = pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but is not reachable at {PG_ADMIN_URL}: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({problem}); the SQLite run still covers this")


def _admin_exec(sql: str) -> None:
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def migrate(url: str) -> None:
    from flask_migrate import upgrade

    from app import create_app
    from tests.support.settings import app_config
    app = create_app(app_config(SQLALCHEMY_DATABASE_URI=url))
    with app.app_context():
        upgrade()
        from recovery.store.db import db
        db.engine.dispose()


class SqliteFactory:
    name = "sqlite"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.template = workdir / "template.sqlite"
        migrate(f"sqlite:///{self.template}")
        for suffix in ("-wal", "-shm"):
            Path(str(self.template) + suffix).unlink(missing_ok=True)

    def new(self) -> str:
        path = self.workdir / f"t-{uuid.uuid4().hex[:12]}.sqlite"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        path = url.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        pass


class PostgresFactory:
    name = "postgresql"

    def __init__(self):
        require_pg()
        self.template = f"rt_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _admin_exec(f'CREATE DATABASE "{self.template}"')
        migrate(self._url(self.template))

    def _url(self, name: str) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def new(self) -> str:
        name = f"rt_t_{uuid.uuid4().hex[:12]}"
        _admin_exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self._url(name)

    def drop(self, url: str) -> None:
        _admin_exec(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    def close(self) -> None:
        _admin_exec(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')

"""Persistence plumbing: the declarative base, the Flask-SQLAlchemy handle, UTC datetimes,
SQLite pragmas and write transactions that take the lock up front.

SQLite: WAL lets readers and one writer overlap; a transaction that reads and then writes can still
fail with SQLITE_BUSY despite busy_timeout, so write transactions start with BEGIN IMMEDIATE
(reliability.md §2). PostgreSQL needs none of this.
"""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
import sqlalchemy.orm as so
from sqlalchemy.orm import DeclarativeBase, Session

SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "recovery_begin"


class Base(DeclarativeBase):
    pass


# Render after commit without re-reading every row (the SQLAlchemy docs' advice for web apps).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


class UTCDateTime(sa.TypeDecorator):
    """Aware UTC in Python; timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    if type(dbapi_connection).__module__.split(".")[0] != "sqlite3":
        return
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_begin) instead of pysqlite's implicit one.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    if conn.dialect.name != "sqlite":
        return
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def begin_write(session: Session) -> None:
    """Start the session's transaction as a write transaction (BEGIN IMMEDIATE on SQLite).

    Call before the first statement of a unit of work that will write. If a transaction is
    already open this is a no-op, so callers put it first.
    """
    if isinstance(session, so.scoped_session):
        session = session()
    if session.in_transaction():
        return
    session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE"})


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"

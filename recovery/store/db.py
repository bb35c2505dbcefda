"""Persistence plumbing: the declarative base, the Flask-SQLAlchemy handle, UTC datetimes,
SQLite pragmas and write transactions that take the lock up front.

SQLite: WAL lets readers and one writer overlap; a transaction that reads and then writes can still
fail with SQLITE_BUSY despite busy_timeout, so write transactions start with BEGIN IMMEDIATE
(reliability.md §2). PostgreSQL needs none of this.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

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


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def write_unit(session: Session, lock: str | None = None) -> Iterator[None]:
    """One short write transaction, committed at the end (rolled back on error).

    SQLite: BEGIN IMMEDIATE serialises writers. PostgreSQL: `lock` names an advisory lock held to
    the end of the transaction, for work that must not interleave between processes."""
    plain = session() if isinstance(session, so.scoped_session) else session
    if plain.in_transaction():
        plain.commit()  # end a read transaction, or BEGIN IMMEDIATE would not be issued
    session.expire_all()  # other processes may have changed anything since the last unit
    begin_write(session)
    try:
        if lock and not is_sqlite(session):
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_key(lock))))
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def locked_row(session: Session, model, row_id: int, skip_locked: bool = False):
    """Load a row fresh, locking it FOR UPDATE on PostgreSQL (None if skip_locked and taken)."""
    stmt = sa.select(model).where(model.id == row_id).execution_options(populate_existing=True)
    if not is_sqlite(session):
        stmt = stmt.with_for_update(skip_locked=skip_locked)
    return session.scalar(stmt)

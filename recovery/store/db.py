"""Persistence plumbing: the declarative base, the Flask-SQLAlchemy handle, UTC datetimes,
SQLite pragmas and write transactions that take the lock up front.

SQLite: WAL lets readers and one writer overlap; a transaction that reads and then writes can still
fail with SQLITE_BUSY despite busy_timeout, so write transactions start with BEGIN IMMEDIATE
(reliability.md §2). PostgreSQL needs none of this.

SQLite writers also queue on a lock file next to the database (flock, `<db>.writelock`) before
BEGIN IMMEDIATE, released as their transaction ends (issue 17). Without it a writer that finds the
database locked sleeps in SQLite's busy handler, in steps of up to 100 ms, whether or not the
lock was freed meanwhile: under load the queue was the sleeps (p99 near a second). flock wakes
the next writer when the lock is freed, across gunicorn's workers and the scheduler alike.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import threading
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


_held = threading.local()  # how many write locks this thread holds (see WriteLockedConnection)


class WriteLockedConnection(sqlite3.Connection):
    """A pysqlite connection whose write transactions hold an exclusive flock on `<db>.writelock`
    from just before BEGIN IMMEDIATE until commit() or rollback() returns.

    The lock file is opened lazily and again after a fork (a descriptor inherited from a parent
    would share its lock). A thread that already holds the lock through another connection does
    not wait for it a second time (it would wait for itself): that write falls back to SQLite's
    own busy handling, as before."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        name = os.fspath(database)
        self._lock_path = None if name in ("", ":memory:") or name.startswith("file:") else name + ".writelock"
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._locked = False

    def acquire_write_lock(self) -> None:
        if self._lock_path is None or self._locked or getattr(_held, "count", 0):
            return
        if self._lock_fd is None or self._lock_pid != os.getpid():
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._lock_pid = os.getpid()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._locked = True
        _held.count = getattr(_held, "count", 0) + 1

    def release_write_lock(self) -> None:
        if not self._locked:
            return
        self._locked = False
        _held.count -= 1
        if self._lock_pid == os.getpid():
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_write_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_write_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_write_lock()
            if self._lock_fd is not None and self._lock_pid == os.getpid():
                os.close(self._lock_fd)
            self._lock_fd = None


@event.listens_for(Engine, "do_connect")
def _sqlite_connection_class(dialect, conn_rec, cargs, cparams):
    if dialect.name == "sqlite" and dialect.driver == "pysqlite" and "factory" not in cparams:
        cparams["factory"] = WriteLockedConnection


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    if not isinstance(dbapi_connection, sqlite3.Connection):
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
    raw = conn.connection.dbapi_connection
    locking = mode == "IMMEDIATE" and isinstance(raw, WriteLockedConnection)
    if locking:
        raw.acquire_write_lock()
    try:
        conn.exec_driver_sql(f"BEGIN {mode}")
    except BaseException:
        if locking:
            raw.release_write_lock()
        raise


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

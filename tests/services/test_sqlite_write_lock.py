"""Issue 17: SQLite writers queue on a flock beside the database (recovery/store/db.py) and are
woken as soon as the writer before them ends, instead of sleeping in SQLite's busy handler in
steps of up to 100 ms; a rollback frees the lock as a commit does."""
from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.store.db import WriteLockedConnection, begin_write


@pytest.fixture
def engine(tmp_path):
    from recovery.store import db as _db  # noqa: F401  (the engine events)
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    with eng.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    yield eng
    eng.dispose()


def test_connections_are_write_locked(engine, tmp_path):
    with engine.connect() as conn:
        assert isinstance(conn.connection.dbapi_connection, WriteLockedConnection)
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"  # the pragmas still apply


def _writer(engine, started: threading.Event, done: dict, name: str):
    with Session(engine) as s:
        started.set()
        begin_write(s)
        done[name] = time.perf_counter()
        s.execute(sa.text("INSERT INTO t VALUES (2)"))
        s.commit()


def test_a_waiting_writer_starts_as_soon_as_the_first_commits(engine):
    first = Session(engine)
    begin_write(first)
    first.execute(sa.text("INSERT INTO t VALUES (1)"))
    started, done = threading.Event(), {}
    t = threading.Thread(target=_writer, args=(engine, started, done, "second"))
    t.start()
    started.wait(5)
    time.sleep(0.3)  # long enough for the second to be queued
    assert "second" not in done
    committed = time.perf_counter()
    first.commit()
    first.close()
    t.join(10)
    assert "second" in done
    assert done["second"] - committed < 0.05  # woken, not polling (SQLite's sleeps reach 100 ms)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2


def test_a_rollback_frees_the_lock(engine):
    first = Session(engine)
    begin_write(first)
    first.execute(sa.text("INSERT INTO t VALUES (1)"))
    first.rollback()
    started, done = threading.Event(), {}
    t = threading.Thread(target=_writer, args=(engine, started, done, "second"))
    t.start()
    t.join(5)
    assert "second" in done
    # and the first can write again after it
    begin_write(first)
    first.execute(sa.text("INSERT INTO t VALUES (3)"))
    first.commit()
    first.close()

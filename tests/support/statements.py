"""Counting the SQL statements a request sends: counts are exact where timings are not, so tests
may hold a page to its statement budget (issue 17)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event


@contextmanager
def count_statements() -> Iterator[list[str]]:
    """Every SQL statement sent to the database while the block runs (BEGIN included)."""
    from recovery.store.db import db
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)

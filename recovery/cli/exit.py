"""How every command here stops on bad input."""
from __future__ import annotations

from typing import NoReturn

import click


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2 (bad input), as every command here does."""
    db_rollback()
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(2)


def db_rollback() -> None:
    from recovery.store.db import db
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - nothing to roll back outside an app context
        pass

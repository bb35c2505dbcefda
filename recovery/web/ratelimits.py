"""Rate-limit storage and keys for Flask-Limiter.

Storage: `RATELIMIT_STORAGE_URI=database://` (the default) keeps the counters in the app's own
database, so every gunicorn worker, the scheduler and the CLI share them with nothing to install;
`redis://host:6379` shares them between several hosts; `memory://` is per process (tests only).
On PostgreSQL the counters live in the app's database (table `rate_limit_counter`, a migration).
On SQLite they live in a file of their own next to the database (`<name>-ratelimits.sqlite`): a
request that writes holds SQLite's one write lock from its first statement (BEGIN IMMEDIATE), and a
counter written on another connection of the same file would wait for that very request.

Keys: every key is an HMAC (SECRET_KEY) of what is counted, so neither the store nor Flask-Limiter's
"ratelimit … exceeded" log line ever holds an address, an email or a phone number.
"""
from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, current_app, request
from limits.storage import Storage
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from recovery.store.models import RateLimitCounter

_table = RateLimitCounter.__table__
_engines: dict[str, sa.Engine] = {}
# create_app registers its store's URL here and hands Flask-Limiter only this opaque name: the
# storage options are printed by `flask limiter config`, and a URL may hold a password.
_urls: dict[str, str] = {}
_engines_lock = threading.Lock()
_PURGE_EVERY = 200  # about one write in this many also deletes expired counters


def _engine(url: str) -> sa.Engine:
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = sa.create_engine(url, hide_parameters=True, pool_pre_ping=True)
            if engine.dialect.name == "sqlite":
                _table.create(engine, checkfirst=True)  # its own file: no migrations there
            _engines[url] = engine
        return engine


class DatabaseStorage(Storage):
    """A `limits` storage (fixed window) on SQLAlchemy: one row per key, incremented atomically
    with INSERT … ON CONFLICT DO UPDATE, which SQLite and PostgreSQL both do in one statement."""

    STORAGE_SCHEME = ["database"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, database: str = "", **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        if database not in _urls:
            raise ValueError("database:// rate-limit storage is set up by create_app (recovery/web/ratelimits.py)")
        self.url = _urls[database]

    @property
    def base_exceptions(self):
        return sa.exc.SQLAlchemyError

    @property
    def storage(self) -> str:
        """What `flask limiter config` shows: the store, without its password."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def engine(self) -> sa.Engine:
        return _engine(self.url)  # created on first use, so never before gunicorn forks

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        engine = self.engine
        insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(_table)
        expired = _table.c.expires_at <= now
        stmt = insert.values(key=key, count=amount, expires_at=now + expiry).on_conflict_do_update(
            index_elements=[_table.c.key],
            set_={"count": sa.case((expired, amount), else_=_table.c.count + amount),
                  "expires_at": sa.case((expired, now + expiry), else_=_table.c.expires_at)},
        ).returning(_table.c.count)
        with engine.begin() as conn:
            count = conn.execute(stmt).scalar_one()
            if random.randrange(_PURGE_EVERY) == 0:  # noqa: S311 - not security relevant
                conn.execute(sa.delete(_table).where(_table.c.expires_at <= now))
        return count

    def _row(self, key: str):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(_table.c.count, _table.c.expires_at)
                                .where(_table.c.key == key)).first()

    def get(self, key: str) -> int:
        row = self._row(key)
        return row.count if row is not None and row.expires_at > time.time() else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        now = time.time()
        return row.expires_at if row is not None and row.expires_at > now else now

    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(sa.delete(_table)).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_table).where(_table.c.key == key))


def store_url(database_uri: str) -> str | None:
    """Where `database://` keeps its counters for this app database (None: an in-memory SQLite,
    which no other process can see, so memory:// is used)."""
    url = make_url(database_uri)
    if url.get_backend_name() != "sqlite":
        return database_uri
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return None
    path = Path(url.database)
    return str(url.set(database=str(path.with_name(f"{path.stem}-ratelimits{path.suffix or '.sqlite'}"))))


def configure(app: Flask) -> None:
    """Point `database://` at this app's database (before Flask-Limiter reads the config)."""
    uri = app.config.get("RATELIMIT_STORAGE_URI") or "database://"
    app.config["RATELIMIT_STORAGE_URI"] = uri
    if uri.startswith("database://"):
        url = store_url(app.config["SQLALCHEMY_DATABASE_URI"])
        if url is None:
            app.config["RATELIMIT_STORAGE_URI"] = "memory://"
        else:
            name = hashlib.sha256(url.encode()).hexdigest()[:16]
            _urls[name] = url
            app.config["RATELIMIT_STORAGE_OPTIONS"] = {**app.config.get("RATELIMIT_STORAGE_OPTIONS", {}),
                                                       "database": name}


# ---- keys ------------------------------------------------------------------------------------

def hashed(*parts: str) -> str:
    """What a key counts, as an HMAC: stable across processes, meaningless to whoever reads it."""
    msg = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:32]


def client_address() -> str:
    return request.remote_addr or "unknown"


def address_key() -> str:
    return "a:" + hashed("address", client_address())


def sign_in_email(raw: str | None) -> str:
    """The email as the sign-in looks it up (so 'Nurse@X ' and 'nurse@x' share a counter)."""
    return (raw or "").strip().lower()


ACCOUNT_KEY_MARK = "ae:"


def address_and_email_key() -> str:
    return ACCOUNT_KEY_MARK + hashed("address+email", client_address(), sign_in_email(request.form.get("email")))


def patient_key(patient_id: int) -> str:
    return "p:" + hashed("patient", str(patient_id))


def bearer_key() -> str:
    """The FHIR API counts per token presented (an HMAC of it), or per address without one."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return "t:" + hashed("bearer", auth[7:].strip())
    return address_key()

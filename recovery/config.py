"""Configuration read from the environment (microblog style), with a test subclass.

Everything has an embedded default so `make run` works with no set-up: SQLite in `instance/`,
the console SMS backend. PostgreSQL and real Twilio are configuration, not code changes.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET = "dev-only-secret-change-me"


def database_url(raw: str | None, instance_path: Path) -> str:
    """Normalise DATABASE_URL; plain postgres:// URLs get the psycopg 3 driver."""
    if not raw:
        return f"sqlite:///{instance_path / 'recovery.sqlite'}"
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    ENV_NAME = os.environ.get("RECOVERY_ENV", "production")
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET)
    DATABASE_URL = os.environ.get("DATABASE_URL")
    SQLALCHEMY_DATABASE_URI: str | None = None  # filled by create_app from DATABASE_URL
    # SQL errors must not carry parameter values (phone numbers, answers) into logs.
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"hide_parameters": True}
    SQLALCHEMY_SESSION_OPTIONS = {"expire_on_commit": False}

    SCHEDULES_DIR = os.environ.get("SCHEDULES_DIR", str(REPO_ROOT / "schedules"))
    RULESET_PATH = os.environ.get(
        "RULESET_PATH", str(REPO_ROOT / "schedules" / "rulesets" / "va-recovery.toml"))
    DEFAULT_TEMPLATE = "kyphoplasty"

    # SMS
    # twilio | console. No default in production: printing texts instead of sending them must be a choice.
    SMS_BACKEND = os.environ.get("SMS_BACKEND", "")
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
    TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
    TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
    TWILIO_MESSAGING_SERVICE_SID = os.environ.get("TWILIO_MESSAGING_SERVICE_SID", "")
    TWILIO_API_BASE_URL = os.environ.get("TWILIO_API_BASE_URL", "")  # tests/bench: Prism
    SMS_MAX_PER_SECOND = float(os.environ.get("SMS_MAX_PER_SECOND", "1"))
    SCHEDULER_TICK_SECONDS = float(os.environ.get("SCHEDULER_TICK_SECONDS", "5"))
    OUTBOX_LEASE_SECONDS = int(os.environ.get("OUTBOX_LEASE_SECONDS", "300"))
    OUTBOX_BATCH = int(os.environ.get("OUTBOX_BATCH", "20"))
    SMS_SEND_CONCURRENCY = int(os.environ.get("SMS_SEND_CONCURRENCY", "4"))  # texts in flight per scheduler
    OUTBOX_MAX_PER_TICK = int(os.environ.get("OUTBOX_MAX_PER_TICK", "500"))
    SMS_REPLY_HOURS = int(os.environ.get("SMS_REPLY_HOURS", "24"))  # how long a reply-by-text check-in stays open
    MISSED_SCAN_SECONDS = int(os.environ.get("MISSED_SCAN_SECONDS", "60"))
    QUIET_HOURS = ("21:00", "08:00")

    # Sessions and links
    SESSION_COOKIE_NAME = os.environ.get("SESSION_COOKIE_NAME", "__Host-session")
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    STAFF_IDLE_MINUTES = int(os.environ.get("STAFF_IDLE_MINUTES", "15"))
    STAFF_ABSOLUTE_HOURS = int(os.environ.get("STAFF_ABSOLUTE_HOURS", "12"))
    PATIENT_SESSION_DAYS = int(os.environ.get("PATIENT_SESSION_DAYS", "7"))
    # A patient's cookie ends with their server-side session (recovery/web/access.py sets it exactly).
    PERMANENT_SESSION_LIFETIME = timedelta(days=PATIENT_SESSION_DAYS)
    TODAY_LINK_HOURS = int(os.environ.get("TODAY_LINK_HOURS", "72"))
    CHECKIN_LINK_HOURS = int(os.environ.get("CHECKIN_LINK_HOURS", "24"))

    # Rate limits (Flask-Limiter, recovery/web/ratelimits.py). `database://` keeps the counters in the
    # app's database, shared by every worker and process; `redis://host:6379` shares them between hosts.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "database://")
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "recovery")
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True  # store unreachable: limits per process, not none
    RATELIMIT_HEADERS_ENABLED = True
    # Sign-in: only FAILED attempts count, per address + email and per address; a success never does.
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "5 per 15 minutes")
    LOGIN_IP_RATE_LIMIT = os.environ.get("LOGIN_IP_RATE_LIMIT", "20 per 15 minutes")
    # Patient links: every request to a link page per address; new-link TEXTS per patient.
    LINK_RATE_LIMIT = os.environ.get("LINK_RATE_LIMIT", "20 per hour")
    # staff set-password links (per address) and wrong two-step codes (per address and account)
    SET_PASSWORD_RATE_LIMIT = os.environ.get("SET_PASSWORD_RATE_LIMIT", "10 per hour")
    TOTP_RATE_LIMIT = os.environ.get("TOTP_RATE_LIMIT", "5 per 15 minutes")
    LINK_SEND_LIMIT = os.environ.get("LINK_SEND_LIMIT", "3 per hour")
    # FHIR API (recovery/web/fhir.py): per API token (per address without one).
    FHIR_RATE_LIMIT = os.environ.get("FHIR_RATE_LIMIT", "300 per minute")
    # Password hashes at once on this host (argon2id takes every core for tens of ms), and how long
    # a sign-in waits for a free slot before being told to try again.
    HASH_CONCURRENCY = int(os.environ.get("HASH_CONCURRENCY", str(max(1, (os.cpu_count() or 2) - 1))))
    HASH_WAIT_SECONDS = float(os.environ.get("HASH_WAIT_SECONDS", "0"))
    # Reverse proxies in front of the app whose X-Forwarded-For is trusted (0: use the peer address).
    PROXY_FIX_X_FOR = int(os.environ.get("PROXY_FIX_X_FOR", "0"))

    WTF_CSRF_TIME_LIMIT = None  # tied to the session instead; a nurse's form never expires mid-typing
    TESTING = False


class DevelopmentConfig(Config):
    """`make run` on a laptop: plain http on 127.0.0.1, so no Secure-only cookie name."""
    ENV_NAME = "development"
    SESSION_COOKIE_NAME = "session"
    SESSION_COOKIE_SECURE = False
    SMS_BACKEND = os.environ.get("SMS_BACKEND", "console")


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-secret"
    SESSION_COOKIE_NAME = "session"
    SESSION_COOKIE_SECURE = False
    WTF_CSRF_ENABLED = False
    RATELIMIT_ENABLED = False
    SMS_BACKEND = "recording"
    PUBLIC_BASE_URL = "https://recovery.example.org"
    TWILIO_AUTH_TOKEN = "test-auth-token"
    TWILIO_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2

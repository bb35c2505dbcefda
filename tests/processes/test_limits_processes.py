"""Rate limits hold across every worker and process (issue 11 §1), with real processes: two
gunicorn servers ("hosts") of two workers each on one database, every request on a new connection
so any worker may take it, and requests alternating between the hosts.

- the default store (`database://`: a file beside the SQLite database, the database itself on
  PostgreSQL), as `make run` uses it with nothing installed;
- `RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379` (required under CI=true, skipped otherwise when no
  Redis answers), with a key prefix of its own so nothing else in that Redis is touched.

Each case checks: correct sign-ins never count; exactly 5 wrong passwords per address + email, then
429; the per-address limit whatever the email; 10 "text me a new link" requests queue exactly 3 texts;
concurrent wrong sign-ins overshoot by at most the number of workers. The servers' logs are kept in
the run's log folder, so the end-of-run privacy check scans them too, and are checked here.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests
import sqlalchemy as sa

from recovery.store.models import OutboundMessage
from tests.support.dbs import IN_CI
from tests.support.factories import PASSWORD, enrol, make_clinic, make_staff
from tests.support.privacy import CANARY_PHONE, log_dir
from tests.support.procs import Processes, app_env, free_port

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKERS = 2
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
NOW = datetime.now(timezone.utc)


def _redis_or_skip():
    import redis
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true but does not answer at {REDIS_URL}: {e}")
        pytest.skip(f"Redis does not answer at {REDIS_URL} ({e})")
    return client


class Hosts:
    """Two gunicorn servers; `post` takes turns between them, a new connection every time."""

    def __init__(self, procs: Processes, env: dict):
        self.ports = [free_port(), free_port()]
        for n, port in enumerate(self.ports):
            procs.start(f"limits-host{n}", [str(procs_bin("gunicorn")), "--workers", str(WORKERS), "--bind",
                                            f"127.0.0.1:{port}", "--graceful-timeout", "5", "app:create_app()"], env)
        from tests.support.procs import wait_port
        for n, port in enumerate(self.ports):
            wait_port(port, procs.procs[n][1], procs.procs[n][2])
        self.turn = 0

    def url(self, path: str) -> str:
        self.turn += 1
        return f"http://127.0.0.1:{self.ports[self.turn % 2]}{path}"

    def form_post(self, path: str, data: dict, ip: str) -> int:
        """GET the form (its CSRF token), then POST it, each to the next host, each a new connection."""
        with requests.Session() as http:
            http.headers["Connection"] = "close"
            page = http.get(self.url(path), headers={"X-Forwarded-For": ip}, timeout=30)
            m = _CSRF.search(page.text)
            assert m, page.text[:500]
            r = http.post(self.url(path), data={**data, "csrf_token": m.group(1) or m.group(2)},
                          headers={"X-Forwarded-For": ip}, timeout=60, allow_redirects=False)
            return r.status_code


def procs_bin(name: str):
    from tests.support.procs import BIN
    return BIN / name


def _link_rows(session, patient_id):
    session.rollback()
    return session.scalar(sa.select(sa.func.count()).select_from(OutboundMessage)
                          .where(OutboundMessage.patient_id == patient_id, OutboundMessage.message_id == "LINK"))


def _run_cases(session, db_url, store_env: dict, label: str, tmp_path):
    clinic = make_clinic(session)
    nurse = make_staff(session, clinic)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, mobile=CANARY_PHONE)
    session.commit()
    logs = log_dir() / f"limits-{label}-{uuid.uuid4().hex[:6]}"
    logs.mkdir()
    procs = Processes(logs)
    env = app_env(db_url, public_base_url="http://127.0.0.1", twilio_url="http://127.0.0.1:9", clock_offset=0.0,
                  LOG_LEVEL="INFO", PROXY_FIX_X_FOR="1", SESSION_COOKIE_NAME="session", SESSION_COOKIE_SECURE="0",
                  LOGIN_IP_RATE_LIMIT="8 per 15 minutes", HASH_WAIT_SECONDS="5", **store_env)
    figures = {}
    try:
        hosts = Hosts(procs, env)
        # 1. correct sign-ins never count
        ok = [hosts.form_post("/login", {"email": nurse.email, "password": PASSWORD}, "198.51.100.1")
              for _ in range(8)]
        assert ok == [303] * 8, ok
        # 2. five wrong passwords per address + email, then 429, whichever worker or host answers
        wrong = [hosts.form_post("/login", {"email": nurse.email, "password": f"wrong-{i}-password"}, "198.51.100.2")
                 for i in range(8)]
        assert wrong == [422] * 5 + [429] * 3, wrong
        # 3. the per-address limit, a new email every time
        spray = [hosts.form_post("/login", {"email": f"guess{i}@example.org", "password": "wrong-password"},
                                 "198.51.100.3") for i in range(10)]
        assert spray == [422] * 8 + [429] * 2, spray
        # 4. ten "text me a new link" for one number: three texts, the same page every time (spread
        # over more than 3 s: two taps within one second are one text anyway)
        links = []
        for i in range(10):
            links.append(hosts.form_post("/new-link", {"mobile": "(202) 555-7731"}, f"198.51.100.{10 + i}"))
            time.sleep(0.4)
        assert links == [200] * 10 and _link_rows(session, patient.id) == 3, (links, _link_rows(session, patient.id))
        # 5. concurrent wrong sign-ins for one address + email: still 5 (both servers share this host's
        # hashing slot, and a failure is counted before the slot is let go)
        with ThreadPoolExecutor(12) as pool:
            burst = list(pool.map(lambda i: hosts.form_post(
                "/login", {"email": nurse.email, "password": f"burst-{i}-password"}, "198.51.100.4"), range(12)))
        counted = burst.count(422)
        assert counted == 5 and set(burst) == {422, 429}, burst
        procs.check_alive()
        figures = {"wrong": wrong.count(422), "spray": spray.count(422), "texts": 3, "burst": counted}
    finally:
        procs.stop()
    text = "\n".join(p.read_text(errors="replace") for p in logs.glob("*.log"))
    assert "exceeded" in text, text[-2000:]  # the limiter did log, and:
    for secret in ("2025557731", "555-7731", "5557731", "198.51.100", nurse.email, "guess1@"):
        assert secret not in text, secret
    print(f"\n[{label}] 2 hosts x {WORKERS} workers: 8/8 correct sign-ins; {figures['wrong']} wrong before 429; "
          f"{figures['spray']} per address before 429; 10 link requests -> {figures['texts']} texts; "
          f"burst of 12 -> {figures['burst']} counted; {len(text.splitlines())} log lines scanned")


def test_default_database_store_holds_across_workers_and_hosts(app, session, db_url, tmp_path):
    _run_cases(session, db_url, {},  # the embedded default: no RATELIMIT_STORAGE_URI at all
               f"database-{db_url.split(':')[0].split('+')[0]}", tmp_path)


def test_redis_store_holds_across_workers_and_hosts(app, session, db_url, tmp_path):
    redis = _redis_or_skip()
    prefix = f"recovery-test-{uuid.uuid4().hex[:10]}"
    try:
        _run_cases(session, db_url, {"RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": prefix},
                   f"redis-{db_url.split(':')[0].split('+')[0]}", tmp_path)
        assert list(redis.scan_iter(match=f"*{prefix}*"))  # the counters were in Redis
    finally:
        for key in redis.scan_iter(match=f"*{prefix}*"):
            redis.delete(key)

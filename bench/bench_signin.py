"""Sign-in under a password-guessing attack (issue 11): how long a plain page (GET /login) takes
while attackers post wrong passwords, printed, never asserted.

Set-up: a migrated SQLite database with one clinic and one nurse, gunicorn with 2 sync workers (as
in the Procfile) on 127.0.0.1 with the default rate-limit storage and `PROXY_FIX_X_FOR=1` (as
behind one reverse proxy), so a request's X-Forwarded-For is its client address.

Figures, each over ATTACK_SECONDS:
1. idle: GET /login p50 / p95 / max, one request at a time;
2. one attacker address, ATTACKERS threads posting wrong passwords, a different email each time:
   GET /login p50 / p95 / max from another address meanwhile, and the attackers' answers by status;
3. ATTACKERS threads each posting from a fresh address every time (a botnet, so no per-address
   limit applies): the same figures, and how a nurse's correct sign-in fares meanwhile.

argon2id (t=3, 64 MiB, p=4) costs tens of milliseconds of both cores per verification; the attack
threads share the 2 cores with gunicorn, so the figures are pessimistic.
"""
from __future__ import annotations

import os
import re
import secrets
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
ATTACKERS = 6
ATTACK_SECONDS = 10.0
NURSE_EMAIL, NURSE_PASSWORD = "bench.nurse@example.org", "bench-signin-password-2026"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(db_url: str) -> None:
    from app import create_app
    from recovery.services.passwords import hash_password
    from recovery.store.db import db
    from recovery.store.models import Clinic, StaffRole, StaffUser
    from flask_migrate import upgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "bench-secret", "ENV_NAME": "bench",
                      "RATELIMIT_ENABLED": False, "SMS_BACKEND": "console"})
    with app.app_context():
        upgrade()
        now = datetime.now(timezone.utc)
        clinic = Clinic(slug="bench", name="Bench Clinic", timezone="America/New_York", template_file=None,
                        emergency_number="911", care_phone="(202) 555-0100", created_at=now)
        db.session.add(clinic)
        db.session.flush()
        db.session.add(StaffUser(clinic_id=clinic.id, email=NURSE_EMAIL, name="Bench Nurse", role=StaffRole.NURSE,
                                 password_hash=hash_password(NURSE_PASSWORD), active=True, created_at=now))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def _form(http: requests.Session, base: str, ip: str) -> str:
    r = http.get(f"{base}/login", headers={"X-Forwarded-For": ip}, timeout=30)
    m = _CSRF.search(r.text)
    if not m:
        raise RuntimeError(f"no CSRF token on /login (HTTP {r.status_code})")
    return m.group(1) or m.group(2)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):6.0f} ms   p95 {p95:6.0f} ms   max {ms[-1]:6.0f} ms   (n={len(ms)})"


def _probe(base: str, seconds: float, ip: str = "198.51.100.200") -> list[float]:
    """GET /login one at a time for `seconds`; each latency."""
    out = []
    http = requests.Session()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        r = http.get(f"{base}/login", headers={"X-Forwarded-For": ip}, timeout=60)
        out.append(time.perf_counter() - t)
        r.raise_for_status()
        time.sleep(0.05)
    return out


def _attack(base: str, seconds: float, *, spread: bool) -> tuple[Counter, list[float], list[int]]:
    """ATTACKERS threads of wrong sign-ins; meanwhile GET /login latencies and a nurse's real sign-ins."""
    stop = time.monotonic() + seconds
    statuses: Counter = Counter()
    lock = threading.Lock()

    def attacker(n: int) -> None:
        http = requests.Session()
        ip = "203.0.113.1"  # one attacker machine, several threads
        token = _form(http, base, ip)
        i = 0
        while time.monotonic() < stop:
            i += 1
            if spread:
                ip = f"10.{n}.{(i >> 8) & 255}.{i & 255}"
            try:
                r = http.post(f"{base}/login", data={"csrf_token": token, "email": f"guess{n}-{i}@example.org",
                                                      "password": f"wrong-password-{i}"},
                              headers={"X-Forwarded-For": ip}, timeout=60, allow_redirects=False)
                code = r.status_code
            except requests.RequestException:
                code = "error"
            with lock:
                statuses[code] += 1

    threads = [threading.Thread(target=attacker, args=(n,), daemon=True) for n in range(ATTACKERS)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # let the attack get going
    probes = _probe(base, max(1.0, seconds - 3.0))
    nurse = []
    if spread:  # the real nurse, from her own address, while the botnet runs
        for _ in range(2):
            http = requests.Session()
            token = _form(http, base, "198.51.100.7")
            r = http.post(f"{base}/login", data={"csrf_token": token, "email": NURSE_EMAIL, "password": NURSE_PASSWORD},
                          headers={"X-Forwarded-For": "198.51.100.7"}, timeout=60, allow_redirects=False)
            nurse.append(r.status_code)
    for t in threads:
        t.join(timeout=90)
    return statuses, probes, nurse


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-signin-") as tmp:
        db_url = f"sqlite:///{tmp}/signin.sqlite"
        _seed(db_url)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        # HASH_* from the caller's environment pass through (e.g. HASH_WAIT_SECONDS=0.3 make bench)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RATELIMIT_", "SMS_", "LOGIN_"))}
        env.update({"DATABASE_URL": db_url, "SECRET_KEY": secrets.token_hex(16), "RECOVERY_ENV": "bench",
                    "SMS_BACKEND": "console", "PROXY_FIX_X_FOR": "1", "LOG_LEVEL": "WARNING",
                    "SESSION_COOKIE_NAME": "session", "SESSION_COOKIE_SECURE": "0"})
        log = Path(tmp) / "gunicorn.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}",
                                     "--timeout", "120", "app:create_app()"], cwd=REPO, env=env,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            end = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"{base}/login", timeout=2)
                    break
                except requests.RequestException:
                    if time.monotonic() > end or proc.poll() is not None:
                        raise RuntimeError("gunicorn did not start:\n" + log.read_text(errors="replace")[-3000:])
                    time.sleep(0.2)
            _probe(base, 1.0)  # warm-up
            print(f"GET /login, idle:                          {_percentiles(_probe(base, 5.0))}")
            statuses, probes, _ = _attack(base, ATTACK_SECONDS, spread=False)
            print(f"GET /login, {ATTACKERS} attackers from one address: {_percentiles(probes)}")
            print(f"    their {sum(statuses.values())} wrong sign-ins answered: "
                  + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)))
            statuses, probes, nurse = _attack(base, ATTACK_SECONDS, spread=True)
            print(f"GET /login, {ATTACKERS} attackers, a new address per try: {_percentiles(probes)}")
            print(f"    their {sum(statuses.values())} wrong sign-ins answered: "
                  + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)))
            print(f"    the nurse's correct sign-ins meanwhile answered: {nurse} (303 = signed in)")
        finally:
            import signal
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)

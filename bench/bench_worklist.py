"""The nurse worklist with 700 open alerts (issue 17), in process, on SQLite and PostgreSQL:

- the full page, a poll that brings no version (the list), and a poll that brings the version it was
  shown while nothing changed (204): CPU per request (process time), server time p50/p95, bytes,
  SQL statements;
- what ten nurses polling every 5 s cost when nothing changes (CPU share of one core, bytes/s).

Targets (printed beside the figures, never asserted): unchanged poll <= 1 ms CPU and <= 1 KB; the
full page with 700 open alerts <= 50 ms server time.

Set-up: 700 patients enrolled through the real use-case, one open alert each (a spread of levels
and ages, a third acknowledged), a nurse signed in through /login.
`python -m bench worklist` (BENCH_WORKLIST_ALERTS=… to change the count)."""
from __future__ import annotations

import logging
import os
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ALERTS = int(os.environ.get("BENCH_WORKLIST_ALERTS", "700"))
REQUESTS = 200
NURSES, POLL_EVERY_S = 10, 5
TARGET_POLL_CPU_MS, TARGET_POLL_KB, TARGET_PAGE_MS = 1.0, 1.0, 50.0
RULES = (["E1"], ["U20"], ["U1"], ["W8"], ["U5"], ["W2"])
POLL_HEADERS = {"HX-Request": "true", "X-Background-Refresh": "1"}


def seed(app, alerts: int) -> str:
    from bench.seeding import BENCH_PASSWORD
    from recovery.services import alerting
    from recovery.files import templates as templates_repo
    from recovery.clock import utcnow
    from recovery.store.db import db
    from recovery.services.enrolment import EnrolmentInput, enrol_patient
    from recovery.store.models import Clinic, Patient, StaffRole, StaffUser
    from recovery.services.passwords import hash_password

    with app.app_context():
        s = db.session
        now = utcnow()
        clinic = Clinic(slug="bench-worklist", name="Bench Clinic", timezone="America/New_York", template_file=None,
                        emergency_number="911", care_phone="(202) 555-0100", created_at=now)
        s.add(clinic)
        s.flush()
        nurse = StaffUser(clinic_id=clinic.id, email="worklist@example.org", name="Bench Nurse",
                          role=StaffRole.NURSE, password_hash=hash_password(BENCH_PASSWORD), active=True,
                          created_at=now)
        s.add(nurse)
        s.flush()
        cfg = app.config
        template = templates_repo.clinic_template(cfg["SCHEDULES_DIR"], None, cfg["DEFAULT_TEMPLATE"])
        for i in range(alerts):
            end = now - timedelta(days=1 + i % 40, hours=i % 7)
            data = EnrolmentInput(first_name=f"Pat{i}", last_name=f"Bench{i}", mobile_e164=f"+1202557{i:04d}",
                                  timezone=clinic.timezone, procedure_type="kyphoplasty", procedure_end=end,
                                  discharge_at=end + timedelta(hours=2), sms_consent=False, baseline_back_pain=6)
            e = enrol_patient(s, clinic=clinic, staff=nurse, data=data, template=template, now=now)
            patient = s.get(Patient, e.patient_id)
            opened = now - timedelta(minutes=3 * (i % 200))
            alert = alerting.raise_rules(s, patient=patient, enrolment=e, rule_ids=RULES[i % len(RULES)],
                                         now=opened)[0]
            if i % 3 == 0:
                alerting.acknowledge(s, alert, nurse, opened + timedelta(minutes=1))
            if i % 100 == 99:
                s.flush()
        s.commit()
        s.remove()
    return "worklist@example.org"


def measure(client, path: str, headers: dict, engine, requests: int = REQUESTS) -> dict:
    from sqlalchemy import event

    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    for _ in range(5):
        client.get(path, headers=headers)  # warm: templates compiled, connection open
    event.listen(engine, "before_cursor_execute", count)
    try:
        r = client.get(path, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    walls, cpu0 = [], time.process_time()
    for _ in range(requests):
        t = time.perf_counter()
        client.get(path, headers=headers)
        walls.append((time.perf_counter() - t) * 1000)
    cpu_ms = (time.process_time() - cpu0) * 1000 / requests
    walls.sort()
    return {"status": r.status_code, "bytes": len(r.data), "statements": len(seen), "cpu_ms": cpu_ms,
            "p50_ms": statistics.median(walls), "p95_ms": walls[int(len(walls) * 0.95) - 1],
            "wire_bytes": wire_bytes(r)}


def wire_bytes(r) -> int:
    """What the response puts on the wire: status line, headers and body (gunicorn adds a Date and
    a Server line, about 60 bytes more)."""
    return (len(f"HTTP/1.1 {r.status}\r\n") + sum(len(k) + len(v) + 4 for k, v in r.headers.items()) + 2
            + len(r.data))


def poll_url(client) -> str:
    """The poller's URL in the list as it is now (the version it shows)."""
    fragment = client.get("/nurse/", headers=POLL_HEADERS).data.decode()
    return re.search(r'<div class="poller"[^>]*hx-get="([^"]+)"', fragment).group(1).replace("&amp;", "&")


def measure_unchanged_poll(client, engine, requests: int = REQUESTS * 5, batch: int = 100) -> dict:
    """The poll that brings the version it shows, in batches that each read the version again (it
    turns with the minute, as the rows' "open for 12 min" do): only 204 answers are counted."""
    cpu = 0.0
    walls: list[float] = []
    first, misses = None, 0
    while len(walls) < requests:
        url = poll_url(client)
        f = measure(client, url, POLL_HEADERS, engine, requests=batch)
        if f["status"] != 204:
            misses += 1  # the minute turned between reading the version and polling: read it again
            if misses > 3:
                raise RuntimeError(f"the unchanged poll answered HTTP {f['status']}, not 204")
            continue
        first = first or f
        cpu += f["cpu_ms"] * batch
        walls += [f["p50_ms"]] * batch
    return {**first, "cpu_ms": cpu / len(walls), "p50_ms": statistics.median(walls)}


def figures(app, alerts: int, requests: int = REQUESTS) -> dict:
    """Seed `alerts` open alerts in a clinic of their own, sign its nurse in, measure."""
    from bench.seeding import BENCH_PASSWORD
    from recovery.store.db import db

    email = seed(app, alerts)
    with app.app_context():
        client = app.test_client()
        r = client.post("/login", data={"email": email, "password": BENCH_PASSWORD})
        if r.status_code not in (302, 303):
            raise RuntimeError(f"nurse sign-in: HTTP {r.status_code}")
        out = {"full page": measure(client, "/nurse/", {}, db.engine, requests),
               "poll, no version (the list)": measure(client, "/nurse/", POLL_HEADERS, db.engine, requests),
               "poll, nothing changed": measure_unchanged_poll(client, db.engine, requests * 5)}
        db.session.remove()
        db.engine.dispose()
    return out


def bare_204_cpu_ms() -> float:
    """The floor for the unchanged poll in the same harness: a bare Flask view answering 204."""
    from flask import Flask

    bare = Flask("bare")
    bare.add_url_rule("/", "poll", lambda: ("", 204))
    client = bare.test_client()
    for _ in range(20):
        client.get("/", headers=POLL_HEADERS)
    cpu0 = time.process_time()
    for _ in range(REQUESTS * 5):
        client.get("/", headers=POLL_HEADERS)
    return (time.process_time() - cpu0) * 1000 / (REQUESTS * 5)


def bench_backend(label: str, url: str) -> list[tuple[str, str, str, bool | None]]:
    from app import create_app
    from tests.support.settings import app_config

    app = create_app(app_config(SQLALCHEMY_DATABASE_URI=url))
    t = time.perf_counter()
    found = figures(app, ALERTS)
    print(f"  {label}: seeded {ALERTS} patients with an open alert each and measured in {time.perf_counter() - t:.0f} s",
          flush=True)
    rows = []
    for name, f in found.items():
        print(f"  {label} {name:28s} HTTP {f['status']}  {f['cpu_ms']:6.2f} ms CPU  p50 {f['p50_ms']:6.1f} ms  "
              f"p95 {f['p95_ms']:6.1f} ms  {f['bytes'] / 1024:6.1f} KB  {f['statements']} SQL")
    quiet, page, full = found["poll, nothing changed"], found["full page"], found["poll, no version (the list)"]
    rows.append((f"{label}: unchanged poll CPU / size (status line, headers, body)",
                 f"{quiet['cpu_ms']:.2f} ms / {quiet['wire_bytes']} B",
                 f"<= {TARGET_POLL_CPU_MS:.0f} ms / <= {TARGET_POLL_KB:.0f} KB",
                 quiet["cpu_ms"] <= TARGET_POLL_CPU_MS and quiet["wire_bytes"] <= TARGET_POLL_KB * 1024))
    rows.append((f"{label}: full page with {ALERTS} open alerts, server time p50 / p95",
                 f"{page['p50_ms']:.0f} / {page['p95_ms']:.0f} ms", f"<= {TARGET_PAGE_MS:.0f} ms",
                 page["p50_ms"] <= TARGET_PAGE_MS))
    per_s = NURSES / POLL_EVERY_S
    rows.append((f"{label}: {NURSES} nurses polling, nothing changed",
                 f"{quiet['cpu_ms'] * per_s / 10:.2f} % of a core, {quiet['wire_bytes'] * per_s / 1024:.2f} KB/s "
                 f"(was {full['cpu_ms'] * per_s / 10:.1f} %, {full['bytes'] * per_s / 1024:.0f} KB/s)", "", None))
    return rows


def run() -> None:
    from tests.support.dbs import PostgresFactory, migrate, pg_available

    for name in ("recovery", "app", "alembic", "flask_migrate"):
        logging.getLogger(name).setLevel(logging.WARNING)
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-worklist-") as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        migrate(sqlite_url)
        rows += bench_backend("SQLite", sqlite_url)
        problem = pg_available()
        if problem is None:
            factory = PostgresFactory()
            pg_url = factory.new()
            try:
                migrate(pg_url)
                rows += bench_backend("PostgreSQL", pg_url)
            finally:
                factory.drop(pg_url)
                factory.close()
        else:
            print(f"(PostgreSQL not reachable: {problem}; its figures are skipped)")
    bare = bare_204_cpu_ms()
    rows.append(("bare Flask view answering 204, same test client (the floor)", f"{bare:.2f} ms CPU", "", None))
    print("\nworklist figures (one run; targets are printed, never asserted):")
    for figure, value, target, met in rows:
        verdict = {True: "met", False: "MISSED", None: "-"}[met]
        print(f"  {figure:66s} {value:52s} {target:28s} {verdict}")

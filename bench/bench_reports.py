"""Clinic dashboard figures (issue 16), printed, never asserted: SQL statements and server time of
GET /nurse/reports (targets: <= 15 statements, < 300 ms) and of a CSV export, for the bench's clinic.

Set-up: a migrated SQLite database (and a PostgreSQL one when a server answers on 127.0.0.1:5432)
seeded through the real use-cases (bench/seeding.py: 500 patients, 5,000 submitted check-ins and the
alerts their answers raise), and a baseline and 6-week PEG per patient. Then, so that every section
has rows to count: the check-in invitations
whose time has passed are marked sent and delivered (the seeding plans them but never runs the
sender), the missed-check-in scan decides up to 2,000 of them (its own audit markers and nurse
tasks), and a nurse acknowledges most open alerts and resolves half of those, at seeded random delays.
Then ANALYZE, as a live database has planner statistics. Server time is measured in process with
Flask's test client (no network), after one warm-up request.
"""
from __future__ import annotations

import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.bench_web import count_statements

PATIENTS, CHECKINS = 500, 5000
REQUESTS = 20
TARGET_STATEMENTS, TARGET_MS = 15, 300.0
SCAN_ROUNDS = 10  # x missed.SCAN_LIMIT (200) slots


def _config(url: str) -> dict:
    from tests.support.settings import app_config
    return app_config(SQLALCHEMY_DATABASE_URI=url)


def _past_invitations(app, s, clinic_id: int, now) -> None:
    """The invitations each patient's plan had before `now`, as sent and delivered rows (enrolment
    plans only texts still to come, and the seeding enrols after the fact).

    Enrolment also plans a text due up to LATE_GRACE (2 h) before `now`, to go at once: that row is
    already there under the same dedupe key, so the keys already planned are skipped."""
    from recovery.files import templates as templates_repo
    from recovery.services.enrolment import timeline_for
    from recovery.store.models import Enrolment, OutboundMessage, OutboxStatus, Patient
    from recovery.store.outbox import new_row

    template = templates_repo.clinic_template(app.config["SCHEDULES_DIR"], None, app.config["DEFAULT_TEMPLATE"])
    planned = set(s.scalars(sa.select(OutboundMessage.dedupe_key).join(
        Enrolment, Enrolment.id == OutboundMessage.enrolment_id).where(Enrolment.clinic_id == clinic_id)))
    for e in s.scalars(sa.select(Enrolment).where(Enrolment.clinic_id == clinic_id)).all():
        patient = s.get(Patient, e.patient_id)
        for c in timeline_for(e, patient, template).checkins:
            at = c.invite.send_at
            if at >= now:
                continue
            row = new_row(enrolment=e, patient_id=patient.id, recipient="patient", message=c.invite, now=at,
                          slot=c.slot)
            if row.dedupe_key in planned:
                continue
            row.status, row.sent_at, row.final_at, row.provider_status = OutboxStatus.DELIVERED, at, at, "delivered"
            s.add(row)
    s.commit()


def _peg_answers(s, clinic_id: int, now, rng) -> None:
    """A baseline and a 6-week PEG for every patient, the 6-week one within the default period, so
    that the PEG figure has 500 pairs to count and take medians of."""
    from recovery.store.models import Enrolment, PegAnswer

    for e in s.scalars(sa.select(Enrolment).where(Enrolment.clinic_id == clinic_id)).all():
        for point, at in (("baseline", e.procedure_end), ("week6", now - timedelta(days=rng.randint(0, 25)))):
            s.add(PegAnswer(enrolment_id=e.id, patient_id=e.patient_id, point=point, pain=rng.randint(0, 10),
                            enjoyment=rng.randint(0, 10), activity=rng.randint(0, 10), source="patient",
                            instrument_version=1, language="en", created_at=at, updated_at=at, completed_at=at))
    s.commit()


def _seed(app, now) -> dict:
    from bench.seeding import seed_large
    from recovery.dispatch.settings import DispatchSettings
    from recovery.services import alerting, missed
    from recovery.store.db import db
    from recovery.store.models import Alert, AlertStatus, OutboundMessage as OM, OutboxStatus, StaffUser

    s = db.session
    t = time.perf_counter()
    seeded = seed_large(s, now=now, patients=PATIENTS, checkins=CHECKINS)
    _past_invitations(app, s, seeded["clinic_id"], now)
    settings = DispatchSettings.from_config(app.config)
    for _ in range(SCAN_ROUNDS):
        missed.scan(s, now, settings)
    rng = random.Random(16)
    nurse = s.scalar(sa.select(StaffUser).where(StaffUser.email == seeded["nurse_email"]))
    for alert in s.scalars(sa.select(Alert).where(Alert.clinic_id == seeded["clinic_id"],
                                                  Alert.status == AlertStatus.OPEN)).all():
        if rng.random() < 0.8:
            ack = min(now, alert.opened_at + timedelta(minutes=rng.randint(2, 600)))
            alerting.acknowledge(s, alert, nurse, ack)
            if rng.random() < 0.5:
                alerting.resolve(s, alert, nurse, min(now, ack + timedelta(minutes=rng.randint(5, 240))),
                                 "called_patient")
    s.commit()
    _peg_answers(s, seeded["clinic_id"], now, rng)
    seeded["alerts"] = s.scalar(sa.select(sa.func.count()).select_from(Alert)
                                .where(Alert.clinic_id == seeded["clinic_id"]))
    seeded["invites_sent"] = s.scalar(sa.select(sa.func.count()).select_from(OM)
                                      .where(OM.kind == "checkin_invite", OM.sent_at.is_not(None)))
    seeded["seconds"] = time.perf_counter() - t
    s.remove()
    # A live database has planner statistics (PostgreSQL's autovacuum, SQLite's optimize): without
    # them, right after a bulk load, PostgreSQL guesses one row per table and nests loops (835 ms).
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return seeded


def _measure(app, seeded) -> dict:
    from bench.seeding import BENCH_PASSWORD
    from recovery.store.db import db

    client = app.test_client()
    r = client.post("/login", data={"email": seeded["nurse_email"], "password": BENCH_PASSWORD})
    if r.status_code not in (302, 303):
        raise RuntimeError(f"nurse sign-in: HTTP {r.status_code}")
    out = {}
    for name, path in (("dashboard", "/nurse/reports"),
                       ("CSV export (missed in a row, audited)", "/nurse/reports/export.csv?table=missed")):
        client.get(path)  # warm: templates compiled, connection open
        with count_statements(db.engine) as seen:
            r = client.get(path)
        if r.status_code != 200:
            raise RuntimeError(f"GET {path}: HTTP {r.status_code}")
        times = []
        for _ in range(REQUESTS):
            t = time.perf_counter()
            client.get(path)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        out[name] = {"statements": len(seen), "bytes": len(r.data), "median": statistics.median(times),
                     "p95": times[int(len(times) * 0.95) - 1], "max": times[-1]}
    return out


def _backend(label: str, url: str, now) -> None:
    from app import create_app
    from flask_migrate import upgrade
    from recovery.store.db import db

    app = create_app(_config(url))
    with app.app_context():
        upgrade()
        seeded = _seed(app, now)
        print(f"  {label}: seeded {seeded['patients']} patients, {seeded['checkins']} check-ins, "
              f"{seeded['alerts']} alerts, {seeded['invites_sent']} invitations sent in {seeded['seconds']:.0f} s",
              flush=True)
        figures = _measure(app, seeded)
        for name, f in figures.items():
            verdict = ("met" if f["statements"] <= TARGET_STATEMENTS and f["median"] < TARGET_MS else "MISSED")
            print(f"  {label}: {name}: {f['statements']} SQL statements (<= {TARGET_STATEMENTS}), server time "
                  f"median {f['median']:.0f} ms, p95 {f['p95']:.0f} ms, max {f['max']:.0f} ms (< {TARGET_MS:.0f} ms) "
                  f"over {REQUESTS} requests, {f['bytes'] / 1024:.1f} KB: {verdict}", flush=True)
        db.session.remove()
        db.engine.dispose()


def run() -> None:
    from recovery.clock import utcnow
    now = utcnow()
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        _backend("SQLite", f"sqlite:///{Path(tmp) / 'reports.sqlite'}", now)
    try:
        from tests.support.dbs import PostgresFactory
        factory = PostgresFactory()
    except Exception as e:  # noqa: BLE001 - no server: the SQLite figures still print
        print(f"  PostgreSQL skipped: {type(e).__name__}: {e}")
        return
    url = factory.new()
    try:
        _backend("PostgreSQL", url, now)
    finally:
        factory.drop(url)
        factory.close()

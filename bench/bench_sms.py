"""SMS sending figures (issue 4):

1. sends per second through the whole pipeline (claim, re-check, render with a fresh link for
   every third text, the real Twilio SDK to Prism, record the SID), pacing off, against a bare
   SDK loop `client.messages.create(...)` to the same Prism. Target: >= 90 % of the bare loop.
2. the time to claim and hand over 10,000 due messages to a gateway that answers at once (the
   pipeline's own cost, no network), and the time to only claim them, on SQLite and, when a
   server answers, PostgreSQL.

Prism and the databases live in a temp dir and are removed afterwards. The app clock is moved to
a weekday afternoon in the patients' zone, so quiet hours never get in the way.
"""
from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from recovery.config import TestConfig
from recovery.messaging import SendResult

UTC = timezone.utc
T = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)  # Tue 10 Mar 2026, 13:00 in New York
ROUNDS = 8
PER_ROUND = 150
HANDOVER = 10_000
FROM = "+15005550006"
BODY = "Hi Maria, please do today's 2-minute recovery check-in: https://recovery.example.org/l/" + "x" * 22  # a 128-bit link token


def _config(url: str, **over) -> dict:
    cfg = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    cfg.update(SQLALCHEMY_DATABASE_URI=url, SMS_MAX_PER_SECOND=0, OUTBOX_BATCH=20, OUTBOX_MAX_PER_TICK=HANDOVER,
               TWILIO_FROM_NUMBER=FROM)
    cfg.update(over)
    return cfg


def _clock():
    started = time.perf_counter()
    return lambda: T + timedelta(seconds=time.perf_counter() - started)


def seed(session, n: int, *, patients: int = 50) -> None:
    """n due rows over `patients` patients; every third one is a check-in invitation with {link}."""
    from recovery.store.models import Clinic, Enrolment, EnrolmentStatus, OutboundMessage, OutboxStatus, Patient

    clinic = Clinic(slug="bench", name="Bench", timezone="America/New_York", emergency_number="911",
                    care_phone="(202) 555-0100", created_at=T)
    session.add(clinic)
    session.flush()
    enrolments = []
    for i in range(patients):
        p = Patient(clinic_id=clinic.id, first_name="Maria", last_name=f"B{i}", mobile_e164=f"+1202558{i:04d}",
                    timezone="America/New_York", sms_consent=True, created_at=T)
        session.add(p)
        session.flush()
        e = Enrolment(patient_id=p.id, clinic_id=clinic.id, procedure_type="kyphoplasty",
                      procedure_end=T - timedelta(days=5), template_id="kyphoplasty", template_version="1",
                      overrides={}, status=EnrolmentStatus.ACTIVE, created_at=T)
        session.add(e)
        session.flush()
        enrolments.append((e.id, p.id))
    rows = []
    for k in range(n):
        eid, pid = enrolments[k % patients]
        invite = k % 3 == 0
        due = T - timedelta(minutes=30) + timedelta(microseconds=k)
        rows.append(dict(
            dedupe_key=f"bench:{k}", enrolment_id=eid, patient_id=pid, recipient="patient",
            message_id="S06" if invite else "S09", occurrence_key=f"bench:{k}", slot=f"day{k}" if invite else None,
            kind="checkin_invite" if invite else "reminder", urgent=False,
            text_template=("Hi {first}, please do today's 2-minute recovery check-in: {link}" if invite else
                           "{first}, short walks help. Start with about 5 minutes at a time and build up a little "
                           "each day."),
            due_at=due, send_after=due, status=OutboxStatus.PLANNED, attempts=0, created_at=T, updated_at=T))
    for i in range(0, n, 2000):
        session.execute(sa.insert(OutboundMessage), rows[i:i + 2000])
    session.commit()


class BareLoop:
    """messages.create in a plain loop, through the same HTTP client class the app uses."""

    def __init__(self, prism_url: str):
        from twilio.rest import Client

        from recovery.messaging.twilio_gateway import LocalMockHttpClient
        from tests.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN

        self.client = Client(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, http_client=LocalMockHttpClient(prism_url, timeout=10))
        self.sent = 0
        self.send(10)  # warm up: lazy imports, the keep-alive connection

    def send(self, n: int) -> tuple[float, float]:
        """(sends/s, CPU ms per send)."""
        cpu, started = time.process_time(), time.perf_counter()
        for _ in range(n):
            self.sent += 1
            self.client.messages.create(to="+12025580001", from_=FROM, body=BODY,
                                        status_callback=f"https://recovery.example.org/twilio/status?ob={self.sent}")
        return n / (time.perf_counter() - started), 1000 * (time.process_time() - cpu) / n


class Pipeline:
    """The dispatcher (claim, re-check, render, TwilioGateway + SDK, record) on a seeded SQLite
    database, pacing off, `concurrency` texts in flight."""

    def __init__(self, db_url: str, prism_url: str, total: int, concurrency: int):
        from app import create_app
        from recovery.dispatch.sender import send_due
        from recovery.dispatch.settings import DispatchSettings
        from recovery.messaging.factory import build_gateway
        from recovery.store.db import db

        self.send_due, self.db = send_due, db
        self.app = create_app(_config(db_url, SMS_BACKEND="twilio", TWILIO_API_BASE_URL=prism_url,
                                      SMS_SEND_CONCURRENCY=concurrency))
        with self.app.app_context():
            seed(db.session, total)
            self.gateway = build_gateway(self.app.config)
            self.settings = DispatchSettings.from_config(self.app.config)
        self.clock = _clock()
        self.send(10)  # warm up

    def send(self, n: int) -> tuple[float, float]:
        with self.app.app_context():
            cpu, started = time.process_time(), time.perf_counter()
            report = self.send_due(self.db.session, self.gateway, self.settings, clock=self.clock, max_rows=n)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            assert report.sent == n, report
        return n / elapsed, 1000 * cpu / n

    def close(self) -> None:
        with self.app.app_context():
            self.db.session.remove()
            self.db.engine.dispose()


class HandOver:
    """A gateway that accepts at once: what is left is the pipeline's own cost."""

    def __init__(self):
        self.count = 0

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        self.count += 1
        return SendResult(provider_id=f"SM{self.count:032x}", status="queued")


def ten_thousand(db_url: str, *, claim_only: bool, concurrency: int = 1) -> tuple[float, int]:
    from app import create_app
    from recovery.dispatch.claims import claim_due
    from recovery.dispatch.sender import send_due
    from recovery.dispatch.settings import DispatchSettings
    from recovery.store.db import db

    app = create_app(_config(db_url, SMS_SEND_CONCURRENCY=concurrency))
    with app.app_context():
        seed(db.session, HANDOVER)
        settings = DispatchSettings.from_config(app.config)
        clock = _clock()
        started = time.perf_counter()
        if claim_only:
            done = 0
            while True:
                claims = claim_due(db.session, clock(), settings)
                if not claims:
                    break
                done += len(claims)
        else:
            gateway = HandOver()
            report = send_due(db.session, gateway, settings, clock=clock, max_rows=HANDOVER)
            done = gateway.count
            assert report.sent == HANDOVER, report
        elapsed = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return elapsed, done


def run() -> None:
    from tests.support.dbs import PostgresFactory, SqliteFactory, pg_available
    from tests.twilio.prism import start_prism

    for name in ("recovery", "app", "alembic", "twilio"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-sms-") as tmp:
        tmp_path = Path(tmp)
        sqlite = SqliteFactory(tmp_path)
        prism = start_prism(tmp_path / "prism.log")
        urls = [sqlite.new(), sqlite.new()]
        try:
            bare = BareLoop(prism.url)
            seq = Pipeline(urls[0], prism.url, ROUNDS * PER_ROUND + 20, concurrency=1)
            par = Pipeline(urls[1], prism.url, ROUNDS * PER_ROUND + 20, concurrency=4)
            figures: dict[str, list[tuple[float, float]]] = {"bare": [], "seq": [], "par": []}
            for _ in range(ROUNDS):  # short interleaved rounds: each ratio compares the same moment
                figures["bare"].append(bare.send(PER_ROUND))
                figures["seq"].append(seq.send(PER_ROUND))
                figures["par"].append(par.send(PER_ROUND))
            seq.close()
            par.close()
        finally:
            prism.stop()
            for url in urls:
                sqlite.drop(url)
        b = [r for r, _ in figures["bare"]]
        print(f"SDK -> Prism: {ROUNDS} interleaved rounds of {PER_ROUND} sends each (median over rounds):")
        print(f"  bare SDK loop, one request at a time: {statistics.median(b):6.1f} sends/s, "
              f"client CPU {statistics.median(c for _, c in figures['bare']):.2f} ms/send   [{_fmt(b)}]")
        for key, label in (("seq", "dispatcher, SQLite, 1 in flight"), ("par", "dispatcher, SQLite, 4 in flight")):
            rates = [r for r, _ in figures[key]]
            ratios = [r / x for r, x in zip(rates, b)]
            print(f"  {label}: {statistics.median(rates):6.1f} sends/s, "
                  f"CPU {statistics.median(c for _, c in figures[key]):.2f} ms/send   [{_fmt(rates)}]"
                  f"  = {statistics.median(ratios):4.0%} of the bare loop (rounds {min(ratios):.0%}-{max(ratios):.0%})")
        print("  (target >= 90 %; pacing off; every third text gets a fresh link; "
              f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")

        backends = [("SQLite", sqlite)]
        problem = pg_available()
        if problem is None:
            backends.append(("PostgreSQL", PostgresFactory()))
        else:
            print(f"(PostgreSQL not reachable: {problem}; its figures are skipped)")
        print(f"{HANDOVER:,} due messages (gateway answers at once):")
        for label, factory in backends:
            url = factory.new()
            claim_s, claimed = ten_thousand(url, claim_only=True)
            factory.drop(url)
            print(f"  {label:10s} claim only, batches of 20: {claim_s:6.2f} s ({claimed / claim_s:6.0f}/s)")
            for concurrency in (1, 4):
                url = factory.new()
                hand_s, handed = ten_thousand(url, claim_only=False, concurrency=concurrency)
                factory.drop(url)
                print(f"  {label:10s} claim + re-check + render + hand over + record, {concurrency} in flight: "
                      f"{hand_s:6.2f} s ({handed / hand_s:5.0f}/s)")
            if label == "PostgreSQL":
                factory.close()


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)

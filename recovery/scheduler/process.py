"""`flask --app app scheduler`: the one process that sends texts (APScheduler 3, BlockingScheduler).

It runs a single interval job, the tick (recovery.scheduler.tick): recover expired claims, claim and
send due outbox rows, close missed check-ins (M1-M3, M6), escalate unacknowledged alerts. No
patient message is ever an APScheduler job and nothing is kept in a job store: the outbox table is
the state, so a restart, a second scheduler by mistake or an hour of downtime loses and doubles
nothing (reliability.md §1-2). Never started inside a web worker.

`--once` runs one tick and exits (tests, cron).
"""
from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timezone

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from recovery.clock import utcnow
from recovery.dispatch.settings import DispatchSettings
from recovery.messaging import SmsGateway
from recovery.scheduler.tick import TickReport, tick
from recovery.store.db import db

log = logging.getLogger("recovery.scheduler")

JOB_ID = "outbox-tick"

_settings_lock = threading.Lock()


def settings_for(app: Flask) -> DispatchSettings:
    with _settings_lock:
        settings = app.extensions.get("dispatch_settings")
        if settings is None:
            settings = app.extensions["dispatch_settings"] = DispatchSettings.from_config(app.config)
        return settings


class Ticker:
    """What the interval job calls. Remembers when the missed scan last ran (per process)."""

    def __init__(self, app: Flask, gateway: SmsGateway | None = None):
        self.app = app
        self.gateway = gateway
        self._last_scan: float | None = None

    def __call__(self, now: datetime | None = None) -> TickReport:
        import time as _time

        with self.app.app_context():
            from recovery.messaging.factory import gateway as default_gateway

            # The missed-check-in scan needs minutes, not seconds: at most every MISSED_SCAN_SECONDS.
            scan_every = float(self.app.config["MISSED_SCAN_SECONDS"])
            mono = _time.monotonic()
            scan = self._last_scan is None or mono - self._last_scan >= scan_every
            try:
                report = tick(db.session, self.gateway or default_gateway(), now or utcnow(),
                                       settings_for(self.app), clock=None if now else utcnow, scan_missed=scan)
            finally:
                db.session.remove()
            if scan and not any(step == "missed" for step, _ in report.errors):
                self._last_scan = mono
            if report.send.claimed or report.errors or report.missed or report.escalated or report.expired:
                log.info(report.summary())
            return report


def run_tick(app: Flask, gateway: SmsGateway | None = None, now: datetime | None = None) -> TickReport:
    """One tick, in its own app context (what `--once` does)."""
    return Ticker(app, gateway)(now)


@click.command()
@click.option("--once", is_flag=True, help="Run one tick and exit (tests, cron).")
@with_appcontext
def scheduler_command(once: bool) -> None:
    """Send due texts, close missed check-ins and escalate alerts, every SCHEDULER_TICK_SECONDS."""
    app = current_app._get_current_object()
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # no line per tick
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)  # no request dump per text
    settings = settings_for(app)
    if once:
        report = run_tick(app)
        click.echo(report.summary())
        if report.errors:
            raise SystemExit(1)
        return

    from apscheduler.schedulers.blocking import BlockingScheduler

    ticker = Ticker(app)
    scheduler = BlockingScheduler(timezone=timezone.utc)
    scheduler.add_job(ticker, "interval", seconds=settings.tick_seconds, id=JOB_ID, replace_existing=True,
                      coalesce=True, max_instances=1, misfire_grace_time=None,
                      next_run_time=datetime.now(timezone.utc))

    def stop(signum, frame):  # SIGTERM from honcho/systemd: finish the running tick, then exit
        log.info("scheduler stopping (signal %d)", signum)
        threading.Thread(target=scheduler.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    log.info("scheduler %s started: tick every %.1f s, pacing %s msg/s per sender, lease %d s",
             settings.worker_id, settings.tick_seconds,
             f"{settings.max_per_second:g}" if settings.pacing else "off", settings.lease.total_seconds())
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass

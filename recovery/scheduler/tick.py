"""One scheduler tick: recover expired claims, send what is due, close missed check-ins, escalate
unacknowledged alerts; each step in its own short transaction(s), so a failing step never stops
the next."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.orm import Session

from recovery.dispatch.claims import recover_expired

from recovery.dispatch.sender import SendReport, send_due

from recovery.dispatch.settings import DispatchSettings
from recovery.messaging import SmsGateway
from recovery.services import alerting, missed
from recovery.store.db import write_unit
from recovery.store.models import Alert, AlertStatus

log = logging.getLogger("recovery.scheduler")


@dataclass
class TickReport:
    expired: int = 0
    send: SendReport = field(default_factory=SendReport)
    missed: int = 0
    escalated: int = 0
    errors: list[tuple[str, BaseException]] = field(default_factory=list)

    def summary(self) -> str:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.send.outcomes.items())) or "nothing due"
        text = (f"tick: claimed {self.send.claimed} ({outcomes}); expired claims {self.expired}; "
                f"missed check-in tasks {self.missed}; escalations {self.escalated}")
        if self.errors:
            text += "; FAILED steps: " + ", ".join(f"{step} ({type(e).__name__})" for step, e in self.errors)
        return text


def tick(session: Session, gateway: SmsGateway, now: datetime, settings: DispatchSettings, *,
         clock: Callable[[], datetime] | None = None, sleep: Callable[[float], None] = time.sleep,
         scan_missed: bool = True) -> TickReport:
    """One scheduler tick. Each step runs in its own short transaction(s); a failing step is
    logged (its exception type only: SQL errors can carry phone numbers) and the next runs.

    `now` is when the tick started; `clock` gives the time for later steps (the scheduler passes
    the wall clock; tests leave it out, so the whole tick happens at `now`)."""
    clock = clock or (lambda: now)
    report = TickReport()
    plain = session() if isinstance(session, so.scoped_session) else session
    if plain.in_transaction():
        session.commit()  # the tick owns the session: start from a clean slate
    steps: list[tuple[str, Callable[[], None]]] = [
        ("recover", lambda: setattr(report, "expired", recover_expired(session, now, settings))),
        ("send", lambda: setattr(report, "send", send_due(session, gateway, settings, clock=clock, sleep=sleep))),
        ("escalate", lambda: setattr(report, "escalated", escalate(session, clock()))),
    ]
    if scan_missed:
        steps.insert(2, ("missed", lambda: setattr(report, "missed", missed.scan(session, clock(), settings))))
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001
            session.rollback()
            report.errors.append((name, exc))
            log.error("scheduler tick step %r failed: %s", name, type(exc).__name__)
    return report


def escalate(session: Session, now: datetime) -> int:
    """Page the next on-call rung for overdue alerts (one process at a time)."""
    due = session.scalar(sa.select(Alert.id).where(Alert.status == AlertStatus.OPEN,
                                                   Alert.next_escalation_at <= now).limit(1))
    session.commit()
    if due is None:
        return 0
    with write_unit(session, lock="alert-escalation"):
        return alerting.escalate_due(session, now)

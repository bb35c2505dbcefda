"""The send loop: claim, prepare, send with no transaction open, record; texts in flight overlap."""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import sqlalchemy.orm as so
from sqlalchemy.orm import Session

from recovery.dispatch.claims import Claim, claim_due
from recovery.dispatch.prepare import NotSent, Prepared, SendContext, prepare, prepare_batch
from recovery.dispatch.results import record_error, record_sent
from recovery.dispatch.settings import DispatchSettings
from recovery.messaging import SendError, SmsGateway, mask_number

log = logging.getLogger("recovery.dispatch")


@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome == "sent":
            self.sent += 1


def deliver(session: Session, gateway: SmsGateway, claim: Claim | Prepared | NotSent, ctx: SendContext,
            clock: Callable[[], datetime], sleep: Callable[[float], None]) -> str:
    """Re-check and render (unless the batch did already), wait for the pacing slot, send,
    record. No transaction is open during the provider call."""
    prepared = prepare(session, claim.id, clock(), ctx) if isinstance(claim, Claim) else claim
    if isinstance(prepared, NotSent):
        return prepared.reason
    if ctx.settings.pacing:
        wait = (prepared.slot - clock()).total_seconds()
        if wait > 0:
            sleep(wait)
    try:
        # The clinic's own sender only when it has one: gateways that know one sender keep working.
        own = {"sender": prepared.sender} if prepared.sender is not None else {}
        result = gateway.send(to=prepared.to, body=prepared.body, status_callback=prepared.status_callback, **own)
    except SendError as err:
        outcome = record_error(session, prepared.id, err, clock(), ctx.settings)
        log.warning("%s (row %d) to %s not sent: %s -> %s", prepared.message_id, prepared.id,
                    mask_number(prepared.to), err, outcome)
        return outcome
    except Exception as exc:  # noqa: BLE001 - a gateway bug must not kill the loop; never log its text
        log.error("%s (row %d): gateway raised %s; will retry", prepared.message_id, prepared.id,
                  type(exc).__name__)
        return record_error(session, prepared.id, SendError("retryable", may_have_sent=True,
                                                            reason="unexpected gateway error"),
                            clock(), ctx.settings)
    record_sent(session, prepared.id, result, clock(), ctx.settings)
    log.info("sent %s (row %d) to %s", prepared.message_id, prepared.id, mask_number(prepared.to))
    return "sent"


def send_due(session: Session, gateway: SmsGateway, settings: DispatchSettings, *, clock: Callable[[], datetime],
             sleep: Callable[[float], None] = time.sleep, max_rows: int | None = None) -> SendReport:
    """Claim and send due rows until none are left, `max_rows` were claimed, or (with pacing) one
    tick's worth of time was used.

    The loop works in its own sessions on the same engine (one per sender thread, at most
    `send_concurrency` texts in flight): the caller's session and objects are left alone, and the
    identity map never grows with the rows sent. With more than one thread the provider calls
    overlap each other and the database work of the other threads; on SQLite that database work
    still happens one writer at a time."""
    plain = session() if isinstance(session, so.scoped_session) else session
    if plain.in_transaction():
        plain.commit()  # a caller's open transaction must not hold the write lock we need
    factory = so.sessionmaker(bind=plain.get_bind(), expire_on_commit=False)
    ctx = SendContext(settings)
    report = SendReport()
    limit = settings.max_per_tick if max_rows is None else max_rows
    started = time.monotonic()
    local = threading.local()
    opened: list[Session] = []
    opened_lock = threading.Lock()

    def work(claim: Claim | Prepared | NotSent) -> str:
        own = getattr(local, "session", None)
        if own is None:
            own = local.session = factory()
            with opened_lock:
                opened.append(own)
        try:
            return deliver(own, gateway, claim, ctx, clock, sleep)
        finally:
            own.expunge_all()

    def next_batch() -> list[Claim | Prepared | NotSent]:
        claims = claim_due(claimer, clock(), settings, min(settings.claim_size(), limit - report.claimed))
        report.claimed += len(claims)
        # Without pacing the whole batch is re-checked at once, milliseconds before its sends;
        # with pacing each row is re-checked when its turn comes (and takes its slot then).
        items = claims if settings.pacing or not claims else prepare_batch(claimer, [c.id for c in claims], clock(), ctx)
        claimer.expunge_all()
        return items

    def out_of_time() -> bool:
        return settings.pacing and time.monotonic() - started >= settings.tick_seconds

    claimer = factory()
    try:
        # Opt-in confirmations first, one by one: carriers want each to be the first text its number
        # gets, and the texts behind it (held while it is pending) then go in this same tick.
        while report.claimed < limit and not out_of_time():
            claims = claim_due(claimer, clock(), settings, min(settings.claim_size(), limit - report.claimed),
                               only_opt_ins=True)
            claimer.expunge_all()
            if not claims:
                break
            report.claimed += len(claims)
            for claim in claims:
                report.count(work(claim))
        if settings.send_concurrency == 1:
            while report.claimed < limit and not out_of_time():
                items = next_batch()
                if not items:
                    break
                for item in items:
                    report.count(work(item))
            return report
        # Several in flight: the next batch is claimed while the current one is still sending.
        with ThreadPoolExecutor(max_workers=settings.send_concurrency, thread_name_prefix="sms-send") as pool:
            pending: set = set()
            more = True
            while True:
                while more and len(pending) < 2 * settings.send_concurrency:
                    items = next_batch() if report.claimed < limit and not out_of_time() else []
                    more = bool(items)
                    pending |= {pool.submit(work, item) for item in items}
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    report.count(future.result())
        return report
    finally:
        claimer.close()
        for own in opened:
            own.close()

"""Claiming due outbox rows under a lease, reserving send slots (pacing), and taking back expired claims."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.dispatch.outcomes import fail_row
from recovery.dispatch.settings import DispatchSettings
from recovery.store import outbox
from recovery.store.db import is_sqlite, write_unit
from recovery.store.models import OutboundMessage, OutboxStatus

log = logging.getLogger("recovery.dispatch")
OM = OutboundMessage
UTC = timezone.utc


# The opt-in confirmation (CTIA) is the first text a number gets: other texts to that recipient
# wait (OPT_IN_WAIT at a time) until it has gone.
OPT_IN_REF, OPT_IN_WAIT = ":" + outbox.OPT_IN_REF, timedelta(seconds=30)


@dataclass(frozen=True)
class Claim:
    id: int


def _claimable(now: datetime):
    return sa.or_(
        sa.and_(OM.status == OutboxStatus.PLANNED, OM.send_after <= now),
        sa.and_(OM.status == OutboxStatus.CLAIMED, OM.lease_until <= now, OM.provider_sid.is_(None)))


def claim_due(session: Session, now: datetime, settings: DispatchSettings, limit: int | None = None,
              only_opt_ins: bool = False) -> list[Claim]:
    """Claim up to `limit` due rows for this process (one committed transaction), urgent first.
    `only_opt_ins`: just the opt-in confirmations (sent before anything else in a tick)."""
    limit = settings.claim_size() if limit is None else limit
    due_now = sa.and_(_claimable(now), OM.occurrence_key.like("%" + OPT_IN_REF)) if only_opt_ins else _claimable(now)
    # An idle scheduler only reads: the write lock is taken when there is something to claim.
    due = session.scalar(sa.select(OM.id).where(due_now).limit(1))
    session.commit()
    if due is None:
        return []
    with write_unit(session):
        pick = (sa.select(OM.id).where(due_now)
                .order_by(OM.urgent.desc(), OM.send_after, OM.id).limit(limit))
        if not is_sqlite(session):
            pick = pick.with_for_update(skip_locked=True)
        rows = session.execute(
            sa.update(OM).where(OM.id.in_(pick.scalar_subquery()), _claimable(now))
            .values(status=OutboxStatus.CLAIMED, claimed_by=settings.worker_id, body=None,
                    lease_until=now + settings.lease, attempts=OM.attempts + 1, updated_at=now)
            .returning(OM.id, OM.urgent, OM.send_after)
            .execution_options(synchronize_session=False)).all()
        rows.sort(key=lambda r: (not r.urgent, r.send_after, r.id))
        return [Claim(r.id) for r in rows]


def reserve_slot(session: Session, row: OutboundMessage, now: datetime, settings: DispatchSettings) -> datetime:
    """The pacing slot for a row about to be sent: at least 1/rate after the latest slot any
    process has taken for this sender. Call inside the transaction holding the pacing lock."""
    interval = timedelta(seconds=1 / settings.max_per_second)
    # A claimed row has a slot once it is rendered (the claim clears the body); sent rows keep theirs.
    taken = sa.or_(OM.status.in_((OutboxStatus.SENT, OutboxStatus.DELIVERED, OutboxStatus.UNDELIVERED,
                                  OutboxStatus.FAILED)),
                   sa.and_(OM.status == OutboxStatus.CLAIMED, OM.body.is_not(None)))
    last = session.scalar(sa.select(sa.func.max(OM.send_after)).where(
        taken, OM.send_after > now - interval, OM.id != row.id))
    slot = now if last is None else max(now, _aware(last) + interval)
    row.send_after = slot
    row.lease_until = max(_aware(row.lease_until), slot + settings.lease) if row.lease_until else slot + settings.lease
    return slot


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def recover_expired(session: Session, now: datetime, settings: DispatchSettings) -> int:
    """Claims whose lease ran out: with attempts left they are simply claimable again (see
    `_claimable`); a row that has used up its attempts this way (a worker keeps dying on it) is
    failed and a nurse task opened. Returns the number of expired claims seen."""
    if session.scalar(sa.select(OM.id).where(OM.status == OutboxStatus.CLAIMED, OM.lease_until <= now,
                                             OM.provider_sid.is_(None)).limit(1)) is None:
        session.commit()
        return 0
    with write_unit(session):
        expired = session.scalars(sa.select(OM).where(
            OM.status == OutboxStatus.CLAIMED, OM.lease_until <= now, OM.provider_sid.is_(None))
            .order_by(OM.id).limit(500)).all()
        for row in expired:
            if row.attempts >= settings.max_attempts:
                fail_row(session, row, now, reason="attempts_exhausted", code=None)
        if expired:
            log.warning("%d expired outbox claims found (a sender stopped mid-send); they are retried",
                        len(expired))
        return len(expired)

"""Sending the outbox: claim due rows under a lease, re-check them, render, send, record the result.
Plus delivery status callbacks and the scheduler `tick` that drives it all.

The outbox table is the single source of truth (reliability.md §2): the scheduler can be
restarted, run twice, or be down for an hour, and every due row is still sent, once.

* Claim. One short write transaction takes up to `batch` due rows: status planned → claimed,
  claimed_by = this process, lease_until = send slot + lease, attempts + 1. SQLite: BEGIN
  IMMEDIATE (one writer at a time, so nothing else holds the rows). PostgreSQL: the id sub-select
  is `FOR UPDATE SKIP LOCKED` on this one table, and the UPDATE re-checks the state. A claimed row
  whose lease ran out and that has no provider SID is claimable again; the only duplicate window
  is a crash between the provider's 201 and storing the SID, narrowed further because the status
  callback URL carries the row id (`?ob=<id>`), so the first callback ties the SID to the row.
* Re-check just before sending (its own transaction): consent and opt-out of the recipient, the
  number not marked invalid, the enrolment still active, the text still wanted (check-in already
  done → cancelled; alert already acknowledged → staff page cancelled), not stale (STALE_AFTER),
  quiet hours for non-urgent texts (released and moved to the next 08:00, never sent; for the
  plan's safety texts, `row.safety`, quiet hours start at the template's safety_start, 23:00),
  and the recipient's opt-in confirmation S00 gone first (carriers want it to be the first text a
  number gets: each tick sends those before anything else; see _opt_in_hold for what may wait).
  Then the body is rendered with a fresh link token (only its SHA-256 is stored; the stored body
  shows "[link]" in its place) and its SMS segments and encoding are stored on the row.
* Send with NO transaction open, then record the SID (or the error) in a new short transaction.
* Status only moves forward: planned → claimed → sent → delivered/undelivered/failed; suppressed
  and cancelled are final. A claim is released back to planned only when nothing was sent (quiet
  hours, or a retryable error whose request never reached the provider).

Pacing (SMS_MAX_PER_SECOND per sender, across processes): the re-check transaction just before a
send also reserves the send slot. It holds the pacing lock (SQLite's single writer; a PostgreSQL
advisory lock per sender), takes the slot 1/rate after the latest slot any process has taken
(stored in that row's `send_after`), commits, sleeps until the slot and sends. Slots are spaced
exactly; a send can only be later than its slot by the sleep's overshoot and the HTTP latency
(milliseconds), so in any one-second window there are at most rate + 1 sends. A tick claims at
most rate x tick seconds rows, so no process sits on more than it can send.

Staleness (a text is suppressed, not sent, when this much later than its planned send time, which
is its due time after quiet hours, or when the row was planned if that came later): 12 h for every
patient text. A check-in invitation or reminder 12 h late belongs to a day that
is over; an advice text 12 h late is about the wrong part of the day. An outage of an hour
sends everything; a scheduler down overnight does not fire yesterday's texts at breakfast.
Staff pages never go stale while their alert is still unacknowledged.
"""
from __future__ import annotations

import logging
import math
import os
import random
import secrets
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from datetime import time as dt_time
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.orm import Session

from recovery.domain import sms_encoding, texts
from recovery.files import templates as templates_repo
from recovery.messaging import MAX_ATTEMPTS, SendError, SendResult, error_kind, mask_number, retry_delay
from recovery.services import alerting
from recovery.store import audit, outbox
from recovery.store.db import UTCDateTime, is_sqlite, locked_row, write_unit
from recovery.store.models import (Alert, AlertStatus, AuditEvent, Checkin, Clinic, Enrolment, EnrolmentStatus,
                             OutboundMessage, OutboxStatus, Patient, SmsConversation, StaffUser)
from recovery.domain.plan import parse_clock
from recovery.domain.timeline import local_to_utc, next_allowed_send
from recovery.services.sessions import issue_link

log = logging.getLogger("recovery.dispatch")

OM = OutboundMessage
UTC = timezone.utc

STALE_AFTER: dict[str, timedelta] = {
    "checkin_invite": timedelta(hours=12),
    "checkin_reminder": timedelta(hours=12),
    "reminder": timedelta(hours=12),
    "event_reply": timedelta(hours=12),
}
# Event replies whose {link} opens an ad hoc check-in (S22 "check in again", S23 "re-measure").
CHECKIN_LINK_REPLIES = frozenset({"S22", "S23"})
CHECKIN_KINDS = frozenset({"checkin_invite", "checkin_reminder"})
# After a timeout the provider may have accepted the text: wait for its status callback (which
# ties the SID to the row through ?ob=) before trying again.
MAY_HAVE_SENT_MIN_DELAY = timedelta(seconds=120)
LINK_PLACEHOLDER_STORED = "[link]"
# The opt-in confirmation (CTIA) is the first text a number gets: other texts to that recipient
# wait (OPT_IN_WAIT at a time) until it has gone.
OPT_IN_REF, OPT_IN_WAIT = ":" + outbox.OPT_IN_REF, timedelta(seconds=30)
# The one reply to an opt-out in the patient's own words; the FCC allows one within 5 minutes.
OPT_OUT_REPLY_REF, OPT_OUT_REPLY_WITHIN = ":" + outbox.OPT_OUT_REF, timedelta(minutes=5)

FINAL = frozenset({OutboxStatus.DELIVERED, OutboxStatus.UNDELIVERED, OutboxStatus.FAILED,
                   OutboxStatus.SUPPRESSED, OutboxStatus.CANCELLED})
OUTBOX_RANK = {OutboxStatus.PLANNED: 0, OutboxStatus.CLAIMED: 1, OutboxStatus.SENT: 2,
               OutboxStatus.DELIVERED: 3, OutboxStatus.UNDELIVERED: 3, OutboxStatus.FAILED: 3,
               OutboxStatus.SUPPRESSED: 3, OutboxStatus.CANCELLED: 3}
# Twilio MessageStatus → (rank, outbox status). Callbacks can arrive out of order: only a higher
# rank changes anything. Unknown statuses are tolerated and ignored.
PROVIDER_STATUS: dict[str, tuple[int, OutboxStatus]] = {
    "accepted": (1, OutboxStatus.SENT), "scheduled": (1, OutboxStatus.SENT), "queued": (1, OutboxStatus.SENT),
    "sending": (2, OutboxStatus.SENT), "sent": (3, OutboxStatus.SENT),
    "delivered": (4, OutboxStatus.DELIVERED), "partially_delivered": (4, OutboxStatus.DELIVERED),
    "undelivered": (4, OutboxStatus.UNDELIVERED), "failed": (4, OutboxStatus.FAILED),
    "canceled": (4, OutboxStatus.FAILED), "read": (5, OutboxStatus.DELIVERED),
}

_PROCESS_ID = f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(3)}"


def process_id() -> str:
    """This process's claim owner id (host:pid:random), new after a fork."""
    global _PROCESS_ID
    if f":{os.getpid()}:" not in _PROCESS_ID:
        _PROCESS_ID = f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(3)}"
    return _PROCESS_ID


@dataclass(frozen=True)
class DispatchSettings:
    public_base_url: str
    schedules_dir: str
    worker_id: str = field(default_factory=process_id)
    lease: timedelta = timedelta(seconds=300)
    batch: int = 20
    max_per_second: float = 1.0  # per sender; 0 turns pacing off
    sender: str = "default"  # the pacing key: the From number or Messaging Service
    tick_seconds: float = 5.0
    max_per_tick: int = 500
    max_attempts: int = MAX_ATTEMPTS
    send_concurrency: int = 4  # texts in flight at once (provider calls overlap)
    checkin_link_ttl: timedelta = timedelta(hours=24)
    today_link_ttl: timedelta = timedelta(hours=72)
    reply_window: timedelta = timedelta(hours=24)  # how long an SMS check-in conversation stays open
    quiet_hours: tuple[str, str] = ("21:00", "08:00")  # when a row has no template to ask
    safety_quiet_start: str = "23:00"  # safety texts without a template to ask: quiet from then to 08:00
    rng: Any = field(default_factory=random.SystemRandom, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **over: Any) -> DispatchSettings:
        values = dict(
            public_base_url=str(config["PUBLIC_BASE_URL"]).rstrip("/"),
            schedules_dir=str(config["SCHEDULES_DIR"]),
            lease=timedelta(seconds=float(config.get("OUTBOX_LEASE_SECONDS", 300))),
            batch=int(config.get("OUTBOX_BATCH", 20)),
            max_per_second=float(config.get("SMS_MAX_PER_SECOND", 1)),
            sender=str(config.get("TWILIO_FROM_NUMBER") or config.get("TWILIO_MESSAGING_SERVICE_SID")
                       or config.get("SMS_BACKEND", "default")),
            tick_seconds=float(config.get("SCHEDULER_TICK_SECONDS", 5)),
            max_per_tick=int(config.get("OUTBOX_MAX_PER_TICK", 500)),
            send_concurrency=int(config.get("SMS_SEND_CONCURRENCY", 4)),
            checkin_link_ttl=timedelta(hours=float(config.get("CHECKIN_LINK_HOURS", 24))),
            today_link_ttl=timedelta(hours=float(config.get("TODAY_LINK_HOURS", 72))),
            reply_window=timedelta(hours=float(config.get("SMS_REPLY_HOURS", 24))),
            quiet_hours=tuple(config.get("QUIET_HOURS", ("21:00", "08:00"))),
        )
        values.update(over)
        settings = cls(**values)
        if settings.max_per_second < 0 or not math.isfinite(settings.max_per_second):
            raise ValueError(f"SMS_MAX_PER_SECOND must be a number >= 0 (0 = no pacing), "
                             f"not {settings.max_per_second!r}")
        if settings.batch < 1:
            raise ValueError(f"OUTBOX_BATCH must be at least 1, not {settings.batch!r}")
        if settings.send_concurrency < 1:
            raise ValueError(f"SMS_SEND_CONCURRENCY must be at least 1, not {settings.send_concurrency!r}")
        if settings.lease <= timedelta(0):
            raise ValueError("OUTBOX_LEASE_SECONDS must be more than 0")
        return settings

    @property
    def pacing(self) -> bool:
        return self.max_per_second > 0

    def claim_size(self) -> int:
        if not self.pacing:
            return self.batch
        return max(1, min(self.batch, math.ceil(self.max_per_second * self.tick_seconds)))


# ---------------------------------------------------------------------------------------------
# Claiming
# ---------------------------------------------------------------------------------------------

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
                _fail(session, row, now, reason="attempts_exhausted", code=None)
        if expired:
            log.warning("%d expired outbox claims found (a sender stopped mid-send); they are retried",
                        len(expired))
        return len(expired)


# ---------------------------------------------------------------------------------------------
# Re-check and render
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    id: int
    to: str
    body: str
    status_callback: str
    message_id: str
    slot: datetime  # pacing: not before this


_plan_cache: dict[tuple, tuple] = {}
_plan_lock = threading.Lock()


class _Context:
    """Per-run caches: clinic contact details, and per template its quiet hours and the name texts
    give the sender (a template id and version never change content: a new version is a new file,
    so that cache lives longer)."""

    def __init__(self, settings: DispatchSettings):
        self.settings = settings
        self._clinics: dict[int, tuple[str, str, str | None]] = {}

    def _clinic(self, session: Session, clinic_id: int) -> tuple[str, str, str | None]:
        if clinic_id not in self._clinics:
            clinic = session.get(Clinic, clinic_id)
            self._clinics[clinic_id] = (clinic.emergency_number, clinic.care_phone, clinic.template_file)
        return self._clinics[clinic_id]

    def contact(self, session: Session, clinic_id: int) -> tuple[str, str]:
        """({emerg}, {phone}) of a clinic."""
        return self._clinic(session, clinic_id)[:2]

    def _plan(self, session: Session, enrolment: Enrolment | None) -> tuple | None:
        """(quiet hours, safety quiet hours, {clinic} name) of the enrolment's template, or None
        when there is no template to ask."""
        if enrolment is None:
            return None
        s = self.settings
        template_file = self._clinic(session, enrolment.clinic_id)[2]
        key = (s.schedules_dir, enrolment.template_id, enrolment.template_version, template_file)
        with _plan_lock:
            cached = _plan_cache.get(key)
        if cached is None:
            try:
                t = templates_repo.find_template(s.schedules_dir, enrolment.template_id,
                                                 enrolment.template_version, template_file)
            except LookupError:
                log.error("enrolment %d: template %s v%s not found; default quiet hours used", enrolment.id,
                          enrolment.template_id, enrolment.template_version)
                return None
            cached = (t.quiet_hours, t.safety_quiet_hours, t.sms_name)
            with _plan_lock:
                _plan_cache[key] = cached
        return cached

    def quiet_hours(self, session: Session, enrolment: Enrolment | None, *, safety: bool = False) -> tuple:
        """The template's quiet hours; for a safety text (row.safety) the ones that start at its
        safety_start (23:00) instead."""
        found = self._plan(session, enrolment)
        if found is None:
            s = self.settings
            return (s.safety_quiet_start, s.quiet_hours[1]) if safety else s.quiet_hours
        return found[1] if safety else found[0]

    def sms_name(self, session: Session, enrolment: Enrolment | None) -> str:
        found = self._plan(session, enrolment)
        return found[2] if found else ""


def _recipient_problem(row: OutboundMessage, patient: Patient | None, staff: StaffUser | None) -> str | None:
    """Why this recipient must not be texted now (a suppression reason), or None."""
    if row.recipient == "staff":
        if staff is None or not staff.active or not staff.mobile_e164:
            return "staff_unreachable"
        return None
    if patient is None:
        return "no_patient"
    if row.recipient == "patient":
        if not patient.sms_consent:
            return "no_consent"
        if patient.sms_opted_out and not _opt_out_reply(row):
            return "opted_out"
        if patient.number_status != "ok":
            return "number_invalid"
        return None
    if row.recipient == "caregiver":
        if not patient.caregiver_mobile_e164 or not patient.caregiver_consent:
            return "no_consent"
        if patient.caregiver_opted_out and not _opt_out_reply(row):
            return "opted_out"
        if "{link}" in row.text_template:
            # A caregiver gets copies, never a key to the patient's own pages.
            return "caregiver_no_link"
        return None
    return "unknown_recipient"


def _opt_out_reply(row: OutboundMessage) -> bool:
    """The one confirmation of an opt-out in the patient's own words (carriers send their own after
    the keyword STOP): planned in the same transaction as the opt-out, sent within
    OPT_OUT_REPLY_WITHIN or never (see the staleness check)."""
    return row.kind == "event_reply" and row.occurrence_key.endswith(OPT_OUT_REPLY_REF)


def _first_name(row: OutboundMessage, patient: Patient | None, staff: StaffUser | None) -> str:
    if row.recipient == "staff":
        return (staff.name.split() or [""])[0] if staff else ""
    if row.recipient == "caregiver" and row.kind == "event_reply" and patient.caregiver_name:
        # A reply to the caregiver's own text greets the caregiver; copies of reminders keep the
        # patient's name so the caregiver knows whom they are about.
        return patient.caregiver_name.split()[0]
    return patient.first_name


def _finish(session: Session, row: OutboundMessage, status: OutboxStatus, reason: str, now: datetime) -> None:
    row.status, row.status_reason, row.updated_at, row.final_at = status, reason, now, now
    row.claimed_by, row.lease_until = None, None
    audit.record(session, at=now, actor_type="system", actor_id=None,
                 action="sms_cancelled" if status == OutboxStatus.CANCELLED else "sms_suppressed",
                 patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                 detail={"message": row.message_id, "recipient": row.recipient, "reason": reason})


def _release(row: OutboundMessage, send_after: datetime, reason: str, now: datetime, *, attempt_made: bool) -> None:
    """Back to planned without having sent anything (quiet hours, retry later)."""
    row.status, row.status_reason, row.send_after, row.updated_at = OutboxStatus.PLANNED, reason, send_after, now
    row.claimed_by, row.lease_until = None, None
    if not attempt_made:
        row.attempts = max(0, row.attempts - 1)


def _load(session: Session, ids: list[int]) -> list[tuple[OutboundMessage, Patient | None, Enrolment | None]]:
    """Claimed rows with their patient and enrolment, fresh, in one statement (rows locked on PG)."""
    stmt = (sa.select(OM, Patient, Enrolment)
            .outerjoin(Patient, Patient.id == OM.patient_id)
            .outerjoin(Enrolment, Enrolment.id == OM.enrolment_id)
            .where(OM.id.in_(ids)).order_by(OM.id).execution_options(populate_existing=True))
    if not is_sqlite(session):
        stmt = stmt.with_for_update(of=OM)
    return [tuple(r) for r in session.execute(stmt).all()]


def _done_slots(session: Session, rows: list[OutboundMessage]) -> set[tuple[int, str]]:
    """(enrolment, slot) pairs among these rows' check-in slots that already have a submitted check-in."""
    wanted = {(r.enrolment_id, r.slot) for r in rows if r.kind in CHECKIN_KINDS and r.slot and r.enrolment_id}
    if not wanted:
        return set()
    found = session.execute(sa.select(Checkin.enrolment_id, Checkin.slot).where(
        Checkin.enrolment_id.in_({e for e, _ in wanted}), Checkin.slot.in_({s for _, s in wanted}),
        Checkin.status == "submitted")).all()
    return {(e, s) for e, s in found} & wanted


def _waiting_for_opt_in(session: Session, rows: list[OutboundMessage]) -> set[tuple[int, str]]:
    """(enrolment, recipient) pairs among these rows whose opt-in confirmation has not gone yet:
    carriers want it to be the first text a number gets."""
    wanted = {(r.enrolment_id, r.recipient) for r in rows
              if r.enrolment_id and r.recipient != "staff" and not r.occurrence_key.endswith(OPT_IN_REF)}
    if not wanted:
        return set()
    found = session.execute(sa.select(OM.enrolment_id, OM.recipient).where(
        OM.enrolment_id.in_({e for e, _ in wanted}), OM.occurrence_key.like("%" + OPT_IN_REF),
        OM.status.in_((OutboxStatus.PLANNED, OutboxStatus.CLAIMED)))).all()
    return {(e, r) for e, r in found} & wanted


def prepare(session: Session, row_id: int, now: datetime, ctx: _Context) -> Prepared | str:
    """Re-check one claimed row and render it (commits). Returns what to send, or why not."""
    return prepare_batch(session, [row_id], now, ctx)[0]


def prepare_batch(session: Session, ids: list[int], now: datetime, ctx: _Context) -> list[Prepared | str]:
    """Re-check and render claimed rows in one transaction, in the order of `ids`. With pacing on,
    the same transaction reserves each row's send slot (see the module docstring)."""
    s = ctx.settings
    with write_unit(session, lock=f"outbox-pacing:{s.sender}" if s.pacing else None):
        loaded = {r[0].id: r for r in _load(session, ids)}
        done = _done_slots(session, [r[0] for r in loaded.values()])
        waiting = _waiting_for_opt_in(session, [r[0] for r in loaded.values()])
        out: list[Prepared | str] = []
        for row_id in ids:
            found = loaded.get(row_id)
            if found is None or found[0].status != OutboxStatus.CLAIMED or found[0].claimed_by != s.worker_id:
                out.append("lost_claim")
                continue
            out.append(_check_and_render(session, *found, now=now, ctx=ctx, done=done, waiting=waiting))
        return out


def _check_and_render(session: Session, row: OutboundMessage, patient: Patient | None, enrolment: Enrolment | None,
                      *, now: datetime, ctx: _Context, done: set[tuple[int, str]],
                      waiting: set[tuple[int, str]] = frozenset()) -> Prepared | str:
    s = ctx.settings
    staff = session.get(StaffUser, row.staff_id) if row.staff_id else None
    problem = _recipient_problem(row, patient, staff)
    if problem:
        _finish(session, row, OutboxStatus.SUPPRESSED, problem, now)
        return problem
    if enrolment is not None and enrolment.status != EnrolmentStatus.ACTIVE:
        _finish(session, row, OutboxStatus.CANCELLED, "enrolment_ended", now)
        return "enrolment_ended"
    if row.recipient == "staff":
        alert = session.get(Alert, row.alert_id) if row.alert_id else None
        if alert is not None and alert.status != AlertStatus.OPEN:
            _finish(session, row, OutboxStatus.CANCELLED, "alert_acknowledged", now)
            return "alert_acknowledged"
    elif (row.enrolment_id, row.slot) in done:
        _finish(session, row, OutboxStatus.CANCELLED, "checkin_done", now)
        return "checkin_done"
    if row.recipient != "staff":
        tz = ZoneInfo(patient.timezone)
        quiet = ctx.quiet_hours(session, enrolment, safety=row.safety)
        # Late counts from when the text could first go: its due time, or when it was planned if
        # that was later (a late enrolment sends a due safety text at once).
        first_chance = max(row.due_at, row.created_at)
        planned = first_chance if row.urgent else next_allowed_send(first_chance, tz, quiet)
        if row.status_reason == "quiet_hours":
            # Deferred by quiet hours earlier: late only from the end of that quiet period.
            planned = max(planned, last_quiet_end(now, tz, quiet))
        stale_after = STALE_AFTER.get(row.kind)
        if row.occurrence_key.endswith(OPT_OUT_REPLY_REF):
            stale_after = OPT_OUT_REPLY_WITHIN
        if stale_after is not None and now - planned > stale_after:
            _finish(session, row, OutboxStatus.SUPPRESSED, "stale", now)
            return "stale"
        if not row.urgent:
            allowed = next_allowed_send(now, tz, quiet)
            if allowed > now:
                _release(row, allowed, "quiet_hours", now, attempt_made=False)
                return "quiet_hours"
        if (row.enrolment_id, row.recipient) in waiting and not row.occurrence_key.endswith(OPT_IN_REF):
            hold = _opt_in_hold(row, now, tz, quiet, s)
            if hold is not None:
                _release(row, now + hold, "after_opt_in", now, attempt_made=False)
                return "after_opt_in"
    try:
        body, stored = _render(session, row, patient, staff, now, ctx, enrolment)
    except ValueError:
        _fail(session, row, now, reason="render_error", code=None)
        log.error("outbox row %d (%s): its text template cannot be rendered", row.id, row.message_id)
        return "render_error"
    row.body, row.updated_at = stored, now
    size = sms_encoding.count(body)
    row.segments, row.encoding = size.count, size.encoding
    if size.count > 1:  # still sent (a safety text must not be dropped), but it costs and may split
        log.warning("%s (row %d) is %d %s units: %d SMS segments", row.message_id, row.id, size.units,
                    size.encoding, size.count)
    slot = reserve_slot(session, row, now, s) if s.pacing else now
    to = staff.mobile_e164 if row.recipient == "staff" else (
        patient.caregiver_mobile_e164 if row.recipient == "caregiver" else patient.mobile_e164)
    return Prepared(id=row.id, to=to, body=body, message_id=row.message_id, slot=slot,
                    status_callback=f"{s.public_base_url}/twilio/status?ob={row.id}")


def _opt_in_hold(row: OutboundMessage, now: datetime, tz: ZoneInfo, quiet: tuple,
                 s: DispatchSettings) -> timedelta | None:
    """How long a text waits for its recipient's opt-in confirmation, still pending (a retry,
    another process), or None: send it now. A routine text waits OPT_IN_WAIT at a time. A text that
    must not wait (a safety text such as S01 "tonight", an urgent reply) waits once, for one tick,
    and not at all when that would take it into its quiet hours (S01 at 22:59 must not go at 08:00)."""
    if not (row.safety or row.urgent):
        return OPT_IN_WAIT
    if row.status_reason == "after_opt_in":
        return None
    hold = min(OPT_IN_WAIT, timedelta(seconds=s.tick_seconds))
    if not row.urgent and next_allowed_send(now + hold, tz, quiet) > now + hold:
        return None
    return hold


def last_quiet_end(now: datetime, tz: ZoneInfo, quiet: tuple) -> datetime:
    """The most recent end of quiet hours (08:00 local) at or before `now`."""
    end = quiet[1] if isinstance(quiet[1], dt_time) else parse_clock(quiet[1])
    local = now.astimezone(tz)
    candidate = local_to_utc(local.date(), end, tz)
    return candidate if candidate <= now else local_to_utc(local.date() - timedelta(days=1), end, tz)


def _render(session: Session, row: OutboundMessage, patient: Patient | None, staff: StaffUser | None,
            now: datetime, ctx: _Context, enrolment: Enrolment | None = None) -> tuple[str, str]:
    """(body to send, body to store): the stored one has the link token replaced by [link]."""
    s = ctx.settings
    link = stored_link = ""
    if "{link}" in row.text_template:
        if row.recipient == "staff":
            link = stored_link = f"{s.public_base_url}/nurse/"
        else:
            if row.kind in CHECKIN_KINDS:
                purpose, slot, ttl = "checkin", row.slot, s.checkin_link_ttl
            elif row.message_id in CHECKIN_LINK_REPLIES:
                purpose, slot, ttl = "checkin", None, s.checkin_link_ttl
            else:
                purpose, slot, ttl = "today", None, s.today_link_ttl
            token = issue_link(session, patient, purpose, now, ttl, checkin_slot=slot)
            link = f"{s.public_base_url}/l/{token}"
            stored_link = f"{s.public_base_url}/l/{LINK_PLACEHOLDER_STORED}"
    emerg, phone = ctx.contact(session, patient.clinic_id) if patient is not None else ("", "")
    first = _first_name(row, patient, staff)
    clinic = ctx.sms_name(session, enrolment) if "{clinic}" in row.text_template else ""
    body = texts.render(row.text_template, first=first, link=link, emerg=emerg, phone=phone, clinic=clinic)
    stored = texts.render(row.text_template, first=first, link=stored_link, emerg=emerg, phone=phone,
                          clinic=clinic)
    return body, stored


def preview(session: Session, row: OutboundMessage, public_base_url: str) -> str:
    """A planned text as it will read, with its link shown as stored ([link]); issues no link."""
    patient = session.get(Patient, row.patient_id) if row.patient_id else None
    staff = session.get(StaffUser, row.staff_id) if row.staff_id else None
    clinic = session.get(Clinic, patient.clinic_id) if patient is not None else None
    link = f"{public_base_url.rstrip('/')}/l/{LINK_PLACEHOLDER_STORED}"
    return texts.render(row.text_template, first=_first_name(row, patient, staff), link=link,
                        emerg=clinic.emergency_number if clinic else "", phone=clinic.care_phone if clinic else "")


# ---------------------------------------------------------------------------------------------
# Recording results
# ---------------------------------------------------------------------------------------------

def _provider_rank(status: str | None) -> int:
    return PROVIDER_STATUS.get((status or "").lower(), (0, None))[0]


# The hot path of every send, as plain SQL (portable SQLite >= 3.35 / PostgreSQL): SQLAlchemy walks
# a constructed statement for its cache key on every execution, which cost more than the UPDATE.
_RECORD_SENT = sa.text(
    "UPDATE outbound_message SET"
    " provider_sid = COALESCE(provider_sid, :sid),"
    " status = CASE WHEN status IN ('planned', 'claimed') THEN 'sent' ELSE status END,"
    " provider_status = CASE WHEN provider_status IS NULL OR provider_status IN :lower"
    "   THEN :provider_status ELSE provider_status END,"
    " sent_at = COALESCE(sent_at, :sent_at), lease_until = NULL, updated_at = :now, error_code = NULL"
    " WHERE id = :row_id"
    " RETURNING patient_id, message_id, recipient, kind, attempts, slot, provider_sid"
).bindparams(sa.bindparam("lower", expanding=True), sa.bindparam("sent_at", type_=UTCDateTime()),
             sa.bindparam("now", type_=UTCDateTime()))
_AUDIT = sa.insert(AuditEvent.__table__)  # Core, not the slower ORM bulk-insert path
_OPEN_CONVERSATION = sa.text(
    "UPDATE sms_conversation SET state = 'awaiting_pain', slot = :slot, checkin_id = NULL, reprompted = :no,"
    " updated_at = :now, expires_at = :expires"
    " WHERE patient_id = :pid"
    " AND NOT (slot IS NOT NULL AND slot = :slot AND state = 'awaiting_redflag' AND expires_at > :now)"
).bindparams(sa.bindparam("now", type_=UTCDateTime()), sa.bindparam("expires", type_=UTCDateTime()),
             sa.bindparam("no", type_=sa.Boolean()))


def _audit_row(session: Session, *, at: datetime, action: str, patient_id: int | None, subject_id: int,
               detail: dict, actor_type: str = "system") -> None:
    """audit.record for the send hot path: the same append-only row, as one Core INSERT."""
    session.execute(_AUDIT, dict(at=at, actor_type=actor_type, actor_id=None, action=action, patient_id=patient_id,
                                 subject_type="outbound_message", subject_id=subject_id, detail=detail,
                                 request_id=None))


def record_sent(session: Session, row_id: int, result: SendResult, now: datetime, settings: DispatchSettings) -> None:
    """Store the provider's SID and initial status (one UPDATE ... RETURNING), never moving the
    row backwards: a status callback may have got there first."""
    rank = _provider_rank(result.status)
    lower = [name for name, (r, _) in PROVIDER_STATUS.items() if r < rank] or ["-"]
    with write_unit(session):
        got = session.execute(_RECORD_SENT, dict(row_id=row_id, sid=result.provider_id, lower=lower,
                                                 provider_status=result.status, sent_at=now, now=now)).one()
        if got.provider_sid != result.provider_id:
            _audit_row(session, at=now, action="sms_duplicate_suspected", patient_id=got.patient_id,
                       subject_id=row_id, detail={"message": got.message_id})
        _audit_row(session, at=now, action="sms_sent", patient_id=got.patient_id, subject_id=row_id,
                   detail={"message": got.message_id, "recipient": got.recipient, "kind": got.kind,
                           "attempt": got.attempts})
        if got.recipient == "patient" and got.kind in CHECKIN_KINDS and got.slot:
            open_conversation(session, got.patient_id, got.slot, now, settings.reply_window)


def open_conversation(session: Session, patient_id: int, slot: str, now: datetime, window: timedelta) -> None:
    """After a check-in invitation or reminder went out, a reply 0-10 is that slot's pain score.
    A red-flag question already pending for the same slot is left alone."""
    params = dict(pid=patient_id, slot=slot, now=now, expires=now + window, no=False)
    if session.execute(_OPEN_CONVERSATION, params).rowcount:
        return
    if session.scalar(sa.select(SmsConversation.id).where(SmsConversation.patient_id == patient_id)) is not None:
        return  # a red-flag question for this slot is pending: leave it
    try:
        with session.begin_nested():
            session.add(SmsConversation(patient_id=patient_id, state="awaiting_pain", slot=slot, checkin_id=None,
                                        reprompted=False, updated_at=now, expires_at=now + window))
            session.flush()
    except sa.exc.IntegrityError:  # another process opened it first: take it over
        session.execute(_OPEN_CONVERSATION, params)


def record_error(session: Session, row_id: int, err: SendError, now: datetime, settings: DispatchSettings) -> str:
    """Act on a refused send by its kind. Returns the outcome."""
    with write_unit(session):
        row = locked_row(session, OM, row_id)
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        row.error_code = str(err.code) if err.code is not None else row.error_code
        if err.kind == "invalid_number":
            if patient is not None and row.recipient == "patient":
                mark_number_invalid(session, patient, now, code=err.code)
            _fail(session, row, now, reason="invalid_number", code=err.code)
            return "invalid_number"
        if err.kind == "opted_out":
            if patient is not None:
                mark_opted_out(session, patient, row.recipient, now, source="provider_21610")
            _finish(session, row, OutboxStatus.SUPPRESSED, "opted_out", now)
            return "opted_out"
        if err.kind == "retryable":
            delay = retry_delay(err, row.attempts, rng=settings.rng, max_attempts=settings.max_attempts)
            if delay is not None:
                wait = timedelta(seconds=delay)
                if err.may_have_sent:
                    wait = max(wait, MAY_HAVE_SENT_MIN_DELAY)
                _release(row, now + wait, "retry", now, attempt_made=True)
                return "retry"
            _fail(session, row, now, reason="retries_exhausted", code=err.code)
            return "failed"
        _fail(session, row, now, reason="provider_error", code=err.code)
        return "failed"


def _fail(session: Session, row: OutboundMessage, now: datetime, *, reason: str, code: int | str | None) -> None:
    row.status, row.status_reason, row.updated_at, row.final_at = OutboxStatus.FAILED, reason, now, now
    row.lease_until = None
    if code is not None:
        row.error_code = str(code)
    audit.record(session, at=now, actor_type="system", actor_id=None, action="sms_failed",
                 patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                 detail={"message": row.message_id, "recipient": row.recipient, "reason": reason,
                         "code": row.error_code})
    delivery_task(session, row, now)


# ---------------------------------------------------------------------------------------------
# Patient-level consequences (also used by the webhooks)
# ---------------------------------------------------------------------------------------------

def active_enrolment(session: Session, patient: Patient) -> Enrolment | None:
    return session.scalar(sa.select(Enrolment).where(Enrolment.patient_id == patient.id,
                                                     Enrolment.status == EnrolmentStatus.ACTIVE)
                          .order_by(Enrolment.id.desc()).limit(1))


def latest_enrolment(session: Session, patient: Patient) -> Enrolment | None:
    return session.scalar(sa.select(Enrolment).where(Enrolment.patient_id == patient.id)
                          .order_by(Enrolment.id.desc()).limit(1))


def recovery_day(enrolment: Enrolment, patient: Patient, now: datetime) -> int:
    tz = ZoneInfo(patient.timezone)
    return (now.astimezone(tz).date() - enrolment.procedure_end.astimezone(tz).date()).days


def delivery_task(session: Session, row: OutboundMessage, now: datetime) -> None:
    """A text to the patient or caregiver that did not go through: nurse task M4, or M4e (URGENT)
    for the patient's own texts on days 0-2 (protocol §3.5). Staff pages only get the audit row."""
    if row.recipient not in ("patient", "caregiver") or row.patient_id is None:
        return
    patient = session.get(Patient, row.patient_id)
    enrolment = session.get(Enrolment, row.enrolment_id) if row.enrolment_id else active_enrolment(session, patient)
    rule = "M4"
    if row.recipient == "patient" and enrolment is not None and recovery_day(enrolment, patient, now) <= 2:
        rule = "M4e"
    alerting.raise_rules(session, patient=patient, enrolment=enrolment, rule_ids=[rule], now=now,
                         source="sms_delivery")


def mark_number_invalid(session: Session, patient: Patient, now: datetime, code: int | str | None) -> None:
    if patient.number_status == "invalid":
        return
    patient.number_status = "invalid"
    audit.record(session, at=now, actor_type="system", actor_id=None, action="sms_number_invalid",
                 patient_id=patient.id, subject_type="patient", subject_id=patient.id,
                 detail={"code": str(code) if code is not None else None})


def mark_opted_out(session: Session, patient: Patient, recipient: str, now: datetime, source: str) -> bool:
    """Record an opt-out of the patient's or the caregiver's number. Monitoring goes on: a patient's
    opt-out opens an URGENT task to arrange phone follow-up (M5). Returns True when it changed."""
    if recipient == "caregiver":
        if patient.caregiver_opted_out:
            return False
        patient.caregiver_opted_out = True
    else:
        if patient.sms_opted_out:
            return False
        patient.sms_opted_out = True
    by_sender = source in ("sms_keyword", "sms_words")  # the patient's own text, as a keyword or in words
    audit.record(session, at=now, actor_type=(recipient if by_sender else "system"),
                 actor_id=patient.id if by_sender else None, action="sms_opted_out",
                 patient_id=patient.id, subject_type="patient", subject_id=patient.id,
                 detail={"who": recipient, "source": source})
    if recipient != "caregiver":
        alerting.raise_rules(session, patient=patient, enrolment=active_enrolment(session, patient),
                             rule_ids=["M5"], now=now, source=source)
    return True


# ---------------------------------------------------------------------------------------------
# Status callbacks
# ---------------------------------------------------------------------------------------------

def apply_status(session: Session, *, outbox_id: int | None, sid: str | None, status: str | None,
                 error_code: str | None, now: datetime) -> str:
    """Apply one delivery status callback inside the caller's transaction. Idempotent and
    monotonic: a replay or a late, lower status changes nothing. Returns what happened."""
    status = (status or "").strip().lower()
    row = locked_row(session, OM, outbox_id) if outbox_id is not None else None
    if row is not None and sid and row.provider_sid and row.provider_sid != sid:
        # The callback of an earlier attempt whose SID we never stored: that attempt went out too.
        audit.record(session, at=now, actor_type="twilio", actor_id=None, action="sms_duplicate_suspected",
                     patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                     detail={"message": row.message_id, "status": status})
        return "duplicate"
    if row is None and sid:
        row = session.scalar(sa.select(OM).where(OM.provider_sid == sid).limit(1))
        if row is not None:
            row = locked_row(session, OM, row.id)
    if row is None:
        return "unknown"
    if status not in PROVIDER_STATUS:
        return "ignored"
    rank, target = PROVIDER_STATUS[status]
    changed = moved = False
    # A final state we reached without ever hearing from the provider (failed after a timeout,
    # suppressed after a release) yields to the provider's word about that very text.
    local_verdict = (row.sent_at is None and row.provider_status is None
                     and row.status in (OutboxStatus.FAILED, OutboxStatus.SUPPRESSED, OutboxStatus.CANCELLED))
    if row.provider_sid is None and sid:
        # The send went through although we never stored its SID (a crash, or a timeout being
        # retried): tie it to the row now, so the row is never sent again.
        row.provider_sid, changed = sid, True
    if rank > _provider_rank(row.provider_status):
        row.provider_status, changed = status, True
    forward = (row.status not in (OutboxStatus.SUPPRESSED, OutboxStatus.CANCELLED)
               and OUTBOX_RANK[target] > OUTBOX_RANK[row.status])
    if (forward or (local_verdict and sid)) and row.status != target:
        row.status, moved, changed = target, True, True
        row.lease_until = None  # claimed_by stays: which process sent it
        row.sent_at = row.sent_at or now
        if target in FINAL:
            row.final_at = now
    if not changed:
        return "unchanged"
    row.updated_at = now
    if moved and target in (OutboxStatus.UNDELIVERED, OutboxStatus.FAILED):
        row.error_code = (error_code or "").strip()[:16] or row.error_code
        row.status_reason = "provider_" + status
        audit.record(session, at=now, actor_type="twilio", actor_id=None, action="sms_failed",
                     patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                     detail={"message": row.message_id, "recipient": row.recipient, "status": status,
                             "code": row.error_code})
        code = int(row.error_code) if (row.error_code or "").isdigit() else None
        if row.recipient == "patient" and error_kind(code, None) == "invalid_number" and row.patient_id:
            mark_number_invalid(session, session.get(Patient, row.patient_id), now, code)
        delivery_task(session, row, now)
    elif moved and target == OutboxStatus.DELIVERED:
        audit.record(session, at=now, actor_type="twilio", actor_id=None, action="sms_delivered",
                     patient_id=row.patient_id, subject_type="outbound_message", subject_id=row.id,
                     detail={"message": row.message_id, "recipient": row.recipient})
    return "updated"


# ---------------------------------------------------------------------------------------------
# The send loop and the tick
# ---------------------------------------------------------------------------------------------

@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome == "sent":
            self.sent += 1


def deliver(session: Session, gateway, claim: Claim | Prepared | str, ctx: _Context,
            clock: Callable[[], datetime], sleep: Callable[[float], None]) -> str:
    """Re-check and render (unless the batch did already), wait for the pacing slot, send,
    record. No transaction is open during the provider call."""
    prepared = prepare(session, claim.id, clock(), ctx) if isinstance(claim, Claim) else claim
    if not isinstance(prepared, Prepared):
        return prepared
    if ctx.settings.pacing:
        wait = (prepared.slot - clock()).total_seconds()
        if wait > 0:
            sleep(wait)
    try:
        result = gateway.send(to=prepared.to, body=prepared.body, status_callback=prepared.status_callback)
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


def send_due(session: Session, gateway, settings: DispatchSettings, *, clock: Callable[[], datetime],
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
    ctx = _Context(settings)
    report = SendReport()
    limit = settings.max_per_tick if max_rows is None else max_rows
    started = time.monotonic()
    local = threading.local()
    opened: list[Session] = []
    opened_lock = threading.Lock()

    def work(claim: Claim | Prepared | str) -> str:
        own = getattr(local, "session", None)
        if own is None:
            own = local.session = factory()
            with opened_lock:
                opened.append(own)
        try:
            return deliver(own, gateway, claim, ctx, clock, sleep)
        finally:
            own.expunge_all()

    def next_batch() -> list[Claim | Prepared | str]:
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

"""Property-based test of the outbox through the real send pipeline (issue 7, reliability.md goal 2.7):
random interleavings of planned texts, scheduler ticks by several processes (some of which die
after claiming, or after the provider accepted a text but before its SID was stored), provider
errors of every kind, lease expiry, recovery, delivery status callbacks in any order (replays, junk
statuses, with and without the ?ob= row id), STOP and START texts, and clock moves across quiet hours.

The provider is modelled: every text it accepts gets a SID and a fixed life (queued → sending → sent
→ delivered [→ read] | undelivered | failed); callbacks are drawn from that life in any order.

Invariants, checked after every step:
1. No status moves backwards. Rank: planned/claimed 0 < sent 1 < final 2 (delivered, undelivered,
   failed, suppressed, cancelled). Claimed → planned only as a release (quiet hours, retry); sent
   only ends delivered/undelivered/failed; a final status never changes, except that a verdict we
   reached without the provider's word (failed/suppressed/cancelled with no sent_at) yields to the
   provider's callback about a send of that row, once.
2. A stored provider SID never changes, and a row with a stored SID is never sent again.
3. Nothing is handed to the provider for a patient who opted out (STOP, or Twilio's 21610) before
   the tick, nor a non-urgent text in quiet hours; a STOP suppresses the patient's due planned rows at
   once. (Rows of an opted-out patient are still claimed, then suppressed by the re-check in the same
   tick: the claim query does not look at patients.)
4. Callbacks in any order end in the right state: a row holding SID s shows s's provider verdict
   (delivered/undelivered/failed) once any final-rank callback of s arrived, and `sent` before.
5. attempts never exceeds max_attempts; a row left claimed by a dead process is sent, failed or
   suppressed by a later tick (never stuck), which the final step drives to the end.
"""
from __future__ import annotations

import os

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from recovery.dispatch.claims import claim_due, recover_expired
from recovery.dispatch.outcomes import PROVIDER_STATUS
from recovery.dispatch.settings import DispatchSettings
from recovery.dispatch.status import apply_status
from recovery.domain.timeline import PlannedMessage
from recovery.messaging import SendError, SendResult
from recovery.scheduler.tick import tick
from recovery.services import inbound
from recovery.store.models import OutboundMessage, OutboxStatus
from recovery.store.outbox import add_if_new, new_row
from tests.support.factories import enrol, make_clinic

OM = OutboundMessage
S = OutboxStatus
NY = ZoneInfo("America/New_York")
START = datetime(2026, 3, 10, 17, 30, tzinfo=NY)  # Tue afternoon: quiet hours (21:00) a few long steps away
LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 3
FINAL = {S.DELIVERED, S.UNDELIVERED, S.FAILED, S.SUPPRESSED, S.CANCELLED}
LOCAL_VERDICTS = {S.FAILED, S.SUPPRESSED, S.CANCELLED}
PROVIDER_FINAL = {S.DELIVERED, S.UNDELIVERED, S.FAILED}


def rank(status: OutboxStatus) -> int:
    return 0 if status in (S.PLANNED, S.CLAIMED) else 1 if status == S.SENT else 2


# What the provider does with one send: accept it, refuse it (each SendError kind), or accept it
# while the sending process dies before it can store the SID, or die before the request leaves.
OUTCOMES = ["ok", "die_after_accept", "timeout_accepted", "timeout_lost", "throttled", "invalid_number",
            "opted_out", "permanent", "die_before_send", "die_after_accept", "timeout_accepted"]
ERRORS = {
    "timeout_accepted": SendError("retryable", reason="read timeout", may_have_sent=True),
    "timeout_lost": SendError("retryable", reason="read timeout", may_have_sent=True),
    "throttled": SendError("retryable", code=20429, http_status=429, retry_after=30),
    "invalid_number": SendError("invalid_number", code=21211, http_status=400),
    "opted_out": SendError("opted_out", code=21610, http_status=400),
    "permanent": SendError("permanent", code=21602, http_status=400),
}
LIVES = {"delivered": ["queued", "sending", "sent", "delivered"],
         "read": ["queued", "sending", "sent", "delivered", "read"],
         "undelivered": ["queued", "sending", "sent", "undelivered"],
         "failed": ["queued", "failed"]}
VERDICT = {"delivered": S.DELIVERED, "read": S.DELIVERED, "partially_delivered": S.DELIVERED,
           "undelivered": S.UNDELIVERED, "failed": S.FAILED, "canceled": S.FAILED}
JUNK = ["", "receiving", "bogus"]  # statuses we do not know: ignored


def spellings(life: list[str]) -> list[str]:
    """A message's statuses, and its last one as a sloppy sender might write it."""
    return life + [life[-1].upper() + " "]


class Killed(BaseException):
    """The sending process died (SIGKILL): nothing after this point of deliver() runs."""


@dataclass
class Accepted:
    ob: int
    sid: str
    life: list[str]
    error_code: str | None


class ProviderModel:
    """The gateway the dispatcher calls, and the provider behind it."""

    def __init__(self, machine: "OutboxMachine"):
        self.machine = machine
        self.script: list[str] = []
        self.accepted: list[Accepted] = []
        self.violations: list[str] = []
        self.blocked: set[int] = set()  # patients whose number Twilio refuses (STOP / 21610) until START
        # Seeded from the example's own data, not its number: a replayed example must behave the same
        self.rng = random.Random(machine.seed)
        self._n = 0

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        m = self.machine
        outcome = self.script.pop(0) if self.script else "ok"
        ob = int(dict(parse_qsl(urlsplit(status_callback).query))["ob"])
        if outcome == "die_before_send":
            raise Killed()
        patient = m.by_number.get(to)
        if patient is None or ob not in m.rows:
            self.violations.append(f"row {ob}: a text nobody planned in this example")
        if patient in m.opted_out_at_tick:
            self.violations.append(f"row {ob} sent to patient {patient}, opted out before this tick")
        if ob in m.sid_stored:
            self.violations.append(f"row {ob} sent again although its SID was stored")
        local = m.now.astimezone(NY)
        if not m.rows.get(ob, True) and not (8 <= local.hour < 21):
            self.violations.append(f"non-urgent row {ob} sent at {local:%H:%M} local")
        if patient in self.blocked:
            # Twilio refuses a number that opted out (STOP, or its 21610 earlier in this tick: the
            # dispatcher re-checks a whole batch before sending any of it, so the rest of that batch
            # may still try; the next batch does not).
            raise ERRORS["opted_out"].copy()
        if outcome in ERRORS and outcome != "timeout_accepted":
            if outcome == "opted_out":
                self.blocked.add(patient)  # Twilio refuses the number from now on
                m.opted_out.add(patient)
            raise ERRORS[outcome].copy()
        self._n += 1
        life = self.rng.choice(sorted(LIVES))
        code = {"undelivered": self.rng.choice(["30003", "30006"]), "failed": "30008"}.get(life)
        self.accepted.append(Accepted(ob, f"SM{m.example:04d}{self._n:028x}", LIVES[life], code))
        if outcome == "timeout_accepted":
            raise ERRORS[outcome].copy()
        if outcome == "die_after_accept":
            raise Killed()
        return SendResult(provider_id=self.accepted[-1].sid, status="queued")


EXAMPLES = iter(range(10_000))


def run_machine(app, session):
    inbound_settings = inbound.InboundSettings.from_config(app.config)

    class OutboxMachine(RuleBasedStateMachine):
        @initialize(first=st.lists(st.tuples(st.integers(0, 1), st.booleans(), st.integers(-30, 0)),
                                   min_size=1, max_size=4), seed=st.integers(0, 2**16))
        def setup(self, first, seed):
            # Each example has its own clinic and patients (audit rows cannot be deleted); every query
            # is scoped to them.
            self.example = next(EXAMPLES)  # unique names and SIDs across examples (the database persists)
            self.seed = seed
            self.now = START.astimezone(timezone.utc)
            clinic = make_clinic(session, now=self.now)
            self.patients = [enrol(session, clinic, procedure_end=self.now - timedelta(days=4), now=self.now,
                                   first=f"P{i}") for i in range(2)]
            # An empty outbox: a tick claims from the whole table, and earlier examples leave rows
            # planned for later (nothing references outbox rows, so they can go).
            session.execute(sa.delete(OM))
            session.commit()
            self.by_number = {p.mobile_e164: p.id for p in self.patients}
            self.rows: dict[int, bool] = {}  # row id -> urgent
            self.opted_out: set[int] = set()  # as the app should know it
            self.opted_out_at_tick: set[int] = set()
            self.sid_stored: set[int] = set()
            self.callbacks: list[tuple[str, str]] = []  # (sid, status) applied, in order
            self.seen: dict[int, tuple] = {}
            self.workers = 0
            self.keys = 0
            self.provider = ProviderModel(self)
            for who, urgent, due_in in first:  # something due from the start
                self.plan_text(who, urgent, due_in)

        # -- helpers ---------------------------------------------------------------------------
        def settings(self) -> DispatchSettings:
            """A new scheduler process (a dead one's id never comes back)."""
            self.workers += 1
            return DispatchSettings.from_config(app.config, worker_id=f"ex{self.example}-w{self.workers}",
                                                max_per_second=0, send_concurrency=1, batch=3, lease=LEASE,
                                                max_attempts=MAX_ATTEMPTS, rng=random.Random(self.workers))

        def _rows(self) -> list[OutboundMessage]:
            session.rollback()
            return session.scalars(sa.select(OM).where(OM.patient_id.in_([p.id for p in self.patients]))
                                   .order_by(OM.id).execution_options(populate_existing=True)).all()

        def _tick(self, script: list[str]) -> None:
            self.provider.script = list(script)
            self.opted_out_at_tick = set(self.opted_out)
            try:
                report = tick(session, self.provider, self.now, self.settings(), scan_missed=False)
                assert not report.errors, report.summary()
                for outcome in report.send.outcomes:
                    event(f"send outcome: {outcome}")
                if report.expired:
                    event("expired claims recovered")
            except Killed:
                session.rollback()
                event("a sender died mid-tick")
            self.provider.script = []

        # -- rules -----------------------------------------------------------------------------
        @rule(who=st.integers(0, 1), urgent=st.booleans(), due_in=st.integers(-30, 20))
        def plan_text(self, who, urgent, due_in):
            p = self.patients[who]
            due = self.now + timedelta(minutes=due_in)
            self.keys += 1
            message = PlannedMessage(id="S21" if urgent else "S03", key=f"sm:{self.keys}", send_at=due, due_at=due,
                                     kind="event_reply" if urgent else "reminder", urgent=urgent,
                                     text_template="{first}, a test text.", quiet_moved=False)
            row = new_row(enrolment=p.enrolments[-1], patient_id=p.id, recipient="patient", message=message,
                          now=self.now)
            assert add_if_new(session, row)
            session.commit()
            self.rows[row.id] = urgent

        @rule(outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=3))
        def scheduler_tick(self, outcomes):
            """A scheduler tick; the provider answers the first sends as scripted, then accepts."""
            self._tick(outcomes)

        @rule(limit=st.integers(1, 3))
        def a_process_claims_and_dies(self, limit):
            """A tick that got as far as claiming: recover, claim, then SIGKILL."""
            s = self.settings()
            recover_expired(session, self.now, s)
            claim_due(session, self.now, s, limit)

        @rule(seconds=st.one_of(st.integers(1, 90), st.integers(90, 1800)), recover=st.booleans())
        def time_passes(self, seconds, recover):
            self.now += timedelta(seconds=seconds)
            if recover:  # a recovery pass on its own (what every tick starts with)
                recover_expired(session, self.now, self.settings())

        @precondition(lambda self: self.provider.accepted)
        @rule(data=st.data(), count=st.integers(1, 4))
        def status_callbacks(self, data, count):
            """Callbacks of any texts the provider accepted, in any order, replays and junk included."""
            for _ in range(count):
                sent = data.draw(st.sampled_from(self.provider.accepted))
                junk = data.draw(st.integers(0, 9)) == 9
                status = data.draw(st.sampled_from(JUNK if junk else spellings(sent.life)))
                # Twilio calls the StatusCallback URL given at create, which carries ?ob=; a callback
                # without it (an older URL) can only find a row by a SID already stored.
                with_ob = data.draw(st.sampled_from([True, True, True, False]))
                findable = with_ob or self.seen.get(sent.ob, (None, None, None))[2] == sent.sid
                code = sent.error_code if status in ("undelivered", "failed") else None
                done = apply_status(session, outbox_id=sent.ob if with_ob else None, sid=sent.sid,
                                             status=status, error_code=code, now=self.now)
                session.commit()
                event(f"callback: {done}")
                if findable:
                    self.callbacks.append((sent.sid, status.strip().lower()))

        @rule(who=st.integers(0, 1), word=st.sampled_from(["STOP", "START", "stop", "UNSUBSCRIBE", "Start"]))
        def text_from_patient(self, who, word):
            """STOP (or another opt-out word) or START, through the inbound-text use-case."""
            p = self.patients[who]
            due_planned = [r.id for r in self._rows() if r.patient_id == p.id and r.status == S.PLANNED
                           and r.send_after <= self.now]
            self.keys += 1
            inbound.handle_sms(session, sid=f"SMin{self.example:04d}{self.keys:024d}", from_number=p.mobile_e164,
                               body=word, now=self.now, settings=inbound_settings)
            session.commit()
            if word.upper() == "START":
                self.opted_out.discard(p.id)
                self.provider.blocked.discard(p.id)
                return
            self.opted_out.add(p.id)
            self.provider.blocked.add(p.id)
            after = {r.id: r for r in self._rows()}
            assert all(after[i].status == S.SUPPRESSED for i in due_planned), due_planned

        # -- invariants (one read of the rows per step) ---------------------------------------
        @invariant()
        def outbox_invariants(self):
            if not hasattr(self, "patients"):
                return
            rows = self._rows()
            self.statuses_only_move_forward(rows)
            self.sids_are_stored_once_and_never_sent_again(rows)
            self.callbacks_in_any_order_end_in_the_right_state(rows)
            self.attempts_are_bounded(rows)
            for r in rows:
                if self.seen.get(r.id, (None,))[0] != r.status:
                    event(f"row reached {r.status.value}" + (" (locally)" if r.status in LOCAL_VERDICTS
                                                             and r.sent_at is None else ""))
            self.seen = {r.id: (r.status, r.sent_at, r.provider_sid) for r in rows}

        def statuses_only_move_forward(self, rows):
            for r in rows:
                old = self.seen.get(r.id)
                if old is None or r.status == old[0]:
                    continue
                status, sent_at, sid = old
                where = f"row {r.id}: {status.value} -> {r.status.value}"
                if status in LOCAL_VERDICTS and sent_at is None:
                    # a local verdict yields to the provider's word about a send of this row, once
                    assert sid is None and r.provider_sid is not None and r.status in {S.SENT} | PROVIDER_FINAL, where
                    continue
                assert status not in FINAL, where + " (a final status changed)"
                assert rank(r.status) >= rank(status), where
                if status == S.CLAIMED and r.status == S.PLANNED:
                    assert r.status_reason in ("quiet_hours", "retry"), where + f" ({r.status_reason})"
                if status == S.SENT:
                    assert r.status in PROVIDER_FINAL, where

        def sids_are_stored_once_and_never_sent_again(self, rows):
            for r in rows:
                old = self.seen.get(r.id)
                if old and old[2] is not None:
                    assert r.provider_sid == old[2], f"row {r.id}: SID changed"
                if r.provider_sid is not None:
                    self.sid_stored.add(r.id)
            assert self.provider.violations == []

        def callbacks_in_any_order_end_in_the_right_state(self, rows):
            for r in rows:
                if r.provider_sid is None:
                    continue
                heard = [st_ for sid, st_ in self.callbacks if sid == r.provider_sid and st_ in VERDICT]
                heard_all = [st_ for sid, st_ in self.callbacks if sid == r.provider_sid]
                want = VERDICT[heard[0]] if heard else S.SENT
                assert r.status == want, f"row {r.id}: {r.status.value}; the provider said {heard_all}"

        def attempts_are_bounded(self, rows):
            for r in rows:
                assert 0 <= r.attempts <= MAX_ATTEMPTS, f"row {r.id}: {r.attempts} attempts"

        def teardown(self):
            if not hasattr(self, "patients"):
                return
            # Nothing is stuck: with time moving on, the ticks of a live process bring every row
            # that is due to a status other than claimed (lease expiry + retries + quiet hours).
            for _ in range(40):
                self.now += timedelta(minutes=10)
                self._tick([])
                if all(r.status != S.CLAIMED and (r.status != S.PLANNED or r.send_after > self.now)
                       for r in self._rows()):
                    break
            self.outbox_invariants()
            stuck = [(r.id, r.status.value, str(r.send_after)) for r in self._rows()
                     if r.status == S.CLAIMED or (r.status == S.PLANNED and r.send_after <= self.now)]
            assert stuck == []

    OutboxMachine.TestCase.settings = settings(max_examples=int(os.environ.get('OUTBOX_MACHINE_EXAMPLES', '40')), stateful_step_count=30, deadline=None,
                                               derandomize=True, database=None,
                                               suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
    return OutboxMachine


def test_outbox_state_machine(app, session, db_factory):
    if db_factory.name != "sqlite":
        pytest.skip("the state machine runs on SQLite only: it drives one process at a time, so PostgreSQL's row "
                    "locks change nothing it can observe, and its 1,200 steps would take several times longer; "
                    "the same dispatch code runs on PostgreSQL in test_dispatch, test_scheduler_processes and "
                    "test_crash_harness")
    run_machine(app, session).TestCase().runTest()


# ---------------------------------------------------------------------------------------------
# The same promise, focused: one row, one provider message, its callbacks in any order
# ---------------------------------------------------------------------------------------------

# Where the row stands when the provider's callbacks start to arrive.
STARTS = {
    "sent": "record_sent stored the SID",
    "claimed": "the sender died after Twilio accepted it (no SID stored)",
    "planned": "released for a retry after a read timeout (Twilio had accepted it)",
    "failed": "failed locally (retries exhausted) although Twilio had accepted an attempt",
    "suppressed": "suppressed at a re-check although an earlier attempt had gone out",
    "cancelled": "cancelled at a re-check although an earlier attempt had gone out",
}


@st.composite
def callback_sequences(draw):
    life = draw(st.sampled_from(sorted(LIVES) + ["canceled"]))
    statuses = LIVES[life] if life in LIVES else ["queued", "canceled"]
    picks = draw(st.lists(st.sampled_from(spellings(statuses)), min_size=1, max_size=6))  # replays included
    picks += draw(st.lists(st.sampled_from(JUNK), max_size=2))
    return life, draw(st.permutations(picks))


def test_callbacks_in_any_order_end_in_the_providers_verdict(app, session, db_factory):
    if db_factory.name != "sqlite":
        pytest.skip("runs on SQLite only, like the state machine above; apply_status runs on PostgreSQL in "
                    "test_hooks, test_scheduler_processes and test_crash_harness")
    from hypothesis import given

    now = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
    clinic = make_clinic(session, now=now)
    patient = enrol(session, clinic, procedure_end=now - timedelta(days=4), now=now)
    session.execute(sa.delete(OM).where(OM.patient_id == patient.id))
    session.commit()
    keys = iter(range(100_000))

    @settings(max_examples=100, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(sequence=callback_sequences(), with_ob=st.sampled_from([True, True, True, False]))
    def check(sequence, with_ob):
        life, callbacks = sequence
        known = [c.strip().lower() for c in callbacks if c.strip().lower() in PROVIDER_STATUS]
        finals = [c for c in known if c in VERDICT]
        for start in sorted(STARTS):  # the same callbacks against every state a row can be in
            n = next(keys)
            message = PlannedMessage(id="S03", key=f"cb:{n}", send_at=now, due_at=now, kind="reminder", urgent=False,
                                     text_template="{first}, a test text.", quiet_moved=False)
            row = new_row(enrolment=patient.enrolments[-1], patient_id=patient.id, recipient="patient",
                          message=message, now=now)
            assert add_if_new(session, row)
            sid = f"SM{n:032x}"
            row.status, row.attempts = OutboxStatus(start), 1
            if start == "sent":
                row.provider_sid, row.provider_status, row.sent_at = sid, "queued", now
            elif start in ("failed", "suppressed", "cancelled"):
                row.final_at = now
            session.commit()
            findable = with_ob or start == "sent"  # without ?ob= only a stored SID finds the row
            for i, status in enumerate(callbacks):
                apply_status(session, outbox_id=row.id if with_ob else None, sid=sid, status=status,
                                      error_code="30008" if status in ("failed", "undelivered") else None,
                                      now=now + timedelta(seconds=i + 1))
                session.commit()
            got = session.scalar(sa.select(OM).where(OM.id == row.id).execution_options(populate_existing=True))
            if not findable or not known:
                want = OutboxStatus(start)  # nothing it could act on
                assert got.provider_sid == (sid if start == "sent" else None)
            else:
                want = VERDICT[finals[0]] if finals else OutboxStatus.SENT
                assert got.provider_sid == sid
            assert got.status == want, (f"{STARTS[start]}; callbacks {callbacks} (a '{life}' message"
                                        f"{'' if with_ob else ', no ?ob='}): {got.status.value}, want {want.value}")
            assert got.attempts == 1

    check()


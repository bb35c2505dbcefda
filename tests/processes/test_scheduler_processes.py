"""Real processes on one database (SQLite, then PostgreSQL): two `flask scheduler` processes and
gunicorn web workers, the real Twilio SDK talking to a recording fake of Twilio on 127.0.0.1 that
also posts signed status callbacks back to gunicorn. Every due text must be sent exactly once.

The processes' clocks are moved to a fixed weekday morning with RECOVERY_CLOCK_OFFSET_SECONDS, so
quiet hours and staleness do not depend on when the suite runs.
"""
from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recovery.services import missed
from recovery.store.models import Alert, AuditEvent, OutboundMessage, OutboxStatus
from tests.support.procs import FakeTwilio, Processes, app_env, free_port, run_once
from tests.services.test_dispatch import patient_at, plant

pytestmark = pytest.mark.slow

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # Tue 10 Mar 2026, 11:00 in New York
PATIENTS, PER_PATIENT = 30, 10
INVITE = "Hi {first}, please do today's 2-minute recovery check-in: {link}"


def offset_to(target: datetime) -> float:
    return (target - datetime.now(UTC)).total_seconds()


def all_rows(session):
    session.rollback()
    return session.scalars(sa.select(OutboundMessage).order_by(OutboundMessage.id)
                           .execution_options(populate_existing=True)).all()


def seed(session) -> tuple[list[int], list[int]]:
    """PATIENTS x PER_PATIENT due texts (every 5th urgent, every 3rd with a link), plus one check-in
    invitation per patient for the first ten, already sent 9 h ago and never answered (missed)."""
    due, invites = [], []
    for i in range(PATIENTS):
        p = patient_at(session, procedure_end=T - timedelta(days=5), first=f"P{i:02d}",
                       mobile=f"+1202557{i:04d}")
        for j in range(PER_PATIENT):
            text = INVITE if j % 3 == 0 else "{first}, text " + str(j) + "."
            r = plant(session, p, due=T - timedelta(minutes=10 - j), message_id=f"S{10 + j:02d}",
                      kind="event_reply" if j % 5 == 0 else "reminder", urgent=j % 5 == 0, text=text)
            due.append(r.id)
        if i < 10:
            inv = plant(session, p, due=T - timedelta(hours=9), message_id="S06", kind="checkin_invite",
                        slot="day5", key="S06:day5", text=INVITE)
            inv.status, inv.sent_at, inv.provider_sid = OutboxStatus.DELIVERED, T - timedelta(hours=9), f"SMold{i}"
            session.commit()
            invites.append(inv.id)
    return due, invites


def test_two_schedulers_and_web_workers_send_every_due_text_exactly_once(app, session, db_url, tmp_path):
    due, invites = seed(session)
    session.remove() if hasattr(session, "remove") else None
    fake = FakeTwilio(callbacks=True).start()
    procs = Processes(tmp_path)
    web_port = free_port()
    env = app_env(db_url, public_base_url=f"http://127.0.0.1:{web_port}", twilio_url=fake.url,
                  clock_offset=offset_to(T), SCHEDULER_TICK_SECONDS="0.3", SMS_MAX_PER_SECOND="0",
                  OUTBOX_BATCH="5")
    started = time.monotonic()
    try:
        procs.gunicorn(env, web_port, workers=2)
        procs.scheduler("scheduler-a", env)
        procs.scheduler("scheduler-b", env)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            procs.check_alive()
            rows = all_rows(session)
            if all(r.status == OutboxStatus.DELIVERED for r in rows if r.id in due) and fake.callbacks_done >= len(due):
                break
            time.sleep(0.3)
        elapsed = time.monotonic() - started
    finally:
        procs.stop()
        fake.stop()
    rows = {r.id: r for r in all_rows(session)}
    sent_ids = fake.outbox_ids()
    counts = Counter(sent_ids)
    assert sorted(counts) == sorted(due), procs.logs()
    assert set(counts.values()) == {1}, f"sent more than once: {[k for k, v in counts.items() if v > 1]}"
    assert fake.callback_errors == []
    assert {rows[i].status for i in due} == {OutboxStatus.DELIVERED}
    assert len({rows[i].provider_sid for i in due}) == len(due)
    by_process = Counter(rows[i].claimed_by for i in due)
    assert len(by_process) == 2, by_process  # both schedulers did part of the work
    bodies = [c.body for c in fake.created]
    assert sum("/l/" in b for b in bodies) == PATIENTS * 4 and not any("[link]" in b for b in bodies)
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "sms_sent")) == len(due)
    # the missed-check-in scan ran in both schedulers: each slot closed once, one task each
    closed = Counter(session.scalars(sa.select(AuditEvent.subject_id).where(AuditEvent.action == missed.MARKER)))
    assert sorted(closed) == sorted(invites) and set(closed.values()) == {1}
    tasks = session.scalars(sa.select(Alert).where(Alert.family == "missed_checkin")).all()
    assert sorted(a.rules for a in tasks) == [["M2"]] * 10 and all(len(a.events) == 1 for a in tasks)
    print(f"\n[{db_url.split(':')[0]}] {len(due)} texts, 2 schedulers + 2 gunicorn workers: "
          f"{len(sent_ids)} sends, 0 duplicates, split {sorted(by_process.values())}, "
          f"{2 * len(due)} status callbacks, all delivered in {elapsed:.1f} s")


def test_a_scheduler_down_for_an_hour_catches_up_once_and_keeps_quiet_hours(app, session, db_url, tmp_path):
    """`flask scheduler --once` at 20:30, nothing until 21:30, then again; then at 08:00."""
    evening = datetime(2026, 3, 10, 20, 30, tzinfo=NY)
    p = patient_at(session, procedure_end=evening - timedelta(days=5))
    before = [plant(session, p, due=evening - timedelta(minutes=m), message_id=f"S{m:02d}").id for m in (1, 2)]
    gap = [plant(session, p, due=evening + timedelta(minutes=m), message_id=f"S{m:02d}").id for m in (5, 20, 29)]
    gap_quiet = [plant(session, p, due=evening + timedelta(minutes=m), message_id=f"S{m:02d}").id
                 for m in (31, 45)]  # due after 21:00: planned at 08:00 in the first place in real life
    urgent = [plant(session, p, due=evening + timedelta(minutes=m), message_id="S21", kind="event_reply", urgent=True,
                    key=f"S21:{m}").id for m in (10, 50)]
    session.remove() if hasattr(session, "remove") else None
    fake = FakeTwilio(callbacks=False).start()
    try:
        def env_at(t):
            return app_env(db_url, public_base_url="https://recovery.example.org", twilio_url=fake.url,
                           clock_offset=offset_to(t), SMS_MAX_PER_SECOND="0")
        run_once(db_url, env_at(evening), tmp_path, "once-1")
        assert sorted(fake.outbox_ids()) == sorted(before)
        run_once(db_url, env_at(evening + timedelta(hours=1)), tmp_path, "once-2")
        assert sorted(fake.outbox_ids()) == sorted(before + urgent)
        rows = {r.id: r for r in all_rows(session)}
        morning = datetime(2026, 3, 11, 8, 0, tzinfo=NY)
        assert all((rows[i].status, rows[i].send_after) == (OutboxStatus.PLANNED, morning) for i in gap + gap_quiet)
        run_once(db_url, env_at(morning + timedelta(seconds=2)), tmp_path, "once-3")
        run_once(db_url, env_at(morning + timedelta(seconds=30)), tmp_path, "once-4")
    finally:
        fake.stop()
    counts = Counter(fake.outbox_ids())
    assert sorted(counts) == sorted(before + urgent + gap + gap_quiet) and set(counts.values()) == {1}
    rows = {r.id: r for r in all_rows(session)}
    assert all(rows[i].sent_at.astimezone(NY).strftime("%H:%M") == "08:00" for i in gap + gap_quiet)
    assert all(timedelta(0) <= rows[i].sent_at - (evening + timedelta(hours=1)) < timedelta(seconds=20) for i in urgent)


def test_pacing_holds_across_two_scheduler_processes(app, session, db_url, tmp_path):
    rate, n = 15, 45
    p = patient_at(session, procedure_end=T - timedelta(days=5))
    ids = [plant(session, p, due=T - timedelta(seconds=i), message_id="S03", key=f"S03:{i}").id for i in range(n)]
    session.remove() if hasattr(session, "remove") else None
    fake = FakeTwilio(callbacks=False).start()
    procs = Processes(tmp_path)
    offset = offset_to(T)
    env = app_env(db_url, public_base_url="https://recovery.example.org", twilio_url=fake.url,
                  clock_offset=offset, SCHEDULER_TICK_SECONDS="0.5", SMS_MAX_PER_SECOND=str(rate))
    try:
        procs.scheduler("paced-a", env)
        procs.scheduler("paced-b", env)
        deadline = time.monotonic() + 40
        while len(fake.created) < n and time.monotonic() < deadline:
            procs.check_alive()
            time.sleep(0.2)
    finally:
        procs.stop()
        fake.stop()
    assert sorted(fake.outbox_ids()) == ids, procs.logs()
    rows = {r.id: r for r in all_rows(session)}
    # 1. the slots both processes took are at least 1/rate apart (exact, from the database)
    slots = sorted(rows[i].send_after for i in ids)
    gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:])]
    assert min(gaps) >= 1 / rate - 1e-6, min(gaps)
    # 2. no text reached the provider before its slot; 3. none long after it (how late depends on
    # how busy the machine is: a process waiting for a CPU sends late, never early)
    arrived = {int(ob): c.wall for ob, c in zip(fake.outbox_ids(), fake.created)}
    late = [arrived[i] - (rows[i].send_after.timestamp() - offset) for i in ids]
    assert min(late) > -0.005 and max(late) < 2.0, (min(late), max(late))
    at = sorted(arrived.values())
    busiest = max(sum(1 for t in at if s <= t < s + 1.0) for s in at)
    assert busiest <= rate + 1 + round(rate * max(late)), busiest
    senders = Counter(rows[i].claimed_by for i in ids)
    assert len(senders) == 2
    print(f"\n[{db_url.split(':')[0]}] pacing {rate}/s, {n} texts, 2 schedulers {sorted(senders.values())}: "
          f"min slot gap {min(gaps) * 1000:.1f} ms, lateness {min(late) * 1000:.1f}-{max(late) * 1000:.1f} ms, "
          f"busiest second {busiest}, {(n - 1) / (at[-1] - at[0]):.2f}/s overall")

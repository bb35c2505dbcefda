"""The database survives the app (issue 7): SIGKILL the whole gunicorn (master and both workers at
once) while many patients submit check-ins, start it again, and find nothing half written.

Each kill comes at a random moment once the server is busy, right after a probe from outside the
app (tests/durability_helpers.WriteProbe) has seen a write transaction open, and it must cut off
requests in flight; five such kills per backend.

A submit writes the check-in, its alert, its alert event, its reply text (outbox) and its audit rows,
and cancels the slot's pending invitation texts, all in one transaction. After every kill, and at
the end, every check-in must be all-or-nothing:

    submitted   <=> one "checkin_submitted" audit row <=> its alert with its rules <=> one S20 reply
                    text <=> the slot's invitation texts cancelled
    in progress  => none of these

Every submit that got its "done" answer (303) must have stayed submitted (nothing acknowledged is
lost), and a submit retried after an interruption must not add a second reply or alert. Runs on
SQLite (plus `PRAGMA integrity_check`) and on PostgreSQL.
"""
from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
import requests
import sqlalchemy as sa

from recovery.files import templates as templates_repo
from recovery.services import checkins, clinic_plans
from recovery.services.sessions import issue_link
from recovery.store.models import Alert, AlertEvent, AuditEvent, Checkin, OutboundMessage, OutboxStatus
from tests.support.durability_helpers import (FEVER, Service, WriteProbe, csrf_from, fill_to_review, free_port,
                                      open_patient_session, session_cookie, web_env)
from tests.support.factories import enrol, make_clinic, make_staff

pytestmark = pytest.mark.slow

PATIENTS = 80
KILLS = 5
CLIENTS = 12  # concurrent phones: far more than 2 sync workers serve at once, so the queue is never empty
BATCH = 32  # submits fired per killed round
SLOT = "day1"
REPLY = "S20"  # the reply text to an URGENT check-in


@dataclass
class Phone:
    patient_id: int
    checkin_id: int
    token: str
    cookie: str = ""
    csrf: str = ""


@dataclass
class Tally:
    ok: Counter = field(default_factory=Counter)  # checkin_id -> 303 answers received
    interrupted: list[int] = field(default_factory=list)  # checkin ids whose request was cut off
    interrupted_committed: int = 0
    interrupted_not_committed: int = 0
    refused: int = 0
    kills: int = 0  # kills with a write transaction open and requests in flight
    idle_kills: int = 0  # kills that found no open write transaction or nothing in flight
    in_flight_at_kills: list[int] = field(default_factory=list)
    checks: int = 0


def _prepare(session, now: datetime) -> list[Phone]:
    """PATIENTS patients on recovery day 1, each with the day-1 check-in at its review screen with a
    measured fever (URGENT at submit, nothing before) and a check-in link of their own."""
    clinic = make_clinic(session, now=now)
    make_staff(session, clinic, on_call=1, now=now)
    from flask import current_app
    ruleset = templates_repo.ruleset(current_app.config["RULESET_PATH"])

    def template_for(enrolment, c):
        return clinic_plans.plan_for(session, current_app.config["SCHEDULES_DIR"], enrolment, c)

    phones = []
    for i in range(PATIENTS):
        p = enrol(session, clinic, procedure_end=now - timedelta(hours=30), now=now, first=f"Dur{i}",
                  baseline_back_pain=5)
        c = checkins.start_checkin(session, enrolment=p.enrolments[0], patient=p, slot=SLOT,
                                   source=checkins.SOURCE_WEB, now=now)
        fill_to_review(session, checkins.setting_for(session, c, template_for=template_for, ruleset=ruleset),
                       FEVER, now)
        assert c.status == "in_progress" and not c.fired_rules, "a fever must not act before submit"
        token = issue_link(session, p, "checkin", now, timedelta(hours=24), checkin_slot=SLOT)
        phones.append(Phone(p.id, c.id, token))
    session.commit()
    return phones


def _open_sessions(base_url: str, phones: list[Phone]) -> None:
    """Each phone opens its link and the review screen (which carries the CSRF token)."""
    def one(ph: Phone) -> None:
        with requests.Session() as http:
            open_patient_session(http, base_url, ph.token)
            r = http.get(f"{base_url}/me/checkin", timeout=30)  # -> resume -> review
            assert r.status_code == 200 and r.url.endswith(f"/me/checkin/{ph.checkin_id}/review"), (r.status_code, r.url)
            ph.csrf = csrf_from(r.text, r.url)
            ph.cookie = session_cookie(http)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, phones))


def _submit(base_url: str, ph: Phone, stop: threading.Event) -> str:
    """One submit on a fresh connection. Returns "ok", "interrupted", "refused" or "skipped"."""
    if stop.is_set():
        return "skipped"
    try:
        r = requests.post(f"{base_url}/me/checkin/{ph.checkin_id}/review", data={"csrf_token": ph.csrf},
                          cookies={"session": ph.cookie}, headers={"Connection": "close"},
                          allow_redirects=False, timeout=30)
    except requests.ConnectionError as e:
        return "refused" if "refused" in str(e).lower() else "interrupted"
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/me/checkin/{ph.checkin_id}/done"), (
        f"check-in {ph.checkin_id}: HTTP {r.status_code} {r.headers.get('Location')}")
    return "ok"


def _fire(base_url: str, phones: list[Phone], tally: Tally, rng: random.Random, web: Service | None = None,
          probe: WriteProbe | None = None) -> list[int]:
    """Submit `phones` from CLIENTS threads. With `web`, SIGKILL its process group at a random
    moment once the server is busy, right after `probe` sees a write transaction open, and count the
    requests that were in flight. Returns the check-in ids whose request was cut off."""
    stop = threading.Event()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures: list[tuple[Phone, Future]] = [(ph, pool.submit(_submit, base_url, ph, stop)) for ph in phones]
        if web is not None:
            deadline = time.monotonic() + 10
            while not any(f.done() for _, f in futures) and time.monotonic() < deadline:
                time.sleep(0.002)  # the server is answering: it has work in every worker now
            time.sleep(rng.uniform(0.0, 0.25))
            writing = probe.wait_for_write(1.0)
            web.kill()
            in_flight = sum(1 for _, f in futures if f.running())
            stop.set()
            tally.in_flight_at_kills.append(in_flight)
        outcomes = [(ph, f.result()) for ph, f in futures]
    interrupted_now = []
    for ph, outcome in outcomes:
        if outcome == "ok":
            tally.ok[ph.checkin_id] += 1
        elif outcome == "interrupted":
            interrupted_now.append(ph.checkin_id)
        elif outcome == "refused":
            tally.refused += 1
    tally.interrupted += interrupted_now
    if web is not None:
        if writing and interrupted_now:
            tally.kills += 1
        else:
            tally.idle_kills += 1
    return interrupted_now


def _states(session, phones: list[Phone]) -> dict[int, str]:
    session.rollback()
    ids = [ph.checkin_id for ph in phones]
    return dict(session.execute(sa.select(Checkin.id, Checkin.status).where(Checkin.id.in_(ids))).all())


def _check_all_or_nothing(session, phones: list[Phone], tally: Tally, sqlite: bool) -> dict[int, str]:
    """The invariant over every check-in; returns id -> status."""
    session.rollback()  # a fresh snapshot of what the app processes committed
    ids = [ph.checkin_id for ph in phones]
    rows = {c.id: c for c in session.scalars(sa.select(Checkin).where(Checkin.id.in_(ids))
                                             .execution_options(populate_existing=True))}
    audits = Counter(session.scalars(sa.select(AuditEvent.subject_id).where(
        AuditEvent.action == "checkin_submitted", AuditEvent.subject_type == "checkin",
        AuditEvent.subject_id.in_(ids))).all())
    alerts: dict[int, list[Alert]] = {}
    for a in session.scalars(sa.select(Alert).where(Alert.checkin_id.in_(ids))):
        alerts.setdefault(a.checkin_id, []).append(a)
    opened = Counter(session.scalars(sa.select(AlertEvent.alert_id).where(
        AlertEvent.kind == "opened",
        AlertEvent.alert_id.in_([a.id for lst in alerts.values() for a in lst] or [-1]))).all())
    replies = Counter(session.scalars(sa.select(OutboundMessage.checkin_id).where(
        OutboundMessage.checkin_id.in_(ids), OutboundMessage.recipient == "patient")).all())
    reply_ids = Counter(session.execute(sa.select(OutboundMessage.checkin_id, OutboundMessage.message_id).where(
        OutboundMessage.checkin_id.in_(ids))).all())
    enrolment_of = {c.id: c.enrolment_id for c in rows.values()}
    invites = session.execute(sa.select(OutboundMessage.enrolment_id, OutboundMessage.status,
                                        OutboundMessage.status_reason).where(
        OutboundMessage.enrolment_id.in_(list(enrolment_of.values())), OutboundMessage.slot == SLOT,
        OutboundMessage.kind.in_(("checkin_invite", "checkin_reminder")))).all()
    invites_by_enrolment: dict[int, list[tuple]] = {}
    for eid, status, reason in invites:
        invites_by_enrolment.setdefault(eid, []).append((status, reason))

    problems = []
    for cid in ids:
        c = rows[cid]
        mine = alerts.get(cid, [])
        slot_texts = invites_by_enrolment.get(c.enrolment_id, [])
        if c.status == "submitted":
            rules = sorted({r for a in mine for r in a.rules})
            if not (c.submitted_at and c.level == "URGENT" and "U1" in (c.fired_rules or [])
                    and c.ruleset_version):
                problems.append(f"check-in {cid}: submitted but scored fields are {c.level} {c.fired_rules}")
            if audits[cid] != 1:
                problems.append(f"check-in {cid}: submitted with {audits[cid]} checkin_submitted audit rows")
            if not mine or "U1" not in rules or not set(rules) <= set(c.fired_rules or []):
                problems.append(f"check-in {cid}: submitted, alerts {[(a.id, a.rules) for a in mine]} "
                                f"do not carry its rules {c.fired_rules}")
            if any(opened[a.id] != 1 for a in mine):
                problems.append(f"check-in {cid}: an alert without exactly one 'opened' event")
            if replies[cid] != 1 or reply_ids[(cid, REPLY)] != 1:
                problems.append(f"check-in {cid}: submitted with {replies[cid]} reply rows "
                                f"({reply_ids[(cid, REPLY)]} {REPLY})")
            if any(s == OutboxStatus.PLANNED for s, _ in slot_texts):
                problems.append(f"check-in {cid}: submitted but its slot's invitation is still planned")
        elif c.status == "in_progress":
            if audits[cid] or mine or replies[cid] or c.submitted_at or c.fired_rules:
                problems.append(f"check-in {cid}: in progress but has audit={audits[cid]} alerts={len(mine)} "
                                f"replies={replies[cid]} submitted_at={c.submitted_at} rules={c.fired_rules}")
            if any(reason == "checkin_done" for _, reason in slot_texts):
                problems.append(f"check-in {cid}: in progress but its slot's invitation was cancelled as done")
        else:
            problems.append(f"check-in {cid}: unexpected status {c.status!r}")
        if tally.ok[cid] and c.status != "submitted":
            problems.append(f"check-in {cid}: the app answered 'done' but it is {c.status} (acknowledged, then lost)")
    if sqlite:
        result = session.execute(sa.text("PRAGMA integrity_check")).scalars().all()
        if result != ["ok"]:
            problems.append(f"PRAGMA integrity_check: {result[:5]}")
    session.rollback()
    tally.checks += 1
    assert not problems, f"{len(problems)} half-written check-ins after a kill:\n" + "\n".join(problems[:20])
    return {cid: rows[cid].status for cid in ids}


def test_killing_the_web_app_mid_submit_leaves_nothing_half_written(session, db_url, tmp_path):
    from tests.support.privacy import log_dir
    started = time.monotonic()
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    sqlite = db_url.startswith("sqlite")
    now = datetime.now(timezone.utc)
    phones = _prepare(session, now)
    session.remove()
    phases = {"prepare": time.monotonic() - started}

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = log_dir() / f"durability-{tmp_path.name}-gunicorn.log"
    web = Service.gunicorn("app:create_app()", web_env(db_url, port, secrets.token_hex(32)), log, port,
                           control_socket=tmp_path / "gunicorn.ctl")
    tally = Tally()
    probe = WriteProbe(db_url)
    try:
        t = time.monotonic()
        web.start()
        phases["first start"] = time.monotonic() - t
        t = time.monotonic()
        _open_sessions(base_url, phones)
        phases["sessions"] = time.monotonic() - t
        t = time.monotonic()
        for _ in range(KILLS * 3):  # a kill that finds no write open or nothing in flight does not count
            if tally.kills == KILLS:
                break
            if not web.running:
                web.start()
            status = _states(session, phones)
            pending = [ph for ph in phones if status[ph.checkin_id] != "submitted"]
            rng.shuffle(pending)
            interrupted = _fire(base_url, pending[:BATCH], tally, rng, web, probe)
            after = _check_all_or_nothing(session, phones, tally, sqlite)
            committed = sum(1 for cid in interrupted if after[cid] == "submitted")
            tally.interrupted_committed += committed
            tally.interrupted_not_committed += len(interrupted) - committed
        phases["kill rounds"] = time.monotonic() - t
        # Start once more and let everyone (the interrupted ones too) submit without kills.
        web.start()
        status = _states(session, phones)
        _fire(base_url, [ph for ph in phones if status[ph.checkin_id] != "submitted"], tally, rng)
        # A second submit of something already done is answered "done" and changes nothing.
        _fire(base_url, rng.sample(phones, 10), tally, rng)
        final = _check_all_or_nothing(session, phones, tally, sqlite)
    finally:
        web.stop()
        probe.close()
    elapsed = time.monotonic() - started
    print(f"\n[durability {'sqlite' if sqlite else 'postgresql'}] seed={seed}: {tally.kills} kills "
          f"with a write transaction open (+{tally.idle_kills} that found none), in flight at each kill {tally.in_flight_at_kills}, "
          f"{len(tally.interrupted)} requests interrupted ({tally.interrupted_committed} had committed, "
          f"{tally.interrupted_not_committed} had not), {tally.refused} refused while down, "
          f"{sum(tally.ok.values())} answered 'done', {len(phones)} check-ins verified {tally.checks} times, "
          f"{elapsed:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in phases.items())})")
    assert tally.kills == KILLS, f"only {tally.kills} of {KILLS} kills landed mid-write (seed {seed})"
    assert len(tally.interrupted) >= KILLS
    assert set(final.values()) == {"submitted"}
    assert "database is locked" not in web.log.read_text(errors="replace")

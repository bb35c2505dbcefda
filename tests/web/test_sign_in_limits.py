"""Sign-in limits (issue 11 §1): only failed attempts count, per address + email and per address;
a request over a limit is refused before any hashing; argon2 runs in a bounded number of slots.
The multi-process side (several gunicorn workers, Redis) is tests/processes/test_limits_processes.py."""
from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from recovery.services.passwords import HashingBusy, HashSlots
from recovery.web import ratelimits
from tests.support.factories import PASSWORD, make_clinic, make_staff

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)


def _nurse(session, **kw):
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW, **kw)
    session.commit()
    return nurse


def _post(client, email, password, ip="192.0.2.10"):
    return client.post("/login", data={"email": email, "password": password},
                       environ_overrides={"REMOTE_ADDR": ip})


def test_six_correct_sign_ins_in_15_minutes_never_lock_a_nurse_out(make_app, session, time_machine):
    """Reproduction: the 6th correct sign-in answered "Too many attempts" during an emergency."""
    time_machine.move_to(NOW, tick=False)
    with make_app(RATELIMIT_ENABLED=True) as app:
        nurse = _nurse(session)
        for i in range(8):
            time_machine.move_to(NOW + timedelta(minutes=i), tick=False)
            client = app.test_client()
            assert _post(client, nurse.email, PASSWORD).status_code == 303, f"sign-in {i + 1}"


def test_five_wrong_passwords_then_even_the_right_one_waits(make_app, session):
    with make_app(RATELIMIT_ENABLED=True) as app:
        nurse = _nurse(session)
        client = app.test_client()
        codes = [_post(client, nurse.email, f"wrong-{i}-password").status_code for i in range(6)]
        assert codes == [422] * 5 + [429]
        assert _post(client, nurse.email, PASSWORD).status_code == 429
        # the same email from another address is not locked out by this one
        assert _post(client, nurse.email, PASSWORD, ip="192.0.2.99").status_code == 303


def test_a_correct_sign_in_forgets_that_accounts_earlier_typos(make_app, session):
    with make_app(RATELIMIT_ENABLED=True) as app:
        nurse = _nurse(session)
        client = app.test_client()
        assert [_post(client, nurse.email, f"typo-{i}-password").status_code for i in range(4)] == [422] * 4
        assert _post(client, nurse.email, PASSWORD).status_code == 303
        client = app.test_client()
        assert [_post(client, nurse.email, f"typo-{i}-again-pw").status_code for i in range(5)] == [422] * 5
        assert _post(client, nurse.email, "one-more-typo-pw").status_code == 429


def test_failed_sign_ins_from_one_address_are_limited_whatever_the_email(make_app, session, monkeypatch):
    """Reproduction: no per-address limit, so one client could make argon2 run without end."""
    from recovery.services import sign_in
    hashed = []
    real = sign_in.verify_password
    monkeypatch.setattr(sign_in, "verify_password", lambda h, p: hashed.append(1) or real(h, p))
    with make_app(RATELIMIT_ENABLED=True, LOGIN_IP_RATE_LIMIT="8 per 15 minutes") as app:
        nurse = _nurse(session)
        client = app.test_client()
        codes = [_post(client, f"guess{i}@example.org", "wrong-password-1").status_code for i in range(10)]
        assert codes == [422] * 8 + [429] * 2
        assert len(hashed) == 8  # the refused ones never reached argon2
        assert _post(client, nurse.email, PASSWORD).status_code == 429  # this address waits
        assert len(hashed) == 8
        assert _post(client, nurse.email, PASSWORD, ip="192.0.2.77").status_code == 303


def test_a_form_error_costs_no_attempt(make_app, session):
    with make_app(RATELIMIT_ENABLED=True, LOGIN_IP_RATE_LIMIT="2 per 15 minutes") as app:
        nurse = _nurse(session)
        client = app.test_client()
        assert [_post(client, nurse.email, "").status_code for _ in range(5)] == [422] * 5
        assert _post(client, nurse.email, PASSWORD).status_code == 303


def test_the_store_holds_no_address_or_email(make_app, session, db_url):
    with make_app(RATELIMIT_ENABLED=True) as app:
        nurse = _nurse(session)
        client = app.test_client()
        for _ in range(6):
            _post(client, nurse.email, "wrong-password-x", ip="198.51.100.23")
        url = ratelimits.store_url(app.config["SQLALCHEMY_DATABASE_URI"])
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            keys = conn.execute(sa.text("SELECT key, count FROM rate_limit_counter")).all()
        engine.dispose()
    assert sorted(c for _, c in keys) == [5, 5]  # the refused 6th was not counted
    text = " ".join(k for k, _ in keys)
    assert nurse.email.split("@")[0] not in text and "198.51.100.23" not in text and "198" not in text


# ---- hashing cannot take every worker --------------------------------------------------------

def test_a_sign_in_that_finds_every_hashing_slot_taken_is_told_to_try_again(make_app, session, tmp_path):
    with make_app(RATELIMIT_ENABLED=True, HASH_CONCURRENCY=1, HASH_WAIT_SECONDS=0,
                  LOGIN_IP_RATE_LIMIT="1 per 15 minutes") as app:
        nurse = _nurse(session)
        slots = HashSlots(Path(app.instance_path) / "hash-slots", 1, 0)
        client = app.test_client()
        with slots.hold():
            r = _post(client, nurse.email, "wrong-password-busy")
            assert r.status_code == 503 and int(r.headers["Retry-After"]) <= 1
            assert b"Please press Sign in again" in r.data
        # a busy answer cost no attempt: the one wrong try allowed from here is still there
        assert _post(client, nurse.email, "wrong-password-real").status_code == 422
        assert _post(client, nurse.email, PASSWORD).status_code == 429


def test_slots_exclude_each_other_across_threads(tmp_path):
    slots = HashSlots(tmp_path, 1, 0)
    held, release = threading.Event(), threading.Event()

    def holder():
        with slots.hold():
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    with pytest.raises(HashingBusy):
        with slots.hold():
            pass
    waiting = HashSlots(tmp_path, 1, 2.0)
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    with waiting.hold():
        assert 0.1 < time.monotonic() - started < 2.0
    t.join()
    with HashSlots(tmp_path, 2, 0).hold(), HashSlots(tmp_path, 2, 0).hold():
        pass  # two slots: two at once


def _hold_in_child(directory: str, ready: str) -> None:
    with HashSlots(directory, 1, 0).hold():
        Path(ready).touch()
        time.sleep(60)  # killed long before (no shared lock of multiprocessing's to leave held)


def test_slots_exclude_each_other_across_processes_and_free_on_death(tmp_path):
    ready = tmp_path / "ready"
    child = multiprocessing.get_context("spawn").Process(target=_hold_in_child, args=(str(tmp_path), str(ready)))
    child.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        with pytest.raises(HashingBusy):
            with HashSlots(tmp_path, 1, 0).hold():
                pass
        child.kill()  # a worker killed mid-hash: the kernel drops its lock
        child.join(10)
        with HashSlots(tmp_path, 1, 0).hold():
            pass
    finally:
        child.kill()
        child.join(10)

"""Helpers shared by tests/processes/test_durability.py and bench/bench_web.py: bring a check-in to its review
screen through the real questionnaire, open a patient session over HTTP the way a phone does, and run
gunicorn in its own process group so it can be SIGKILLed and started again.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import requests

from recovery.domain.questionnaire.answers import parse_group
from recovery.domain.questionnaire.form import groups_for
from recovery.domain.triage import Assessment
from recovery.services import checkins

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"

Raw = Mapping[str, Mapping[str, str | list[str]]]

# One valid raw form per section (what a screen of it posts: its own question), for any recovery day
# and weekly or not: a screen only reads the items it asks that day. Nothing here fires a rule.
CALM: Raw = {
    "emergency": {"cardioresp": ["none"], "neuro": ["none"], "bladder_bowel": "no_change"},
    "pain": {"back_pain": "4", "pain_change": "same", "new_pain_sites": ["none"]},
    "temperature": {"temp_status": "feel_normal_not_measured", "chills": "no"},
    "wound": {"wound": ["normal"], "site_pain": "2"},
    "feel": {"dizzy": "no", "confused_or_very_sleepy": "no", "headache_upright": "no", "nausea": "none",
             "cannot_keep_fluids": "no", "mobility": "as_usual_or_better"},
    "medicines": {"meds_taken": ["paracetamol_acetaminophen"], "meds_more_than_told": "no", "meds_control": "yes"},
    "bowels": {"bowel_days": "1"},
    "other": {"fall": "no", "brace_ok": "yes", "restrictions_ok": "yes", "call_request": "no", "free_text": ""},
}

# A measured fever (38.6 °C, rule U1, URGENT) and the sepsis screen it brings: an alert and a reply
# text at submit, but nothing before it (only EMERGENCY answers act before submit, MR2).
FEVER: Raw = {
    **CALM,
    "temperature": {"temp_status": "measured", "temp_value": "38.6", "temp_unit": "C", "chills": "no"},
    "sepsis": {"sepsis_screen": ["none"]},
}


class AnswerSetError(ValueError):
    """The raw answers do not complete a check-in; the message names the screen and the fields."""


def complete_answers(setting: checkins.Setting, raw: Raw) -> dict:
    """Typed answers for every screen the check-in asks, screen by screen as the web flow reads them
    (later screens depend on earlier answers)."""
    answers: dict = {}
    for _ in range(60):  # one question per screen
        flow = checkins.Flow(tuple(groups_for(setting.day, setting.weekly, answers,
                                              limits=setting.ruleset.form_limits,
                                              brace_prescribed=setting.enrolment.brace)), answers)
        group = flow.next_incomplete
        if group is None:
            return answers
        form = raw.get(group.id, raw.get(group.section))  # a screen reads its own question from its section
        if form is None:
            raise AnswerSetError(f"no raw answers for screen {group.id!r} (check-in {setting.checkin.id})")
        values, errors = parse_group(group.id, form, setting.day, weekly=setting.weekly,
                                     answers_so_far=answers, limits=setting.ruleset.form_limits,
                                     brace_prescribed=setting.enrolment.brace)
        if errors:
            raise AnswerSetError(f"screen {group.id!r}: {dict(errors)}")
        if all(k in answers and answers[k] == v for k, v in values.items()):
            raise AnswerSetError(f"screen {group.id!r} stays incomplete with {dict(form)}")
        answers.update(values)
    raise AnswerSetError(f"check-in {setting.checkin.id}: the screens never completed")


def fill_to_review(session, setting: checkins.Setting, raw: Raw, now) -> Assessment:
    """Store a complete answer set (scored, as every screen post is) so the check-in sits at its
    review screen, ready to submit. The caller commits."""
    answers = complete_answers(setting, raw)
    return checkins.record_answers(session, checkin=setting.checkin, enrolment=setting.enrolment,
                                   patient=setting.patient, answers=answers, template=setting.template,
                                   ruleset=setting.ruleset, now=now, replace=True)


# ---------------------------------------------------------------------------------------------
# HTTP, as a phone does it
# ---------------------------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str, where: str) -> str:
    m = _CSRF.search(html)
    if not m:
        raise AssertionError(f"no csrf_token field in the page at {where}")
    return m.group(1)


def open_patient_session(http: requests.Session, base_url: str, token: str) -> None:
    """Open a link: the confirm page (GET, which never consumes it), then its form (POST)."""
    url = f"{base_url}/l/{token}"
    page = http.get(url, timeout=30)
    if page.status_code != 200:
        raise AssertionError(f"GET /l/<token>: HTTP {page.status_code}")
    r = http.post(url, data={"csrf_token": csrf_from(page.text, "/l/<token>")}, allow_redirects=False,
                  timeout=30)
    if r.status_code != 303:
        raise AssertionError(f"POST /l/<token>: HTTP {r.status_code}, expected 303")


def session_cookie(http: requests.Session, name: str = "session") -> str:
    value = http.cookies.get(name)
    if not value:
        raise AssertionError(f"no {name!r} cookie after opening the link")
    return value


# ---------------------------------------------------------------------------------------------
# gunicorn in its own process group
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def web_env(db_url: str, port: int, secret: str, **extra: str) -> dict[str, str]:
    """The real app's environment on loopback: plain http (cookie "session"), console texts."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLASK_", "TWILIO_", "SMS_", "SESSION_COOKIE", "DATABASE_URL", "SCHEDULER_",
                                "OUTBOX_"))}
    env.update({
        "RECOVERY_ENV": "development", "SECRET_KEY": secret, "DATABASE_URL": db_url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "SMS_BACKEND": "console",
        # Every patient of the run opens a link from 127.0.0.1; the limits have their own tests.
        "LINK_RATE_LIMIT": "100000 per hour", "LOGIN_RATE_LIMIT": "1000 per minute",
        "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


class Service:
    """One command (gunicorn, `flask scheduler`, ...) in its own process group, its output appended
    to `log`. `kill()` SIGKILLs the whole group at once (master and workers: nobody finishes a
    request); `stop()` asks politely first."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, port: int | None = None):
        self.argv, self.env, self.log, self.port = argv, env, log, port
        self.popen: subprocess.Popen | None = None
        self._out: IO[bytes] | None = None

    @classmethod
    def gunicorn(cls, app: str, env: dict[str, str], log: Path, port: int, workers: int = 2,
                 control_socket: Path | None = None) -> Service:
        argv = [str(BIN / "gunicorn"), "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
                "--graceful-timeout", "5", "--backlog", "256"]
        if control_socket is not None:  # not the shared default in ~/.gunicorn
            argv += ["--control-socket", str(control_socket)]
        return cls(argv + [app], env, log, port)

    def start(self, ready_timeout: float = 60) -> Service:
        self._out = open(self.log, "ab")  # noqa: SIM115 - closed in _reap
        self.popen = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                      stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        if self.port is not None:
            self._wait_listening(ready_timeout)
        return self

    def _wait_listening(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.popen.returncode}:\n{self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.3).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nothing listening on {self.port} after {timeout:.0f} s:\n{self.tail()}")

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        if self.popen is None:
            return
        _signal_group(self.popen.pid, signal.SIGKILL)
        self._reap(5)

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)  # gunicorn stops its workers, then itself
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
        self._reap(5)

    def _reap(self, timeout: float) -> None:
        try:
            self.popen.wait(timeout=timeout)
        finally:
            if self._out is not None:
                self._out.close()
                self._out = None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            return f"(no log: {e})"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)  # start_new_session=True: the group id is the leader's pid
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# Is some process half-way through writing right now?
# ---------------------------------------------------------------------------------------------

class WriteProbe:
    """Looks, from outside the app, for a write transaction that is open at this instant.

    SQLite: every app write transaction holds the write lock from its BEGIN IMMEDIATE to its COMMIT,
    so a BEGIN IMMEDIATE that cannot get the lock at once means one is open (if it does get it, it
    rolls back straight away). PostgreSQL: another connection to the database whose transaction
    already has a transaction id (it has written and not yet committed)."""

    def __init__(self, db_url: str):
        self.sqlite = db_url.startswith("sqlite")
        if self.sqlite:
            import sqlite3
            self._conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        else:
            import psycopg
            self._conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def writing(self) -> bool:
        if self.sqlite:
            import sqlite3
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    return True
                raise
            self._conn.execute("ROLLBACK")
            return False
        row = self._conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL").fetchone()
        return row[0] > 0

    def wait_for_write(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.writing():
                return True
            time.sleep(0.0005)
        return False

    def close(self) -> None:
        self._conn.close()

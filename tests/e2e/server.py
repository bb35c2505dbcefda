"""Start and stop the real app for browser tests and benchmarks: gunicorn (2 workers) and, when the
`flask scheduler` command exists, the scheduler process, on 127.0.0.1 with a fresh SQLite database.

Used by tests/e2e/conftest.py and bench/bench_lighthouse.py:

    app = start_app(workdir)        # migrate, seed the demo clinic, start, wait until it answers
    app.base_url                    # "http://127.0.0.1:<port>"
    app.staff                       # [DemoLogin(role, email, password), ...] from `seed-demo --json`
    app.patient_links               # {"Dora Day-Zero": "http://127.0.0.1:<port>/l/<token>", ...}
    app.link_for("Dora Day-Zero")   # the seeded link the first time, then a freshly issued one
    app.logs()                      # the tail of every process log, for failure messages
    app.stop()                      # kill the process groups
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = REPO_ROOT / ".venv" / "bin"
READY_TIMEOUT_S = 30.0



class AppStartError(RuntimeError):
    """The app could not be set up or did not answer; the message carries the process logs."""


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    password: str


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen
    log_path: Path
    log_file: IO[bytes]


@dataclass
class RunningApp:
    base_url: str
    db_url: str
    workdir: Path
    staff: list[DemoLogin]
    patient_links: dict[str, str]  # "First Last" -> link URL, as seeded
    patient_days: dict[str, int]  # "First Last" -> recovery day at seeding
    scheduler: bool
    seed_output: str
    _processes: list[_Process] = field(default_factory=list)
    _unused_seeded: set[str] = field(default_factory=set)
    _link_app: object | None = None

    def login(self, role: str = "nurse") -> DemoLogin:
        return next(s for s in self.staff if s.role == role)

    def link_for(self, name: str, purpose: str = "today", slot: str | None = None) -> str:
        """A link for a demo patient ("Dora Day-Zero"). Each seeded link works once, so the first
        call returns it and later calls issue a new one straight into the database."""
        if purpose == "today" and slot is None and name in self._unused_seeded:
            self._unused_seeded.discard(name)
            return self.patient_links[name]
        return self.issue_link(name, purpose, slot)

    def issue_link(self, name: str, purpose: str = "today", slot: str | None = None) -> str:
        """Issue a fresh link (purpose "today" or "checkin") for a patient by "First Last"."""
        import sqlalchemy as sa

        from recovery.clock import utcnow
        from recovery.services.sessions import issue_link
        from recovery.store.db import begin_write, db
        from recovery.store.models import Patient

        first, _, last = name.partition(" ")
        with self._app().app_context():
            begin_write(db.session)
            patient = db.session.scalar(sa.select(Patient).where(Patient.first_name == first,
                                                                 Patient.last_name == last))
            if patient is None:
                raise LookupError(f"no patient named {name!r} in the e2e database")
            token = issue_link(db.session, patient, purpose, utcnow(), timedelta(hours=24), checkin_slot=slot)
            db.session.commit()
            db.session.remove()
        return f"{self.base_url}/l/{token}"

    def _app(self):
        if self._link_app is None:
            from app import create_app
            from tests.support.settings import app_config
            self._link_app = create_app(app_config(SQLALCHEMY_DATABASE_URI=self.db_url))
        return self._link_app

    def logs(self, lines: int = 60) -> str:
        out = []
        for p in self._processes:
            if not p.log_file.closed:
                p.log_file.flush()
            text = p.log_path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"----- {p.name} ({p.log_path}) -----\n" + "\n".join(text))
        return "\n".join(out)

    def assert_running(self) -> None:
        dead = [f"{p.name} exited with {p.popen.returncode}" for p in self._processes if p.popen.poll() is not None]
        if dead:
            raise AppStartError("; ".join(dead) + "\n" + self.logs())

    def stop(self) -> None:
        for p in self._processes:
            _kill_group(p.popen)
            p.log_file.close()
        if self._link_app is not None:
            from recovery.store.db import db
            with self._link_app.app_context():
                db.engine.dispose()
            self._link_app = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command_probe(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "flask"), "--app", "app", "--help"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def scheduler_command_exists(probe: subprocess.Popen) -> bool:
    """True when `flask --app app --help` lists a `scheduler` command (it is optional for now)."""
    out, _ = probe.communicate(timeout=60)
    commands = out.split("Commands:", 1)[-1]
    return re.search(r"^\s+scheduler\s", commands, re.MULTILINE) is not None


def app_env(db_url: str, base_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLASK_", "TWILIO_", "SMS_", "SESSION_COOKIE", "DATABASE_URL"))}
    env.update({
        "RECOVERY_ENV": "development",  # plain http on 127.0.0.1: cookie named "session", not Secure
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": db_url,
        "PUBLIC_BASE_URL": base_url,
        "PORT": str(port),
        "SMS_BACKEND": "console",
        "SCHEDULER_TICK_SECONDS": "1",
        # One run opens many patient sessions and nurse sign-ins from 127.0.0.1; the limits
        # themselves are covered by tests/web/test_security_sessions.py.
        "LINK_RATE_LIMIT": "500 per hour",
        "LOGIN_RATE_LIMIT": "100 per 15 minutes",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def start_app(workdir: Path, *, logs_in: Path | None = None, with_scheduler: bool = True) -> RunningApp:
    """Migrate and seed a fresh SQLite database in `workdir`, start the processes (their logs in
    `logs_in`, default `workdir`), wait until the sign-in page answers. Raises AppStartError with
    the logs when anything fails."""
    workdir.mkdir(parents=True, exist_ok=True)
    logs_in = logs_in or workdir
    logs_in.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    db_url = f"sqlite:///{workdir / 'e2e.sqlite'}"
    env = app_env(db_url, base_url, port)
    flask = str(BIN / "flask")
    # Asking flask which commands exist takes a second; do it while the database is prepared.
    probe = _command_probe(env) if with_scheduler else None

    try:
        for step in (["db", "upgrade"], ["seed-demo", "--json", "--url", base_url]):
            done = subprocess.run([flask, "--app", "app", *step], cwd=REPO_ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise AppStartError(f"`flask {' '.join(step)}` exited {done.returncode}:\n"
                                    f"{done.stdout}\n{done.stderr}")
        seed_output = done.stdout
        staff, links, days = parse_seed_output(seed_output)
        scheduler = probe is not None and scheduler_command_exists(probe)
    finally:
        if probe is not None and probe.poll() is None:
            probe.kill()
            probe.communicate()
    running = RunningApp(base_url=base_url, db_url=db_url, workdir=workdir, staff=staff,
                         patient_links=links, patient_days=days, scheduler=scheduler,
                         seed_output=seed_output, _unused_seeded=set(links))
    try:
        # Its own control socket: the default one in ~/.gunicorn is shared with `make run`.
        running._processes.append(_spawn("web", [
            str(BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}",
            "--control-socket", str(workdir / "gunicorn.ctl"), "app:create_app()"], env, logs_in))
        if scheduler:
            running._processes.append(_spawn("scheduler", [flask, "--app", "app", "scheduler"], env, logs_in))
        _wait_ready(running)
    except BaseException:
        running.stop()
        raise
    return running


def parse_seed_output(text: str) -> tuple[list[DemoLogin], dict[str, str], dict[str, int]]:
    """`flask seed-demo --json`: the logins (those whose password is the demo one) and the links."""
    try:  # the one JSON line (anything else on stdout, such as a log line, is not ours to read)
        seeded = json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))
    except (StopIteration, ValueError):
        raise AppStartError(f"`flask seed-demo --json` printed no JSON:\n{text}") from None
    staff = [DemoLogin(s["role"], s["email"], s["password"]) for s in seeded["logins"] if s["password"]]
    links = {link["name"]: link["url"] for link in seeded["links"]}
    days = {link["name"]: int(link["day"]) for link in seeded["links"]}
    if not staff or not links:
        raise AppStartError(f"`flask seed-demo` printed no logins or no patient links:\n{text}")
    return staff, links, days


def _spawn(name: str, argv: list[str], env: dict[str, str], logs_in: Path) -> _Process:
    log_path = logs_in / f"{name}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed in RunningApp.stop
    # A new session per process: teardown kills the whole group (gunicorn's workers included).
    popen = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    return _Process(name, popen, log_path, log_file)


def _wait_ready(app: RunningApp) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        app.assert_running()
        try:
            with urllib.request.urlopen(f"{app.base_url}/login", timeout=2) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            last = str(e)
        time.sleep(0.1)
    raise AppStartError(f"{app.base_url}/login did not answer within {READY_TIMEOUT_S:.0f} s ({last})\n{app.logs()}")


def _kill_group(popen: subprocess.Popen) -> None:
    """SIGTERM the process group (gunicorn stops its workers and waits for them), SIGKILL it if the
    leader has not exited after 10 s. The group id stays ours while its leader is unreaped."""
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGTERM)
        popen.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=5)

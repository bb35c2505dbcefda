"""Real processes for the multi-process tests: `flask scheduler` and gunicorn against one database,
and a tiny recording fake of Twilio's Messages API on 127.0.0.1.

Every process is started here in its own process group and stopped here (SIGTERM, then SIGKILL),
so a failing test leaves nothing running. Logs go to files under the test's tmp dir and are
printed when a process dies early.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests

from recovery.messaging.twilio_gateway import compute_signature
from tests.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
FROM_NUMBER = "+15005550006"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, log: Path, deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening; log:\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {deadline_s} s; log:\n{tail(log)}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


# ---------------------------------------------------------------------------------------------
# A recording fake of POST /2010-04-01/Accounts/{sid}/Messages.json
# ---------------------------------------------------------------------------------------------

@dataclass
class Created:
    to: str
    body: str
    status_callback: str | None
    sid: str
    at: float  # time.monotonic() when it arrived
    wall: float  # time.time() when it arrived


@dataclass
class FakeTwilio:
    """Answers message creates like Twilio (201 + a fresh SM sid) and records them. With
    `callbacks`, it then posts signed "sent" and "delivered" status callbacks, as Twilio does."""

    callbacks: bool = True
    port: int = 0
    created: list[Created] = field(default_factory=list)
    callback_errors: list[str] = field(default_factory=list)
    callbacks_done: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                if not self.path.endswith("/Messages.json") or "To" not in form:
                    self.send_response(404)
                    self.end_headers()
                    return
                sid = "SM" + uuid.uuid4().hex
                with fake._lock:
                    fake.created.append(Created(form["To"], form.get("Body", ""), form.get("StatusCallback"),
                                                sid, time.monotonic(), time.time()))
                now = format_datetime(datetime.now(timezone.utc), usegmt=True)
                payload = {"sid": sid, "account_sid": TEST_ACCOUNT_SID, "to": form["To"], "from": form.get("From"),
                           "body": form.get("Body"), "status": "queued", "num_segments": "1",
                           "direction": "outbound-api", "date_created": now, "date_updated": now,
                           "api_version": "2010-04-01", "uri": f"{self.path[:-5]}/{sid}.json"}
                data = json.dumps(payload).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if fake.callbacks and form.get("StatusCallback"):
                    fake._queue.put((form["StatusCallback"], sid, form["To"]))

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True)]
        self._threads += [threading.Thread(target=self._post_callbacks, daemon=True) for _ in range(2)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeTwilio:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for _ in self._threads[1:]:
            self._queue.put(None)

    def _post_callbacks(self) -> None:
        http = requests.Session()
        while True:
            item = self._queue.get()
            if item is None:
                return
            url, sid, to = item
            for status in ("sent", "delivered"):
                form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": TEST_ACCOUNT_SID, "From": FROM_NUMBER,
                        "To": to, "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}
                sig = compute_signature(TEST_AUTH_TOKEN, url, form)
                try:
                    r = http.post(url, data=form, headers={"X-Twilio-Signature": sig}, timeout=10)
                    if r.status_code != 204:
                        with self._lock:
                            self.callback_errors.append(f"{status} {urlsplit(url).query}: HTTP {r.status_code}")
                except requests.RequestException as e:
                    with self._lock:
                        self.callback_errors.append(f"{status} {urlsplit(url).query}: {type(e).__name__}")
            with self._lock:
                self.callbacks_done += 1

    def outbox_ids(self) -> list[int]:
        """The ?ob= of every create received (one per send attempt that reached us)."""
        with self._lock:
            return [int(dict(parse_qsl(urlsplit(c.status_callback).query))["ob"]) for c in self.created]


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

def app_env(db_url: str, *, public_base_url: str, twilio_url: str, clock_offset: float, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMS_", "OUTBOX_", "SCHEDULER_"))}
    env.update({
        "SECRET_KEY": "multi-process-test-secret", "RECOVERY_ENV": "test-processes",
        "DATABASE_URL": db_url, "PUBLIC_BASE_URL": public_base_url, "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE_URL": twilio_url,
        "RECOVERY_CLOCK_OFFSET_SECONDS": f"{clock_offset:.6f}", "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


class Processes:
    """Starts processes in their own groups; `stop()` ends every one of them (and only them)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, log))
        return proc

    def scheduler(self, name: str, env: dict) -> subprocess.Popen:
        return self.start(name, [str(BIN / "flask"), "--app", "app", "scheduler"], env)

    def gunicorn(self, env: dict, port: int, workers: int = 2) -> subprocess.Popen:
        proc = self.start("gunicorn", [str(BIN / "gunicorn"), "--workers", str(workers), "--bind",
                                       f"127.0.0.1:{port}", "--graceful-timeout", "5", "app:create_app()"], env)
        wait_port(port, proc, self.log_dir / "gunicorn.log")
        return proc

    def check_alive(self) -> None:
        for name, proc, log in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; log:\n{tail(log)}")

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
            _signal_group(proc, signal.SIGKILL)  # stragglers in the group (gunicorn workers)

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{tail(log)}" for name, _, log in self.procs)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session=True: the group id is the pid we started
    except ProcessLookupError:
        pass


def run_once(db_url: str, env: dict, log_dir: Path, name: str) -> str:
    """`flask scheduler --once` in a child process; returns its output (raises if it failed)."""
    result = subprocess.run([str(BIN / "flask"), "--app", "app", "scheduler", "--once"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    (log_dir / f"{name}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"scheduler --once failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout

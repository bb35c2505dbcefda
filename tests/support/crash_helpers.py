"""Pieces of the SIGKILL crash harness (tests/processes/test_crash_harness.py): a recording fake of Twilio that
knows which sender process made each request, and the process plumbing to kill and find processes.

Attribution is exact, not inferred from timestamps: every scheduler incarnation is given its own
fake-Twilio port (TWILIO_API_BASE_URL must be an origin, so the port is the one thing that can tell
processes apart). Once an incarnation has been SIGKILLed and reaped, every request ever recorded on
its port was sent before the kill.

The fake holds each create open a few milliseconds before answering (so random kills can land
between the provider accepting a text and the sender storing the SID), and posts the signed
"sent" and "delivered" status callbacks after a random delay, as Twilio does; a callback refused by
a dying web worker is retried, so a replay of an already-committed callback is exercised too.
"""
from __future__ import annotations

import heapq
import json
import os
import random
import re
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
from tests.support.procs import FROM_NUMBER
from tests.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN

# The line recovery.dispatch.sender.deliver logs once record_sent has committed (LOG_LEVEL=INFO).
SENT_LINE = re.compile(r"\bsent \S+ \(row (\d+)\)")


@dataclass
class Create:
    """One message create that reached the fake (Twilio accepted it: a text went out)."""
    tag: str  # the sender incarnation whose port it arrived on
    ob: int  # the outbox row id from ?ob= in the StatusCallback URL
    sid: str
    arrived: float  # time.monotonic() when the whole request had been read


@dataclass(order=True)
class _Callback:
    due: float
    seq: int
    url: str = field(compare=False)
    sid: str = field(compare=False)
    to: str = field(compare=False)
    status: str = field(compare=False)


class CrashTwilio:
    """Recording fake of POST /2010-04-01/Accounts/{sid}/Messages.json, one port per sender."""

    def __init__(self, *, seed: int, hold: tuple[float, float] = (0.0, 0.015),
                 sent_delay: tuple[float, float] = (0.2, 1.5), delivered_delay: tuple[float, float] = (1.0, 5.0),
                 callback_threads: int = 2,
                 callback_retries: int = 40):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.hold, self.callback_retries = hold, callback_retries
        self.sent_delay, self.delivered_delay = sent_delay, delivered_delay
        self.creates: list[Create] = []
        self.truncated = 0  # requests cut off mid-body by a kill (never created, as at Twilio)
        self.callback_errors: list[str] = []
        self.callback_retried = 0
        self._heap: list[_Callback] = []
        self._seq = 0
        self._in_flight = 0
        self._stopping = False
        self._servers: list[ThreadingHTTPServer] = []
        self._threads = [threading.Thread(target=self._post_callbacks, daemon=True, name=f"fake-cb-{i}")
                         for i in range(callback_threads)]
        for t in self._threads:
            t.start()

    # -- the Messages API, one port per tag --------------------------------------------------
    def endpoint(self, tag: str) -> str:
        """A new port on 127.0.0.1 whose creates are recorded under `tag`; returns its origin."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the request line carries nothing useful
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if len(raw) < length:  # the sender died mid-request: Twilio would not create it
                    with fake._lock:
                        fake.truncated += 1
                    return
                form = dict(parse_qsl(raw.decode()))
                if not self.path.endswith("/Messages.json") or "To" not in form or "StatusCallback" not in form:
                    self.send_response(404)
                    self.end_headers()
                    return
                sid = "SM" + uuid.uuid4().hex
                ob = int(dict(parse_qsl(urlsplit(form["StatusCallback"]).query))["ob"])
                created = Create(tag, ob, sid, time.monotonic())
                with fake._lock:
                    fake.creates.append(created)
                    hold = fake._rng.uniform(*fake.hold)
                    sent_after = fake._rng.uniform(*fake.sent_delay)
                    delivered_after = sent_after + fake._rng.uniform(*fake.delivered_delay)
                fake._schedule(form["StatusCallback"], sid, form["To"], "sent", sent_after)
                fake._schedule(form["StatusCallback"], sid, form["To"], "delivered", delivered_after)
                time.sleep(hold)  # accepted but not yet answered: the window a kill can land in
                now = format_datetime(datetime.now(timezone.utc), usegmt=True)
                payload = {"sid": sid, "account_sid": TEST_ACCOUNT_SID, "to": form["To"], "from": form.get("From"),
                           "body": form.get("Body"), "status": "queued", "num_segments": "1",
                           "direction": "outbound-api", "date_created": now, "date_updated": now,
                           "api_version": "2010-04-01", "uri": f"{self.path[:-5]}/{sid}.json"}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(201)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:  # BrokenPipe / ConnectionReset: the sender was killed meanwhile
                    pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name=f"fake-{tag}").start()
        with self._lock:
            self._servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    # -- status callbacks ----------------------------------------------------------------------
    def _schedule(self, url: str, sid: str, to: str, status: str, delay: float) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, _Callback(time.monotonic() + delay, self._seq, url, sid, to, status))
            self._cond.notify()

    def _next(self) -> _Callback | None:
        with self._cond:
            while True:
                if self._stopping:
                    return None
                if self._heap and self._heap[0].due <= time.monotonic():
                    self._in_flight += 1
                    return heapq.heappop(self._heap)
                timeout = (self._heap[0].due - time.monotonic()) if self._heap else 0.5
                self._cond.wait(timeout=max(0.001, min(timeout, 0.5)))

    def _post_callbacks(self) -> None:
        http = requests.Session()
        while (item := self._next()) is not None:
            try:
                self._post_one(http, item, item.status)
            finally:
                with self._lock:
                    self._in_flight -= 1

    def _post_one(self, http: requests.Session, item: _Callback, status: str) -> None:
        form = {"MessageSid": item.sid, "SmsSid": item.sid, "AccountSid": TEST_ACCOUNT_SID, "From": FROM_NUMBER,
                "To": item.to, "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}
        sig = compute_signature(TEST_AUTH_TOKEN, item.url, form)
        last = ""
        for attempt in range(self.callback_retries):
            if attempt:
                with self._lock:
                    self.callback_retried += 1
                time.sleep(0.1)
            try:
                r = http.post(item.url, data=form, headers={"X-Twilio-Signature": sig}, timeout=10)
            except requests.RequestException as e:  # a web worker killed mid-request
                last = type(e).__name__
                continue
            if r.status_code == 204:
                return
            last = f"HTTP {r.status_code}"
            if r.status_code < 500:
                break
        with self._lock:
            self.callback_errors.append(f"{status} {urlsplit(item.url).query}: {last}")

    # -- state -----------------------------------------------------------------------------------
    def callbacks_pending(self) -> int:
        with self._lock:
            return len(self._heap) + self._in_flight

    def snapshot(self) -> list[Create]:
        with self._lock:
            return list(self.creates)

    def stop_callbacks(self) -> int:
        """Post no more callbacks; the ones in flight finish (call while the web app is up).
        Returns how many were still waiting and are dropped."""
        with self._cond:
            self._stopping = True
            dropped = len(self._heap)
            self._heap.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=30)
        return dropped

    def stop(self) -> None:
        self.stop_callbacks()
        for server in self._servers:
            server.shutdown()
            server.server_close()


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

def child_pids(pid: int) -> list[int]:
    """Live children of `pid` (gunicorn's workers), from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..." - comm may hold spaces or parentheses: split after the last ')'
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            out.append(int(entry.name))
    return sorted(out)


def recorded_rows(log: Path) -> list[int]:
    """Outbox ids whose send a scheduler process recorded (committed) and logged."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return [int(m.group(1)) for m in SENT_LINE.finditer(text)]


def wait_gone(pid: int, deadline_s: float = 5.0) -> None:
    """Block until a SIGKILLed process that is not our child (a gunicorn worker) has gone."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        stat = Path(f"/proc/{pid}/stat")
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return  # dead, waiting for gunicorn to reap it
        except (OSError, IndexError):
            return
        time.sleep(0.01)
    raise RuntimeError(f"process {pid} still alive {deadline_s} s after SIGKILL")

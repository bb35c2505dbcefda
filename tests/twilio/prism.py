"""Start and stop a Prism mock of Twilio's API (tests/twilio/twilio_api_v2010.json) on 127.0.0.1.

Prism is run from ./node_modules/.bin/prism (installed by `npm ci`), never through npx: killing
`npm exec` orphans the node server (TESTING.md §9). It runs in its own process group, which is
what teardown kills.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = REPO_ROOT / "tests" / "twilio" / "twilio_api_v2010.json"
PRISM_BIN = REPO_ROOT / "node_modules" / ".bin" / "prism"
HOST = "127.0.0.1"
READY_DEADLINE_S = 60.0
_PORT_ATTEMPTS = 3  # a free port can be taken between our probe and Prism's bind


class PrismError(RuntimeError):
    pass


@dataclass
class PrismServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise PrismError(f"Prism (pid {self.process.pid}) exited with code {self.process.returncode}; "
                             f"log {self.log_path}:\n{log_tail(self.log_path)}")

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the whole process group, then SIGKILL if it lingers. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _kill_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _kill_group(self.process, signal.SIGKILL)
            self.process.wait(timeout=grace_s)
        # Prism may leave children in the group (-m forks one); make sure none survive.
        _kill_group(self.process, signal.SIGKILL)


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # start_new_session=True: pgid == pid
    except ProcessLookupError:
        pass


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def require_prism() -> Path:
    if not PRISM_BIN.exists():
        raise PrismError(
            f"{PRISM_BIN} is missing. Install the pinned Node test tools first: "
            f"`npm ci --no-audit --no-fund` in {REPO_ROOT} (the Makefile's test target does this).")
    if not SPEC.exists():
        raise PrismError(f"Twilio spec missing: {SPEC}")
    return PRISM_BIN


def _port_open(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def start_prism(log_path: Path, *, deadline_s: float = READY_DEADLINE_S) -> PrismServer:
    """Start Prism on a free loopback port; return once the port accepts connections."""
    prism = require_prism()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_port()
        with open(log_path, "ab") as log:
            log.write(f"--- prism start on {HOST}:{port} (attempt {attempt})\n".encode())
            log.flush()
            process = subprocess.Popen(
                [str(prism), "mock", str(SPEC), "-h", HOST, "-p", str(port), "-v", "warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=REPO_ROOT, start_new_session=True)
        server = PrismServer(port=port, process=process, log_path=log_path)
        started = time.monotonic()
        while True:
            if not server.alive():
                server.stop()
                if "EADDRINUSE" in log_tail(log_path) and attempt < _PORT_ATTEMPTS:
                    break  # lost the port race; try another
                raise PrismError(f"Prism exited during startup (code {process.returncode}); "
                                 f"log {log_path}:\n{log_tail(log_path)}")
            if _port_open(port):
                return server
            if time.monotonic() - started > deadline_s:
                server.stop()
                raise PrismError(f"Prism not accepting connections on {HOST}:{port} after {deadline_s:.0f} s; "
                                 f"log {log_path}:\n{log_tail(log_path)}")
            time.sleep(0.1)
    raise PrismError(f"Prism could not bind a free port in {_PORT_ATTEMPTS} attempts; log {log_path}")

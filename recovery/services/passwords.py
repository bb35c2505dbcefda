"""Nurse passwords: argon2id with argon2-cffi's defaults (t=3, m=64 MiB, p=4; above ASVS 5.0 App. C).

One verification takes tens of milliseconds of every core. `HashSlots` caps how many run at once on
this host, across every worker process, so wrong sign-ins (an attack, or a whole shift at once)
cannot tie up every worker: a sign-in that finds no free slot is told to try again at once instead
of waiting in a worker.
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_LENGTH = 12
MAX_LENGTH = 128


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


def password_problem(password: str, *, name: str = "", email: str = "") -> str | None:
    """Why this password is refused (for the form or the CLI), or None. The one password policy:
    the set-password page, the CLI and every other place that sets a password call this."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if len(set(password)) < 4:
        return "That password is too easy to guess."
    return None


class HashingBusy(Exception):
    """Every hashing slot stayed taken for the whole wait."""


class HashSlots:
    """At most `count` password hashes at a time on this host: one lock file per slot in
    `directory`, held with flock (released by the kernel if a worker dies mid-hash). Locks taken
    through separate open() calls exclude each other within one process too, so threads count."""

    def __init__(self, directory: Path | str, count: int, wait_seconds: float):
        if count < 1:
            raise ValueError(f"HashSlots: count must be >= 1, not {count!r}")
        self.directory = Path(directory)
        self.count = count
        self.wait_seconds = max(0.0, wait_seconds)

    def _try_each(self) -> int | None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for slot in range(self.count):
            fd = os.open(self.directory / f"hash-slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        return None

    @contextmanager
    def hold(self) -> Iterator[None]:
        deadline = time.monotonic() + self.wait_seconds
        fd = self._try_each()
        while fd is None:
            if time.monotonic() >= deadline:
                raise HashingBusy()
            time.sleep(0.01)
            fd = self._try_each()
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

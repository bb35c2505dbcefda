"""Staff passwords: the policy (`password_problem`) and argon2id with argon2-cffi's defaults (t=3, m=64 MiB, p=4; above ASVS 5.0 App. C).

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
from zxcvbn import zxcvbn

_hasher = PasswordHasher()
MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_GUESS_SCORE = 3  # zxcvbn's 0-4 scale


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
    the set-password page, the CLI and every other place that sets a password call this.

    At least `MIN_LENGTH` characters (NIST SP 800-63B 5.1.1.2 asks for 8 at least, ASVS 5.0 for
    12), and not a common password or an easy variant of one: zxcvbn's estimate, which matches
    against its shipped list of the 30,000 most common passwords (and English words, names,
    keyboard walks, dates, repeats, l33t and reversed spellings, the person's own name and email),
    must be at least `MIN_GUESS_SCORE` (about 10^8 guesses). It runs offline.
    """
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    own = [part for part in (name, email, *name.split(), email.split("@")[0]) if part]
    verdict = zxcvbn(password, user_inputs=own, max_length=MAX_LENGTH)
    if verdict["score"] < MIN_GUESS_SCORE:
        warning = verdict["feedback"].get("warning") or ""
        return ("That password is too easy to guess" + (f": {warning[:1].lower()}{warning[1:].rstrip('.')}" if warning
                                                         else "") + ". A few unrelated words make a good one.")
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

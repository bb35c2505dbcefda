"""Random tokens for links and sessions. Only SHA-256 digests are stored: 256-bit secrets need
no slow hash (ASVS 5.0 6.5.2)."""
from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()

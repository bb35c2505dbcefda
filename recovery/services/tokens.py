"""Random tokens for links and sessions. Only SHA-256 digests are stored: secrets of 128 bits or
more need no slow hash, since nobody can guess one to test against a digest (ASVS 5.0 6.5.2).

* Session cookies: 256 bits (43 characters).
* Patient links in texts: 128 bits (22 base64url characters), so a link fits an SMS beside its
  words. 2^128 guesses are out of reach; links are single-use, expire within days, and the link
  routes are rate limited. Links sent before this change carry 43-character tokens; they are
  looked up by digest in the same way and keep working until they expire.
"""
from __future__ import annotations

import hashlib
import secrets

LINK_TOKEN_BYTES = 16  # 128 bits -> 22 characters (recovery.domain.texts.LINK_TOKEN_CHARS)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_link_token() -> str:
    return secrets.token_urlsafe(LINK_TOKEN_BYTES)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()

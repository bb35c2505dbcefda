"""pytest fixtures for the Prism-backed Twilio tests, registered by tests/conftest.py with

    pytest_plugins = ["tests.twilio.fixtures"]

Prism starts on first use only, so runs that never touch Twilio never pay its ~2 s start-up, and
at most once per test run.
A missing node_modules is an error, never a skip.

Environment: PRISM_LOG=path keeps Prism's log there (CI artifact); default is a pytest temp dir.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from recovery.messaging.twilio_gateway import LocalMockHttpClient, TwilioGateway
from tests.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.twilio.canned_errors import FROM_VALID, canned_twilio_errors
from tests.twilio.prism import PrismServer, start_prism

TEST_FROM_NUMBER = FROM_VALID

_shared_lock = threading.Lock()
_shared: dict[str, PrismServer | int | None] = {"server": None, "users": 0}


@pytest.fixture(scope="session")
def prism_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    with _shared_lock:
        server = _shared["server"]
        if not isinstance(server, PrismServer) or not server.alive():
            env_log = os.environ.get("PRISM_LOG")
            log_path = Path(env_log).resolve() if env_log else tmp_path_factory.mktemp("prism") / "prism.log"
            server = _shared["server"] = start_prism(log_path)
        _shared["users"] = int(_shared["users"] or 0) + 1
    try:
        yield server
    finally:
        with _shared_lock:
            _shared["users"] = int(_shared["users"] or 0) - 1
            if _shared["users"] == 0:
                server.stop()
                _shared["server"] = None


@pytest.fixture(scope="session")
def prism_url(prism_server: PrismServer) -> str:
    """Base URL of the session's Prism, e.g. http://127.0.0.1:40123 (TWILIO_API_BASE_URL)."""
    return prism_server.url


@pytest.fixture
def twilio_http_client(prism_server: PrismServer) -> LocalMockHttpClient:
    """A fresh SDK HTTP client aimed at Prism; fails loudly if Prism died mid-session."""
    prism_server.check_alive()
    return LocalMockHttpClient(prism_server.url, timeout=5)


@pytest.fixture
def twilio_gateway(twilio_http_client: LocalMockHttpClient) -> TwilioGateway:
    """The real TwilioGateway + SDK against Prism. `.http_client._test_only_last_request` is what was sent."""
    return TwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, from_number=TEST_FROM_NUMBER,
                         http_client=twilio_http_client)


@pytest.fixture
def twilio_errors(prism_url: str) -> Iterator[responses.RequestsMock]:
    """Canned Twilio errors on the magic numbers (tests/twilio/canned_errors.py), Prism for the rest."""
    with canned_twilio_errors(prism_url) as rsps:
        yield rsps

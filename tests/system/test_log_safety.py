"""What may reach a log line (issue 11 §2): no forged lines from user input, no phone number or
email in the rate limiter's lines, no usable link anywhere."""
from __future__ import annotations

import io
import logging
import re
from contextlib import contextmanager

from tests.support.factories import make_clinic, make_staff

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.-]+: ")
FORGED = "2026-03-09 15:00:00,000 INFO recovery.web.auth: admin@example.org signed in"


@contextmanager
def server_log():
    """The root logger's output, formatted as a server writes it."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield buf
    finally:
        root.removeHandler(handler)


def _lines_are_records(text: str) -> list[str]:
    """Lines that neither start a record nor are indented (a traceback's): i.e. forged."""
    return [line for line in text.splitlines() if line and not RECORD_START.match(line) and not line[0].isspace()]


def test_an_email_with_a_newline_cannot_forge_a_log_line(make_app, session):
    """Reproduction: the limiter logged the raw email, newline and all."""
    with make_app(RATELIMIT_ENABLED=True) as app:
        clinic = make_clinic(session)
        make_staff(session, clinic)
        session.commit()
        client = app.test_client()
        email = "nurse.canary@example.org\n" + FORGED
        with server_log() as out:
            codes = [client.post("/login", data={"email": email, "password": "wrong-password-1"}).status_code
                     for _ in range(6)]
            logging.getLogger("recovery.test").warning("user said %s", "a\r\nb\x1b[2Jc\u202ed")
        assert codes[-1] == 429
        text = out.getvalue()
        assert "exceeded" in text  # the limiter did log its line
        assert _lines_are_records(text) == [], text
        assert "nurse.canary" not in text
        assert "user said a\\r\\nb\\x1b[2Jc\\u202ed" in text


def test_the_limiter_logs_no_phone_number_or_address(make_app, session):
    """Reproduction: `ratelimit 3 per 1 hour (link-request|2025550113) exceeded`."""
    with make_app(RATELIMIT_ENABLED=True, LINK_RATE_LIMIT="2 per hour") as app:
        client = app.test_client()
        with server_log() as out:
            codes = [client.post("/new-link", data={"mobile": "(202) 555-0113"},
                                 environ_overrides={"REMOTE_ADDR": "198.51.100.41"}).status_code for _ in range(4)]
        assert codes == [200, 200, 429, 429]
        text = out.getvalue()
        assert "exceeded" in text
        for secret in ("5550113", "555-0113", "0113", "198.51.100.41"):
            assert secret not in text, text


def test_no_log_line_carries_a_usable_link(app):  # create_app installs the record factory
    token = "Zq3xW8pLr2Vb9nKd4TfYh6Jm1Cs7Ga5Ue0Oi_Ny-Ek"
    with server_log() as out:
        logging.getLogger("werkzeug").info('127.0.0.1 - - "GET /l/%s HTTP/1.1" 200 -', token)
        logging.getLogger("recovery.test").info("sent https://recovery.example.org/l/%s", token)
    text = out.getvalue()
    assert token[4:] not in text and text.count("/l/Zq3x…") == 2


def test_a_traceback_cannot_forge_a_line_either():
    from recovery.logsetup import FORMAT as APP_FORMAT, SafeFormatter
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(SafeFormatter(APP_FORMAT))
    log = logging.getLogger("recovery.test.traceback")
    log.addHandler(handler)
    try:
        try:
            raise ValueError("bad input\n" + FORGED)
        except ValueError:
            log.exception("it failed")
    finally:
        log.removeHandler(handler)
    text = buf.getvalue()
    assert "Traceback" in text and "\n" + FORGED not in text
    assert _lines_are_records(text) == [], text

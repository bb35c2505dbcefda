"""ConsoleGateway (dev) and RecordingGateway (tests): masked numbers only, one line per text, and
the console never prints a text itself (a live link, whatever a template says)."""
from __future__ import annotations

import logging
import re
import threading

import pytest

from recovery.messaging import SendError, SendResult, SmsGateway
from recovery.messaging.console import LOGGER_NAME, ConsoleGateway, RecordingGateway, SentSms

NUMBER = "+15005550100"
OTHER = "+15005550142"
TOKEN = "Zq3xW8pLr2Vb9nKd4TfYh6Jm1Cs7Ga5Ue0Oi_Ny-Ek"  # the shape of recovery.services.tokens.new_token()
BODY = f"Hi Ana, your check-in is ready: https://recovery.example.org/l/{TOKEN}"


@pytest.fixture
def console_records(caplog):
    """The console logger does not propagate (one line on stdout), so attach caplog's handler to it."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def all_output(out: str, err: str, caplog) -> str:
    """stdout, stderr, the formatted log, and each record's raw parts (args can reach structured logs)."""
    records = "\n".join(f"{r.getMessage()} {r.args!r} {r.msg}" for r in caplog.records)
    return "\n".join((out, err, caplog.text, records))


def test_console_prints_one_masked_line_per_text(capsys, console_records):
    gateway = ConsoleGateway()
    result = gateway.send(to=NUMBER, body=BODY, status_callback=None)

    out, err = capsys.readouterr()
    line = f"SMS to +1••••••0100: {len(BODY)} characters, link https://recovery.example.org/l/Zq3x…"
    assert out == line + "\n"
    assert err == ""
    assert [r.getMessage() for r in console_records.records] == [line]
    assert re.fullmatch(r"CO[0-9a-f]{32}", result.provider_id)
    assert result.status == "queued"
    assert isinstance(gateway, SmsGateway)


def test_console_never_outputs_the_full_number(capsys, console_records):
    gateway = ConsoleGateway()
    for number in (NUMBER, OTHER, "+447700900123"):
        gateway.send(to=number, body=BODY, status_callback="https://recovery.example.org/twilio/status?ob=1")
    with pytest.raises(SendError):
        gateway.send(to="5005550100", body=BODY, status_callback=None)  # not E.164: refused, not printed

    out, err = capsys.readouterr()
    output = all_output(out, err, console_records)
    for number in (NUMBER, OTHER, "+447700900123", "5005550100"):
        assert number[-10:] not in output
        assert number.lstrip("+")[:-4] not in output.replace("•", "")
    assert out.count("SMS to ") == 3
    assert len(console_records.records) == 3


def test_console_keeps_a_multiline_body_on_one_line(capsys):
    ConsoleGateway().send(to=NUMBER, body="Hi Ana,\nyour link:\r\nhttps://x.example/c/1", status_callback=None)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("SMS to +1••••••0100: 41 characters")


def test_console_never_prints_the_text_a_usable_link_or_a_symptom(capsys, console_records):
    """Issue 11: it printed whole texts, live sign-in links included."""
    body = f"Maria, about your LEG-NUMBNESS-CANARY: https://recovery.example.org/l/{TOKEN} or 202 555 0100"
    ConsoleGateway().send(to=NUMBER, body=body, status_callback="https://recovery.example.org/twilio/status?ob=41")
    out, err = capsys.readouterr()
    output = all_output(out, err, console_records)
    assert out == f"SMS to +1••••••0100 (outbox 41): {len(body)} characters, link https://recovery.example.org/l/Zq3x…\n"
    for secret in (TOKEN, TOKEN[4:20], "Maria", "LEG-NUMBNESS", "555 0100"):
        assert secret not in output


def test_console_still_prints_when_the_root_logger_is_quiet(capsys):
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.CRITICAL)
    try:
        ConsoleGateway().send(to=NUMBER, body=BODY, status_callback=None)
    finally:
        root.setLevel(previous)
    assert "SMS to +1••••••0100" in capsys.readouterr().out


def test_console_records_every_text_in_memory():
    gateway = ConsoleGateway()
    first = gateway.send(to=NUMBER, body="one", status_callback=None)
    second = gateway.send(to=OTHER, body="two", status_callback="https://x.example/s")
    assert gateway.sent == (SentSms(NUMBER, "one", None, first.provider_id),
                            SentSms(OTHER, "two", "https://x.example/s", second.provider_id))
    assert first.provider_id != second.provider_id
    gateway.clear()
    assert gateway.sent == ()


def test_console_is_thread_safe(capsys):
    gateway = ConsoleGateway()

    def worker(n: int) -> None:
        for i in range(50):
            gateway.send(to=NUMBER, body=f"t{n}-{i}", status_callback=None)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = gateway.sent
    assert len(sent) == 400
    assert len({s.provider_id for s in sent}) == 400
    assert sorted(s.body for s in sent) == sorted(f"t{n}-{i}" for n in range(8) for i in range(50))
    assert capsys.readouterr().out.count("\n") == 400


@pytest.mark.parametrize("gateway_class", [ConsoleGateway, RecordingGateway])
def test_empty_body_is_a_programming_error(gateway_class, capsys):
    with pytest.raises(ValueError, match="body is empty"):
        gateway_class().send(to=NUMBER, body=" \n", status_callback=None)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("bad", ["5005550100", "+0123456789", "+1 500 555 0100", "", "+1234"])
def test_malformed_numbers_are_invalid_number_errors(bad):
    with pytest.raises(SendError) as caught:
        RecordingGateway().send(to=bad, body=BODY, status_callback=None)
    assert caught.value.kind == "invalid_number"


# ---- RecordingGateway -------------------------------------------------------------------------

def test_recording_records_sends_with_predictable_ids():
    gateway = RecordingGateway()
    first = gateway.send(to=NUMBER, body="a", status_callback="https://x.example/s?ob=1")
    second = gateway.send(to=OTHER, body="b", status_callback=None)
    assert first == SendResult(provider_id="SM" + "0" * 31 + "1", status="queued")
    assert second.provider_id == "SM" + "0" * 31 + "2"
    assert gateway.sent == (SentSms(NUMBER, "a", "https://x.example/s?ob=1", first.provider_id),
                            SentSms(OTHER, "b", None, second.provider_id))
    assert gateway.sent_to(OTHER) == (SentSms(OTHER, "b", None, second.provider_id),)


def test_recording_fails_a_given_number_every_time():
    gateway = RecordingGateway()
    gateway.fail_number(OTHER, SendError("opted_out", code=21610, http_status=400))
    for _ in range(3):
        with pytest.raises(SendError) as caught:
            gateway.send(to=OTHER, body=BODY, status_callback=None)
        assert (caught.value.kind, caught.value.code) == ("opted_out", 21610)
    gateway.send(to=NUMBER, body=BODY, status_callback=None)

    assert [a.to for a in gateway.attempts] == [OTHER, OTHER, OTHER, NUMBER]
    assert [a.error.kind if a.error else "ok" for a in gateway.attempts] == ["opted_out"] * 3 + ["ok"]
    assert [s.to for s in gateway.sent] == [NUMBER]
    gateway.clear_failures()
    gateway.send(to=OTHER, body=BODY, status_callback=None)
    assert len(gateway.sent_to(OTHER)) == 1


def test_recording_fails_the_next_n_sends_then_recovers():
    gateway = RecordingGateway()
    template = SendError("retryable", code=20429, http_status=429, retry_after=3)
    gateway.fail_next(template, times=2)
    raised = []
    for _ in range(2):
        with pytest.raises(SendError) as caught:
            gateway.send(to=NUMBER, body=BODY, status_callback=None)
        raised.append(caught.value)
    assert gateway.send(to=NUMBER, body=BODY, status_callback=None).status == "queued"

    assert all(e.kind == "retryable" and e.retry_after == 3 for e in raised)
    assert raised[0] is not raised[1] and raised[0] is not template  # fresh copies
    assert [a.result is not None for a in gateway.attempts] == [False, False, True]


def test_recording_queued_failures_come_before_per_number_ones():
    gateway = RecordingGateway()
    gateway.fail_number(NUMBER, SendError("invalid_number", code=21211))
    gateway.fail_next(SendError("retryable", code=20429))
    with pytest.raises(SendError) as first:
        gateway.send(to=NUMBER, body=BODY, status_callback=None)
    with pytest.raises(SendError) as second:
        gateway.send(to=NUMBER, body=BODY, status_callback=None)
    assert (first.value.kind, second.value.kind) == ("retryable", "invalid_number")


def test_recording_rejects_bad_failure_plans():
    gateway = RecordingGateway()
    with pytest.raises(TypeError, match="SendError"):
        gateway.fail_number(NUMBER, RuntimeError("x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times must be an int >= 1"):
        gateway.fail_next(SendError("permanent"), times=0)


def test_recording_is_thread_safe():
    gateway = RecordingGateway()
    gateway.fail_next(SendError("retryable"), times=100)
    failures = []

    def worker() -> None:
        for _ in range(100):
            try:
                gateway.send(to=NUMBER, body=BODY, status_callback=None)
            except SendError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(failures) == 100
    assert len(gateway.sent) == 300
    assert len({s.provider_id for s in gateway.sent}) == 300
    assert len(gateway.attempts) == 400

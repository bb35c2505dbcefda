"""The real twilio SDK, through TwilioGateway, against Prism serving Twilio's own OpenAPI spec.

Plus the pure parts of the messaging interface: error kinds, back-off, Retry-After, masking.
"""
from __future__ import annotations

import random
import re
import socket
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from recovery.messaging import (
    MAX_ATTEMPTS,
    SendError,
    Sender,
    SendResult,
    SmsGateway,
    backoff_delay,
    error_kind,
    mask_number,
    parse_retry_after,
    retry_delay,
)
from recovery.messaging.twilio_gateway import (
    LocalMockHttpClient,
    NonTwilioHostError,
    TwilioGateway,
    compute_signature,
    validate_signature,
)
from tests.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.twilio import canned_errors as canned
from tests.twilio.fixtures import TEST_FROM_NUMBER  # the fixtures come from conftest's pytest_plugins

PATIENT = "+15558675310"
BODY = "Hi Ana, time for today's check-in: https://recovery.example.org/c/abc123"
CALLBACK = "https://recovery.example.org/twilio/status?ob=42"
SERVICE_SID = "MG" + "fedcba9876543210" * 2


def sent_form(gateway: TwilioGateway) -> dict[str, str]:
    request = gateway.http_client._test_only_last_request
    assert request is not None, "nothing was sent"
    return dict(request.data)


def digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)


# ---- happy path through Prism ----------------------------------------------------------------

def test_send_returns_sid_and_status_from_the_create_response(twilio_gateway):
    result = twilio_gateway.send(to=PATIENT, body=BODY, status_callback=CALLBACK)

    # Prism's static answer is Twilio's own `create` example.
    assert result == SendResult(provider_id="SM" + "a" * 32, status="queued")
    assert isinstance(twilio_gateway, SmsGateway)
    last = twilio_gateway.http_client._test_only_last_response
    assert last.status_code == 201
    request = twilio_gateway.http_client._test_only_last_request
    assert request.method == "POST"
    assert request.url.endswith(f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json")
    assert request.auth == (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)
    assert sent_form(twilio_gateway) == {
        "To": PATIENT, "Body": BODY, "StatusCallback": CALLBACK, "From": TEST_FROM_NUMBER}


def test_messaging_service_is_sent_instead_of_from(twilio_http_client):
    gateway = TwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, messaging_service_sid=SERVICE_SID,
                            http_client=twilio_http_client)
    result = gateway.send(to=PATIENT, body=BODY, status_callback=CALLBACK)

    assert result.provider_id.startswith("SM")
    assert sent_form(gateway) == {
        "To": PATIENT, "Body": BODY, "StatusCallback": CALLBACK, "MessagingServiceSid": SERVICE_SID}


def test_a_clinics_own_sender_replaces_the_configured_one(twilio_gateway):
    """Set at /admin/clinic: the clinic's number or messaging service, never mixed with the app's."""
    twilio_gateway.send(to=PATIENT, body=BODY, status_callback=CALLBACK, sender=Sender(messaging_service_sid=SERVICE_SID))
    assert sent_form(twilio_gateway) == {
        "To": PATIENT, "Body": BODY, "StatusCallback": CALLBACK, "MessagingServiceSid": SERVICE_SID}
    twilio_gateway.send(to=PATIENT, body=BODY, status_callback=CALLBACK, sender=Sender(from_number="+15005550006"))
    assert sent_form(twilio_gateway)["From"] == "+15005550006" and "MessagingServiceSid" not in sent_form(twilio_gateway)
    with pytest.raises(SendError) as err:
        twilio_gateway.send(to=PATIENT, body=BODY, status_callback=CALLBACK, sender=Sender(from_number="12"))
    assert err.value.kind == "permanent"


def test_no_status_callback_means_the_field_is_not_sent(twilio_gateway):
    twilio_gateway.send(to=PATIENT, body=BODY, status_callback=None)
    assert "StatusCallback" not in sent_form(twilio_gateway)


def test_status_callback_that_is_not_a_uri_is_a_permanent_error(twilio_gateway):
    with pytest.raises(SendError) as caught:
        twilio_gateway.send(to=PATIENT, body=BODY, status_callback="not a url")

    assert caught.value.kind == "permanent"
    assert caught.value.http_status == 422
    # The rejection is Prism's schema validation of Twilio's spec, not something we made up.
    assert "StatusCallback" in twilio_gateway.http_client._test_only_last_response.text


def test_malformed_number_never_reaches_twilio(twilio_gateway):
    with pytest.raises(SendError) as caught:
        twilio_gateway.send(to="555-0100", body=BODY, status_callback=None)
    assert caught.value.kind == "invalid_number"
    assert twilio_gateway.http_client._test_only_last_request is None


def test_empty_body_is_refused_before_sending(twilio_gateway):
    with pytest.raises(ValueError, match="body is empty"):
        twilio_gateway.send(to=PATIENT, body="  ", status_callback=None)
    assert twilio_gateway.http_client._test_only_last_request is None


# ---- Twilio error codes (canned with `responses`, the rest passes through to Prism) -----------

@pytest.mark.parametrize(("to", "kind", "code"), [
    (canned.TO_INVALID, "invalid_number", 21211),
    (canned.TO_NOT_MOBILE, "invalid_number", 21614),
    (canned.TO_OPTED_OUT, "opted_out", 21610),
    (canned.TO_UNREACHABLE, "permanent", 21612),
    (canned.TO_NO_INTERNATIONAL, "permanent", 21408),
])
def test_twilio_refusals_map_to_kinds_and_are_sent_once(twilio_gateway, twilio_errors, to, kind, code):
    with pytest.raises(SendError) as caught:
        twilio_gateway.send(to=to, body=BODY, status_callback=CALLBACK)

    error = caught.value
    assert (error.kind, error.code, error.http_status) == (kind, code, 400)
    assert error.retry_after is None and error.may_have_sent is False
    assert len(twilio_errors.calls) == 1
    # Twilio's message echoes the number; ours must not, nor may a chained traceback.
    assert digits(to) not in digits(str(error)) + digits(repr(error))
    assert error.__suppress_context__ and error.__cause__ is None


def test_sender_errors_are_permanent(twilio_http_client, twilio_errors):
    gateway = TwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, from_number=canned.FROM_NOT_OWNED,
                            http_client=twilio_http_client)
    with pytest.raises(SendError) as caught:
        gateway.send(to=PATIENT, body=BODY, status_callback=None)
    assert (caught.value.kind, caught.value.code) == ("permanent", 21606)


def test_an_ordinary_number_passes_through_to_prism(twilio_gateway, twilio_errors):
    result = twilio_gateway.send(to=PATIENT, body=BODY, status_callback=CALLBACK)
    assert result.status == "queued"
    assert twilio_gateway.http_client._test_only_last_response.status_code == 201  # Prism, not a canned body
    assert len(twilio_errors.calls) == 0  # `responses` records only the calls it answered itself


def test_20429_is_retryable_and_the_sdk_does_not_retry_it(twilio_gateway, twilio_errors):
    with pytest.raises(SendError) as caught:
        twilio_gateway.send(to=canned.TO_RATE_LIMITED, body=BODY, status_callback=CALLBACK)

    error = caught.value
    assert (error.kind, error.code, error.http_status) == ("retryable", 20429, 429)
    assert error.retry_after is None
    assert error.may_have_sent is False  # Twilio: a 429 is never processed
    assert len(twilio_errors.calls) == 1


def test_retry_after_header_is_read(twilio_gateway, twilio_errors):
    with pytest.raises(SendError) as caught:
        twilio_gateway.send(to=canned.TO_RATE_LIMITED_RETRY_AFTER, body=BODY, status_callback=None)
    assert caught.value.retry_after == 30.0
    assert retry_delay(caught.value, 1, rng=random.Random(1)) >= 30.0


def test_http_500_is_retryable_but_may_have_been_processed(twilio_gateway, twilio_errors):
    with pytest.raises(SendError) as caught:
        twilio_gateway.send(to=canned.TO_SERVER_ERROR, body=BODY, status_callback=None)
    error = caught.value
    assert (error.kind, error.code, error.http_status) == ("retryable", 20500, 500)
    assert error.may_have_sent is True
    assert len(twilio_errors.calls) == 1


# ---- transport failures -----------------------------------------------------------------------

def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mock_down_is_a_retryable_connection_error():
    port = unused_port()  # nothing listens there
    gateway = TwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, from_number=TEST_FROM_NUMBER,
                            http_client=LocalMockHttpClient(f"http://127.0.0.1:{port}", timeout=2))
    with pytest.raises(SendError) as caught:
        gateway.send(to=PATIENT, body=BODY, status_callback=None)
    error = caught.value
    assert (error.kind, error.code, error.http_status) == ("retryable", None, None)
    assert error.may_have_sent is False  # the connection was never opened
    assert "connection" in str(error)


def test_read_timeout_is_retryable_and_ambiguous():
    # A socket that accepts the connection (kernel backlog) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        gateway = TwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, from_number=TEST_FROM_NUMBER,
                                http_client=LocalMockHttpClient(f"http://127.0.0.1:{port}", timeout=0.3))
        with pytest.raises(SendError) as caught:
            gateway.send(to=PATIENT, body=BODY, status_callback=None)
    assert caught.value.kind == "retryable"
    assert caught.value.may_have_sent is True
    assert "timeout" in str(caught.value)


# ---- the mock client never leaves this machine -----------------------------------------------

@pytest.mark.parametrize("url", [
    "https://api.twilio.com.evil.example/2010-04-01/Accounts.json",
    "http://api.twilio.com/2010-04-01/Accounts.json",
    "https://messaging.twilio.com/v1/Services",
    "https://api.dublin.ie1.twilio.com/2010-04-01/Accounts.json",
    "https://example.com/",
])
def test_mock_client_refuses_other_hosts(url):
    client = LocalMockHttpClient("http://127.0.0.1:9")
    with pytest.raises(NonTwilioHostError):
        client.request("POST", url, data={"To": PATIENT})
    assert client._test_only_last_request is None


def test_gateway_refuses_a_regional_host_instead_of_calling_it(monkeypatch, twilio_http_client):
    monkeypatch.setenv("TWILIO_REGION", "ie1")  # the SDK would build api.dublin.ie1.twilio.com
    gateway = TwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, from_number=TEST_FROM_NUMBER,
                            http_client=twilio_http_client)
    with pytest.raises(NonTwilioHostError):
        gateway.send(to=PATIENT, body=BODY, status_callback=None)


@pytest.mark.parametrize(("base_url", "problem"), [
    ("https://mock.example.com", "this machine"),
    ("http://10.0.0.5:4010", "this machine"),
    ("127.0.0.1:4010", "http(s) URL"),
    ("http://127.0.0.1:4010/2010-04-01", "without a path"),
])
def test_mock_base_url_must_be_a_local_origin(base_url, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        LocalMockHttpClient(base_url)


def test_mock_base_url_accepts_loopback_forms():
    assert LocalMockHttpClient("http://localhost:4010/").base_url == "http://localhost:4010"
    assert LocalMockHttpClient("http://[::1]:4010").base_url == "http://[::1]:4010"


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"account_sid": "ACtest"}, "TWILIO_ACCOUNT_SID"),
    ({"auth_token": ""}, "TWILIO_AUTH_TOKEN"),
    ({"from_number": None}, "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"),
    ({"from_number": "5017122661"}, "TWILIO_FROM_NUMBER"),
    ({"messaging_service_sid": "MGnope"}, "TWILIO_MESSAGING_SERVICE_SID"),
])
def test_bad_configuration_names_the_setting(kwargs, problem):
    args = {"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN, "from_number": TEST_FROM_NUMBER}
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(problem)):
        TwilioGateway(args.pop("account_sid"), args.pop("auth_token"), **args)


def test_default_http_client_has_a_timeout():
    gateway = TwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, from_number=TEST_FROM_NUMBER, timeout=7)
    assert gateway.http_client.timeout == 7


# ---- webhook signatures -----------------------------------------------------------------------

# Twilio's published example (security docs; the same vector is in the SDKs' own tests).
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
              "From": "+14158675309", "To": "+18005551212"}
DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_matches_twilios_published_vector():
    assert compute_signature("12345", DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert validate_signature("12345", DOC_URL, DOC_PARAMS, DOC_SIGNATURE) is True
    assert validate_signature("12345", DOC_URL, MultiDict(DOC_PARAMS), DOC_SIGNATURE) is True


@pytest.mark.parametrize(("token", "url", "params", "signature"), [
    ("12345", DOC_URL, {**DOC_PARAMS, "Digits": "9999"}, DOC_SIGNATURE),  # tampered body
    ("12345", DOC_URL, {**DOC_PARAMS, "Extra": "1"}, DOC_SIGNATURE),  # added field
    ("12345", DOC_URL + "&baz=3", DOC_PARAMS, DOC_SIGNATURE),  # other URL
    ("54321", DOC_URL, DOC_PARAMS, DOC_SIGNATURE),  # wrong token
    ("12345", DOC_URL, DOC_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8"),  # truncated signature
    ("12345", DOC_URL, DOC_PARAMS, ""),
    ("12345", DOC_URL, DOC_PARAMS, None),
])
def test_signature_rejects_anything_changed(token, url, params, signature):
    assert validate_signature(token, url, params, signature) is False


def test_signature_of_a_status_callback_round_trips():
    url = "https://recovery.example.org/twilio/status?ob=42"
    form = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered", "To": PATIENT}
    signature = compute_signature(TEST_AUTH_TOKEN, url, form)
    assert validate_signature(TEST_AUTH_TOKEN, url, form, signature)
    assert validate_signature(TEST_AUTH_TOKEN, "https://recovery.example.org:443/twilio/status?ob=42",
                              form, signature)  # Twilio signs with or without the port
    assert not validate_signature(TEST_AUTH_TOKEN, url, {**form, "MessageStatus": "failed"}, signature)


def test_signature_needs_a_token():
    with pytest.raises(ValueError, match="auth token is empty"):
        validate_signature("", DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


# ---- error kinds, back-off, Retry-After ------------------------------------------------------

@pytest.mark.parametrize(("code", "status", "kind"), [
    (21211, 400, "invalid_number"), (21614, 400, "invalid_number"), (21635, 400, "invalid_number"),
    (30005, None, "invalid_number"), (30006, None, "invalid_number"),
    (21610, 400, "opted_out"),
    (20429, 429, "retryable"), (20429, None, "retryable"), (None, 429, "retryable"), (20500, 500, "retryable"),
    (503, 503, "retryable"), (30003, None, "retryable"), (30008, None, "retryable"),
    (21612, 400, "permanent"), (21606, 400, "permanent"), (422, 422, "permanent"),
    (20003, 401, "permanent"), (30007, None, "permanent"), (None, None, "permanent"),
    (21211, 500, "invalid_number"),  # the code decides over the status
])
def test_error_kind_table(code, status, kind):
    assert error_kind(code, status) == kind


def test_send_error_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="kind must be one of"):
        SendError("oops")  # type: ignore[arg-type]


@given(attempt=st.integers(min_value=1, max_value=10_000), seed=st.integers(min_value=0, max_value=2**32))
def test_backoff_stays_within_full_jitter_bounds(attempt, seed):
    ceiling = min(300.0, 2.0 * 2.0 ** min(attempt - 1, 64))
    delay = backoff_delay(attempt, rng=random.Random(seed))
    assert 0.0 <= delay < ceiling
    assert delay <= 300.0


@given(base=st.floats(0.01, 60), factor=st.floats(1, 10), cap=st.floats(0.1, 86_400),
       attempt=st.integers(1, 10**9))
def test_backoff_never_overflows_or_exceeds_the_cap(base, factor, cap, attempt):
    delay = backoff_delay(attempt, base=base, factor=factor, cap=cap, rng=random.Random(0))
    assert 0.0 <= delay <= cap


def test_backoff_grows_then_plateaus():
    rng = random.Random(2024)
    means = [sum(backoff_delay(a, rng=rng) for _ in range(2000)) / 2000 for a in range(1, 11)]
    # Full jitter: the mean is half the ceiling (2, 4, 8, …, capped at 300).
    for attempt, mean in enumerate(means, start=1):
        expected = min(300.0, 2.0 * 2 ** (attempt - 1)) / 2
        assert expected * 0.9 < mean < expected * 1.1, (attempt, mean)


class FixedRng:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(("attempt", "draw", "expected"), [
    (1, 0.5, 1.0), (3, 0.5, 4.0), (8, 0.5, 128.0), (9, 0.5, 150.0), (10**6, 0.5, 150.0),
    (4, 0.0, 0.0), (4, 0.999, 15.984),
])
def test_backoff_exact_values(attempt, draw, expected):
    # ceiling = min(300, 2 * 2**(attempt-1)); the delay is draw * ceiling
    assert backoff_delay(attempt, rng=FixedRng(draw)) == pytest.approx(expected, rel=1e-12)


def test_backoff_is_pure_given_the_rng():
    assert backoff_delay(5, rng=random.Random(7)) == backoff_delay(5, rng=random.Random(7))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_backoff_rejects_bad_attempts(bad):
    with pytest.raises(ValueError, match="attempt must be an int >= 1"):
        backoff_delay(bad, rng=random.Random(0))


def test_retry_delay_gives_up():
    rng = random.Random(0)
    assert retry_delay(SendError("invalid_number", code=21211), 1, rng=rng) is None
    assert retry_delay(SendError("opted_out", code=21610), 1, rng=rng) is None
    assert retry_delay(SendError("retryable", code=20429), MAX_ATTEMPTS, rng=rng) is None
    assert retry_delay(SendError("retryable", code=20429), MAX_ATTEMPTS - 1, rng=rng) is not None


def test_parse_retry_after():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", now) == 120.0
    later = now + timedelta(seconds=90)
    assert parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"), now) == 90.0
    assert parse_retry_after("Sat, 21 Nov 2026 12:00:00 GMT", now) == 0.0  # in the past
    for garbage in (None, "", "soon", "-5", "1.5", "²"):
        assert parse_retry_after(garbage, now) is None
    with pytest.raises(ValueError, match="aware"):
        parse_retry_after("5", datetime(2026, 11, 22, 12, 0))


# ---- masking ----------------------------------------------------------------------------------

def test_mask_number_example():
    assert mask_number("+15005550100") == "+1••••••0100"


@given(country=st.integers(1, 9), rest=st.text(alphabet="0123456789", min_size=7, max_size=13))
def test_mask_number_reveals_only_the_zone_digit_and_last_four(country, rest):
    number = f"+{country}{rest}"
    masked = mask_number(number)
    assert digits(masked) == str(country) + rest[-4:]
    assert masked.startswith(f"+{country}") and masked.endswith(rest[-4:])
    assert len(masked) == len(number)  # one bullet per hidden digit
    assert number not in masked


@pytest.mark.parametrize("raw", ["5551234", "+1234", "12", "", "abc", "1 (500) 555-0100"])
def test_mask_number_odd_input_reveals_at_most_four(raw):
    masked = mask_number(raw)
    expected = digits(raw)[-4:] if len(digits(raw)) >= 8 else ""
    assert digits(masked) == expected


def test_mask_number_none():
    assert mask_number(None) == "(no number)"


def test_send_error_text_is_our_fixed_wording():
    error = SendError("invalid_number", code=21211, http_status=400, reason="Twilio refused the message")
    assert str(error) == "SMS send failed: invalid_number; Twilio refused the message; code 21211; HTTP 400"
    assert "+1" not in repr(error)


# ---- the Prism harness itself -----------------------------------------------------------------

def test_missing_node_modules_is_a_clear_error(monkeypatch, tmp_path):
    from tests.twilio import prism

    monkeypatch.setattr(prism, "PRISM_BIN", tmp_path / "node_modules" / ".bin" / "prism")
    with pytest.raises(prism.PrismError, match=re.escape("npm ci --no-audit --no-fund")):
        prism.start_prism(tmp_path / "prism.log")


def test_prism_that_dies_at_startup_is_reported_with_its_log(monkeypatch, tmp_path):
    from tests.twilio import prism

    broken = tmp_path / "broken.json"
    broken.write_text('{"openapi": "3.0.1", "paths": ')
    monkeypatch.setattr(prism, "SPEC", broken)
    with pytest.raises(prism.PrismError, match="exited during startup") as caught:
        prism.start_prism(tmp_path / "prism.log", deadline_s=30)
    assert "ParserError" in str(caught.value)  # Prism's own complaint, from the log tail

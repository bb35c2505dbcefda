"""End-to-end flows run with canary values, so the end-of-run privacy check (conftest) can prove none reaches a log."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import sqlalchemy as sa

from recovery.store.models import Patient
from tests.support.factories import PASSWORD, enrol, login, make_clinic, make_staff
from tests.support.privacy import CANARY_EMAIL, CANARY_PHONE, CANARY_SYMPTOM, COLLECTOR

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)


def test_enrolment_with_a_canary_number_logs_nothing_identifying(client, session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    session.commit()
    login(client, nurse)
    before = COLLECTOR.count
    r = client.post("/nurse/patients/new", data={
        "first_name": "Canary", "last_name": "Bird", "mobile": "(202) 555-7731", "timezone": "America/New_York",
        "language": "en", "sms_consent": "y", "procedure_type": "kyphoplasty",
        "procedure_end": "2026-03-09T08:30"})
    assert r.status_code == 303, r.data
    assert session.scalar(sa.select(Patient.mobile_e164).where(Patient.last_name == "Bird")) == CANARY_PHONE
    # a second enrolment with the same number and a broken form: errors must not echo into logs either
    client.post("/nurse/patients/new", data={"first_name": "Canary", "mobile": "(202) 555-7731"})
    logging.getLogger("recovery.test").info("flow done")
    assert COLLECTOR.count > before


def test_sign_in_and_its_limits_with_a_canary_email_log_nothing_identifying(make_app, session):
    """The limiter's "exceeded" line, failed and successful sign-ins, a newline in the email."""
    with make_app(RATELIMIT_ENABLED=True, LOGIN_IP_RATE_LIMIT="7 per 15 minutes") as app:
        clinic = make_clinic(session)
        make_staff(session, clinic, email=CANARY_EMAIL, mobile=CANARY_PHONE)
        session.commit()
        client = app.test_client()
        before = COLLECTOR.count
        assert client.post("/login", data={"email": CANARY_EMAIL, "password": PASSWORD}).status_code == 303
        client = app.test_client()
        for email in [CANARY_EMAIL] * 6 + [CANARY_EMAIL.upper() + "\n" + CANARY_SYMPTOM]:
            client.post("/login", data={"email": email, "password": "wrong-password-canary"})
        assert client.post("/login", data={"email": CANARY_EMAIL, "password": PASSWORD}).status_code == 429
        assert COLLECTOR.count > before  # the limiter did log


def test_new_link_requests_over_the_limits_with_a_canary_number_log_nothing(make_app, session, frozen):
    with make_app(RATELIMIT_ENABLED=True, LINK_RATE_LIMIT="5 per hour") as app:
        clinic = make_clinic(session)
        enrol(session, clinic, procedure_end=datetime(2026, 3, 8, 12, 0, tzinfo=timezone.utc), mobile=CANARY_PHONE,
              now=datetime.now(timezone.utc))  # the frozen clock
        session.commit()
        client = app.test_client()
        codes = [client.post("/new-link", data={"mobile": "(202) 555-7731"}).status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2


def test_the_console_backend_with_canary_texts_logs_nothing(app, capsys):
    from recovery.messaging.console import ConsoleGateway
    before = COLLECTOR.count
    ConsoleGateway().send(to=CANARY_PHONE, body=f"Canary, {CANARY_SYMPTOM}: https://x.example/l/{'A' * 43}",
                          status_callback="https://x.example/twilio/status?ob=7")
    assert COLLECTOR.count == before + 1  # the collector sees the console's own logger too
    out = capsys.readouterr().out
    assert "555" not in out and CANARY_SYMPTOM not in out and "A" * 10 not in out and "Canary" not in out


def test_the_end_of_run_privacy_check_fails_on_a_canary_in_a_log_line_or_file():
    """The check conftest runs when the session ends (it replaced a test that had to be collected last)."""
    import logging

    from tests.support.privacy import Collector, privacy_problems

    quiet = Collector()
    assert privacy_problems(quiet, [], installed=False) == ["the log collector is not on the root logger: it saw nothing"]
    assert privacy_problems(quiet, [], installed=True) == []
    assert COLLECTOR in logging.getLogger().handlers  # what conftest checks at the end
    leaky = Collector()
    leaky.emit(logging.LogRecord("recovery.test", logging.INFO, __file__, 1, "texting %s", (CANARY_PHONE,), None))
    leaky.emit(logging.LogRecord("recovery.test", logging.INFO, __file__, 2, "nothing here", (), None))
    problems = privacy_problems(leaky, ["scheduler.log: 202-555-7731"], installed=True)
    assert len(problems) == 2 and "recovery.test: texting" in problems[0] and "scheduler.log" in problems[1]
    assert privacy_problems(leaky, [], installed=True)[0].startswith("PHI in logs:")

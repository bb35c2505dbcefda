"""Issue 11 items 5 and 6: `flask create-staff`, a second `flask seed-demo`, `flask sms simulate-inbound`,
and tests that never read the developer's instance/ folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from recovery.cli.demo import DEMO_PATIENTS

from app import create_app
from recovery.config import REPO_ROOT
from recovery.store.models import AuditEvent, InboundMessage, Patient, StaffUser
from tests.support.factories import make_clinic
from tests.support.settings import app_config
from tests.services.test_dispatch import NOW, patient_at, plant, settings
from tests.services.test_inbound import INVITE, conv_of

PASSWORD = "a-long-enough-password"


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        return runner.invoke(args=list(args), input=input)
    return invoke


# ---- create-staff -----------------------------------------------------------------------------

def test_create_staff_stores_the_mobile_as_e164_and_audits(cli, session):
    clinic = make_clinic(session, slug="north")
    session.commit()
    r = cli("create-staff", "--clinic", "north", "--email", " Nora@Example.org ", "--name", "Nora Nurse",
            "--mobile", "2025550190", "--password", PASSWORD)
    assert r.exit_code == 0, r.output
    staff = session.scalar(sa.select(StaffUser).where(StaffUser.email == "nora@example.org"))
    assert staff.mobile_e164 == "+12025550190" and staff.clinic_id == clinic.id
    assert session.scalar(sa.select(AuditEvent.action).where(AuditEvent.subject_id == staff.id)) == "staff_created"


def test_create_staff_reads_a_number_in_the_clinics_own_country(cli, session):
    make_clinic(session, slug="leeds", tz="Europe/London")
    session.commit()
    r = cli("create-staff", "--clinic", "leeds", "--email", "lee@example.org", "--name", "Lee",
            "--mobile", "07911 123456", "--password", PASSWORD)
    assert r.exit_code == 0, r.output
    assert session.scalar(sa.select(StaffUser.mobile_e164)) == "+447911123456"


@pytest.mark.parametrize("mobile, problem", [("12", "not a valid phone number"),
                                             ("+1 202 555", "not a valid phone number"),
                                             ("hello", "Enter a phone number")])
def test_create_staff_refuses_a_bad_mobile_in_one_line(cli, session, mobile, problem):
    make_clinic(session, slug="north")
    session.commit()
    r = cli("create-staff", "--clinic", "north", "--email", "x@example.org", "--name", "X", "--mobile", mobile,
            "--password", PASSWORD)
    assert r.exit_code == 2 and problem in r.output, r.output
    assert session.scalar(sa.select(sa.func.count()).select_from(StaffUser)) == 0


@pytest.mark.parametrize("password, problem", [("short-1", "use at least 12 characters"),
                                               ("password1234", "too easy to guess: this is a very common password")])
def test_create_staff_uses_the_one_password_policy(cli, session, password, problem):
    make_clinic(session, slug="north")
    session.commit()
    r = cli("create-staff", "--clinic", "north", "--email", "x@example.org", "--name", "X", "--password", password)
    assert r.exit_code == 2 and problem in r.output, r.output
    assert session.scalar(sa.select(sa.func.count()).select_from(StaffUser)) == 0


def test_creating_the_same_email_twice_is_a_one_line_message_and_exit_2(cli, session):
    make_clinic(session, slug="north")
    session.commit()
    args = ["create-staff", "--clinic", "north", "--email", "nora@example.org", "--name", "Nora",
            "--password", PASSWORD]
    assert cli(*args).exit_code == 0
    r = cli(*args[:4], "NORA@example.org", *args[5:])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.output.strip() == "Error: a staff account with the email nora@example.org already exists"
    assert "Traceback" not in r.output and "IntegrityError" not in r.output
    assert session.scalar(sa.select(sa.func.count()).select_from(StaffUser)) == 1


# ---- seed-demo, twice -----------------------------------------------------------------------

def test_a_second_seed_demo_prints_the_logins_and_new_links_again(cli, session, frozen):
    first = cli("seed-demo", "--url", "http://127.0.0.1:5055")
    assert first.exit_code == 0 and "nurse@demo.clinic" in first.output
    patients = session.scalar(sa.select(sa.func.count()).select_from(Patient))
    second = cli("seed-demo", "--url", "http://127.0.0.1:5055")
    assert second.exit_code == 0, second.output
    out = second.output
    assert "Already seeded" in out and "nurse@demo.clinic" in out and "recovery-demo-2026" in out
    links = [line.split()[-1] for line in out.splitlines() if "/l/" in line]
    assert len(links) == len(DEMO_PATIENTS) and all(link.startswith("http://127.0.0.1:5055/l/") for link in links)
    assert not set(links) & {line.split()[-1] for line in first.output.splitlines() if "/l/" in line}
    assert session.scalar(sa.select(sa.func.count()).select_from(Patient)) == patients  # nothing seeded twice


def test_seed_demo_prints_no_password_a_nurse_has_changed(cli, session, frozen):
    from recovery.services.passwords import hash_password
    cli("seed-demo")
    nurse = session.scalar(sa.select(StaffUser).where(StaffUser.email == "nurse@demo.clinic"))
    nurse.password_hash = hash_password("my own new password 42")
    session.commit()
    out = cli("seed-demo").output
    line = next(line for line in out.splitlines() if "nurse@demo.clinic" in line)
    assert "recovery-demo-2026" not in line and "changed" in line
    assert "recovery-demo-2026" in next(line for line in out.splitlines() if "oncall@demo.clinic" in line)


def test_seed_demo_json_gives_the_same_logins_and_links_as_the_text(cli, session, frozen):
    """What the browser tests' server reads instead of parsing the human text with regexes."""
    from tests.e2e.server import parse_seed_output
    seeded = json.loads(cli("seed-demo", "--json", "--url", "http://127.0.0.1:5055").output)
    assert seeded["seeded"] is True and seeded["base_url"] == "http://127.0.0.1:5055"
    assert {"role": "nurse", "email": "nurse@demo.clinic", "password": "recovery-demo-2026"} in seeded["logins"]
    assert sorted(link["day"] for link in seeded["links"]) == [0, 1, 2, 2, 10, 40]  # Spanish: Luis Uno day 1, Rosa Dos day 2
    assert all(link["url"].startswith("http://127.0.0.1:5055/l/") for link in seeded["links"])
    staff, links, days = parse_seed_output(json.dumps(seeded))
    assert {s.email for s in staff} == {s["email"] for s in seeded["logins"]}
    assert set(links) == set(days) == {link["name"] for link in seeded["links"]}
    text = cli("seed-demo", "--url", "http://127.0.0.1:5055").output  # the same people, new links
    for link in seeded["links"]:
        assert f"{link['name']} (day {link['day']})" in text
    nurse = session.scalar(sa.select(StaffUser).where(StaffUser.email == "nurse@demo.clinic"))
    from recovery.services.passwords import hash_password
    nurse.password_hash = hash_password("my own new password 42")
    session.commit()
    again = json.loads(cli("seed-demo", "--json").output)
    assert {"role": "nurse", "email": "nurse@demo.clinic", "password": None} in again["logins"]


def test_seed_demo_on_a_database_without_the_demo_clinic_prints_no_links(cli, session):
    make_clinic(session, slug="real-clinic")
    session.commit()
    out = cli("seed-demo").output
    assert "/l/" not in out and "not seeding" in out
    quiet = json.loads(cli("seed-demo", "--json").output)
    assert (quiet["seeded"], quiet["logins"], quiet["links"]) == (False, [], [])


# ---- sms simulate-inbound -------------------------------------------------------------------

def test_simulate_inbound_goes_through_the_webhooks_use_case_and_prints_the_replies(app, cli, session, sms,
                                                                                    frozen):
    from recovery.scheduler.tick import tick
    frozen.move_to(NOW)
    p = patient_at(session, first="Rosa", mobile="+12025550161")
    plant(session, p, due=NOW, message_id="S06", kind="checkin_invite", slot="day5", text=INVITE)
    tick(session, sms, NOW, settings(app))
    assert conv_of(session, p).state == "awaiting_pain"
    r = cli("sms", "simulate-inbound", "--from", "(202) 555-0161", "--body", "3")
    assert r.exit_code == 0, r.output
    assert "handled as checkin_pain" in r.output
    assert "S25" in r.output and "Thanks Rosa. Any chest pain" in r.output  # the reply, as it will be sent
    stored = session.scalar(sa.select(InboundMessage))
    assert (stored.patient_id, stored.handled_as, stored.body) == (p.id, "checkin_pain", "3")
    assert stored.provider_sid.startswith("SM") and len(stored.provider_sid) == 34
    r = cli("sms", "simulate-inbound", "--from", "+12025550161", "--body", "STOP")
    assert r.exit_code == 0 and "handled as opt_out" in r.output
    session.refresh(p)
    assert p.sms_opted_out
    assert "555" not in r.output  # no phone number is printed back


def test_simulate_inbound_refuses_when_texts_are_real(app, cli, session):
    app.config["SMS_BACKEND"] = "twilio"
    r = cli("sms", "simulate-inbound", "--from", "+12025550161", "--body", "3")
    assert r.exit_code == 2 and "real texts" in r.output
    assert session.scalar(sa.select(sa.func.count()).select_from(InboundMessage)) == 0


def test_simulate_inbound_refuses_a_bad_number(cli, session):
    r = cli("sms", "simulate-inbound", "--from", "hello", "--body", "3")
    assert r.exit_code == 2 and "phone number" in r.output


# ---- instance/ --------------------------------------------------------------------------------

def test_tests_never_read_the_developers_instance_folder(db_url):
    """`make run` writes instance/secret_key; a test app must not pick it up (it made the production
    secret check pass under test), nor anything else in the checkout's instance/."""
    app = create_app(app_config(SQLALCHEMY_DATABASE_URI=db_url))
    assert Path(app.instance_path).resolve() != (REPO_ROOT / "instance").resolve()
    assert os.environ.get("INSTANCE_PATH") == app.instance_path


def test_a_key_file_in_the_instance_folder_is_read_outside_tests(tmp_path, db_url, monkeypatch):
    from recovery.config import DEV_SECRET
    (tmp_path / "secret_key").write_text("k" * 64 + "\n")
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    app = create_app(app_config(SQLALCHEMY_DATABASE_URI=db_url, ENV_NAME="development", SECRET_KEY=DEV_SECRET))
    assert app.config["SECRET_KEY"] == "k" * 64 and app.instance_path == str(tmp_path)

"""Every `flask` command, run as an operator runs it (a real `flask --app app …` process) on a
database holding canary data, prints and logs no phone number, symptom or usable link (issue 11 §2).

The commands are read from `flask --help` itself, group by group: a command nobody classified here
fails the test, so a new command cannot skip the scan. Each command's output (stdout and stderr:
its log lines) is checked here and kept in the run's log folder for the end-of-run privacy check (conftest).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from recovery.clock import utcnow
from recovery.domain.timeline import PlannedMessage
from recovery.files import templates as templates_repo
from recovery.services import checkins
from recovery.store.enrolments import current_enrolment
from recovery.services.sessions import issue_link
from recovery.store.models import Clinic
from recovery.store.outbox import add_if_new, new_row
from tests.support.factories import enrol, make_clinic, make_staff
from tests.support.privacy import CANARY_PATTERNS, CANARY_PHONE, CANARY_SYMPTOM, log_dir
from tests.support.procs import BIN, REPO, free_port, wait_port

pytestmark = pytest.mark.slow

PASSWORD = "canary-staff-password-2026"
TOKEN_LIKE = re.compile(r"/l/[A-Za-z0-9_-]{20,}")
# Commands that write into the repository itself (new migration files) and print only file paths.
WRITES_THE_REPO = "writes migration files into the repository; prints file names only"


def _cases(ctx: dict) -> dict[tuple[str, ...], list[str] | str]:
    """Every command path -> the arguments it is run with, or why it is not run."""
    return {
        ("create-staff",): ["create-staff", "--clinic", ctx["slug"], "--email", "canary.cli@example.org", "--name",
                            "Canary Cli", "--mobile", CANARY_PHONE, "--password", PASSWORD],
        ("api-token", "create"): ["api-token", "create", "--clinic", ctx["slug"], "--scope", "fhir.read"],
        ("api-token", "list"): ["api-token", "list", "--clinic", ctx["slug"]],
        ("api-token", "revoke"): ["api-token", "revoke", "--clinic", ctx["slug"], "1"],
        # the files it writes are the record, by design; what it prints and logs must not be
        ("fhir", "export"): ["fhir", "export", "--clinic", ctx["slug"], "--out", tempfile.mkdtemp(prefix="fhir-")],
        ("db", "branches"): ["db", "branches"],
        ("db", "check"): ["db", "check"],
        ("db", "current"): ["db", "current"],
        ("db", "edit"): WRITES_THE_REPO,
        ("db", "heads"): ["db", "heads"],
        ("db", "history"): ["db", "history"],
        ("db", "init"): WRITES_THE_REPO,
        ("db", "list-templates"): ["db", "list-templates"],
        ("db", "merge"): WRITES_THE_REPO,
        ("db", "migrate"): WRITES_THE_REPO,
        ("db", "revision"): WRITES_THE_REPO,
        ("db", "show"): ["db", "show", "head"],
        ("db", "stamp"): ["db", "stamp", "head"],
        ("limiter", "clear"): ["limiter", "clear", "--key", "canary", "-y"],
        ("limiter", "config"): ["limiter", "config"],
        ("limiter", "limits"): ["limiter", "limits"],
        ("routes",): ["routes"],
        ("rules", "check"): ["rules", "check", "tests/cases/vignettes.yaml"],
        ("run",): "server",  # started, asked for pages (a live link among them), stopped: _run_server
        ("scheduler",): ["scheduler", "--once"],
        ("seed-demo",): ["seed-demo"],
        ("shell",): ["shell"],
        ("sms", "simulate-inbound"): ["sms", "simulate-inbound", "--from", CANARY_PHONE, "--body", CANARY_SYMPTOM],
        ("timeline",): ["timeline", "--procedure-end", "2026-03-07T10:30", "--tz", "America/New_York"],
        ("timeline-days",): ["timeline-days"],
        # last, one after the other: one step down (its default), then back to head
        ("db", "downgrade"): ["db", "downgrade"],
        ("db", "upgrade"): ["db", "upgrade"],
    }


# Two at a time: each command is a process that spends most of its second or two importing the app,
# and the machine has two cores; the commands that depend on each other run in order (_chains).
PARALLEL = 2


def _subcommands(env: dict, group: tuple[str, ...]) -> list[str]:
    out = subprocess.run([str(BIN / "flask"), "--app", "app", *group, "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120).stdout
    return re.findall(r"^  ([a-z][\w-]*)  ", out.split("Commands:", 1)[1], re.M) if "Commands:" in out else []


def _commands(env: dict) -> list[tuple[str, ...]]:
    """Leaf commands as `flask [group] --help` lists them, a level at a time."""
    found, level = [], [()]
    with ThreadPoolExecutor(PARALLEL) as pool:
        while level:
            below = list(pool.map(lambda group: _subcommands(env, group), level))
            found += [group for group, names in zip(level, below) if not names and group]
            level = [(*group, name) for group, names in zip(level, below) for name in names]
    return found


def _chains(cases: dict) -> tuple[list[list[tuple[str, ...]]], list[tuple[str, ...]]]:
    """The commands in runs that may go side by side (a token is listed and revoked after it is
    made), and those that go last, one after the other (a step down, then back to head)."""
    last = [("db", "downgrade"), ("db", "upgrade")]
    tokens = [path for path in cases if path[0] == "api-token"]
    rest = [[path] for path in cases if path not in last and path not in tokens and cases[path] != WRITES_THE_REPO]
    return [tokens, *rest], last


def _seed(session) -> dict:
    now = utcnow()
    clinic = make_clinic(session, now=now)
    make_staff(session, clinic, now=now, mobile=CANARY_PHONE)
    patient = enrol(session, clinic, procedure_end=now - timedelta(hours=30), now=now, mobile=CANARY_PHONE,
                    first="Canary")
    enrolment = current_enrolment(patient)
    cfg_dir = str(REPO / "schedules")
    template = templates_repo.clinic_template(cfg_dir, clinic.template_file, "kyphoplasty")
    ruleset = templates_repo.ruleset(str(REPO / "schedules" / "rulesets" / "va-recovery.toml"))
    c = checkins.start_checkin(session, enrolment=enrolment, patient=patient, slot=None, source="web", now=now)
    checkins.submit_checkin(session, checkin=c, enrolment=enrolment, patient=patient, template=template,
                            ruleset=ruleset, now=now,
                            answers={"back_pain": 4, "pain_change": "same", "mobility": "as_usual_or_better",
                                     "cardioresp": frozenset({"none"}), "neuro": frozenset({"none"}),
                                     "bladder_bowel": "no_change", "free_text": CANARY_SYMPTOM})
    # a text due now with a link in it, for `scheduler --once` to send through the console backend
    add_if_new(session, new_row(enrolment=enrolment, patient_id=patient.id, recipient="patient", now=now,
                                message=PlannedMessage(id="LINK", key="LINK:canary", kind="event_reply", send_at=now,
                                                       due_at=now, text_template="Hi {first}: {link}", urgent=True,
                                                       quiet_moved=False)))
    token = issue_link(session, patient, "today", now, timedelta(hours=72))
    session.commit()
    return {"slug": session.get(Clinic, clinic.id).slug, "token": token}


def _leaks(text: str, ctx: dict) -> list[str]:
    hits = [m.group(0) for p in CANARY_PATTERNS for m in p.finditer(text)]
    hits += [m.group(0) for m in TOKEN_LIKE.finditer(text)]
    return hits + ([ctx["token"]] if ctx["token"][5:25] in text else [])


def _run_server(env: dict, ctx: dict) -> str:
    port = free_port()
    log = log_dir() / f"cli-run-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "flask"), "--app", "app", "run", "--port", str(port)], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(port, proc, log)
        for path in ("/login", f"/l/{ctx['token']}", "/new-link"):
            requests.get(f"http://127.0.0.1:{port}{path}", timeout=30)
        time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    return log.read_text(errors="replace")


def test_every_cli_command_prints_no_phi_or_usable_link(app, session, db_url):
    ctx = _seed(session)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_", "TWILIO_", "RATELIMIT_"))}
    env.update({"DATABASE_URL": db_url, "RECOVERY_ENV": "development", "SECRET_KEY": "cli-privacy-test",
                "SMS_BACKEND": "console", "PUBLIC_BASE_URL": "http://127.0.0.1:5000", "LOG_LEVEL": "DEBUG",
                "PYTHONUNBUFFERED": "1"})
    cases = _cases(ctx)
    found = set(_commands(env))
    assert found == set(cases), f"classify these commands here: {sorted(found - set(cases))}; " \
                                f"gone: {sorted(set(cases) - found)}"
    def run(path: tuple[str, ...]) -> str:
        started = time.monotonic()
        try:
            return _run(path)
        finally:
            took[path] = time.monotonic() - started

    took: dict[tuple[str, ...], float] = {}

    def _run(path: tuple[str, ...]) -> str:
        how = cases[path]
        if how == "server":
            text = _run_server(env, ctx)
            assert "/l/" in text  # the request line for the link was logged, masked
            return text
        result = subprocess.run([str(BIN / "flask"), "--app", "app", *how], cwd=REPO, env=env,
                                input="print('canary shell ok')\n" if path == ("shell",) else "",
                                capture_output=True, text=True, timeout=180)
        text = result.stdout + result.stderr
        (log_dir() / f"cli-{'-'.join(path)}-{db_url.rsplit('/', 1)[-1][-12:]}.log").write_text(text)
        assert result.returncode in (0, 1) if path == ("rules", "check") else result.returncode == 0, \
            f"flask {' '.join(how)} exited {result.returncode}:\n{text[-3000:]}"
        return text

    chains, last = _chains(cases)
    with ThreadPoolExecutor(PARALLEL) as pool:
        outputs = dict(kv for chain in pool.map(lambda chain: [(path, run(path)) for path in chain], chains)
                       for kv in chain)
    outputs.update((path, run(path)) for path in last)
    ran = len(outputs)
    lines = sum(len(text.splitlines()) for text in outputs.values())
    leaks = {" ".join(path): _leaks(text, ctx)[:5] for path, text in outputs.items() if _leaks(text, ctx)}
    assert leaks == {}, leaks
    skipped = sum(1 for how in cases.values() if how == WRITES_THE_REPO)
    slowest = sorted(took.items(), key=lambda kv: -kv[1])[:3]
    print(f"\n[{db_url.split(':')[0]}] slowest: " + ", ".join(f"{' '.join(p)} {t:.1f} s" for p, t in slowest))
    print(f"[{db_url.split(':')[0]}] {ran} commands run on canary data ({skipped} that write migration files "
          f"not run), {lines} lines of output and logs scanned, no phone number, symptom or usable link")

"""Web figures (issue 7, reliability.md §5), from one run on this machine, printed, never asserted:

1. the check-in page GET (a patient's session cookie) against a bare Flask page rendering a
   template to the same number of bytes (bench/bare_app.py): throughput, p99, ratio (target >= 0.8);
2. check-in POSTs while the scheduler process runs (targets >= 100 req/s, p99 <= 250 ms, 0
   "database is locked" in the server logs), two kinds:
   - a screen post ("Your pain") with answers: the POST a patient makes most often (7 of the 8 in a
     check-in). wrk rotates over 2,500 in-progress check-ins, each from its own patient's session
     with that session's CSRF token, and flips the pain score on every visit, so every request
     stores changed answers and scores them again (MR2);
   - the submit from the review screen, each check-in once: the heaviest POST (scores with the
     patient's history, stores the rules, plans the reply text, cancels the slot's invitations,
     raises alerts, audits, all in one transaction);
3. SQL statements per nurse worklist request (page and poll) and per nurse patient page request
   (target <= 10), counted in process with a before_cursor_execute listener, plus the worklist's
   server time p95 (target <= 200 ms) and poll size (target <= 20 KB) (reliability.md 5.3), and
   the roster (/nurse/patients, 500 patients: <= 30 ms server time, <= 30 KB; issue 17);
4. the patient's Today page GET (gunicorn CPU per request), and the worklist of issue 17 in
   process (bench/bench_worklist.py: 700 open alerts in a clinic of their own): the poll that
   brings its version when nothing changed (<= 1 ms CPU, <= 1 KB) and the page (<= 50 ms).

`python -m bench web --quick --json`: SQLite only, a smaller clinic (60 patients, 120 open alerts)
and 2 s per load figure: about 50 s on 2 busy cores. It prints one JSON object of the figures
(QUICK_KEYS and more) on stdout, the progress on stderr. `--json` alone: the full run, the SQLite
figures as JSON.

Set-up: a migrated SQLite database seeded through the real use-cases (bench/seeding.py: 500 patients,
5,000 submitted check-ins), then five weekly check-ins per patient (day 14 to 42, the real slots none
of them has done yet) started and answered up to their review screen, and a link per patient. The
same rows are copied into a fresh PostgreSQL database when a server answers on 127.0.0.1:5432, so
both backends serve identical data. Each backend gets gunicorn (2 sync workers, as in the Procfile)
and `flask scheduler` (tick every second) on 127.0.0.1; the sessions are opened over HTTP with
`requests` (link page, its form, a check-in page for the CSRF token), then handed to wrk -t1 -c8.

wrk (Debian) is installed with apt-get when missing and we are root; otherwise the load figures are
skipped with the reason and the SQL figures still print. Requests carry no Accept-Encoding, so
neither page is compressed. wrk shares the 2 cores with the servers, so the figures are pessimistic.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
WRK_DIR = REPO / "bench" / "wrk"

POOL_SLOTS = ("day14", "day21", "day28", "day35", "day42")  # weekly check-ins, not done by any seeded patient
CONNECTIONS = 8


@dataclass(frozen=True)
class Sizes:
    patients: int = 500
    checkins: int = 5000
    get_seconds: int = 10
    step_seconds: int = 10
    submit_seconds: int = 8
    warm_up: int = 30  # requests per page before measuring (templates compiled, connections open)
    worklist_alerts: int = 700
    in_process_requests: int = 200


FULL = Sizes()
QUICK = Sizes(patients=60, checkins=180, get_seconds=2, step_seconds=2, submit_seconds=2, warm_up=5,
              worklist_alerts=120, in_process_requests=30)
PATIENTS, CHECKINS = FULL.patients, FULL.checkins
WARM_UP = FULL.warm_up
# What `--json` prints (numbers; the load ones are null when wrk could not run).
QUICK_KEYS = ("checkin_get_cpu_ms", "today_get_cpu_ms", "bare_get_cpu_ms", "screen_post_cpu_ms",
              "submit_post_cpu_ms", "screen_post_p99_ms", "submit_post_p99_ms", "worklist_poll_unchanged_bytes",
              "worklist_poll_unchanged_cpu_ms", "worklist_page_server_ms", "database_locked")

TARGET_RATIO = 0.8
TARGET_POST_RPS = 100.0
TARGET_POST_P99_MS = 250.0
TARGET_STATEMENTS = 10
TARGET_WORKLIST_P95_MS = 200.0
TARGET_POLL_KB = 20.0
TARGET_ROSTER_MS, TARGET_ROSTER_KB = 30.0, 30.0


# ---------------------------------------------------------------------------------------------
# Figures and the closing table
# ---------------------------------------------------------------------------------------------

@dataclass
class Row:
    figure: str
    value: str
    target: str
    met: bool | None  # None: informational, or not measured

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "-"}[self.met]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(figure, value, target, met))

    def print_table(self) -> None:
        w = [max(len(getattr(r, a)) for r in self.rows + [Row("figure", "value", "target", None)])
             for a in ("figure", "value", "target")]
        print(f"\n{'figure':<{w[0]}}  {'value':>{w[1]}}  {'target':<{w[2]}}  result")
        print(f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}  ------")
        for r in self.rows:
            print(f"{r.figure:<{w[0]}}  {r.value:>{w[1]}}  {r.target:<{w[2]}}  {r.verdict}")


# ---------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------

def ensure_wrk() -> str | None:
    """None when wrk is there (installing Debian's package as root if needed), else why not."""
    if shutil.which("wrk"):
        return None
    if os.geteuid() != 0:
        return "wrk is not installed and this is not root (install it with `apt-get install wrk`)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing wrk from Debian (apt-get install -y wrk)…", flush=True)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True, text=True)
    if done.returncode != 0:  # a stale package list: refresh once
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True, text=True)
    if shutil.which("wrk"):
        return None
    return f"apt-get install wrk failed: {(done.stderr or done.stdout).strip()[-300:]}"


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    socket_errors: int
    wrapped: int
    load_average: float  # of the machine over the last minute, when wrk finished: other work shows here

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (f"{self.rps:7.1f} req/s  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms  "
                f"max {self.max_ms:6.1f} ms  ({self.requests} requests; HTTP {codes}; "
                f"socket errors {self.socket_errors}; load average {self.load_average:.1f})")


def per_request_ms(cpu_seconds: float, load: Load) -> float:
    return cpu_seconds * 1000 / load.requests if load.requests else float("nan")


def wrk(url: str, script: str, seconds: int, *, headers: tuple[str, ...] = (), targets: Path | None = None) -> Load:
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", str(WRK_DIR / script)]
    for h in headers:
        cmd += ["-H", h]
    env = {**os.environ, **({"WRK_TARGETS": str(targets)} if targets else {})}
    done = subprocess.run(cmd + [url], capture_output=True, text=True, env=env, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    d = json.loads(line.removeprefix("WRKJSON "))
    return Load(requests=d["requests"], seconds=d["duration_us"] / 1e6, p50_ms=d["p50_us"] / 1000,
                p99_ms=d["p99_us"] / 1000, max_ms=d["max_us"] / 1000, statuses=d["statuses"],
                socket_errors=d["err_connect"] + d["err_read"] + d["err_write"] + d["err_timeout"],
                wrapped=d["wrapped"], load_average=os.getloadavg()[0])


# ---------------------------------------------------------------------------------------------
# The database: seeded once on SQLite, copied to PostgreSQL
# ---------------------------------------------------------------------------------------------

@dataclass
class Prepared:
    nurse_email: str
    clinic_id: int
    checkin_link: str  # a check-in link (day 14) of the first patient: the GET figure's session
    checkin_page: int  # that check-in's id
    today_links: list[str]  # one per patient, in patient order
    today_page_link: str  # a second Today link of the first patient: the Today page GET's session
    pools: list[list[int]]  # per patient, the in-progress check-ins at their review screen


def _config(url: str) -> dict:
    from tests.support.settings import app_config
    return app_config(SQLALCHEMY_DATABASE_URI=url)


def prepare(url: str, sizes: Sizes = FULL) -> Prepared:
    from app import create_app
    from bench.seeding import seed_large
    from recovery.clock import utcnow
    from recovery.files import templates as templates_repo
    from recovery.services import checkins, clinic_plans
    from recovery.services.sessions import issue_link
    from recovery.store.db import db
    from recovery.store.models import Patient
    from tests.support.durability_helpers import CALM, complete_answers

    app = create_app(_config(url))
    with app.app_context():
        s = db.session
        now = utcnow()
        started = time.perf_counter()
        seeded = seed_large(s, now=now, patients=sizes.patients, checkins=sizes.checkins)
        print(f"  seeded {seeded['patients']} patients, {seeded['checkins']} check-ins through the use-cases "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        ruleset = templates_repo.ruleset(app.config["RULESET_PATH"])

        def template_for(enrolment, clinic):
            return clinic_plans.plan_for(s, app.config["SCHEDULES_DIR"], enrolment, clinic)

        patients = s.scalars(sa.select(Patient).where(Patient.clinic_id == seeded["clinic_id"])
                             .order_by(Patient.id)).all()
        pools, links = [], []
        for p in patients:
            enrolment = p.enrolments[0]
            setting = answers = None
            pool = []
            for slot in POOL_SLOTS:
                c = checkins.start_checkin(s, enrolment=enrolment, patient=p, slot=slot,
                                           source=checkins.SOURCE_WEB, now=now)
                if setting is None:  # the same patient, day and (weekly) questions for all five
                    setting = checkins.setting_for(s, c, template_for=template_for, ruleset=ruleset)
                    answers = complete_answers(setting, CALM)
                checkins.record_answers(s, checkin=c, enrolment=enrolment, patient=p, answers=answers,
                                        template=setting.template, ruleset=ruleset, now=now, replace=True)
                pool.append(c.id)
            pools.append(pool)
            links.append(issue_link(s, p, "today", now, timedelta(days=2)))
        checkin_link = issue_link(s, patients[0], "checkin", now, timedelta(days=2), checkin_slot=POOL_SLOTS[0])
        today_page_link = issue_link(s, patients[0], "today", now, timedelta(days=2))
        s.commit()
        print(f"  {len(pools) * len(POOL_SLOTS)} check-ins brought to their review screen in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        prepared = Prepared(seeded["nurse_email"], seeded["clinic_id"], checkin_link, pools[0][0], links,
                            today_page_link, pools)
        s.remove()
        db.engine.dispose()
    return prepared


def copy_database(src_url: str, dst_url: str) -> int:
    """Copy every row of the app's tables, ids included, into a migrated empty database; then move
    PostgreSQL's id sequences past the copied ids. Returns the number of rows."""
    from recovery.store import models  # noqa: F401  (register every table)
    from recovery.store.db import Base

    src, dst = sa.create_engine(src_url), sa.create_engine(dst_url)
    dst_columns = {t: {c["name"] for c in sa.inspect(dst).get_columns(t)} for t in sa.inspect(dst).get_table_names()}
    total = 0
    try:
        with src.connect() as read, dst.begin() as write:
            for table in Base.metadata.sorted_tables:
                cols = [c for c in table.columns if c.name in dst_columns.get(table.name, ())]
                if not cols:
                    continue
                rows = [dict(r._mapping) for r in read.execute(sa.select(*cols).order_by(*table.primary_key.columns))]
                for i in range(0, len(rows), 2000):
                    write.execute(table.insert(), rows[i:i + 2000])
                total += len(rows)
                if "id" in table.c and rows and dst.dialect.name == "postgresql":
                    write.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                          f"(SELECT max(id) FROM {table.name}))"))
        if dst.dialect.name == "postgresql":  # planner statistics, as a live database has them
            with dst.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ANALYZE"))
    finally:
        src.dispose()
        dst.dispose()
    return total


# ---------------------------------------------------------------------------------------------
# The servers
# ---------------------------------------------------------------------------------------------

def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time used so far by the live processes of a process group (gunicorn's
    master and workers). Other work on the machine does not count here, unlike in req/s."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / tick


@contextmanager
def cpu_of(service):
    """Measures the CPU seconds a gunicorn used while the block ran: `with cpu_of(web) as cpu: ...;
    cpu()`."""
    before = group_cpu_seconds(service.popen.pid)
    box: list[float] = []
    yield lambda: box[0]
    box.append(group_cpu_seconds(service.popen.pid) - before)


@dataclass
class Stack:
    base_url: str
    web: object
    scheduler: object
    logs: list[Path]

    def stop(self) -> None:
        self.web.stop()
        self.scheduler.stop()

    def ticks_with_work(self) -> int:
        return self.logs[1].read_text(errors="replace").count("recovery.scheduler: tick:")

    def count_in_logs(self, needle: str) -> int:
        return sum(p.read_text(errors="replace").count(needle) for p in self.logs if p.exists())


def start_stack(db_url: str, workdir: Path, name: str) -> Stack:
    from tests.support.durability_helpers import Service, free_port, web_env

    port = free_port()
    env = web_env(db_url, port, secrets.token_hex(32), SCHEDULER_TICK_SECONDS="1")
    web_log, sched_log = workdir / f"{name}-gunicorn.log", workdir / f"{name}-scheduler.log"
    web = Service.gunicorn("app:create_app()", env, web_log, port, control_socket=workdir / f"{name}.ctl")
    # INFO: one summary line per tick that did something, to show it was working during the run
    scheduler = Service([str(BIN / "flask"), "--app", "app", "scheduler"], {**env, "LOG_LEVEL": "INFO"}, sched_log)
    web.start()
    scheduler.start()
    return Stack(f"http://127.0.0.1:{port}", web, scheduler, [web_log, sched_log])


# ---------------------------------------------------------------------------------------------
# Sessions, as phones open them
# ---------------------------------------------------------------------------------------------

NO_GZIP = {"Accept-Encoding": "identity"}


def open_sessions(base_url: str, prepared: Prepared) -> list[tuple[str, str, list[int]]]:
    """(cookie, csrf token, check-in ids) per patient: open the Today link, load a review page."""
    from tests.support.durability_helpers import csrf_from, open_patient_session, session_cookie

    def one(i: int):
        with requests.Session() as http:
            http.headers.update(NO_GZIP)
            open_patient_session(http, base_url, prepared.today_links[i])
            cid = prepared.pools[i][0]
            page = http.get(f"{base_url}/me/checkin/{cid}/review", timeout=30)
            if page.status_code != 200:
                raise RuntimeError(f"review page of check-in {cid}: HTTP {page.status_code}")
            return session_cookie(http), csrf_from(page.text, "review"), prepared.pools[i]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(len(prepared.today_links))))


def write_targets(path: Path, sessions, page: str) -> int:
    """One line per check-in, slot-major so consecutive requests come from different patients."""
    lines = [f"/me/checkin/{ids[k]}/{page}\t{cookie}\t{csrf}"
             for k in range(len(POOL_SLOTS)) for cookie, csrf, ids in sessions]
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def warm(url: str, cookie: str | None = None, n: int = FULL.warm_up) -> None:
    with requests.Session() as http:
        for _ in range(n):
            r = http.get(url, headers={**NO_GZIP, **({"Cookie": f"session={cookie}"} if cookie else {})},
                         allow_redirects=False, timeout=30)
            if r.status_code != 200:
                raise RuntimeError(f"warm-up GET {url}: HTTP {r.status_code}")


# ---------------------------------------------------------------------------------------------
# SQL statements per nurse request (in process)
# ---------------------------------------------------------------------------------------------

@contextmanager
def count_statements(engine):
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def nurse_sql(db_url: str, prepared: Prepared, requests: int = 20) -> dict:
    from app import create_app
    from bench.seeding import BENCH_PASSWORD
    from recovery.store.db import db
    from recovery.store.models import Alert, AlertStatus, Checkin

    app = create_app(_config(db_url))
    out: dict = {}
    with app.app_context():
        # the heaviest record: the patient with the most check-ins and alerts
        busiest = db.session.execute(
            sa.select(Checkin.patient_id, sa.func.count()).group_by(Checkin.patient_id)
            .order_by(sa.func.count().desc(), Checkin.patient_id).limit(1)).first()[0]
        alerted = db.session.execute(
            sa.select(Alert.patient_id, sa.func.count()).group_by(Alert.patient_id)
            .order_by(sa.func.count().desc(), Alert.patient_id).limit(1)).first()
        db.session.remove()
        client = app.test_client()
        r = client.post("/login", data={"email": prepared.nurse_email, "password": BENCH_PASSWORD})
        if r.status_code != 302 and r.status_code != 303:
            raise RuntimeError(f"nurse sign-in: HTTP {r.status_code}")
        pages = {"worklist": ("/nurse/", {}), "worklist poll": ("/nurse/", {"HX-Request": "true"}),
                 "patient page": (f"/nurse/patients/{alerted[0] if alerted else busiest}", {}),
                 "patient list": ("/nurse/patients", {})}
        for name, (path, headers) in pages.items():
            client.get(path, headers=headers)  # warm: templates compiled, connection open
            with count_statements(db.engine) as seen:
                r = client.get(path, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"GET {path}: HTTP {r.status_code}")
            times = []
            for _ in range(requests):
                t = time.perf_counter()
                client.get(path, headers=headers)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            out[name] = {"statements": len(seen), "bytes": len(r.data), "p95_ms": times[int(len(times) * 0.95) - 1],
                         "p50_ms": times[len(times) // 2], "path": path}
        out["alerts_on_page"] = alerted[1] if alerted else 0
        out["open_alerts"] = db.session.scalar(sa.select(sa.func.count()).select_from(Alert).where(
            Alert.clinic_id == prepared.clinic_id, Alert.status != AlertStatus.RESOLVED))
        db.session.remove()
        db.engine.dispose()
    return out


# ---------------------------------------------------------------------------------------------
# One backend
# ---------------------------------------------------------------------------------------------

def bench_backend(label: str, db_url: str, prepared: Prepared, workdir: Path, report: Report,
                  wrk_problem: str | None, sizes: Sizes = FULL, figures: dict | None = None) -> None:
    """The figures of one backend, printed and in `report`; the machine-readable ones in `figures`."""
    figures = {} if figures is None else figures
    from tests.support.durability_helpers import Service, free_port, open_patient_session, session_cookie
    from recovery.store.models import Checkin

    print(f"\n--- {label} ---", flush=True)
    if wrk_problem is None:
        stack = start_stack(db_url, workdir, label.lower())
        bare = None
        try:
            # the check-in page, with the session a check-in link opens
            with requests.Session() as http:
                http.headers.update(NO_GZIP)
                open_patient_session(http, stack.base_url, prepared.checkin_link)
                cookie = session_cookie(http)
            page_url = f"{stack.base_url}/me/checkin/{prepared.checkin_page}/step/cardioresp"
            page = requests.get(page_url, headers={**NO_GZIP, "Cookie": f"session={cookie}"}, timeout=30,
                                allow_redirects=False)
            if page.status_code != 200 or b"<html" not in page.content:
                raise RuntimeError(f"check-in page: HTTP {page.status_code}")
            size = len(page.content)

            port = free_port()
            bare_env = {**os.environ, "BARE_PAGE_BYTES": str(size), "PYTHONUNBUFFERED": "1"}
            bare = Service.gunicorn("bench.bare_app:app", bare_env, workdir / f"{label.lower()}-bare.log", port,
                                    control_socket=workdir / f"{label.lower()}-bare.ctl").start()
            bare_url = f"http://127.0.0.1:{port}/"
            bare_size = len(requests.get(bare_url, headers=NO_GZIP, timeout=30).content)
            warm(bare_url, n=sizes.warm_up)
            warm(page_url, cookie, n=sizes.warm_up)
            with cpu_of(bare) as bare_cpu:
                bare_load = wrk(bare_url, "get.lua", sizes.get_seconds)
            bare.stop()
            bare = None
            with cpu_of(stack.web) as get_cpu:
                get_load = wrk(page_url, "get.lua", sizes.get_seconds, headers=(f"Cookie: session={cookie}",))
            ratio = get_load.rps / bare_load.rps if bare_load.rps else 0.0
            get_ms, bare_ms = per_request_ms(get_cpu(), get_load), per_request_ms(bare_cpu(), bare_load)
            print(f"check-in page GET ({size:,} B):   {get_load.line()}")
            print(f"bare Flask page GET ({bare_size:,} B): {bare_load.line()}")
            print(f"ratio {ratio:.2f} (target >= {TARGET_RATIO})")
            print(f"gunicorn CPU per request: check-in page {get_ms:.2f} ms, bare page {bare_ms:.2f} ms "
                  f"(ratio of costs {bare_ms / get_ms:.2f}; independent of other work on the machine)")
            ok_get = get_load.statuses.get("200", 0) == get_load.requests and not get_load.socket_errors
            report.add(f"{label}: check-in page GET", f"{get_load.rps:.0f} req/s, p99 {get_load.p99_ms:.1f} ms",
                       "0 errors", ok_get)
            report.add(f"{label}: bare Flask page GET", f"{bare_load.rps:.0f} req/s, p99 {bare_load.p99_ms:.1f} ms")
            report.add(f"{label}: gunicorn CPU per GET, check-in / bare", f"{get_ms:.2f} / {bare_ms:.2f} ms")
            report.add(f"{label}: GET ratio check-in / bare", f"{ratio:.2f}", f">= {TARGET_RATIO}",
                       ratio >= TARGET_RATIO)

            # the patient's Today page, with the session a Today link opens
            with requests.Session() as http:
                http.headers.update(NO_GZIP)
                open_patient_session(http, stack.base_url, prepared.today_page_link)
                today_cookie = session_cookie(http)
            today_url = f"{stack.base_url}/me"
            warm(today_url, today_cookie, n=sizes.warm_up)
            with cpu_of(stack.web) as today_cpu:
                today_load = wrk(today_url, "get.lua", sizes.get_seconds, headers=(f"Cookie: session={today_cookie}",))
            today_ms = per_request_ms(today_cpu(), today_load)
            print(f"Today page GET: {today_load.line()}; gunicorn CPU per request {today_ms:.2f} ms")
            report.add(f"{label}: gunicorn CPU per Today page GET", f"{today_ms:.2f} ms")
            figures.update(checkin_get_cpu_ms=get_ms, bare_get_cpu_ms=bare_ms, today_get_cpu_ms=today_ms,
                           checkin_get_rps=get_load.rps, bare_get_rps=bare_load.rps, get_ratio=ratio)

            # POSTs, the scheduler ticking every second
            started = time.perf_counter()
            sessions = open_sessions(stack.base_url, prepared)
            print(f"{len(sessions)} patient sessions opened over HTTP in {time.perf_counter() - started:.0f} s",
                  flush=True)
            step_targets, submit_targets = workdir / f"{label}-step.tsv", workdir / f"{label}-submit.tsv"
            pool = write_targets(step_targets, sessions, "step/back_pain")
            write_targets(submit_targets, sessions, "review")
            locked_before = stack.count_in_logs("database is locked")
            ticks_before = stack.ticks_with_work()
            with cpu_of(stack.web) as step_cpu:
                step = wrk(stack.base_url, "post_step.lua", sizes.step_seconds, targets=step_targets)
            with cpu_of(stack.web) as submit_cpu:
                submit = wrk(stack.base_url, "post_submit.lua", sizes.submit_seconds, targets=submit_targets)
            step_ms, submit_ms = per_request_ms(step_cpu(), step), per_request_ms(submit_cpu(), submit)
            locked = stack.count_in_logs("database is locked") - locked_before
            ticks = stack.ticks_with_work() - ticks_before
            errors_logged = stack.count_in_logs("Traceback")
            ids = [cid for ids in prepared.pools for cid in ids]
            engine = sa.create_engine(db_url)
            with engine.connect() as conn:
                submitted = conn.scalar(sa.select(sa.func.count()).select_from(Checkin).where(
                    Checkin.id.in_(ids), Checkin.status == "submitted"))
            engine.dispose()
            print(f"screen POST (pain, {pool:,} check-ins in turn): {step.line()}")
            print(f"submit POST (each check-in once):        {submit.line()}")
            print(f"  gunicorn CPU per request: screen POST {step_ms:.1f} ms, submit POST {submit_ms:.1f} ms"
                  + (" (plus PostgreSQL's own)" if label == "PostgreSQL" else ""))
            print(f"  {submitted:,} check-ins submitted"
                  + (f"; the pool ran out: {submit.wrapped} posts only redirected" if submit.wrapped else ""))
            print(f"  the scheduler ticked with work {ticks} times meanwhile (sending past-due texts, escalating)")
            print(f"  'database is locked' in the gunicorn and scheduler logs: {locked}; tracebacks: {errors_logged}")
            for name, load, expect in (("screen POST", step, "303"), ("submit POST", submit, "303")):
                clean = load.statuses.get(expect, 0) == load.requests and not load.socket_errors
                report.add(f"{label}: {name} throughput", f"{load.rps:.0f} req/s", f">= {TARGET_POST_RPS:.0f} req/s",
                           load.rps >= TARGET_POST_RPS and clean)
                report.add(f"{label}: {name} p99", f"{load.p99_ms:.0f} ms", f"<= {TARGET_POST_P99_MS:.0f} ms",
                           load.p99_ms <= TARGET_POST_P99_MS)
            report.add(f"{label}: gunicorn CPU per screen / submit POST", f"{step_ms:.1f} / {submit_ms:.1f} ms")
            report.add(f"{label}: 'database is locked' in logs", str(locked), "0", locked == 0)
            figures.update(screen_post_cpu_ms=step_ms, submit_post_cpu_ms=submit_ms, screen_post_p99_ms=step.p99_ms,
                           submit_post_p99_ms=submit.p99_ms, screen_post_rps=step.rps, submit_post_rps=submit.rps,
                           database_locked=locked)
        finally:
            if bare is not None:
                bare.stop()
            stack.stop()
    else:
        report.add(f"{label}: load figures", "not measured", wrk_problem, None)

    sql = nurse_sql(db_url, prepared, requests=20 if sizes is FULL else 10)
    print(f"nurse pages, in process ({sql['open_alerts']} open alerts on the worklist; the patient page is the "
          f"record with the most alerts, {sql['alerts_on_page']}):")
    for name in ("worklist", "worklist poll", "patient page", "patient list"):
        f = sql[name]
        print(f"  SQL statements per {name} request ({f['path']}): {f['statements']}  "
              f"({f['bytes'] / 1024:.1f} KB, server time p95 {f['p95_ms']:.0f} ms)")
    for name in ("worklist", "worklist poll", "patient page"):
        report.add(f"{label}: SQL per {name} request", str(sql[name]["statements"]), f"<= {TARGET_STATEMENTS}",
                   sql[name]["statements"] <= TARGET_STATEMENTS)
    report.add(f"{label}: SQL per patient list request", str(sql["patient list"]["statements"]))
    report.add(f"{label}: worklist server time p95", f"{sql['worklist']['p95_ms']:.0f} ms",
               f"<= {TARGET_WORKLIST_P95_MS:.0f} ms", sql["worklist"]["p95_ms"] <= TARGET_WORKLIST_P95_MS)
    report.add(f"{label}: worklist poll size ({sql['open_alerts']} open alerts)",
               f"{sql['worklist poll']['bytes'] / 1024:.1f} KB",
               f"<= {TARGET_POLL_KB:.0f} KB", sql["worklist poll"]["bytes"] / 1024 <= TARGET_POLL_KB)
    roster = sql["patient list"]
    report.add(f"{label}: patient list ({sizes.patients} patients) server time p50 / p95, size",
               f"{roster['p50_ms']:.0f} / {roster['p95_ms']:.0f} ms, {roster['bytes'] / 1024:.1f} KB",
               f"<= {TARGET_ROSTER_MS:.0f} ms, <= {TARGET_ROSTER_KB:.0f} KB",
               roster["p50_ms"] <= TARGET_ROSTER_MS and roster["bytes"] / 1024 <= TARGET_ROSTER_KB)
    figures.update(patient_list_server_ms=roster["p50_ms"], patient_list_server_p95_ms=roster["p95_ms"],
                   patient_list_bytes=roster["bytes"], patient_list_patients=sizes.patients)

    # the worklist of issue 17: its own clinic of open alerts, in process (bench/bench_worklist.py)
    from app import create_app
    from bench import bench_worklist

    t = time.perf_counter()
    wl = bench_worklist.figures(create_app(_config(db_url)), sizes.worklist_alerts, sizes.in_process_requests)
    quiet, page = wl["poll, nothing changed"], wl["full page"]
    print(f"worklist with {sizes.worklist_alerts} open alerts, in process ({time.perf_counter() - t:.0f} s with "
          f"the seeding): page {page['cpu_ms']:.1f} ms CPU, p50 {page['p50_ms']:.1f} ms, p95 {page['p95_ms']:.1f} ms, "
          f"{page['statements']} SQL; unchanged poll HTTP {quiet['status']} {quiet['cpu_ms']:.2f} ms CPU, "
          f"{quiet['wire_bytes']} B on the wire, {quiet['statements']} SQL")
    report.add(f"{label}: unchanged worklist poll CPU / size",
               f"{quiet['cpu_ms']:.2f} ms / {quiet['wire_bytes']} B",
               f"<= {bench_worklist.TARGET_POLL_CPU_MS:.0f} ms / <= {bench_worklist.TARGET_POLL_KB:.0f} KB",
               quiet["cpu_ms"] <= bench_worklist.TARGET_POLL_CPU_MS
               and quiet["wire_bytes"] <= bench_worklist.TARGET_POLL_KB * 1024)
    report.add(f"{label}: worklist page, {sizes.worklist_alerts} open alerts, server time p50 / p95",
               f"{page['p50_ms']:.0f} / {page['p95_ms']:.0f} ms", f"<= {bench_worklist.TARGET_PAGE_MS:.0f} ms",
               page["p50_ms"] <= bench_worklist.TARGET_PAGE_MS)
    figures.update(worklist_poll_unchanged_bytes=quiet["wire_bytes"], worklist_poll_unchanged_cpu_ms=quiet["cpu_ms"],
                   worklist_poll_unchanged_statements=quiet["statements"], worklist_page_server_ms=page["p50_ms"],
                   worklist_page_server_p95_ms=page["p95_ms"], worklist_page_cpu_ms=page["cpu_ms"],
                   worklist_open_alerts=sizes.worklist_alerts)


def run(quick: bool = False, json_out: bool = False) -> dict:
    """Both backends (SQLite only when `quick`), the table at the end; returns the SQLite figures."""
    import contextlib
    import sys

    from tests.support.dbs import PostgresFactory, migrate, pg_available

    sizes = QUICK if quick else FULL
    figures: dict = {"quick": quick}
    out = sys.stderr if json_out else sys.stdout
    with contextlib.redirect_stdout(out):
        _run(sizes, quick, figures, PostgresFactory, migrate, pg_available)
    if json_out:
        for key in QUICK_KEYS:
            figures.setdefault(key, None)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items()}))
    return figures


def _run(sizes: Sizes, quick: bool, figures: dict, PostgresFactory, migrate, pg_available) -> None:
    for name in ("recovery", "app", "alembic", "flask_migrate"):
        logging.getLogger(name).setLevel(logging.WARNING)
    started = time.perf_counter()
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at start")
    wrk_problem = ensure_wrk()
    if wrk_problem:
        print(f"(load figures skipped: {wrk_problem})")
    report = Report()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        workdir = Path(tmp)
        sqlite_url = f"sqlite:///{workdir / 'bench.sqlite'}"
        migrate(sqlite_url)
        print(f"preparing the database ({sizes.patients} patients, {sizes.checkins:,} check-ins)…", flush=True)
        prepared = prepare(sqlite_url, sizes)
        backends = [("SQLite", sqlite_url, None)]
        problem = None if not quick else "--quick: SQLite only"
        problem = problem or pg_available()
        if problem is None:
            factory = PostgresFactory()
            pg_url = factory.new()
            t = time.perf_counter()
            rows = copy_database(sqlite_url, pg_url)
            print(f"  copied {rows:,} rows into a fresh PostgreSQL database in {time.perf_counter() - t:.0f} s")
            backends.append(("PostgreSQL", pg_url, factory))
        else:
            print(f"(PostgreSQL figures skipped: {problem})")
        try:
            for label, url, _ in backends:
                bench_backend(label, url, prepared, workdir, report, wrk_problem, sizes,
                              figures if label == "SQLite" else {})
        finally:
            for _, url, factory in backends:
                if factory is not None:
                    factory.drop(url)
                    factory.close()
    figures["seconds"] = time.perf_counter() - started
    print(f"\nweb figures from one run, {time.perf_counter() - started:.0f} s, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end:")
    report.print_table()

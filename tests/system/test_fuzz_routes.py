"""Every route of `app.url_map` gets hostile values in each path parameter, form field and query
parameter it takes (issue 11 item 3), on SQLite and PostgreSQL: no answer is a 5xx, and a refused
request (4xx) leaves nothing written (a record view or a failed sign-in is audited; nothing else).

The values reach the code: each request is otherwise valid (a signed-in nurse or patient session
of the right kind, a valid CSRF token, a valid Twilio signature, a valid form with one field
changed). New routes are covered without editing this file: their fields are read from the forms
the app renders, and they are sent as every role. What a request wrote is seen by listening to
the ORM (flushes, bulk statements, commits and rollbacks) and by counting every table's rows.
"""
from __future__ import annotations

import html.parser
import os
import re
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, quote_from_bytes, urlsplit

import flask
import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so
from argon2 import PasswordHasher
from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter, PathConverter
import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler

from recovery.scheduler.tick import tick
from recovery.messaging.twilio_gateway import compute_signature
from recovery.services import alerting, checkins
from recovery.store.enrolments import current_enrolment
from recovery.store.db import db
from recovery.store.models import StaffRole, StaffUser
from tests.support.factories import enrol, make_clinic, make_staff, patient_link
from tests.services.test_dispatch import plant, settings
from tests.web.test_hooks import BASE, TOKEN

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"

# What a tester types into every box.
HOSTILE: list[str | bytes] = [
    "\x00", "Ann\x00abel", "\u200b\u200c\ufeff", "\u202eevil", "\x01\x1b[31m\x7f", "9" * 400, str(2**63), "-1",
    "\u0661\u0662", "\u00b2", "1e400", "0001-01-01T00:00", "9999-12-31T23:59", "x" * 5000, "", "   ",
    "a\r\nSet-Cookie: x=1", "../../etc/passwd", "\U0001f600\u0301", b"\xff\xfe\xc0",
]
# ... and into every id in a URL (with a few of the above).
HOSTILE_IDS: list[str | bytes] = [str(2**31), str(2**63), "9" * 400, "\u0661\u0662", "\u00b2", "\uff11", "0", "-1",
                                  "1.0", "1e3", "\x00", b"\xff"]
ID_ALSO = ["x" * 5000, "../../etc/passwd", "\u202eevil", ""]
CSRF_ALSO = ["", "\x00", "x" * 5000, "9" * 400, b"\xff\xfe\xc0"]
# A refused request may leave only these audit rows (showing a page is a PHI read; a failed
# sign-in is a security event).
ALLOWED_ON_REFUSAL = {"record_viewed", "login_failed"}
# A post with several answers (a whole section, from a page rendered before one question per screen)
# keeps its valid answers and scores them at once (MR2: a ticked chest pain must alert even when
# another answer is wrong); the wrong one is asked again with a 422. That update is not half-done.
KEEPS_VALID_ANSWERS = {"checkin.answer": ("update", "checkin")}


# ---- what a request wrote ---------------------------------------------------------------------

class WriteLog:
    """Committed writes, per table, seen through the ORM: (kind, table, audit action)."""

    def __init__(self):
        self.pending: dict[int, list] = {}
        self.committed: list[tuple[str, str, str | None]] = []

    def _note(self, session, entries):
        self.pending.setdefault(id(session), []).extend(entries)

    def after_flush(self, session, _ctx):
        entries = [("insert", o.__table__.name, getattr(o, "action", None)) for o in session.new]
        entries += [("update", o.__table__.name, None) for o in session.dirty
                    if session.is_modified(o, include_collections=False)]
        entries += [("delete", o.__table__.name, None) for o in session.deleted]
        self._note(session, entries)

    def do_orm_execute(self, state):
        if state.is_insert or state.is_update or state.is_delete:
            kind = "insert" if state.is_insert else "update" if state.is_update else "delete"
            table = getattr(state.statement, "table", None)
            self._note(state.session, [(kind, getattr(table, "name", "?"), None)])

    def after_commit(self, session):
        self.committed.extend(self.pending.pop(id(session), []))

    def after_rollback(self, session):
        self.pending.pop(id(session), None)

    def take(self) -> list[tuple[str, str, str | None]]:
        out, self.committed = self.committed, []
        return out


@pytest.fixture
def write_log():
    log = WriteLog()
    hooks = [("after_flush", log.after_flush), ("do_orm_execute", log.do_orm_execute),
             ("after_commit", log.after_commit), ("after_rollback", log.after_rollback)]
    for name, fn in hooks:
        sa.event.listen(so.Session, name, fn)
    yield log
    for name, fn in hooks:
        sa.event.remove(so.Session, name, fn)


def row_counts() -> Counter:
    tables = db.metadata.sorted_tables
    query = sa.select(*[sa.select(sa.func.count()).select_from(t).scalar_subquery().label(t.name) for t in tables])
    with db.engine.connect() as conn:
        return Counter(dict(conn.execute(query).one()._mapping))


# ---- the app's forms, as rendered -------------------------------------------------------------

class FormFields(html.parser.HTMLParser):
    """(method, action, field names) of every <form> on a page."""

    def __init__(self):
        super().__init__()
        self.forms: list[tuple[str, str, set[str]]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(((a.get("method") or "get").upper(), a.get("action") or "", set()))
        elif tag in ("input", "select", "textarea", "button") and a.get("name") and self.forms:
            self.forms[-1][2].add(a["name"])


def encode(value) -> str:
    return quote_from_bytes(value, safe="") if isinstance(value, bytes) else quote(value, safe="")


def body_of(pairs: list[tuple[str, object]]) -> str:
    out = []
    for key, value in pairs:
        for v in value if isinstance(value, list) else [value]:
            out.append(f"{encode(key)}={encode(v)}")
    return "&".join(out)


# ---- the world the requests act on ------------------------------------------------------------

class World:
    def __init__(self, app, session, sms, monkeypatch):
        self.app = app
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # argon2 is not under test
        monkeypatch.setattr("recovery.services.passwords._hasher", cheap)
        monkeypatch.setattr("recovery.services.sign_in.dummy_hash", lambda: cheap.hash("not-a-real-password-0000"))
        self.clinic = make_clinic(session, now=NOW)
        self.nurse = make_staff(session, self.clinic, now=NOW)
        session.get(StaffUser, self.nurse.id).password_hash = cheap.hash(PASSWORD)
        self.admin = make_staff(session, self.clinic, role=StaffRole.ADMIN, now=NOW)
        self.admin.password_hash = cheap.hash(PASSWORD)
        self.member = make_staff(session, self.clinic, now=NOW)  # whom the admin pages act on
        self.ann = enrol(session, self.clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, first="Annabel",
                         mobile="+12025550177")
        enrolment = current_enrolment(self.ann)
        self.checkin = checkins.start_checkin(session, enrolment=enrolment, patient=self.ann, slot=None,
                                              source="web", now=NOW)
        self.alert = alerting.raise_rules(session, patient=self.ann, enrolment=enrolment, rule_ids=["U20"],
                                          now=NOW)[0]
        session.commit()
        sent = plant(session, self.ann, due=NOW, message_id="S03")
        tick(session, sms, NOW, settings(app))
        session.refresh(sent)
        self.sent_id, self.sent_sid = sent.id, sent.provider_sid
        self.session = session
        self.clients: dict[str, tuple[object, str]] = {}

    def link(self, purpose="today", slot=None) -> str:
        token = patient_link(self.session, self.ann, purpose=purpose, now=NOW, slot=slot)
        self.session.commit()
        return token

    # -- sessions of each role, each with its CSRF token
    def client(self, role: str, fresh: bool = False):
        if role in self.clients and not fresh:
            return self.clients[role]
        c = self.app.test_client()
        if role in ("nurse", "admin"):
            csrf = self._csrf(c)
            fresh_request_globals()
            who = self.nurse if role == "nurse" else self.admin
            r = c.post("/login", data={"email": who.email, "password": PASSWORD, "csrf_token": csrf})
            assert r.status_code == 303
        elif role in ("patient", "checkin"):
            token = self.link("today") if role == "patient" else self.link("checkin", "day1")
            csrf = self._csrf(c)
            fresh_request_globals()
            assert c.post(f"/l/{token}", data={"csrf_token": csrf}).status_code == 303
        pair = (c, self._csrf(c))  # after signing in: a new session has a new token
        if not fresh:
            self.clients[role] = pair
        return pair

    @staticmethod
    def _csrf(c) -> str:
        fresh_request_globals()
        page = c.get("/new-link").get_data(as_text=True)
        return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)

    def forget(self, role: str) -> None:
        self.clients.pop(role, None)


ROLES_BY_BLUEPRINT = {"nurse": ["nurse"], "reports": ["nurse"], "admin": ["admin", "nurse"], "alerts": ["nurse"], "checkin": ["patient"], "hooks": ["twilio"],
                      "static": ["anonymous"]}
ROLES_BY_ENDPOINT = {
    "checkin.start": ["patient", "checkin"], "checkin.begin": ["patient", "checkin"],
    "checkin.report": ["patient", "checkin"], "patient.today": ["patient", "checkin"],
    "patient.calendar": ["patient", "checkin"], "patient.link": ["anonymous"], "patient.redeem": ["anonymous"],
    "patient.new_link": ["anonymous", "patient"], "patient.signed_out": ["anonymous"],
    "auth.login": ["anonymous"], "auth.logout": ["nurse"], "auth.home": ["anonymous", "nurse", "patient"],
}
# A request here changes who the client is: each one gets a client of its own (or a new one after).
FRESH_CLIENT = {"auth.login", "patient.redeem"}
ENDS_SESSION = {"auth.logout"}
CALM_EMERGENCY = {"cardioresp": ["none"], "neuro": ["none"], "bladder_bowel": "no_change"}


def roles_for(endpoint: str) -> list[str]:
    return ROLES_BY_ENDPOINT.get(endpoint) or ROLES_BY_BLUEPRINT.get(endpoint.split(".")[0]) or [
        "anonymous", "nurse", "patient"]  # a route nobody classified yet: everyone tries it


def baseline_form(w: World, endpoint: str) -> dict[str, object]:
    """A valid form for the endpoint (hostile values replace one field at a time)."""
    return {
        "nurse.enrol": {"first_name": "Maria", "last_name": "Lopez", "mobile": "(202) 555-0143",
                        # no consent to texts: an accepted enrolment then plans none (the slow part)
                        "timezone": "America/New_York", "language": "en",
                        "procedure_type": "kyphoplasty", "procedure_end": "2026-03-07T10:30",
                        "discharge_at": "2026-03-07T13:00", "baseline_back_pain": "7"},
        "nurse.correct_times": {"procedure_end": "2026-03-08T09:00", "discharge_at": "", "reason": "typo"},
        "nurse.pause_texts": {"until": "2026-03-20", "note": "in hospital"},
        "nurse.send_text": {"body": "{first}, please call us on {phone}.", "nonce": "0123456789abcdef" * 2},
        "nurse.count_text": {"body": "{first}, please call us on {phone}."},
        "nurse.resend_link": {"nonce": "fedcba9876543210" * 2},
        "nurse.edit_patient": {"mobile": "(202) 555-0177", "timezone": "America/New_York", "language": "en",
                               "sms_consent": "y", "caregiver_name": "", "caregiver_mobile": ""},
        "nurse.end_monitoring": {"reason": "completed", "note": ""},
        "admin.invite_staff": {"name": "Nora Nurse", "email": "nora@example.org", "role": "nurse"},
        "admin.change_role": {"role": "nurse"},
        "admin.require_second_factor": {"required": ""},
        "alerts.resolve": {"disposition": "other", "note": "called", "next": "/nurse/"},
        "alerts.acknowledge": {"next": "/nurse/"},
        "checkin.answer": dict(CALM_EMERGENCY), "checkin.draft": dict(CALM_EMERGENCY),
        "auth.login": {"email": w.nurse.email, "password": PASSWORD},
        "patient.new_link": {"mobile": "(202) 555-0177"},
        "hooks.sms": {"MessageSid": None, "AccountSid": "AC" + "0123456789abcdef" * 2, "From": w.ann.mobile_e164,
                      "To": "+15005550006", "Body": "hello", "NumMedia": "0"},
        "hooks.status": {"MessageSid": w.sent_sid, "MessageStatus": "delivered", "SmsStatus": "delivered",
                         "ErrorCode": "", "AccountSid": "AC" + "0123456789abcdef" * 2, "To": w.ann.mobile_e164},
    }.get(endpoint, {})


def baseline_query(w: World, endpoint: str) -> dict[str, str]:
    return {"auth.login": {"next": "/nurse/"}, "hooks.status": {"ob": str(w.sent_id)},
            "nurse.worklist": {"all": "1"}, "nurse.patients": {"q": "Ann"}, "static": {"v": "1"},
            "reports.dashboard": {"from": "2026-02-08", "to": "2026-03-09"},
            "reports.export": {"table": "missed", "from": "2026-02-08", "to": "2026-03-09"}}.get(endpoint, {})


def path_values(w: World, token: str) -> dict[str, str]:
    return {"patient_id": str(w.ann.id), "alert_id": str(w.alert.id), "checkin_id": str(w.checkin.id),
            "staff_id": str(w.member.id),
            "group_id": "emergency", "token": token, "filename": "app.css"}


# ---- the sweep --------------------------------------------------------------------------------

class Sweep:
    def __init__(self, w: World, write_log: WriteLog):
        self.w, self.log, self.app = w, write_log, w.app
        self.adapter = self.app.url_map.bind("localhost")
        self.tried = 0
        self.routes: set[str] = set()
        self.statuses: Counter = Counter()
        self.kinds: Counter = Counter()  # path / field / query / ...
        self.by_endpoint: dict[str, Counter] = {}
        self.seconds: dict[str, float] = {}
        self.counts: Counter | None = None  # rows per table after the last request
        self.accepted_writes = 0  # writes seen for accepted requests: the detectors do see writes
        self.problems: list[str] = []
        self.rendered_fields: dict[str, set[str]] = {}
        self.rendered_query: dict[str, set[str]] = {}

    def harvest(self) -> None:
        """The fields of every form the app renders on its GET pages, per target endpoint."""
        for rule in self.app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint == "static":
                continue
            for role in roles_for(rule.endpoint):
                if role == "twilio":
                    continue
                c, _ = self.w.client(role)
                url = build(self.adapter, rule, {a: path_values(self.w, "x").get(a, "1") for a in rule.arguments})
                page = c.get(url)
                if page.mimetype != "text/html":
                    continue
                parser = FormFields()
                parser.feed(page.get_data(as_text=True))
                for method, action, names in parser.forms:
                    path = urlsplit(action).path or url.split("?")[0]
                    try:
                        endpoint, _ = self.adapter.match(path, method=method)
                    except Exception:  # noqa: BLE001 - a form to another site would be a finding of its own
                        self.problems.append(f"{url}: a form posts to {action!r}, which no route serves")
                        continue
                    target = self.rendered_query if method == "GET" else self.rendered_fields
                    target.setdefault(endpoint, set()).update(names)

    def send(self, role: str, endpoint: str, method: str, url: str, form: dict[str, object] | None,
             what: str, raw_prefix: str | None = None, csrf_value=None) -> None:
        w = self.w
        fresh = endpoint in FRESH_CLIENT
        who = "anonymous" if role == "twilio" else role
        if fresh or who not in w.clients:
            self.counts = None  # signing in writes; count after it
        c, csrf = w.client(who, fresh=fresh)
        headers = {}
        pairs: list[tuple[str, object]] = []
        if form is not None:
            if role != "twilio":
                pairs.append(("csrf_token", csrf if csrf_value is None else csrf_value))
            pairs += list(form.items())
            if role == "twilio":
                pairs = [(k, (v if v is not None else "SM" + uuid.uuid4().hex)) for k, v in pairs]
        body = (raw_prefix or "") + body_of(pairs)
        if role == "twilio":  # signed over the values as the app will parse them
            # (a body that is not UTF-8 parses as an empty form)
            signed = [] if raw_prefix else parse_qsl(body, keep_blank_values=True, errors="werkzeug.url_quote")
            headers["X-Twilio-Signature"] = compute_signature(TOKEN, BASE + url, MultiDict(signed))
        t0 = time.perf_counter()
        before = self.counts if self.counts is not None else row_counts()
        self.log.take()
        fresh_request_globals()
        where = f"{role} {method} {url[:120]!r} ({what})"
        try:
            r = c.open(url, method=method, data=body.encode("utf-8", "surrogateescape") if form is not None else None,
                       content_type="application/x-www-form-urlencoded" if form is not None else None,
                       headers=headers)
        except Exception as e:  # noqa: BLE001 - under TESTING the error handler's 500 is raised instead
            self.problems.append(f"{where}: raised {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            self.tried += 1
            db.session.rollback()  # the request's session is the test's (one app context): go on
            self.counts = None
            return
        writes = self.log.take()
        after = row_counts()
        self.tried += 1
        self.kinds[what.split()[0]] += 1
        self.routes.add(endpoint)
        self.statuses[r.status_code // 100] += 1
        self.by_endpoint.setdefault(endpoint, Counter())[r.status_code] += 1
        self.seconds[endpoint] = self.seconds.get(endpoint, 0.0) + time.perf_counter() - t0
        if r.status_code < 400:
            self.accepted_writes += len(writes)
        if r.status_code >= 500:
            self.problems.append(f"{where}: {r.status_code}")
        elif r.status_code >= 400:
            bad = [wr for wr in writes if not (wr[0] == "insert" and wr[1] == "audit_event"
                                               and wr[2] in ALLOWED_ON_REFUSAL)
                   and wr[:2] != KEEPS_VALID_ANSWERS.get(endpoint)]
            grew = {t: after[t] - before[t] for t in after if after[t] != before[t] and t != "audit_event"}
            if bad or grew:
                self.problems.append(f"{where}: refused with {r.status_code} but wrote {bad or grew}")
        if endpoint in ENDS_SESSION and role != "anonymous":
            w.forget(role)

    def route(self, rule) -> None:
        w = self.w
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for role in roles_for(rule.endpoint):
                token = w.link() if rule.endpoint.startswith("patient.") else "x"
                self.counts = None  # a link was written, new clients may sign in: count again
                paths = path_values(w, token)
                values = {a: paths.get(a, "1") for a in rule.arguments}
                form = baseline_form(w, rule.endpoint) if method == "POST" else None
                # fields the rendered forms have beyond the valid baseline: each one fuzzed alone
                extra = sorted(self.rendered_fields.get(rule.endpoint, set()) - set(form or {}) - {"csrf_token"})
                query = dict(baseline_query(w, rule.endpoint))
                extra_query = sorted(self.rendered_query.get(rule.endpoint, set()) - set(query))

                def url(vals=values, q=query):
                    return build(self.adapter, rule, vals) + (
                        "?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in q.items()) if q else "")

                # 1. each path parameter
                for a in rule.arguments:
                    numeric = isinstance(rule._converters[a], IntegerConverter)
                    for value in (HOSTILE_IDS + ID_ALSO) if numeric else HOSTILE:
                        self.send(role, rule.endpoint, method, url({**values, a: value}), form, f"path {a}")
                # 2. each form field (and the CSRF token)
                if form is not None:
                    for name in [*form, *extra]:
                        for value in HOSTILE:
                            self.send(role, rule.endpoint, method, url(), {**form, name: value}, f"field {name}")
                    if role != "twilio":  # one check for every form (Flask-WTF): a few values suffice
                        for value in CSRF_ALSO:
                            self.send(role, rule.endpoint, method, url(), form, "field csrf_token", csrf_value=value)
                    # fields sent twice; a body that is not UTF-8 at all
                    self.send(role, rule.endpoint, method, url(),
                              {**form, **{k: ["x", "\x00"] for k in list(form)[:3]}}, "fields repeated")
                    self.send(role, rule.endpoint, method, url(), form, "raw bytes", raw_prefix="\udcff\udcfe=\udcc0&")
                # 3. each query parameter, and one with every hostile value at once
                for name in [*query, *extra_query]:
                    for value in HOSTILE:
                        self.send(role, rule.endpoint, method, url(q={**query, name: value}), form, f"query {name}")
                everything = {f"x{i}": v for i, v in enumerate(HOSTILE)}
                self.send(role, rule.endpoint, method, url(q={**query, **everything}),
                          None if form is None else {**form, **everything}, "unknown fields")


def fresh_request_globals() -> None:
    """The test's app context outlives each request, and so does `g`: Flask-WTF would hand a new
    client the CSRF token it made for the previous one."""
    flask.g.pop("csrf_token", None)


def build(adapter, rule, values: dict[str, object]) -> str:
    """The rule's URL with each value percent-encoded into its place (no converter checks it)."""
    sentinels = {a: (9_000_000 + i if isinstance(rule._converters[a], IntegerConverter) else f"SENTINEL{i}")
                 for i, a in enumerate(rule.arguments)}
    method = sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
    url = adapter.build(rule.endpoint, sentinels, method=method)
    for a, sentinel in sentinels.items():
        value = values[a]
        if isinstance(rule._converters[a], PathConverter) and isinstance(value, str):
            encoded = "/".join(encode(part) for part in value.split("/"))
        else:
            encoded = encode(value)
        url = url.replace(str(sentinel), encoded, 1)
    return url


def test_every_route_takes_hostile_values_without_a_5xx_or_a_partial_write(app, session, sms, time_machine,
                                                                            monkeypatch, write_log, db_factory):
    time_machine.move_to(NOW, tick=False)
    app.config["WTF_CSRF_ENABLED"] = True
    w = World(app, session, sms, monkeypatch)
    sweep = Sweep(w, write_log)
    started = time.perf_counter()
    sweep.harvest()
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.endpoint)
    for rule in rules:
        sweep.route(rule)
    seconds = time.perf_counter() - started
    values = len({repr(v) for v in HOSTILE + HOSTILE_IDS + ID_ALSO + CSRF_ALSO})
    print(f"\nurl_map fuzz on {db_factory.name}: {len(sweep.routes)} routes x {values} hostile values "
          f"({len(HOSTILE)} per field and query parameter, {len(HOSTILE_IDS + ID_ALSO)} per id) = {sweep.tried} "
          f"requests ({dict(sweep.kinds.most_common())}) in {seconds:.1f} s; answers: "
          f"{dict(sorted((f'{k}xx', v) for k, v in sweep.statuses.items()))}")
    if os.environ.get("FUZZ_DETAIL"):
        for endpoint, counts in sorted(sweep.by_endpoint.items()):
            print(f"  {endpoint:22} {sweep.seconds[endpoint]:5.1f} s {dict(sorted(counts.items()))}")
    assert sweep.routes == {r.endpoint for r in rules}
    assert sweep.accepted_writes > 100 and sweep.statuses[2] and sweep.statuses[3]  # the values got through
    assert not sweep.problems, f"{len(sweep.problems)} problems:\n" + "\n".join(sweep.problems[:60])

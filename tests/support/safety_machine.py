"""The whole-system stateful test of the safety path (issue 10 item 2).

A Hypothesis `RuleBasedStateMachine` over the real app: the Flask test client against
`create_app` on a fresh SQLite database per example, the real use-cases behind the real routes,
Twilio webhooks signed as Twilio signs them, the scheduler tick as `scheduler --once` runs it
(`recovery.scheduler.run_tick`, handing texts to a recording gateway), and the wall clock frozen
with time-machine and moved by the rules across days, quiet hours and a DST change (New York
2026-11-01 / 2027-03-14, Sydney 2026-10-04 / 2027-04-04), with one clinic in each zone.

Rules are what people and Twilio do: nurses enrol (on time, late up to a day after discharge, in
the evening; through the enrol form, or the use-case for a patient without consent), correct the
procedure time, acknowledge and resolve alerts and tasks with every disposition; patients and
caregivers text in (STOP/START/HELP and variants, 0-10, Y/N, free text, "stop texting me"; from
unknown numbers too), open the links their texts carry (or a fresh one), check in on the web with
any answers (plain posts and htmx drafts, emergency answers included), report a symptom; Twilio
sends delivery callbacks in any order, with replays; the scheduler ticks; time passes; nurses end
monitoring (with every reason, and bad ones), pause texts until a day (and bad days) and resume
them, through their forms.

Invariants, after every step:
- no response is a 5xx;
- an emergency answer shows the emergency screen in that very response (a plain post's 303, an
  htmx draft's HX-Redirect, the submission's page) and leaves an open EMERGENCY alert for it;
- no text is handed to the gateway for a number that opted out (STOP, or plain words) before the
  tick, except the one confirmation of an opt-out in words; none for a patient without consent or
  an ended enrolment; during a pause only replies to what the patient did (event replies);
- no outbox row is handed over twice; a routine text (not urgent, not a safety text) is never
  handed over in quiet hours (21:00-08:00 local), a safety text never 23:00-08:00;
- at most 3 routine texts a day per enrolment and recipient (sent or still planned), after any
  correction of the procedure time;
- every unresolved alert is on its clinic's worklist (`recovery.worklist.worklist_rows`), and no
  alert of another clinic is;
- no on-call rung is paged twice for one alert;
- one check-in, one alert: at most one unresolved alert per check-in, and each of its rules on one
  of its alerts only;
- the app's opt-out flags agree with the numbers' own history (STOP / START per number, a later
  enrolment of an opted-out number included).

Randomness comes only from Hypothesis strategies, so a failing example replays and shrinks.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from recovery.domain.alerts import DISPOSITIONS, FOLLOW_UP_MINUTES
from recovery.domain.episode_rules import END_REASONS
from recovery.messaging import SendResult
from recovery.store.outbox import OPT_OUT_REF
from recovery.messaging.twilio_gateway import compute_signature
from recovery.store.models import (Alert, AlertStatus, Checkin, Enrolment, EnrolmentStatus, OutboundMessage,
                             OutboxStatus, Patient)
from recovery.domain.questionnaire.answers import coerce_answers
from recovery.domain.questionnaire.form import items_on
from recovery.domain.questionnaire.items import ITEMS
from recovery.domain.questionnaire.model import Kind
from recovery.domain.triage import Baseline, Level, assess_partial

UTC = timezone.utc
NY, SYD = ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")
TOKEN = "test-auth-token"
BASE = "https://recovery.example.org"
TWILIO_NUMBER = "+15005550006"
# Starts a few hours or days before a DST change in one zone or the other.
STARTS = [datetime(2026, 10, 31, 9, 0, tzinfo=NY), datetime(2027, 3, 13, 14, 0, tzinfo=NY),
          datetime(2026, 10, 3, 10, 0, tzinfo=SYD), datetime(2027, 4, 3, 15, 0, tzinfo=SYD)]
NUMBERS = ["+12025550161", "+12025550162", "+12025550163", "+12025550164"]  # patients and caregivers
UNKNOWN = "+12025550199"  # never enrolled
STAFF_NUMBERS = ["+12025550171", "+12025550172", "+12025550173", "+12025550174", "+12025550175",
                 "+12025550176"]

# What people text, with what it means for the number's opt-out (None: nothing about opting out).
TEXTS = {
    "STOP": "stop", "stop": "stop", "Stop.": "stop", "STOP!": "stop", "unsubscribe": "stop", "Cancel": "stop",
    "stop texting me": "stop", "no more texts": "stop", "Stop. Thank you": "stop",
    "START": "start", "unstop": "start", "Start": "start",
    "HELP": None, "info": None, "0": None, "3": None, "7": None, "10": None, "11": None, "Y": None, "N": None,
    "yes": None, "no": None, "I feel fine thanks": None, "the pain is worse tonight": None, "": None,
    "can you call me": None,
}
CALLBACK_STATUSES = ["queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled",
                     "DELIVERED ", "bogus"]
ROUTINE_KINDS = {"reminder", "checkin_reminder"}
LINK_RE = re.compile(re.escape(BASE) + r"/l/([A-Za-z0-9_-]{16,64})")


# What a run did, for the figures the test prints: examples started, rule steps run.
COUNTS = {"examples": 0, "steps": 0, "peg": 0}


def examples() -> int:
    return int(os.environ.get("SAFETY_MACHINE_EXAMPLES", "30"))


# ---- answers to one screen of the check-in ------------------------------------------------------

@st.composite
def item_value(draw, item_id: str):
    """A value as the form posts it: usually valid, now and then wrong (a 422, never a 500)."""
    item = ITEMS[item_id]
    values = [o.value for o in item.options]
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(["", "banana", "-1", "999", "none,other"]))
    if item.kind is Kind.MULTI:
        nothing = item.nothing_option
        others = [v for v in values if v != nothing]
        if nothing and draw(st.integers(0, 2)) > 0:
            return [nothing]
        return draw(st.lists(st.sampled_from(others or values), min_size=1, max_size=3, unique=True))
    if item.kind is Kind.ENUM:
        return draw(st.sampled_from(values))
    if item.kind is Kind.BOOL:
        return draw(st.sampled_from(["no", "no", "yes"]))
    if item.kind is Kind.INT:
        return str(draw(st.integers(item.minimum or 0, item.maximum if item.maximum is not None else 10)))
    if item.kind is Kind.DECIMAL:
        return draw(st.sampled_from(["36.8", "37.9", "38.6", "39.4", "100.9", "102.5", "12", "abc"]))
    return draw(st.sampled_from(["", "a bit sore", "my leg feels odd", "chest feels tight", "x" * 1001]))


def screen_answers(screen: str):
    return st.fixed_dictionaries({i: item_value(i) for i in items_on(screen)})


# ---- the world the machine keeps -----------------------------------------------------------------

@dataclass
class PatientModel:
    id: int
    clinic: int
    number: str
    tz: str
    consent: bool
    caregiver: str | None = None
    enrolment_id: int = 0
    baseline: Baseline = field(default_factory=Baseline)
    client: object = None
    checkin_id: int | None = None
    links: list[str] = field(default_factory=list)


class RecordingGateway:
    """The gateway the tick hands texts to: records each hand-over (and accepts it)."""

    def __init__(self) -> None:
        self.handed: list[tuple[int, str, str, datetime]] = []  # (outbox id, to, body, when)
        self.n = 0
        self.now = None

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        ob = int(dict(parse_qsl(urlsplit(status_callback).query))["ob"])
        self.n += 1
        self.handed.append((ob, to, body, self.now))
        return SendResult(provider_id=f"SM{self.n:032x}", status="queued")


def build(db_factory, time_machine):
    from app import create_app
    from recovery.store.db import db
    from recovery.scheduler.process import run_tick
    from recovery.services.sessions import issue_link
    from recovery.services.worklist import worklist_rows
    from tests.support.factories import enrol, login, make_clinic, make_staff
    from tests.support.settings import app_config

    class SafetyMachine(RuleBasedStateMachine):
        # ---- set-up: two clinics, one in each zone, a fresh database -----------------------------
        @initialize(start=st.sampled_from(STARTS), shift=st.integers(-6, 30))
        def setup(self, start, shift):
            COUNTS["examples"] += 1
            self.url = db_factory.new()
            # No pacing (the clock is frozen); nurses stay signed in for the example (each sign-in is an
            # argon2 hash: the idle time-out has its own tests in test_security_sessions).
            self.app = create_app(app_config(SQLALCHEMY_DATABASE_URI=self.url, SMS_MAX_PER_SECOND=0,
                                             SMS_SEND_CONCURRENCY=1, STAFF_IDLE_MINUTES=60 * 24 * 60,
                                             STAFF_ABSOLUTE_HOURS=24 * 60))
            self.ctx = self.app.app_context()
            self.ctx.push()
            self.s = db.session
            self.now = (start + timedelta(hours=shift)).astimezone(UTC)
            time_machine.move_to(self.now, tick=False)
            self.gateway = RecordingGateway()
            self.clinics = []
            staff_numbers = iter(STAFF_NUMBERS)
            for tz in ("America/New_York", "Australia/Sydney"):
                clinic = make_clinic(self.s, tz=tz, now=self.now)
                nurse = make_staff(self.s, clinic, now=self.now, mobile=next(staff_numbers))
                rungs = [make_staff(self.s, clinic, on_call=pos, now=self.now, mobile=next(staff_numbers))
                         for pos in (1, 2)]
                self.s.commit()
                client = self.app.test_client()
                assert login(client, nurse).status_code == 303
                self.clinics.append({"id": clinic.id, "tz": tz, "nurse": nurse.id, "client": client,
                                     "rungs": [r.id for r in rungs]})
            self.patients: list[PatientModel] = []
            self.opted_out: set[str] = set()  # numbers, as the app should know them
            self.ended: set[int] = set()  # enrolment ids
            self.handed_seen = 0
            self.planned_at: dict[int, datetime] = {}  # outbox id -> send time when first seen
            self.handed_ids: set[int] = set()
            self.sids: list[tuple[int, str]] = []
            self.inbound = 0
            self.names = 0

        def teardown(self):
            if hasattr(self, "ctx"):
                self.s.remove()
                db.engine.dispose()
                self.ctx.pop()
                db_factory.drop(self.url)

        # ---- helpers -----------------------------------------------------------------------------
        def req(self, client, method, path, **kw):
            resp = getattr(client, method)(path, **kw)
            assert resp.status_code < 500, f"{method.upper()} {path}: {resp.status_code}"
            return resp

        def nurse(self, c, method, path, **kw):
            """A nurse's request; signed out after the idle time-out (the clock moves days), the
            nurse signs in again and repeats it, as at the ward."""
            resp = self.req(c["client"], method, path, **kw)
            if resp.status_code == 403 or (resp.status_code == 302 and "/login" in resp.headers.get("Location", "")):
                s = self.fresh()
                from recovery.store.models import StaffUser
                assert login(c["client"], s.get(StaffUser, c["nurse"])).status_code == 303
                s.rollback()
                event("nurse signed in again")
                resp = self.req(c["client"], method, path, **kw)
            return resp

        def signed(self, path, form):
            sig = compute_signature(TOKEN, BASE + path, form)
            return self.req(self.app.test_client(), "post", path, data=form, headers={"X-Twilio-Signature": sig})

        def fresh(self):
            self.s.rollback()
            self.s.expire_all()
            return self.s

        def local(self, tz: str, delta: timedelta) -> str:
            return (self.now + delta).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")

        def move(self, delta: timedelta):
            self.now += delta
            time_machine.move_to(self.now, tick=False)

        def _add_patient(self, patient_id, clinic, number, tz, consent, caregiver, baseline):
            s = self.fresh()
            p = s.get(Patient, patient_id)
            enrolment = max(p.enrolments, key=lambda e: e.id)
            model = PatientModel(id=p.id, clinic=clinic, number=number, tz=tz, consent=consent,
                                 caregiver=caregiver, enrolment_id=enrolment.id, baseline=baseline,
                                 client=self.app.test_client())
            self.patients.append(model)
            self.s.rollback()
            return model

        # ---- nurses ------------------------------------------------------------------------------
        @precondition(lambda self: len(self.patients) < 5)
        @rule(clinic=st.integers(0, 1), number=st.sampled_from(NUMBERS), other_zone=st.booleans(),
              when=st.sampled_from(["on_time", "late", "evening"]), ago=st.integers(0, 24 * 60),
              discharge_after=st.one_of(st.none(), st.integers(0, 240)),
              caregiver=st.one_of(st.none(), st.sampled_from(NUMBERS)), pain=st.integers(0, 10))
        def nurse_enrols(self, clinic, number, other_zone, when, ago, discharge_after, caregiver, pain):
            c = self.clinics[clinic]
            tz = self.clinics[1 - clinic]["tz"] if other_zone else c["tz"]
            if when == "on_time":
                end = -timedelta(minutes=ago % 180)
            elif when == "late":  # enrolled up to a day after discharge
                end = -timedelta(minutes=ago)
            else:  # an evening procedure today (19:30 or 22:30 local), or yesterday's if still to come
                local_now = self.now.astimezone(ZoneInfo(tz))
                at = local_now.replace(hour=19 if ago % 2 else 22, minute=30, second=0, microsecond=0)
                if at > local_now:
                    at -= timedelta(days=1)
                end = at.astimezone(UTC) - self.now
            if caregiver == number:
                caregiver = None
            self.names += 1
            form = {"first_name": f"Pat{self.names}", "last_name": "Safety", "mobile": number, "timezone": tz,
                    "sms_consent": "y", "procedure_type": "kyphoplasty", "procedure_end": self.local(tz, end),
                    "baseline_back_pain": str(pain)}
            if discharge_after is not None:
                form["discharge_at"] = self.local(tz, end + timedelta(minutes=discharge_after))
            if caregiver:
                form.update(caregiver_name="Carey Giver", caregiver_mobile=caregiver, caregiver_consent="y")
            resp = self.nurse(c, "post", "/nurse/patients/new", data=form)
            event(f"enrol ({when}): {resp.status_code}")
            if resp.status_code != 303:
                return
            patient_id = int(resp.headers["Location"].rsplit("/", 1)[1])
            self._add_patient(patient_id, clinic, number, tz, True, caregiver, Baseline(back_pain=pain))

        @precondition(lambda self: len(self.patients) < 5)
        @rule(clinic=st.integers(0, 1), number=st.sampled_from(NUMBERS), ago=st.integers(0, 30 * 60))
        def enrolled_without_consent(self, clinic, number, ago):
            """The use-case, for a patient who did not agree to texts."""
            s = self.fresh()
            from recovery.store.models import Clinic
            clinic_row = s.get(Clinic, self.clinics[clinic]["id"])
            p = enrol(s, clinic_row, procedure_end=self.now - timedelta(minutes=ago), now=self.now,
                      mobile=number, sms_consent=False)
            s.commit()
            self._add_patient(p.id, clinic, number, self.clinics[clinic]["tz"], False, None, Baseline())

        @precondition(lambda self: self.patients)
        @rule(data=st.data(), minutes=st.integers(-36 * 60, 120), ahead=st.booleans(),
              discharge_after=st.one_of(st.none(), st.integers(0, 300)))
        def nurse_corrects_procedure_time(self, data, minutes, ahead, discharge_after):
            """Up to a day and a half earlier or two hours later; or to a time just ahead of the clock
            (the form allows an hour: a ward clock a little ahead)."""
            p = data.draw(st.sampled_from(self.patients))
            s = self.fresh()
            old = s.get(Enrolment, p.enrolment_id).procedure_end
            s.rollback()
            end = timedelta(minutes=minutes % 60) if ahead else old + timedelta(minutes=minutes) - self.now
            form = {"procedure_end": self.local(p.tz, end), "reason": "the theatre log says otherwise"}
            if discharge_after is not None:
                form["discharge_at"] = self.local(p.tz, end + timedelta(minutes=discharge_after))
            resp = self.nurse(self.clinics[p.clinic], "post", f"/nurse/patients/{p.id}/times", data=form)
            event(f"correct times: {resp.status_code}")

        def _unresolved(self, clinic=None):
            s = self.fresh()
            q = sa.select(Alert).where(Alert.status != AlertStatus.RESOLVED)
            if clinic is not None:
                q = q.where(Alert.clinic_id == self.clinics[clinic]["id"])
            rows = [(a.id, a.clinic_id, a.status) for a in s.scalars(q.order_by(Alert.id))]
            s.rollback()
            return rows

        @precondition(lambda self: self._unresolved())
        @rule(data=st.data(), htmx=st.booleans())
        def nurse_acknowledges(self, data, htmx):
            alert_id, clinic_id, _ = data.draw(st.sampled_from(self._unresolved()))
            c = next(c for c in self.clinics if c["id"] == clinic_id)
            headers = {"HX-Request": "true"} if htmx else {}
            resp = self.nurse(c, "post", f"/nurse/alerts/{alert_id}/acknowledge", headers=headers)
            event(f"acknowledge: {resp.status_code}")

        @precondition(lambda self: self._unresolved())
        @rule(data=st.data(), disposition=st.sampled_from(sorted(DISPOSITIONS) + ["bogus"]),
              minutes=st.sampled_from(list(FOLLOW_UP_MINUTES) + [7]), note=st.sampled_from(["", "phoned her"]),
              htmx=st.booleans())
        def nurse_resolves(self, data, disposition, minutes, note, htmx):
            alert_id, clinic_id, _ = data.draw(st.sampled_from(self._unresolved()))
            c = next(c for c in self.clinics if c["id"] == clinic_id)
            headers = {"HX-Request": "true"} if htmx else {}
            resp = self.nurse(c, "post", f"/nurse/alerts/{alert_id}/resolve", headers=headers,
                            data={"disposition": disposition, "follow_up": str(minutes), "note": note})
            event(f"resolve {disposition}: {resp.status_code}")

        @precondition(lambda self: self._unresolved())
        @rule(data=st.data())
        def nurse_of_another_clinic_cannot_touch_an_alert(self, data):
            alert_id, clinic_id, _ = data.draw(st.sampled_from(self._unresolved()))
            other = next(c for c in self.clinics if c["id"] != clinic_id)
            for path in (f"/nurse/alerts/{alert_id}/acknowledge", f"/nurse/alerts/{alert_id}/resolve"):
                resp = self.nurse(other, "post", path, data={"disposition": "called_patient"})
                assert resp.status_code == 404, (path, resp.status_code)

        @precondition(lambda self: self.patients)
        @rule(data=st.data(), reason=st.sampled_from(sorted(END_REASONS) + ["bogus"]),
              note=st.sampled_from(["", "readmitted to ward 4"]))
        def nurse_ends_monitoring(self, data, reason, note):
            """The nurse's "End monitoring" form (a bad reason, or "other" without a note, is a 422)."""
            p = data.draw(st.sampled_from(self.patients))
            c = self.clinics[p.clinic]
            resp = self.nurse(c, "post", f"/nurse/patients/{p.id}/end", data={"reason": reason, "note": note})
            event(f"end monitoring: {resp.status_code}")
            if resp.status_code == 303:
                self.ended.add(p.enrolment_id)
            else:
                assert resp.status_code in (409, 422), resp.status_code

        @precondition(lambda self: self.patients)
        @rule(data=st.data(), days=st.integers(-2, 70), hour=st.sampled_from(["07:30", "09:00", "14:15", "20:45"]),
              clear=st.booleans())
        def nurse_books_the_follow_up(self, data, days, hour, clear):
            """Book, move or clear the follow-up appointment (issue 13 §2): S16-S18 are re-planned
            under the same quiet-hours and daily-limit rules; a time before the procedure or before
            discharge is a 422, an ended episode a 409."""
            p = data.draw(st.sampled_from(self.patients))
            c = self.clinics[p.clinic]
            if clear:
                resp = self.nurse(c, "post", f"/nurse/patients/{p.id}/followup/clear")
            else:
                day = (self.now.astimezone(ZoneInfo(p.tz)) + timedelta(days=days)).date()
                resp = self.nurse(c, "post", f"/nurse/patients/{p.id}/followup",
                                  data={"day": day.isoformat(), "time": hour, "place": "Clinic B, room 2"})
            event(f"follow-up appointment: {resp.status_code}")
            if resp.status_code != 303:
                assert resp.status_code in (409, 422), resp.status_code
                assert resp.status_code != 409 or p.enrolment_id in self.ended

        @precondition(lambda self: self.patients)
        @rule(data=st.data(), days=st.integers(-1, 100))
        def nurse_pauses_texts(self, data, days):
            """Pause until a local day (today, the past and beyond 90 days are 422s)."""
            p = data.draw(st.sampled_from(self.patients))
            c = self.clinics[p.clinic]
            until = (self.now.astimezone(ZoneInfo(p.tz)) + timedelta(days=days)).date()
            resp = self.nurse(c, "post", f"/nurse/patients/{p.id}/pause", data={"until": until.isoformat(), "note": ""})
            event(f"pause texts: {resp.status_code}")
            if resp.status_code != 303:
                assert resp.status_code in (409, 422), resp.status_code

        @precondition(lambda self: self.patients)
        @rule(data=st.data())
        def nurse_resumes_texts(self, data):
            p = data.draw(st.sampled_from(self.patients))
            c = self.clinics[p.clinic]
            resp = self.nurse(c, "post", f"/nurse/patients/{p.id}/resume")
            event(f"resume texts: {resp.status_code}")

        # ---- texts in and Twilio -------------------------------------------------------------------
        @rule(number=st.sampled_from(NUMBERS + [UNKNOWN]), body=st.sampled_from(sorted(TEXTS)), replay=st.booleans())
        def text_in(self, number, body, replay):
            self.inbound += 1
            form = {"MessageSid": f"SM{self.inbound:032x}", "From": number, "To": TWILIO_NUMBER, "Body": body,
                    "AccountSid": "AC" + "0123456789abcdef" * 2, "NumSegments": "1"}
            resp = self.signed("/twilio/sms", form)
            assert resp.status_code == 200, resp.status_code
            if replay:  # Twilio retried the webhook: nothing changes
                assert self.signed("/twilio/sms", form).status_code == 200
            known = any(p.number == number or p.caregiver == number for p in self.patients)
            if known and TEXTS[body] == "stop":
                self.opted_out.add(number)
            elif known and TEXTS[body] == "start":
                self.opted_out.discard(number)

        @precondition(lambda self: self.sids)
        @rule(data=st.data(), count=st.integers(1, 4))
        def delivery_callbacks(self, data, count):
            for _ in range(count):
                ob, sid = data.draw(st.sampled_from(self.sids))
                status = data.draw(st.sampled_from(CALLBACK_STATUSES))
                with_ob = data.draw(st.booleans())
                form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                        "AccountSid": "AC" + "0123456789abcdef" * 2, "From": TWILIO_NUMBER, "To": NUMBERS[0]}
                if status.strip() in ("undelivered", "failed"):
                    form["ErrorCode"] = data.draw(st.sampled_from(["30003", "30005", "30006", "30008", "21610"]))
                resp = self.signed(f"/twilio/status?ob={ob}" if with_ob else "/twilio/status", form)
                assert resp.status_code == 204, resp.status_code
                if form.get("ErrorCode") == "21610":  # Twilio says the number opted out
                    s = self.fresh()
                    row = s.get(OutboundMessage, ob)
                    if row.recipient in ("patient", "caregiver") and status.strip() in ("undelivered", "failed"):
                        event("21610 in a callback")
                    s.rollback()

        # ---- the scheduler and time ----------------------------------------------------------------
        @rule()
        def scheduler_tick(self):
            self.before_tick = (set(self.opted_out), set(self.ended))
            s = self.fresh()
            self.paused_until = {e.id: e.paused_until for e in s.scalars(sa.select(Enrolment))}
            s.rollback()
            self.gateway.now = self.now
            report = run_tick(self.app, self.gateway)
            assert not report.errors, report.summary()
            for outcome in report.send.outcomes:
                event(f"send: {outcome}")
            self.check_handed()

        @rule(delta=st.one_of(st.integers(1, 90).map(lambda m: timedelta(minutes=m)),
                              st.integers(1, 14).map(lambda h: timedelta(hours=h)),
                              st.integers(1, 3).map(lambda d: timedelta(days=d))), tick=st.booleans())
        def time_passes(self, delta, tick):
            self.move(delta)
            if tick:
                self.scheduler_tick()

        # ---- patients on the web -------------------------------------------------------------------
        @precondition(lambda self: self.patients)
        @rule(data=st.data(), fresh=st.booleans(), purpose=st.sampled_from(["today", "checkin"]))
        def patient_opens_a_link(self, data, fresh, purpose):
            """A link from a text the patient got, or a new one (as "Text me a new link" gives)."""
            p = data.draw(st.sampled_from(self.patients))
            if p.links and not fresh:
                token = data.draw(st.sampled_from(p.links))
            else:
                s = self.fresh()
                slot = None
                if purpose == "checkin":
                    slots = sorted({r.slot for r in s.scalars(sa.select(OutboundMessage).where(
                        OutboundMessage.enrolment_id == p.enrolment_id, OutboundMessage.slot.is_not(None)))})
                    slot = data.draw(st.sampled_from(slots + [None])) if slots else None
                token = issue_link(s, s.get(Patient, p.id), purpose, self.now, timedelta(hours=24), checkin_slot=slot)
                s.commit()
            self.req(p.client, "get", f"/l/{token}")
            resp = self.req(p.client, "post", f"/l/{token}")
            event(f"link: {resp.status_code}")
            if resp.status_code == 303 and resp.headers["Location"].endswith("/me/checkin"):
                start = self.req(p.client, "get", "/me/checkin")
                m = re.search(r"/me/checkin/(\d+)$", start.headers.get("Location", ""))
                if m:
                    p.checkin_id = int(m.group(1))

        @precondition(lambda self: self.patients)
        @rule(data=st.data(), report=st.booleans())
        def patient_starts_a_checkin(self, data, report):
            p = data.draw(st.sampled_from(self.patients))
            resp = self.req(p.client, "post", "/me/checkin/report" if report else "/me/checkin")
            m = re.search(r"/me/checkin/(\d+)$", resp.headers.get("Location", ""))
            if resp.status_code == 303 and m:
                p.checkin_id = int(m.group(1))
            event(f"start {'report' if report else 'check-in'}: {resp.status_code}")

        def _checkin_state(self, checkin_id):
            s = self.fresh()
            c = s.get(Checkin, checkin_id)
            out = (coerce_answers(c.answers), set(c.fired_rules or []), c.status, c.enrolment_id)
            s.rollback()
            return out

        def _expects_emergency(self, p, checkin_id, fired_before) -> set[str]:
            """The EMERGENCY rules the stored answers fire now that had not fired before the post
            (scored alone, with the pure rules engine: EMERGENCY never depends on history)."""
            from flask import current_app

            from recovery.files import templates as templates_repo
            answers, _, _, enrolment_id = self._checkin_state(checkin_id)
            s = self.fresh()
            e = s.get(Enrolment, enrolment_id)
            hours = max(0.0, (self.now - e.procedure_end).total_seconds() / 3600)
            baseline = Baseline(back_pain=e.baseline_back_pain, neuro=frozenset(e.baseline_leg_symptoms or ()))
            s.rollback()
            ruleset = templates_repo.ruleset(current_app.config["RULESET_PATH"])
            result = assess_partial(answers, hours=hours, baseline=baseline, ruleset=ruleset)
            emergency = {r.id for r in result.fired if r.scored_level == Level.EMERGENCY}
            return emergency - fired_before

        def _open_emergency_for(self, checkin_id) -> bool:
            s = self.fresh()
            found = s.scalar(sa.select(Alert.id).where(Alert.checkin_id == checkin_id, Alert.level == "EMERGENCY",
                                                       Alert.status != AlertStatus.RESOLVED).limit(1))
            s.rollback()
            return found is not None

        def _answer_one(self, p, data, draft) -> str | None:
            """Answer the screen the server asks for next; returns 'review', 'done' or None."""
            resume = self.req(p.client, "get", f"/me/checkin/{p.checkin_id}")
            where = resume.headers.get("Location", "")
            if resume.status_code == 303 and "/peg/" in where:  # the PEG (day 0/14/42): outcome only, never triage
                screen = where.rsplit("/", 1)[1]
                value = data.draw(st.one_of(st.integers(0, 10).map(str), st.sampled_from(["", "11", "x"])),
                                  label=f"answer to {screen}")
                _, fired_before, _, _ = self._checkin_state(p.checkin_id)
                resp = self.req(p.client, "post", f"/me/checkin/{p.checkin_id}/peg/{screen}", data={screen: value})
                assert resp.status_code in (303, 422), f"PEG {screen}: {resp.status_code}"
                assert self._checkin_state(p.checkin_id)[1] == fired_before, "a PEG answer fired a rule"
                event(f"PEG answer: {resp.status_code}")
                COUNTS["peg"] += 1
                return None
            if resume.status_code != 303 or "/step/" not in where:
                return "review" if where.endswith("/review") else "done" if resume.status_code == 303 else None
            screen = where.rsplit("/", 1)[1]
            posted = data.draw(screen_answers(screen), label=f"answers to {screen}")
            _, fired_before, _, _ = self._checkin_state(p.checkin_id)
            path = f"/me/checkin/{p.checkin_id}/step/{screen}" + ("/draft" if draft else "")
            htmx = draft and data.draw(st.booleans(), label="htmx")
            resp = self.req(p.client, "post", path, data=posted, headers={"HX-Request": "true"} if htmx else {})
            new = self._expects_emergency(p, p.checkin_id, fired_before)
            if new:
                event("emergency answer")
                target = resp.headers.get("HX-Redirect") if htmx else resp.headers.get("Location", "")
                assert target and target.endswith(f"/me/checkin/{p.checkin_id}/emergency"), (
                    f"emergency answer {sorted(new)} on {screen}: {resp.status_code} {target!r}")
                page = self.req(p.client, "get", target)
                assert page.status_code == 200 and b"emergency-screen" in page.data
                assert self._open_emergency_for(p.checkin_id), f"no open EMERGENCY alert for {sorted(new)}"
            return None

        @precondition(lambda self: any(p.checkin_id for p in self.patients))
        @rule(data=st.data(), screens=st.integers(1, 6), draft=st.booleans())
        def patient_answers_screens(self, data, screens, draft):
            p = data.draw(st.sampled_from([p for p in self.patients if p.checkin_id]))
            for _ in range(screens):
                if self._answer_one(p, data, draft):
                    break

        @precondition(lambda self: any(p.checkin_id for p in self.patients))
        @rule(data=st.data())
        def patient_finishes_and_sends(self, data):
            p = data.draw(st.sampled_from([p for p in self.patients if p.checkin_id]))
            state = None
            for _ in range(40):
                state = self._answer_one(p, data, draft=False)
                if state:
                    break
            if state != "review":
                return
            self.req(p.client, "get", f"/me/checkin/{p.checkin_id}/review")
            resp = self.req(p.client, "post", f"/me/checkin/{p.checkin_id}/review")
            event(f"submit: {resp.status_code}")
            if resp.status_code == 303:
                page = self.req(p.client, "get", resp.headers["Location"])
                answers, _, status, enrolment_id = self._checkin_state(p.checkin_id)
                assert page.status_code == 200, f"after submit: {page.status_code}"
                if status == "submitted" and self._expects_emergency(p, p.checkin_id, set()):
                    assert b"emergency-screen" in page.data, "an emergency check-in sent without the emergency screen"
                    assert self._open_emergency_for(p.checkin_id) or self._emergency_handled(p.checkin_id)

        def _emergency_handled(self, checkin_id) -> bool:
            """The check-in's EMERGENCY alert was resolved by a nurse before the patient sent it."""
            s = self.fresh()
            found = s.scalar(sa.select(Alert.id).where(Alert.checkin_id == checkin_id, Alert.level == "EMERGENCY",
                                                       Alert.status == AlertStatus.RESOLVED).limit(1))
            s.rollback()
            return found is not None

        # ---- what the gateway was handed ----------------------------------------------------------
        def check_handed(self):
            opted_out, ended = self.before_tick
            new = self.gateway.handed[self.handed_seen:]
            self.handed_seen = len(self.gateway.handed)
            s = self.fresh()
            for ob, to, body, when in new:
                assert ob not in self.handed_ids, f"outbox row {ob} handed over twice"
                self.handed_ids.add(ob)
                row = s.get(OutboundMessage, ob)
                self.sids.append((ob, row.provider_sid or f"SM{len(self.sids):032x}"))
                what = f"row {ob} ({row.message_id}, {row.kind}, to {row.recipient})"
                if row.recipient == "staff":
                    continue
                patient = s.get(Patient, row.patient_id)
                assert to in (patient.mobile_e164, patient.caregiver_mobile_e164), what
                confirmation = row.kind == "event_reply" and row.occurrence_key.endswith(":" + OPT_OUT_REF)
                assert to not in opted_out or confirmation, f"{what} handed over to a number that opted out"
                assert row.enrolment_id not in ended, f"{what} handed over for an ended enrolment"
                until = self.paused_until.get(row.enrolment_id)
                assert until is None or until <= when or row.kind == "event_reply", \
                    f"{what} handed over during a pause (until {until:%Y-%m-%d %H:%M})"
                if row.recipient == "patient":
                    assert patient.sms_consent, f"{what} handed over without consent"
                local = when.astimezone(ZoneInfo(patient.timezone))
                hour = local.hour + local.minute / 60
                if not row.urgent:
                    last = 23 if row.safety else 21
                    assert 8 <= hour < last, f"{what} handed over at {local:%Y-%m-%d %H:%M} local"
                for token in LINK_RE.findall(body):
                    model = next((m for m in self.patients if m.id == row.patient_id), None)
                    if model is not None and row.recipient == "patient":
                        model.links.append(token)
            s.rollback()

        # ---- invariants ---------------------------------------------------------------------------
        @invariant()
        def safety_invariants(self):
            if not hasattr(self, "clinics"):
                return
            COUNTS["steps"] += 1  # the invariants run once after set-up and after every step
            s = self.fresh()
            alerts = s.scalars(sa.select(Alert).order_by(Alert.id)).all()
            # every unresolved alert is on its clinic's worklist, and only there
            for c in self.clinics:
                listed = sorted(r.alert.id for r in worklist_rows(s, c["id"], self.now))
                want = sorted(a.id for a in alerts if a.clinic_id == c["id"] and a.status != AlertStatus.RESOLVED)
                assert listed == want, f"clinic {c['id']} worklist {listed}, unresolved {want}"
            # no rung paged twice for one alert
            pages = s.execute(sa.select(OutboundMessage.alert_id, OutboundMessage.staff_id, OutboundMessage.to_e164)
                              .where(OutboundMessage.recipient == "staff", OutboundMessage.alert_id.is_not(None))).all()
            assert len(pages) == len(set(pages)), f"a rung paged twice: {sorted(pages)}"
            # one check-in, one alert
            by_checkin: dict[int, list[Alert]] = {}
            for a in alerts:
                if a.checkin_id is not None:
                    by_checkin.setdefault(a.checkin_id, []).append(a)
            for cid, mine in by_checkin.items():
                assert sum(a.status != AlertStatus.RESOLVED for a in mine) <= 1, f"check-in {cid}: two open alerts"
                rules = [r for a in mine for r in a.rules]
                assert len(rules) == len(set(rules)), f"check-in {cid}: a rule on two alerts {rules}"
            # opt-out per number, whichever record or enrolment holds it
            for p in s.scalars(sa.select(Patient)):
                assert p.sms_opted_out == (p.mobile_e164 in self.opted_out), (
                    f"patient {p.id}: opted out {p.sms_opted_out}, its number's history says "
                    f"{p.mobile_e164 in self.opted_out}")
                if p.caregiver_mobile_e164:
                    assert p.caregiver_opted_out == (p.caregiver_mobile_e164 in self.opted_out), (
                        f"patient {p.id}'s caregiver: opted out {p.caregiver_opted_out}")
            # at most 3 routine texts a day per enrolment and recipient (sent or still to go)
            per_day: dict[tuple, int] = {}
            for r, tz in s.execute(sa.select(OutboundMessage, Patient.timezone)
                                   .join(Patient, Patient.id == OutboundMessage.patient_id)
                                   .where(OutboundMessage.kind.in_(ROUTINE_KINDS),
                                          OutboundMessage.safety.is_(False))).all():
                if r.status in (OutboxStatus.SUPPRESSED, OutboxStatus.CANCELLED) or (
                        r.status == OutboxStatus.FAILED and r.sent_at is None):
                    continue  # never went
                # The day it was planned for (first seen right after the step that planned it): a text
                # missed during a scheduler outage late in the evening goes at 08:00 next morning by
                # design (test_dispatch, test_scheduler_processes), and the machine's clock jumps are
                # such outages.
                at = self.planned_at.setdefault(r.id, r.send_after)
                key = (r.enrolment_id, r.recipient, at.astimezone(ZoneInfo(tz)).date())
                per_day[key] = per_day.get(key, 0) + 1
            over = {k: v for k, v in per_day.items() if v > 3}
            assert not over, f"more than 3 routine texts a day: {over}"
            s.rollback()

    SafetyMachine.TestCase.settings = settings(
        max_examples=examples(), stateful_step_count=int(os.environ.get("SAFETY_MACHINE_STEPS", "25")),
        deadline=None, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.filter_too_much, HealthCheck.data_too_large])
    return SafetyMachine

"""The clinic dashboard (issue 16) on a clinic whose answers the test knows in advance.

Three patients go through days 0-4 with the real scheduler tick (invitations sent by the recording
gateway, the missed-check-in scan deciding each slot) and the real check-in use-cases; a fourth has
emergency alerts acknowledged and resolved at chosen times, one escalated. The expected medians and
percentiles are computed here with `statistics` (method="inclusive"), not with the app's code.
"""
from __future__ import annotations

import csv
import io
import re
import statistics
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recovery.dispatch.status import apply_status
from recovery.services.contactability import mark_opted_out
from recovery.files import templates as templates_repo
from recovery.scheduler.tick import tick
from recovery.services import alerting
from recovery.services.checkins import start_checkin, submit_checkin
from recovery.services.enrolment import timeline_for
from recovery.store.db import db
from recovery.store.models import Alert, AlertStatus, AuditEvent, OutboundMessage, StaffRole
from tests.support.factories import enrol, login, make_clinic, make_staff, open_link, patient_link, template_for
from tests.services.test_dispatch import settings

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=NY)  # procedure end; day 0 is Tue 10 Mar (local)
DAYS = range(5)
# back pain per patient and slot; a missing slot is not answered (missed)
PAIN = {"Annabel": {0: 7, 1: 6, 2: 5, 3: 5, 4: 4},
        "Bartholomew": {0: 8, 1: 7, 4: 6},  # days 2 and 3 missed: two in a row
        "Cordelia": {1: 6, 2: 6, 3: 5, 4: 5}}  # day 0 missed, then answered late (below)
CORDELIA_LATE_PAIN = 9
CALM = {"pain_change": "same", "mobility": "as_usual_or_better", "cardioresp": frozenset({"none"}),
        "neuro": frozenset({"none"}), "bladder_bowel": "no_change"}
EMERGENCY_ACK_MIN = [4, 9, 12, 20]  # the 20-minute one goes to rung 2 at 16 minutes
EMERGENCY_RESOLVE_MIN = [30, 45, 60, 90]
EMERGENCY_OPENED = [datetime(2026, 3, 13, 16, 30, tzinfo=NY),  # Fri, inside service hours
                    *(datetime(2026, 3, 15, 9 + i, 0, tzinfo=NY) for i in range(1, 4))]  # Sun: outside
SERVICE_HOURS = (9, 17)  # weekdays, clinic time
END = datetime(2026, 3, 15, 12, 0, tzinfo=NY)  # when the nurse looks at the dashboard


def _q(values, p):
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


@pytest.fixture
def world(app, session, sms, frozen):
    frozen.move_to(T0, tick=False)
    clinic = make_clinic(session, tz="America/New_York", now=T0)
    nurse = make_staff(session, clinic, now=T0)
    admin = make_staff(session, clinic, role=StaffRole.ADMIN, now=T0)
    other = make_clinic(session, now=T0)
    other_nurse = make_staff(session, other, now=T0)
    enrolled = T0 + timedelta(hours=2)
    patients = {name: enrol(session, clinic, procedure_end=T0.astimezone(UTC), now=enrolled, first=name,
                            staff=nurse) for name in PAIN}
    dora = enrol(session, clinic, procedure_end=T0.astimezone(UTC), now=enrolled, first="Dorothea",
                 sms_consent=False)
    outsider = enrol(session, other, procedure_end=T0.astimezone(UTC), now=enrolled, first="Eustace")
    session.commit()
    template = template_for(clinic)
    ruleset = templates_repo.ruleset(app.config["RULESET_PATH"])
    some = next(iter(patients.values()))
    planned = {c.day: c for c in timeline_for(some.enrolments[-1], some, template).checkins if c.day in DAYS}

    def answer(patient, slot, pain, at):
        e = patient.enrolments[-1]
        c = start_checkin(session, enrolment=e, patient=patient, slot=slot, source="web", now=at)
        submit_checkin(session, checkin=c, enrolment=e, patient=patient, answers={"back_pain": pain, **CALM},
                       template=template, ruleset=ruleset, now=at)
        session.commit()

    events = []
    for day in DAYS:
        events.append((planned[day].invite.send_at, 0, "tick", None))
        events.append((planned[day].missed_at + timedelta(minutes=1), 0, "tick", None))
        for name, pains in PAIN.items():
            if day in pains:
                events.append((planned[day].invite.send_at + timedelta(hours=1), 1, "answer",
                               (name, planned[day].slot, pains[day])))
    late_at = planned[0].missed_at + timedelta(hours=2)  # day 1, 02:00: after the scan said "missed"
    events.append((late_at, 1, "answer", ("Cordelia", planned[0].slot, CORDELIA_LATE_PAIN)))
    for at, _, kind, arg in sorted(events, key=lambda e: (e[0], e[1])):
        frozen.move_to(at, tick=False)
        if kind == "tick":
            report = tick(session, sms, at, settings(app))
            assert not report.errors, report.errors
        else:
            name, slot, pain = arg
            answer(patients[name], slot, pain, at)
    # A nurse deals with every task the scan raised, on day 5 at 08:00.
    handled = datetime(2026, 3, 15, 8, 0, tzinfo=NY)
    for a in session.scalars(sa.select(Alert).where(Alert.status != AlertStatus.RESOLVED)).all():
        alerting.resolve(session, a, nurse, handled, "called_patient")
    session.commit()
    # Texts: one invitation delivered, one text undelivered to a landline (30006), Annabel opts out.
    sent = session.scalars(sa.select(OutboundMessage).where(OutboundMessage.kind == "checkin_invite",
                                                            OutboundMessage.patient_id == patients["Annabel"].id)
                           .order_by(OutboundMessage.id)).all()
    apply_status(session, outbox_id=sent[0].id, sid=sent[0].provider_sid, status="delivered", error_code=None,
                 now=handled)
    # (not an invitation: an undelivered invitation is no invitation, as for the missed scan)
    bob_invite = session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.kind != "checkin_invite", OutboundMessage.sent_at.is_not(None),
        OutboundMessage.patient_id == patients["Bartholomew"].id).order_by(OutboundMessage.id)).first()
    apply_status(session, outbox_id=bob_invite.id, sid=bob_invite.provider_sid, status="undelivered",
                 error_code="30006", now=handled)
    mark_opted_out(session, patients["Annabel"], "patient", handled, source="sms_keyword")
    session.commit()
    # Emergency alerts on Dorothea at known times; the ladder and the service hours exist only from
    # now on (the alerts before have no service hours recorded).
    # An EMERGENCY pages rung 1 at once (protocol: immediate page); unacknowledged after 15 min, rung 2.
    make_staff(session, clinic, on_call=1, now=handled)
    make_staff(session, clinic, on_call=2, now=handled)
    clinic.service_hours = {str(d): [f"{SERVICE_HOURS[0]:02d}:00", f"{SERVICE_HOURS[1]:02d}:00"] for d in range(5)}
    for i, (ack, res) in enumerate(zip(EMERGENCY_ACK_MIN, EMERGENCY_RESOLVE_MIN)):
        opened = EMERGENCY_OPENED[i]
        alert = alerting.raise_rules(session, patient=dora, enrolment=dora.enrolments[-1], rule_ids=["E2"],
                                     now=opened)[0]
        if ack > 15:
            assert alerting.escalate_due(session, opened + timedelta(minutes=16)) >= 1
        alerting.acknowledge(session, alert, nurse, opened + timedelta(minutes=ack))
        alerting.resolve(session, alert, nurse, opened + timedelta(minutes=res), "called_patient")
        session.commit()
    frozen.move_to(END, tick=False)
    return {"ids": {name: p.id for name, p in patients.items()}, "nurse_id": nurse.id,
            "clinic": clinic, "nurse": nurse, "admin": admin, "other_nurse": other_nurse, "patients": patients,
            "dora": dora, "outsider": outsider, "planned": planned}


def _signed_in(app, staff):
    c = app.test_client()
    assert login(c, staff).status_code == 303
    return c


def _table(html: str, caption_or_id: str) -> list[list[str]]:
    """The rows of the table with this caption text or aria-labelledby id, as cell texts."""
    for m in re.finditer(r"<table(.*?)</table>", html, re.S):
        body = m.group(0)
        if caption_or_id in body[:400]:
            rows = []
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
                cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)]
                rows.append(cells)
            return rows
    raise AssertionError(f"no table {caption_or_id!r}")


def _csv(client, table, **q):
    r = client.get("/nurse/reports/export.csv", query_string={"table": table, **q})
    assert r.status_code == 200 and r.mimetype == "text/csv", r.data[:200]
    return list(csv.reader(io.StringIO(r.get_data(as_text=True))))


def adherence_counts_and_the_missed_in_a_row_list(app, world, session=None):
    c = _signed_in(app, world["nurse"])
    page = c.get("/nurse/reports")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    rows = _table(html, "Check-in invitations by recovery day")
    header = rows[0]
    body = {r[0]: dict(zip(header[1:], r[1:])) for r in rows[1:]}
    # 3 patients x 5 days; Dorothea has no texts so no invitations
    assert body["All days"]["Invited"] == "15"
    assert (body["All days"]["Done"], body["All days"]["Late"], body["All days"]["Missed"]) == ("12", "1", "2")
    assert body["Day 0"] == {**body["Day 0"], "Invited": "3", "Done": "2", "Late": "1", "Missed": "0"}
    assert (body["Day 2"]["Missed"], body["Day 3"]["Missed"], body["Day 4"]["Done"]) == ("1", "1", "3")
    missed = _table(html, 'aria-labelledby="missed-h"')
    names = [r[0] for r in missed[1:]]
    assert len(names) == 1 and names[0].startswith("Bartholomew"), missed
    bob = world["patients"]["Bartholomew"]
    assert f'href="/nurse/patients/{bob.id}"' in html
    assert missed[1][1:3] == ["2", "0"]  # longest run 2, not missing now (day 4 done)
    assert "Eustace" not in html  # the other clinic's patient


def back_pain_median_and_band_by_recovery_day(app, world, session=None):
    by_day: dict[int, list[int]] = {}
    for name, pains in PAIN.items():
        for day, pain in pains.items():
            by_day.setdefault(day, []).append(pain)
    by_day[1].append(CORDELIA_LATE_PAIN)  # answered on day 1 (local), for the day-0 slot
    c = _signed_in(app, world["nurse"])
    html = c.get("/nurse/reports").get_data(as_text=True)
    rows = _table(html, 'aria-labelledby="pain-h"')[1:]
    got = {r[0]: r[1:] for r in rows}
    assert sorted(got) == [f"Day {d}" for d in sorted(by_day)]
    for day, values in by_day.items():
        want = [str(len(values))] + [f"{v:g}" for v in (round(_q(values, 25), 2), round(statistics.median(values), 2),
                                                          round(_q(values, 75), 2))]
        assert got[f"Day {day}"] == want, (day, values)
    assert 'role="img"' in html and "<title id=\"pain-band-title\">" in html
    assert "day 1: median 6.5" in html  # [6, 7, 6, 9]: the chart's description gives every value
    assert "No PEG answers yet" in html
    pain_csv = _csv(c, "pain")
    assert pain_csv[0] == ["recovery_day", "checkins", "p25", "median", "p75"]
    assert {r[0]: float(r[3]) for r in pain_csv[1:]} == {str(d): statistics.median(v) for d, v in by_day.items()}


def alert_handling_medians_90th_percentiles_and_escalations(app, world, session=None):
    c = _signed_in(app, world["nurse"])
    rows = _csv(c, "alerts")
    head = rows[0]
    em = dict(zip(head, next(r for r in rows if r[0] == "EMERGENCY")))
    assert (em["opened"], em["acknowledged"], em["resolved"]) == ("4", "4", "4")
    assert em["acknowledged_in_time"] == "3"  # 15 minutes: the 20-minute one was late
    assert em["escalated"] == "4"
    assert float(em["ack_median_min"]) == pytest.approx(statistics.median(EMERGENCY_ACK_MIN), abs=0.05)
    assert float(em["ack_p90_min"]) == pytest.approx(_q(EMERGENCY_ACK_MIN, 90), abs=0.05)
    assert float(em["resolve_median_min"]) == pytest.approx(statistics.median(EMERGENCY_RESOLVE_MIN), abs=0.05)
    assert float(em["resolve_p90_min"]) == pytest.approx(_q(EMERGENCY_RESOLVE_MIN, 90), abs=0.05)
    # the scan's tasks: M1 for Cordelia's day 0, M2 then M2x2 (URGENT) for Bartholomew's days 2-3
    levels = {r[0]: dict(zip(head, r)) for r in rows[1:]}
    assert int(levels["URGENT"]["opened"]) >= 2 and int(levels["WATCH"]["opened"]) >= 1
    esc = _csv(c, "escalations")
    # rung 1: the four emergencies (paged at once) and Annabel's opt-out task (M5, URGENT), open at 09:00
    assert levels["URGENT"]["escalated"] == "1"
    assert [(r[0], r[2]) for r in esc[1:]] == [("1", "5"), ("2", "1")]
    outside = sum(1 for t in EMERGENCY_OPENED if t.weekday() >= 5 or not SERVICE_HOURS[0] <= t.hour < SERVICE_HOURS[1])
    assert (em["opened_outside_service_hours"], em["opened_with_service_hours_set"]) == (str(outside), "4")
    # the scan's tasks opened before the clinic set service hours: unknown, never 0
    assert (levels["URGENT"]["opened_outside_service_hours"], levels["URGENT"]["opened_with_service_hours_set"]) == (
        "no service hours set", "0")
    html = c.get("/nurse/reports").get_data(as_text=True)
    assert "3 of 4" in html
    em_row = next(r for r in _table(html, "Alerts opened in the period, by level") if r[0] == "Emergency")
    assert em_row[-1] == str(outside)
    assert next(r for r in _table(html, "Alerts opened in the period") if r[0] == "Urgent")[-1] == "no service hours set"


def texts_delivered_failed_by_reason_and_opt_outs_per_week(app, world, session):
    c = _signed_in(app, world["nurse"])
    t = {r[0]: int(r[1]) for r in _csv(c, "texts")[1:]}
    clinic_patients = [p.id for p in world["patients"].values()]
    sent = session.scalar(sa.select(sa.func.count()).select_from(OutboundMessage).where(
        OutboundMessage.patient_id.in_(clinic_patients), OutboundMessage.sent_at.is_not(None),
        OutboundMessage.recipient.in_(("patient", "caregiver"))))
    assert sent >= 15 and t["sent"] == sent
    assert t["delivered"] == 1 and t["failed_landline"] == 1
    weeks = {r[0]: int(r[1]) for r in _csv(c, "opt_outs")[1:]}
    assert weeks["2026-03-09"] == 1 and sum(weeks.values()) == 1  # Sun 15 Mar is in the week of Mon 9 Mar


def the_patient_list_export_is_audited_and_the_aggregates_are_not(app, world, session):
    c = _signed_in(app, world["nurse"])
    before = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "report_exported"))
    _csv(c, "adherence")
    _csv(c, "pain")
    db.session.commit()  # a fresh transaction sees what the requests committed
    mid = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "report_exported"))
    assert mid == before
    rows = _csv(c, "missed")
    assert [r[1].startswith("Bartholomew") for r in rows[1:]] == [True]
    db.session.commit()  # a fresh transaction sees what the requests committed
    events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "report_exported")).all()
    assert [(e.patient_id, e.actor_id) for e in events] == [(world["ids"]["Bartholomew"], world["nurse_id"])]


def bad_dates_re_render_with_422_and_a_period_is_honoured(app, world, session=None):
    c = _signed_in(app, world["nurse"])
    for q in ({"from": "2026-13-01", "to": "2026-03-10"}, {"from": "2026-03-10", "to": "2026-03-01"},
              {"from": "", "to": "2026-03-01"}, {"from": "x" * 5000, "to": "\x00"},
              {"from": "2025-01-01", "to": "2026-03-10"}):
        r = c.get("/nurse/reports", query_string=q)
        assert r.status_code == 422, q
        assert b'class="error"' in r.data and b'aria-invalid="true"' in r.data
        assert c.get("/nurse/reports/export.csv", query_string={"table": "pain", **q}).status_code == 422
    assert c.get("/nurse/reports/export.csv", query_string={"table": "nope"}).status_code == 404
    # a period before any check-in: nothing counted
    r = c.get("/nurse/reports", query_string={"from": "2026-02-01", "to": "2026-03-01"})
    assert r.status_code == 200 and b"No check-in invitations were sent in this period." in r.data
    # only day 0 (Tue 10 Mar local): the day-0 invitations, not later ones
    rows = _csv(c, "adherence", **{"from": "2026-03-10", "to": "2026-03-10"})
    assert rows[-1][:2] == ["all", "3"]


def only_this_clinics_staff_see_it(app, world, session=None):
    admin = _signed_in(app, world["admin"])
    assert admin.get("/nurse/reports").status_code == 200
    other = _signed_in(app, world["other_nurse"])
    page = other.get("/nurse/reports").get_data(as_text=True)
    assert "Bartholomew" not in page and "Annabel" not in page
    assert "Bartholomew" not in other.get("/nurse/reports/export.csv?table=missed").get_data(as_text=True)
    for url in ("/nurse/reports", "/nurse/reports/export.csv?table=missed"):
        r = app.test_client().get(url)
        assert r.status_code == 302 and "/login" in r.headers["Location"]
        patient = app.test_client()
        token = patient_link(db.session, world["patients"]["Annabel"], now=END)
        db.session.commit()
        assert open_link(patient, token).status_code == 303
        r = patient.get(url)
        assert r.status_code == 302 and "/login" in r.headers["Location"] and b"Bartholomew" not in r.data


def the_page_takes_at_most_15_statements(app, world, session=None):
    c = _signed_in(app, world["nurse"])
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)
    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert c.get("/nurse/reports").status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) <= 15, "\n".join(statements)


def the_page_passes_the_csp_without_inline_styles_or_scripts(app, world, session=None):
    c = _signed_in(app, world["nurse"])
    r = c.get("/nurse/reports")
    html = r.get_data(as_text=True)
    assert "style=" not in html and "<style" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "'unsafe-inline'" not in r.headers.get("Content-Security-Policy", "")


# One seeded clinic per test is the slow part (~9 s): each test below checks several things on it.
def test_the_dashboard_figures_for_a_known_clinic(app, world, session):
    adherence_counts_and_the_missed_in_a_row_list(app, world)
    back_pain_median_and_band_by_recovery_day(app, world)
    alert_handling_medians_90th_percentiles_and_escalations(app, world)
    texts_delivered_failed_by_reason_and_opt_outs_per_week(app, world, session)


def test_exports_budget_csp_bad_dates_and_access(app, world, session):
    the_patient_list_export_is_audited_and_the_aggregates_are_not(app, world, session)
    the_page_takes_at_most_15_statements(app, world)
    the_page_passes_the_csp_without_inline_styles_or_scripts(app, world)
    bad_dates_re_render_with_422_and_a_period_is_honoured(app, world)
    only_this_clinics_staff_see_it(app, world)

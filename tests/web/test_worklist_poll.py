"""The worklist poll (issue 17): when nothing changed it answers 204 from one statement (the staff
session and the version together), renders no template and writes nothing; every kind of change
that alters what the list shows changes the version, so the next poll brings the new list. The
page itself still renders in full without JavaScript."""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from flask import template_rendered

from recovery.services import alerting
from recovery.services.enrolment import correct_procedure_times
from recovery.services.patient_details import PatientDetails, change_details
from recovery.services.worklist import order_key, worklist_rows
from recovery.store.models import Alert, AlertStatus, WebSession
from tests.support.factories import enrol, login, make_clinic, make_staff, template_for
from tests.support.statements import count_statements

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)  # Mon 11:00 in New York; changes stay in this minute
LATER = NOW + timedelta(seconds=20)
POLL = {"HX-Request": "true", "X-Background-Refresh": "1"}


@pytest.fixture
def ward(session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    other = make_staff(session, clinic, on_call=1, now=NOW)
    ann, bob = (enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, first=name,
                      sms_consent=False) for name in ("Ann", "Bob"))
    session.commit()
    return clinic, nurse, other, ann, bob


def _raise(session, patient, rules, at):
    alert = alerting.raise_rules(session, patient=patient, enrolment=patient.enrolments[0], rule_ids=rules, now=at)[0]
    session.commit()
    return alert


def _poll_url(client) -> str:
    html = client.get("/nurse/").data.decode()
    return re.search(r'<div class="poller"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")


class _Rendered:
    def __init__(self, app):
        self.app, self.names = app, []

    def __enter__(self):
        template_rendered.connect(self._seen, self.app)
        return self.names

    def __exit__(self, *exc):
        template_rendered.disconnect(self._seen, self.app)

    def _seen(self, sender, template, context, **extra):
        self.names.append(template.name)





def test_an_unchanged_poll_is_one_statement_no_template_no_write(app, client, session, ward):
    clinic, nurse, other, ann, bob = ward
    _raise(session, ann, ["U20"], NOW - timedelta(minutes=3))
    login(client, nurse)
    url = _poll_url(client)
    client.get(url, headers=POLL)  # warm
    with count_statements() as seen, _Rendered(app) as rendered:
        r = client.get(url, headers=POLL)
    assert r.status_code == 204 and r.data == b"" and rendered == []
    work = [q for q in seen if not q.strip().upper().startswith(("BEGIN", "ROLLBACK", "COMMIT"))]
    assert len(work) == 1 and "web_session" in work[0] and "alert" in work[0], "\n".join(seen)
    assert sum(len(k) + len(v) + 4 for k, v in r.headers.items()) < 1024


def test_the_page_and_a_poll_without_its_version_still_render_in_full(client, session, ward):
    """JavaScript off: a plain GET is the whole page; a version on a plain GET changes nothing."""
    clinic, nurse, other, ann, bob = ward
    _raise(session, ann, ["U20"], NOW)
    login(client, nurse)
    url = _poll_url(client)
    for path, headers in (("/nurse/", {}), (url, {}), ("/nurse/", POLL)):
        r = client.get(path, headers=headers)
        assert r.status_code == 200 and b"Patient asked for a nurse call" in r.data
        assert (b"<html" in r.data) == (headers == {})


def test_a_signed_out_or_idle_session_gets_no_204(app, client, session, ward, frozen):
    clinic, nurse, other, ann, bob = ward
    _raise(session, ann, ["U20"], NOW)
    login(client, nurse)
    url = _poll_url(client)
    assert client.get(url, headers=POLL).status_code == 204
    ws = session.scalar(sa.select(WebSession).where(WebSession.staff_id == nurse.id, WebSession.revoked_at.is_(None)))
    ws.revoked_at = NOW
    session.commit()
    r = client.get(url, headers=POLL)
    assert r.status_code == 200 and r.headers.get("HX-Redirect") == "/login" and r.data == b""
    # idle past the time-out: the version is still right, but the session is not
    login(client, nurse)
    url = _poll_url(client)
    frozen.move_to(NOW + timedelta(minutes=app.config["STAFF_IDLE_MINUTES"], seconds=1))
    assert client.get(url, headers=POLL).status_code != 204


def _new_alert(session, w):
    _raise(session, w[4], ["W8"], LATER)


def _acknowledge(session, w):
    alerting.acknowledge(session, _alert_of(session, w[3]), w[2], LATER)


def _resolve(session, w):
    alerting.resolve(session, _alert_of(session, w[3]), w[2], LATER, disposition="called_patient")


def _no_answer(session, w):
    alerting.try_again(session, _alert_of(session, w[3]), w[2], LATER, follow_up_at=LATER + timedelta(hours=1))


def _worse_news(session, w):
    _raise(session, w[3], ["U1"], LATER)  # a new rule on the open alert of the same family


def _escalation(session, w):
    assert alerting.escalate_due(session, LATER) == 1


def _phone(session, w):
    p = w[3]
    change_details(session, patient=p, enrolment=p.enrolments[0],
                   new=replace(PatientDetails.of(p), mobile_e164="+12025550199"),
                   template=template_for(w[0]), staff=w[1], now=LATER)


def _time_zone(session, w):
    p = w[3]
    change_details(session, patient=p, enrolment=p.enrolments[0],
                   new=replace(PatientDetails.of(p), timezone="Asia/Tokyo"),
                   template=template_for(w[0]), staff=w[1], now=LATER)


def _procedure_time(session, w):
    p = w[3]
    e = p.enrolments[0]
    correct_procedure_times(session, enrolment=e, patient=p, template=template_for(w[0]),
                            procedure_end=e.procedure_end - timedelta(days=2), discharge_at=None, staff=w[1],
                            reason="typo", now=LATER)


def _alert_of(session, patient) -> Alert:
    return session.scalar(sa.select(Alert).where(Alert.patient_id == patient.id,
                                                 Alert.status != AlertStatus.RESOLVED))


CHANGES = {"a new alert": (_new_alert, b"Bob"), "an acknowledge": (_acknowledge, b"Acknowledged by"),
           "a resolve": (_resolve, b"0 open alerts"), "no answer, call again": (_no_answer, b"call again at"),
           "a worse answer on the open alert": (_worse_news, b"U1"),
           "an escalation page": (_escalation, b"On-call paged (rung 1)"),
           "the patient's number": (_phone, b"+1 202-555-0199"), "the patient's time zone": (_time_zone, b"Day 2"),
           "the procedure time": (_procedure_time, b"Day 3")}


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_the_list_shows_changes_the_version(client, session, ward, frozen, change):
    clinic, nurse, other, ann, bob = ward
    # URGENT, raised 5 h ago: past its 4 h response time, so the escalation tick pages rung 1
    _raise(session, ann, ["U20"], NOW - timedelta(hours=5))
    login(client, nurse)
    url = _poll_url(client)
    assert client.get(url, headers=POLL).status_code == 204
    do, shown = CHANGES[change]
    frozen.move_to(LATER)
    do(session, ward)
    session.commit()
    r = client.get(url, headers=POLL)
    assert r.status_code == 200 and shown in r.data, r.data.decode()[:3000]
    assert client.get(_poll_url(client), headers=POLL).status_code == 204  # and quiet again


def test_the_sql_order_is_the_domain_order(session, ward):
    """services/worklist orders in SQL; the patient page orders with order_key: the same rule."""
    clinic, nurse, other, ann, bob = ward
    patients = [ann, bob] + [enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW,
                                   first=f"P{i}", sms_consent=False) for i in range(10)]
    rules = [["E1"], ["U20"], ["U1"], ["W8"], ["U5"], ["W2"]]
    for i, p in enumerate(patients):
        a = _raise(session, p, rules[i % len(rules)], NOW - timedelta(minutes=37 * i, seconds=13 * i))
        if i % 3 == 1:
            alerting.acknowledge(session, a, nurse, NOW - timedelta(minutes=1))
        if i % 4 == 2:
            alerting.try_again(session, a, nurse, NOW - timedelta(minutes=90),
                               follow_up_at=NOW - timedelta(minutes=i) if i % 8 == 2 else NOW + timedelta(minutes=i))
    session.commit()
    for limit in (None, 5):
        rows = worklist_rows(session, clinic.id, NOW, limit=limit)
        expected = sorted((r.alert for r in worklist_rows(session, clinic.id, NOW)), key=lambda a: order_key(a, NOW))
        assert [r.alert.id for r in rows] == [a.id for a in expected][:limit]
        assert rows.total == len(patients)

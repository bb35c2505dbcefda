"""Issue 11 item 4: caching of responses that carry patient data, the .ics file read by a second,
independent iCalendar reader (vobject), and GETs that never write."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import vobject

from recovery.services import alerting
from recovery.services.enrolment import timeline_for
from recovery.store.enrolments import current_enrolment
from recovery.store.models import Checkin
from tests.support.factories import enrol, login, make_clinic, make_staff, open_link, patient_link, template_for
from tests.web.test_hooks import table_counts

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)  # Mon 9 Mar 2026, 11:00 in New York (EDT since 8 Mar)
NY = ZoneInfo("America/New_York")


@pytest.fixture
def patient(session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    # Ended on Saturday (EST) at 10:30:47.5: the seconds must not reach the calendar.
    p = enrol(session, clinic, procedure_end=datetime(2026, 3, 7, 15, 30, 47, 500000, tzinfo=timezone.utc),
              now=NOW, first="Maria")
    session.commit()
    return p


def signed_in(client, session, p, purpose="today", slot=None):
    token = patient_link(session, p, purpose=purpose, now=NOW, slot=slot)
    session.commit()
    assert open_link(client, token).status_code == 303
    return client


# ---- Cache-Control ------------------------------------------------------------------------------

def test_every_response_but_static_files_is_no_store(app, client, session, patient):
    nurse = make_staff(session, patient.clinic, now=NOW)
    alerting.raise_rules(session, patient=patient, enrolment=current_enrolment(patient), rule_ids=["U20"], now=NOW)
    session.commit()
    signed_in(client, session, patient)
    for path in ("/me/calendar.ics", "/me", "/me/checkin", "/signed-out", "/nurse/patients", "/login",
                 "/no-such-page", "/l/unknown-token"):
        r = client.get(path)
        assert r.headers.get("Cache-Control") == "no-store", (path, r.status_code, r.headers.get("Cache-Control"))
    staff = app.test_client()
    login(staff, nurse)
    for path in (f"/nurse/patients/{patient.id}", "/nurse/", "/nurse/patients?q=Mar"):
        r = staff.get(path)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store", path
    r = staff.post("/logout")
    assert r.status_code == 303 and r.headers["Cache-Control"] == "no-store"
    css = re.search(r'href="(/static/app\.css\?v=\w+)"', client.get("/login").get_data(as_text=True)).group(1)
    r = client.get(css)
    assert "no-store" not in r.headers["Cache-Control"] and "max-age=31536000" in r.headers["Cache-Control"]


# ---- the .ics -----------------------------------------------------------------------------------

def test_the_calendar_has_a_vtimezone_whole_minutes_and_reads_the_same_in_vobject(app, client, session,
                                                                                 patient):
    signed_in(client, session, patient)
    r = client.get("/me/calendar.ics")
    assert r.status_code == 200 and r.mimetype == "text/calendar"
    text = r.get_data(as_text=True)
    # RFC 5545 3.2.19: every TZID used has its VTIMEZONE; no time carries seconds
    assert "BEGIN:VTIMEZONE" in text and "TZID:America/New_York" in text
    times = re.findall(r"^DT(?:START|END);TZID=America/New_York:(\d{8}T\d{6})\r?$", text, re.M)
    assert times and all(t.endswith("00") for t in times), times

    cal = vobject.readOne(text)  # an independent reader
    assert cal.vtimezone.tzid.value == "America/New_York"
    tz_from_file = cal.vtimezone.gettzinfo()  # built from the VTIMEZONE itself, not from zoneinfo
    timeline = timeline_for(current_enrolment(patient), patient, template_for(patient.clinic))
    expected = {}
    for m in timeline.milestones:
        if m.id == "TL16":
            expected["Follow-up visit"] = m.starts_at
        elif m.restriction:
            expected[f"{m.short}: ends"] = m.ends_at
    events = {e.summary.value: e for e in cal.vevent_list}
    assert set(events) == set(expected)
    timed = 0
    for summary, event in events.items():
        start = event.dtstart.value
        want = expected[summary].astimezone(NY)
        if isinstance(start, datetime):
            timed += 1
            assert start.tzinfo is not None
            assert start.second == 0 and start.microsecond == 0
            assert start == want.replace(second=0, microsecond=0), summary
            # the file's own time zone agrees with zoneinfo on both sides of the DST change
            naive = start.replace(tzinfo=None)
            assert tz_from_file.utcoffset(naive) == NY.utcoffset(naive), summary
        else:
            assert start == want.date(), summary
    assert timed >= 2


# ---- GETs do not write --------------------------------------------------------------------------

def test_a_get_of_the_checkin_page_under_a_checkin_link_session_writes_nothing(app, client, session, patient):
    """A cross-site GET (an <img src>, a prefetch) of /me/checkin used to create a check-in row."""
    signed_in(client, session, patient, purpose="checkin", slot="day2")
    session.execute(sa.delete(Checkin))  # the link's own button started one; see what a GET does alone
    session.commit()
    before = table_counts(session)
    for _ in range(3):
        r = client.get("/me/checkin")
        assert r.status_code == 200 and b"Start my check-in" in r.data
    after = table_counts(session)
    assert after == before
    # the button on that page (a plain form, no JavaScript) starts it
    forms = re.findall(r'<form method="post" action="([^"]+)".*?</form>', r.get_data(as_text=True), re.S)
    form_action = next(a for a, body in zip(forms, re.findall(r'<form method="post" action="[^"]+".*?</form>',
                                                              r.get_data(as_text=True), re.S))
                       if "Start my check-in" in body)  # not the language switch at the top
    r = client.post(form_action)
    assert r.status_code == 303 and re.search(r"/me/checkin/\d+$", r.headers["Location"])
    assert session.scalar(sa.select(sa.func.count()).select_from(Checkin)) == 1


def test_pressing_start_my_checkin_on_the_link_page_starts_it_in_that_post(app, client, session, patient):
    token = patient_link(session, patient, purpose="checkin", now=NOW, slot="day2")
    session.commit()
    before = table_counts(session)
    assert client.get(f"/l/{token}").status_code == 200
    assert table_counts(session) == before  # the link page itself writes nothing either
    r = open_link(client, token)
    assert r.status_code == 303 and r.headers["Location"].endswith("/me/checkin")
    c = session.scalar(sa.select(Checkin))
    assert (c.slot, c.status) == ("day2", "in_progress")
    r = client.get("/me/checkin")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/me/checkin/{c.id}")

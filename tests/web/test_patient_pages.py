"""What a patient sees (issue 10, item 6): Today offers only a check-in whose window is open and
otherwise the symptom report with the time of the next one; a used link of a signed-in patient goes
to Today; finished items move to a short "done" list; times read naturally and never make a
restriction end look earlier; one short question per check-in screen."""
from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recovery.store.models import Checkin
from tests.support.factories import enrol, make_clinic, make_staff, open_link, patient_link

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)  # Mon 9 Mar 2026, 11:00 in New York (EDT)
NY = ZoneInfo("America/New_York")


def days_ago_at(days: int, at: time) -> datetime:
    """The procedure ended at `at` New York time, `days` local days before NOW."""
    day = NOW.astimezone(NY).date() - timedelta(days=days)
    return datetime.combine(day, at, NY).astimezone(timezone.utc)


@pytest.fixture
def clinic(session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    make_staff(session, clinic, on_call=1, now=NOW)
    session.commit()
    return clinic


def signed_in(client, session, patient, purpose="today", slot=None):
    token = patient_link(session, patient, purpose=purpose, now=NOW, slot=slot)
    session.commit()
    assert open_link(client, token).status_code == 303
    return token


def text_of(response) -> str:
    """The page's words without tags or runs of white space."""
    body = response.data.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()


# ---- a check-in past its window -----------------------------------------------------------------

@pytest.fixture
def fred(session, clinic):
    """Day 40: the day-35 check-in was invited five days ago and never done; the next is day 42."""
    patient = enrol(session, clinic, procedure_end=days_ago_at(40, time(10, 48)), now=NOW, first="Fred")
    session.commit()
    return patient


def test_a_checkin_past_its_window_is_not_offered(client, session, fred):
    signed_in(client, session, fred)
    start = client.get("/me/checkin")
    assert start.status_code == 200
    words = text_of(start)
    assert "day 35" not in words and "Start my check-in" not in words
    # the symptom report is offered instead, and the page says when the next check-in is
    assert 'action="/me/checkin/report"' in start.data.decode()
    assert "Your next check-in: Wednesday 11 Mar, 9 am" in words
    # pressing the (stale) start button of an old page starts nothing
    r = client.post("/me/checkin")
    assert r.status_code == 303 and r.headers["Location"] == "/me/checkin"
    assert session.scalar(sa.select(sa.func.count()).select_from(Checkin)) == 0
    # Today decides the same way
    today = text_of(client.get("/me"))
    assert "Start my check-in" not in today and "Check in now" not in today
    assert "Your next check-in: Wednesday 11 Mar, 9 am" in today and "Report a symptom" in today


def test_a_checkin_link_opens_its_checkin_while_the_link_works_then_only_in_its_window(client, session, fred,
                                                                                    frozen):
    """The day-35 text's link (24 h) opens that check-in as the text promised; the session it
    opened, back on day 40, is offered what Today offers everyone: no day-35 check-in."""
    frozen.move_to(NOW - timedelta(days=5))  # day 35, 11:00: the check-in has been open since 09:00
    token = patient_link(session, fred, purpose="checkin", now=NOW - timedelta(days=5), slot="day35",
                         ttl=timedelta(hours=24))
    session.commit()
    assert open_link(client, token).status_code == 303  # the link's button started the check-in
    assert "Your check-in is not finished yet" in text_of(client.get("/me"))
    frozen.move_to(NOW)  # day 40, the same browser: the window closed on day 37
    assert "day 35" not in text_of(client.get("/me")) and "not finished" not in text_of(client.get("/me"))
    r = client.get("/me/checkin")
    assert r.status_code == 200 and "No check-in is due now" in text_of(r)
    assert client.post("/me/checkin").headers["Location"] == "/me/checkin"
    assert session.scalar(sa.select(sa.func.count()).select_from(Checkin)) == 1  # only the one the link began


def test_no_checkin_due_offers_the_symptom_report_and_says_when_the_next_is(client, session, clinic, frozen):
    # Day 1 at 08:00: the day-0 check-in has closed, the day-1 one goes out at 09:00
    patient = enrol(session, clinic, procedure_end=days_ago_at(1, time(10, 48)), now=NOW - timedelta(hours=22))
    session.commit()
    frozen.move_to(NOW - timedelta(hours=3))
    signed_in(client, session, patient)
    words = text_of(client.get("/me/checkin"))
    assert "Your next check-in: Monday 9 Mar, 9 am" in words
    assert "Report a symptom" in words
    frozen.move_to(NOW)  # 11:00: the day-1 check-in is open
    words = text_of(client.get("/me/checkin"))
    assert "Your day 1 check-in is ready" in words and "Start my check-in" in words


def test_today_thanks_for_a_sent_checkin_and_says_when_the_next_is(client, session, clinic):
    patient = enrol(session, clinic, procedure_end=days_ago_at(1, time(10, 48)), now=NOW)
    session.add(Checkin(enrolment_id=patient.enrolments[0].id, patient_id=patient.id, slot="day1", source="web",
                        status="submitted", answers={}, started_at=NOW, updated_at=NOW, submitted_at=NOW,
                        fired_rules=[]))
    session.commit()
    signed_in(client, session, patient)
    words = text_of(client.get("/me"))
    assert "Thank you, your check-in is sent" in words and "Your next check-in: Tuesday 10 Mar, 9 am" in words
    assert "Start my check-in" not in words and "Report a symptom" in words


# ---- a used link, opened again -------------------------------------------------------------------

def test_a_used_link_opened_by_the_signed_in_patient_goes_to_today(client, session, clinic):
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW)
    token = signed_in(client, session, patient)
    for r in (client.get(f"/l/{token}"), client.post(f"/l/{token}")):
        assert r.status_code == 303 and r.headers["Location"] == "/me", r.status_code
    assert client.get("/me").status_code == 200
    # a check-in link used in this browser: to Today as well
    used = signed_in(client, session, patient, purpose="checkin", slot="day1")
    r = client.get(f"/l/{used}")
    assert r.status_code == 303 and r.headers["Location"] == "/me"
    # another browser, not signed in, still gets the explanation
    other = client.application.test_client()
    assert other.get(f"/l/{token}").status_code == 410
    # and someone else's used link does not open this patient's page
    stranger = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, first="Sam")
    theirs = patient_link(session, stranger, now=NOW)
    session.commit()
    assert open_link(other, theirs).status_code == 303
    assert client.get(f"/l/{theirs}").status_code == 410


# ---- Today: done items, natural times --------------------------------------------------------------

def test_today_on_day_40_moves_finished_items_to_a_done_list(client, session, fred):
    signed_in(client, session, fred)
    page = client.get("/me")
    body = page.data.decode()
    assert "Do not shower for the first 2 days" not in body
    now_section = body.split('id="now-h"', 1)[1].split("</section>", 1)[0]
    assert "No driving" not in now_section and "No baths, hot tubs or swimming" in now_section
    done = body.split('id="done-h"', 1)[1].split("</section>", 1)[0]
    assert "No driving and no buses or trains" in done and "No shower for the first 2 days" in done


def test_today_times_read_naturally(client, session, fred):
    signed_in(client, session, fred)
    words = text_of(client.get("/me"))
    assert "No baths, hot tubs or swimming until Wednesday 11 Mar, about 11 am" in words
    assert "10:48" not in words


# ---- check-in screens: one short question each ----------------------------------------------------

def test_the_pain_questions_come_one_per_screen_in_short_words(client, session, clinic):
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW)
    signed_in(client, session, patient, purpose="checkin", slot="day1")
    r = client.get("/me/checkin")
    cid = int(re.search(r"/me/checkin/(\d+)", r.headers["Location"])[1])
    screens = {}
    answers = {"cardioresp": ["none"], "neuro": ["none"], "bladder_bowel": "no_change", "back_pain": "4"}
    r = client.get(f"/me/checkin/{cid}")
    while True:
        screen = r.headers["Location"].rsplit("/", 1)[1]
        page = client.get(r.headers["Location"])
        screens[screen] = page
        if screen not in answers:
            break
        r = client.post(f"/me/checkin/{cid}/step/{screen}", data={screen: answers[screen]})
        assert r.status_code == 303, (screen, r.status_code)
    assert list(screens) == ["cardioresp", "neuro", "bladder_bowel", "back_pain", "pain_change"]
    for name, page in screens.items():
        assert page.data.decode().count('id="q-') == 1, name
    pain_change = text_of(screens["pain_change"])
    assert "Is your back pain better or worse than before the procedure?" in pain_change  # first check-in
    assert "(or with before the procedure" not in pain_change


def test_the_error_summary_is_short(client, session, clinic):
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW)
    signed_in(client, session, patient, purpose="checkin", slot="day1")
    r = client.get(client.get(client.get("/me/checkin").headers["Location"]).headers["Location"])
    step = r.request.path
    r = client.post(step, data={})
    assert r.status_code == 422
    summary = r.data.decode().split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    assert summary.count("<li") == 1
    assert "Do you have any of these" not in summary  # the question is right below it, not repeated


# ---- the words for a time (recovery/web/filters.py) ----------------------------------------------

def _m(y, mo, d, h, mi, approx=False, **kw):
    from recovery.domain.today import Moment
    return Moment(at=datetime(y, mo, d, h, mi, tzinfo=NY), approx=approx, **kw)


@pytest.mark.parametrize(("moment", "words"), [
    (_m(2026, 12, 3, 11, 0, approx=True), "Thursday 3 Dec, about 11 am"),
    (_m(2026, 3, 9, 9, 0), "Monday 9 Mar, 9 am"),
    (_m(2026, 3, 9, 13, 30), "Monday 9 Mar, 1:30 pm"),
    (_m(2026, 3, 9, 12, 0), "Monday 9 Mar, noon"),
    (_m(2026, 3, 9, 12, 30, approx=True), "Monday 9 Mar, about 12:30 pm"),
    (_m(2026, 3, 9, 0, 30), "Monday 9 Mar, 12:30 am"),
    (_m(2026, 3, 10, 0, 0, approx=True), "Monday 9 Mar, about midnight"),  # the end of Monday
    (_m(2027, 1, 4, 10, 0, with_year=True), "Monday 4 Jan 2027, 10 am"),
    (_m(2026, 4, 18, 10, 48, date_only=True), "Saturday 18 Apr"),
])
def test_when_reads_naturally(moment, words):
    from recovery.web.filters import when
    assert when(moment) == words


@pytest.mark.parametrize(("minutes", "words"), [
    (2 * 1440 + 4 * 60 + 1, "2 days 5 hours left"),  # rounded up: never less time than there is
    (1440, "1 day left"), (1440 + 23 * 60 + 30, "2 days left"),
    (3 * 60 + 5, "3 hours 5 minutes left"), (60, "1 hour left"), (25, "25 minutes left"), (1, "1 minute left"),
    (0, "ended"),
])
def test_time_left(minutes, words):
    from recovery.web.filters import time_left
    assert time_left(minutes) == words

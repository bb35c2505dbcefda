"""The patient check-in on the web (protocol §2, MR2): plain form posts (JavaScript off), the
emergency screen before submit, 422 re-renders that keep every answer, temperatures, branching,
the neutral outcome texts, and what a check-in link may reach."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from recovery.domain.questionnaire.form import items_on
from recovery.domain.questionnaire.items import SCREENS
from recovery.store.models import Alert, AuditEvent, Checkin, OutboundMessage, OutboxStatus
from tests.support.factories import enrol, make_clinic, make_staff, open_link, patient_link

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)  # Mon 9 Mar 2026, 11:00 in New York (EDT)

# One valid answer set per section (day 1, not weekly, no opioid): everything unremarkable. Each
# screen (one question) posts its own item from its section's answers.
SECTION_OF = {screen.id: screen.section for screen in SCREENS}
CALM = {
    "emergency": {"cardioresp": ["none"], "neuro": ["none"], "bladder_bowel": "no_change"},
    "pain": {"back_pain": "4", "pain_change": "same", "new_pain_sites": ["none"]},
    "temperature": {"temp_status": "feel_normal_not_measured", "chills": "no"},
    "wound": {"wound": ["normal"], "site_pain": "2"},
    "feel": {"dizzy": "no", "confused_or_very_sleepy": "no", "headache_upright": "no", "nausea": "none",
             "cannot_keep_fluids": "no", "mobility": "as_usual_or_better"},
    "medicines": {"meds_taken": ["paracetamol_acetaminophen"], "meds_more_than_told": "no", "meds_control": "yes"},
    "other": {"fall": "no", "call_request": "no", "free_text": ""},
}


@pytest.fixture
def world(session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, on_call=1, now=NOW)
    # Procedure ended 30 h ago: recovery day 1, whose 09:00 check-in invitation has gone out.
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, baseline_back_pain=5)
    session.commit()
    return clinic, nurse, patient


def checkin_client(client, session, patient, slot="day1"):
    token = patient_link(session, patient, purpose="checkin", now=NOW, slot=slot)
    session.commit()
    r = open_link(client, token)
    assert r.status_code == 303 and r.headers["Location"].endswith("/me/checkin")
    return client


def today_client(client, session, patient):
    token = patient_link(session, patient, purpose="today", now=NOW)
    session.commit()
    assert open_link(client, token).status_code == 303
    return client


def follow(client, response, hops=5):
    """Follow 303s (as a browser would) and return the final response."""
    for _ in range(hops):
        if response.status_code not in (302, 303):
            return response
        response = client.get(response.headers["Location"])
    return response


def location(response) -> str:
    return response.headers["Location"]


def start_slot(client) -> tuple[int, str]:
    r = client.get("/me/checkin")
    assert r.status_code == 303
    r2 = client.get(location(r))
    assert r2.status_code == 303
    m = re.search(r"/me/checkin/(\d+)/step/(\w+)$", location(r2))
    assert m, location(r2)
    return int(m.group(1)), m.group(2)


def post_step(client, cid, group, data):
    return client.post(f"/me/checkin/{cid}/step/{group}", data=data)


def screen_data(screen: str, answers=CALM) -> dict:
    """What the screen's form posts: its own question(s) from its section's answers."""
    return {k: v for k, v in answers[SECTION_OF[screen]].items() if k in items_on(screen)}


def walk(client, cid, answers=CALM, stop_before=None):
    """Answer every screen in the order the server asks for them; returns the last response.
    `stop_before` is a screen id or a section id (stops at its first screen)."""
    r = client.get(f"/me/checkin/{cid}")
    while True:
        target = location(r)
        if "/step/" not in target:  # the review or the emergency screen
            return r
        group = target.rsplit("/", 1)[1]
        if stop_before in (group, SECTION_OF[group]):
            return r
        r = post_step(client, cid, group, screen_data(group, answers))
        assert r.status_code == 303, (group, r.data[:2000])


def test_checkin_link_js_off_walks_every_screen_and_submits(client, session, world):
    clinic, _, patient = world
    checkin_client(client, session, patient)
    cid, first = start_slot(client)
    assert first == "cardioresp"  # the emergency questions come first (MR2)
    page = client.get(f"/me/checkin/{cid}/step/cardioresp")
    assert page.status_code == 200 and b"<html" in page.data
    assert b"Step 1 of 23" in page.data  # 22 questions on day 1 + the review
    assert b"Chest pain or tightness" in page.data and b'type="checkbox"' in page.data
    assert b"First, some important questions" in page.data and b"Any NEW or WORSE numbness" not in page.data
    assert b'name="csrf_token"' in page.data
    r = walk(client, cid)
    assert location(r).endswith(f"/me/checkin/{cid}/review")
    review = client.get(location(r))
    assert review.status_code == 200
    assert b"Step 23 of 23" in review.data
    assert b"4 out of 10" in review.data and b"Paracetamol" in review.data
    assert b"None of these" in review.data and b"Send my check-in" in review.data
    # each answer has its own "Change", to its own screen; the patient reads the screen's words
    assert f'href="/me/checkin/{cid}/step/back_pain"'.encode() in review.data
    assert b"How bad is your back pain right now?" in review.data
    c = session.get(Checkin, cid)
    assert c.status == "in_progress" and c.slot == "day1" and c.source == "web"
    done = client.post(f"/me/checkin/{cid}/review")
    assert done.status_code == 303 and location(done).endswith(f"/me/checkin/{cid}/done")
    page = client.get(location(done))
    assert page.status_code == 200
    assert b"Thank you, your check-in is saved. If anything changes, check in again." in page.data
    assert b"fine" not in page.data.lower()
    session.expire_all()
    c = session.get(Checkin, cid)
    assert c.status == "submitted" and c.level == "OK" and c.fired_rules == []
    assert c.ruleset_version.startswith("va-recovery ")
    assert c.answers["back_pain"] == 4 and c.answers["meds_taken"] == ["paracetamol_acetaminophen"]
    replies = session.scalars(sa.select(OutboundMessage.message_id).where(OutboundMessage.checkin_id == cid)).all()
    assert replies == ["S22"]
    # the slot's pending invitation/reminder texts are no longer needed
    pending = session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.slot == "day1", OutboundMessage.status == OutboxStatus.PLANNED)).all()
    assert pending == []
    # a second submit does nothing more
    again = client.post(f"/me/checkin/{cid}/review")
    assert again.status_code == 303 and location(again).endswith("/done")
    assert post_step(client, cid, "back_pain", {"back_pain": "9"}).status_code == 303
    assert session.scalar(sa.select(sa.func.count()).select_from(Checkin)) == 1


def test_emergency_answer_alerts_and_shows_the_emergency_screen_before_submit(client, session, world):
    clinic, nurse, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    r = post_step(client, cid, "cardioresp", {"cardioresp": ["chest_pain"]})
    assert r.status_code == 303 and location(r) == f"/me/checkin/{cid}/emergency"
    # the nurse alert and the S19 text exist already; the form was never submitted
    session.expire_all()
    alert = session.scalar(sa.select(Alert).where(Alert.patient_id == patient.id))
    assert alert.level == "EMERGENCY" and alert.rules == ["E1"] and alert.status.value == "open"
    assert session.get(Checkin, cid).status == "in_progress"
    texts = session.scalars(sa.select(OutboundMessage).where(OutboundMessage.checkin_id == cid)).all()
    assert [t.message_id for t in texts] == ["S19"]
    page = session.scalar(sa.select(OutboundMessage).where(OutboundMessage.recipient == "staff"))
    assert page.staff_id == nurse.id and page.kind == "staff_page"
    assert "emergency_answer" in session.scalars(sa.select(AuditEvent.action)).all()
    screen = client.get(location(r))
    assert screen.status_code == 200
    assert b"Call 911 now. Do not drive yourself. Your care team has been told." in screen.data
    assert b'href="tel:911"' in screen.data and b"emergency-screen" in screen.data
    # the patient may carry on: the next screen is the numbness question
    cont = re.search(rb'href="(/me/checkin/\d+)">Continue my check-in', screen.data)
    assert cont
    r = client.get(cont.group(1).decode())
    assert location(r).endswith("/step/neuro")
    # posting the next screen does not show the emergency screen again (nothing new)
    r = post_step(client, cid, "neuro", {"neuro": ["none"]})
    assert location(r).endswith("/step/bladder_bowel")


def test_emergency_answer_on_a_later_screen_also_counts_at_once(client, session, world):
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    walk(client, cid, stop_before="confused_or_very_sleepy")
    r = post_step(client, cid, "confused_or_very_sleepy", {"confused_or_very_sleepy": "yes"})
    assert location(r) == f"/me/checkin/{cid}/emergency"
    assert session.scalar(sa.select(Alert.rules).where(Alert.patient_id == patient.id)) == ["E11"]


def test_draft_answer_with_htmx_is_scored_before_next_is_pressed(client, session, world):
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    hx = {"HX-Request": "true"}
    # the first question answered, harmlessly: stored, nothing to show
    r = client.post(f"/me/checkin/{cid}/step/cardioresp/draft", data={"cardioresp": ["none"]}, headers=hx)
    assert r.status_code == 204
    session.expire_all()
    assert session.get(Checkin, cid).answers == {"cardioresp": ["none"]}
    # then "fainted" is ticked: the alert fires and htmx is told to show the emergency screen
    r = client.post(f"/me/checkin/{cid}/step/cardioresp/draft", data={"cardioresp": ["fainted"]}, headers=hx)
    assert r.status_code == 200 and r.headers["HX-Redirect"] == f"/me/checkin/{cid}/emergency"
    assert session.scalar(sa.select(Alert.rules).where(Alert.patient_id == patient.id)) == ["E4"]
    # without htmx the same URL just goes back to the screen
    r = client.post(f"/me/checkin/{cid}/step/cardioresp/draft", data={"cardioresp": ["none"]})
    assert r.status_code == 303 and location(r).endswith("/step/cardioresp")
    # the page wires the draft post to every change
    page = client.get(f"/me/checkin/{cid}/step/cardioresp")
    assert f'hx-post="/me/checkin/{cid}/step/cardioresp/draft"'.encode() in page.data
    assert b'hx-trigger="change"' in page.data


def test_bad_or_missing_input_rerenders_422_with_every_answer_kept(client, session, world):
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    walk(client, cid, stop_before="pain")
    r = post_step(client, cid, "back_pain", {"back_pain": "eleven"})
    assert r.status_code == 422
    assert b"Please choose a number from 0 to 10." in r.data
    assert b"Please check your answer" in r.data and b'href="#q-back_pain"' in r.data
    assert b'aria-describedby="back_pain-hint back_pain-error"' in r.data
    session.expire_all()
    assert "back_pain" not in session.get(Checkin, cid).answers  # nothing stored from a bad screen
    r = post_step(client, cid, "free_text", {"free_text": "x" * 501})
    assert r.status_code == 422 and b"Please keep this to 500 characters or fewer (you have 501)." in r.data
    assert b"x" * 501 + b"</textarea>" in r.data  # what was given is kept
    r = post_step(client, cid, "new_pain_sites", {"new_pain_sites": ["none", "belly"]})
    assert r.status_code == 422 and "You ticked “None of these” and another answer".encode() in r.data
    assert b'value="belly" checked' in r.data and b'value="none" checked' in r.data
    r = post_step(client, cid, "neuro", {})
    assert "Please tick at least one answer. If none apply, tick “None of these”.".encode() in r.data


def test_temperature_drafts_wait_for_both_number_and_unit(client, session, world):
    """With JavaScript each answer is posted as it changes: a number without its unit (or the
    reverse) must neither fail nor be stored half; the pair is kept once both are there."""
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    walk(client, cid, stop_before="temperature")
    hx = {"HX-Request": "true"}
    assert location(post_step(client, cid, "temp_status", {"temp_status": "measured"})).endswith("/step/temp_value")
    url = f"/me/checkin/{cid}/step/temp_value/draft"
    for data in ({}, {"temp_value": "38.4"}, {"temp_unit": "C"}):
        assert client.post(url, data=data, headers=hx).status_code in (200, 204)
        session.expire_all()
        stored = session.get(Checkin, cid).answers
        assert ("temp_value" in stored) == ("temp_unit" in stored) == False  # noqa: E712
    r = client.post(url, data={"temp_value": "38.4", "temp_unit": "C"}, headers=hx)
    assert r.status_code in (200, 204)
    session.expire_all()
    stored = session.get(Checkin, cid).answers
    assert stored["temp_unit"] == "C" and float(stored["temp_value"]) == 38.4


def test_temperature_in_fahrenheit_converts_asks_sepsis_questions_and_rechecks_implausible(client, session, world):
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    walk(client, cid, stop_before="temperature")
    post_step(client, cid, "temp_status", {"temp_status": "measured"})
    r = post_step(client, cid, "temp_value", {"temp_value": "120", "temp_unit": "F"})
    assert r.status_code == 422
    assert b"120 \xc2\xb0F is an unusual temperature" in r.data
    assert b'name="temp_confirmed" value="120 \xc2\xb0F"' in r.data
    assert b'name="temp_value" autocomplete="off"' in r.data and b'value="F" checked' in r.data
    # entered again (a real reading after all): accepted, and the nurse sees U23 at submit
    r = post_step(client, cid, "temp_value", {"temp_value": "100.4", "temp_unit": "F", "temp_confirmed": "120 °F"})
    assert r.status_code == 303 and location(r).endswith("/step/chills")
    r = post_step(client, cid, "chills", {"chills": "no"})
    assert r.status_code == 303 and location(r).endswith("/step/sepsis_screen")  # 100.4 °F = 38.0 °C: a fever
    page = client.get(location(r))
    assert b"Step 10 of 25" in page.data  # the reading and the sepsis screen joined the check-in
    post_step(client, cid, "sepsis_screen", {"sepsis_screen": ["none"]})
    r = walk(client, cid)
    review = client.get(location(r))
    assert "100.4 °F (38.0 °C)".encode() in review.data
    client.post(f"/me/checkin/{cid}/review")
    session.expire_all()
    c = session.get(Checkin, cid)
    assert c.level == "URGENT" and "U1" in c.fired_rules
    done = client.get(f"/me/checkin/{cid}/done")
    assert b"A nurse will call you today. If you get worse, call (202) 555-0100 or 911." in done.data


def test_leg_pain_is_asked_only_with_down_leg_and_dropped_when_unticked(client, session, world):
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    walk(client, cid, stop_before="new_pain_sites")
    r = post_step(client, cid, "new_pain_sites", {"new_pain_sites": ["down_leg"]})
    assert location(r).endswith("/step/leg_pain")
    page = client.get(location(r))
    assert b"How bad is the pain down your leg?" in page.data and b"rib or side" not in page.data
    post_step(client, cid, "leg_pain", {"leg_pain": "8"})
    session.expire_all()
    assert session.get(Checkin, cid).answers["leg_pain"] == 8
    post_step(client, cid, "new_pain_sites", {"new_pain_sites": ["none"]})  # changed their mind: no leg pain
    session.expire_all()
    assert "leg_pain" not in session.get(Checkin, cid).answers
    assert client.get(f"/me/checkin/{cid}/step/leg_pain").status_code == 303


def test_report_a_symptom_from_today_any_time(client, session, world):
    _, _, patient = world
    today_client(client, session, patient)
    today = client.get("/me")
    assert today.status_code == 200
    assert b"Start my check-in" in today.data and b"Report a symptom" in today.data
    assert b'action="/me/checkin/report"' in today.data
    r = client.post("/me/checkin/report")
    assert r.status_code == 303
    r = follow(client, r)
    assert r.status_code == 200 and b"First, some important questions" in r.data
    assert r.request.path.endswith("/step/cardioresp")
    c = session.scalar(sa.select(Checkin))
    assert c.slot is None and c.status == "in_progress"
    # starting again resumes the same report rather than opening a second one
    client.post("/me/checkin/report")
    assert session.scalar(sa.select(sa.func.count()).select_from(Checkin)) == 1
    r = walk(client, c.id, answers={**CALM, "other": {**CALM["other"], "call_request": "yes"}})
    client.post(location(r))
    session.expire_all()
    assert session.get(Checkin, c.id).fired_rules == ["U20"]


def test_today_session_start_page_offers_the_due_checkin(client, session, world):
    _, _, patient = world
    today_client(client, session, patient)
    page = client.get("/me/checkin")
    assert page.status_code == 200 and b"Your day 1 check-in is ready" in page.data
    r = client.post("/me/checkin")
    assert r.status_code == 303
    c = session.scalar(sa.select(Checkin))
    assert c.slot == "day1"


def test_checkin_link_session_reaches_only_its_own_checkin(client, session, world, frozen):
    clinic, _, patient = world
    # an earlier check-in of the same patient (yesterday's symptom report)
    other = Checkin(enrolment_id=patient.enrolments[0].id, patient_id=patient.id, slot=None, source="web",
                    status="submitted", answers={"back_pain": 3}, started_at=NOW - timedelta(hours=20),
                    updated_at=NOW - timedelta(hours=20), submitted_at=NOW - timedelta(hours=20),
                    level="URGENT", fired_rules=["U20"])
    session.add(other)
    session.commit()
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    for path in (f"/me/checkin/{other.id}", f"/me/checkin/{other.id}/done", f"/me/checkin/{other.id}/review",
                 f"/me/checkin/{other.id}/step/back_pain"):
        assert client.get(path).status_code == 404, path
    assert client.get("/me").status_code == 200  # Today is fine
    # once sent, the link's check-in cannot be reopened: the start page says so
    walk(client, cid)
    client.post(f"/me/checkin/{cid}/review")
    page = client.get("/me/checkin")
    assert page.status_code == 200 and b"You have already sent this check-in" in page.data


def test_submit_with_a_screen_unanswered_is_refused(client, session, world):
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    walk(client, cid, stop_before="other")
    assert location(client.get(f"/me/checkin/{cid}/review")).endswith("/step/fall")
    r = client.post(f"/me/checkin/{cid}/review")
    assert r.status_code == 422
    assert "Please answer this question first: Have you fallen or hurt your back".encode() in r.data
    session.expire_all()
    assert session.get(Checkin, cid).status == "in_progress"


def test_another_patients_checkin_is_not_found(client, session, world):
    clinic, _, patient = world
    stranger = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, first="Sam")
    session.commit()
    checkin_client(client, session, stranger)
    mine, _ = start_slot(client)
    theirs = client.application.test_client()
    checkin_client(theirs, session, patient)
    assert theirs.get(f"/me/checkin/{mine}/step/cardioresp").status_code == 404
    assert theirs.post(f"/me/checkin/{mine}/step/cardioresp", data={"cardioresp": ["none"]}).status_code == 404
    assert theirs.post(f"/me/checkin/{mine}/step/emergency", data=CALM["emergency"]).status_code == 404


def test_signed_out_visitor_is_sent_to_the_link_page(client, session, world):
    assert client.get("/me/checkin").status_code == 302
    assert client.post("/me/checkin/report").status_code == 302


def test_checkin_link_without_a_slot_opens_a_symptom_report(client, session, world):
    """S22 ("check in again") and S23 ("re-measure") links carry no slot: they open a report."""
    _, _, patient = world
    # an unfinished report from an earlier Today visit is picked up again, not hidden
    earlier = Checkin(enrolment_id=patient.enrolments[0].id, patient_id=patient.id, slot=None, source="web",
                      status="in_progress", answers={"cardioresp": ["none"]}, started_at=NOW - timedelta(hours=3),
                      updated_at=NOW - timedelta(hours=3), fired_rules=[])
    session.add(earlier)
    session.commit()
    checkin_client(client, session, patient, slot=None)
    r = client.get("/me/checkin")
    assert r.status_code == 303 and location(r) == f"/me/checkin/{earlier.id}"
    r = follow(client, r)
    assert r.status_code == 200 and b"Any NEW or WORSE numbness" in r.data  # the first unanswered question
    r = client.get(f"/me/checkin/{earlier.id}/step/cardioresp")
    assert b'value="none" checked' in r.data
    # the scheduled check-in is not this link's to start
    assert location(client.post("/me/checkin")) == "/me/checkin"
    assert session.scalar(sa.select(sa.func.count()).select_from(Checkin)) == 1


# Every screen whose answer alone can be an emergency (MR2), the answers before it, and that answer.
EMERGENCY_ON = {
    "cardioresp": ({}, {"cardioresp": ["chest_pain"]}, "E1"),
    "neuro": ({}, {"neuro": ["cannot_move_a_leg"]}, "E7"),
    "bladder_bowel": ({}, {"bladder_bowel": "cannot_pass_urine"}, "E6"),
    "leg_pain": ({"emergency": {**CALM["emergency"], "neuro": ["numb_or_tingling_legs_feet"]},
                  "pain": {**CALM["pain"], "new_pain_sites": ["down_leg"]}}, {"leg_pain": "9"}, "E9"),
    "sepsis_screen": ({"temperature": {"temp_status": "measured", "temp_value": "38.6", "temp_unit": "C",
                                       "chills": "no"}}, {"sepsis_screen": ["confused_or_slurred_speech"]}, "E10"),
    "wound": ({}, {"wound": ["bleeding_soaks_dressing"]}, "E12"),
    "dizzy": ({"emergency": {**CALM["emergency"], "cardioresp": ["heart_racing_or_irregular"]}},
              {"dizzy": "very_dizzy_or_faint"}, "E5"),
    "confused_or_very_sleepy": ({}, {"confused_or_very_sleepy": "yes"}, "E11"),
}


@pytest.mark.parametrize("javascript", [False, True], ids=["no-javascript", "htmx-draft"])
@pytest.mark.parametrize("screen", list(EMERGENCY_ON))
def test_an_emergency_answer_on_any_screen_shows_the_emergency_screen_at_once(client, session, world, screen,
                                                                            javascript):
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    before, answer, rule = EMERGENCY_ON[screen]
    r = walk(client, cid, answers={**CALM, **before}, stop_before=screen)
    assert location(r).endswith(f"/step/{screen}"), location(r)
    if javascript:  # the page posts the changed answer ahead; Next is never pressed
        r = client.post(f"/me/checkin/{cid}/step/{screen}/draft", data=answer, headers={"HX-Request": "true"})
        assert r.status_code == 200 and r.headers["HX-Redirect"] == f"/me/checkin/{cid}/emergency"
    else:
        r = post_step(client, cid, screen, answer)
        assert r.status_code == 303 and location(r) == f"/me/checkin/{cid}/emergency"
    session.expire_all()
    alert = session.scalar(sa.select(Alert).where(Alert.patient_id == patient.id, Alert.level == "EMERGENCY"))
    assert alert is not None and rule in alert.rules
    assert session.get(Checkin, cid).status == "in_progress"
    assert b"Call 911 now" in client.get(f"/me/checkin/{cid}/emergency").data


def test_a_whole_section_posted_from_an_old_page_keeps_its_answers_and_acts_on_an_emergency(client, session, world):
    """A page rendered before the screens held one question each, still open on a phone, is posted
    after the change: its valid answers are kept, an emergency among them acts at once (MR2) even
    though another answer on it is missing, and the missing one is asked on its own screen."""
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    r = post_step(client, cid, "emergency", {"cardioresp": ["chest_pain"], "bladder_bowel": "no_change"})
    assert r.status_code == 303 and location(r) == f"/me/checkin/{cid}/emergency"
    session.expire_all()
    assert session.get(Checkin, cid).answers == {"cardioresp": ["chest_pain"], "bladder_bowel": "no_change"}
    r = post_step(client, cid, "pain", {"back_pain": "4", "pain_change": "same"})
    assert r.status_code == 422 and b'id="q-new_pain_sites"' in r.data and b'id="q-back_pain"' not in r.data
    assert r.request.path == f"/me/checkin/{cid}/step/pain"
    session.expire_all()
    stored = session.get(Checkin, cid).answers
    assert stored["back_pain"] == 4 and stored["pain_change"] == "same"
    r = post_step(client, cid, "wound", {"wound": ["normal"], "site_pain": "3"})  # "wound": screen and section
    session.expire_all()
    assert session.get(Checkin, cid).answers["site_pain"] == 3
    # an old URL of a section goes to its first screen
    assert location(client.get(f"/me/checkin/{cid}/step/temperature")).endswith("/step/temp_status")


def test_the_optional_free_text_question_is_asked_in_its_turn(client, session, world):
    _, _, patient = world
    checkin_client(client, session, patient)
    cid, _ = start_slot(client)
    r = walk(client, cid, stop_before="free_text")
    assert location(r).endswith("/step/free_text")  # not skipped for being optional
    r = post_step(client, cid, "free_text", {"free_text": ""})
    assert location(r).endswith("/review")
    # coming back later, only what still needs an answer is asked
    assert location(client.get(f"/me/checkin/{cid}")).endswith("/review")

"""Check-in use-cases below the web layer: one S19 per check-in, screens and weekly items, stale
answers dropped, the due check-in, the neutral outcome texts, and `flask rules check` through app.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import current_app

from recovery.domain.questionnaire.answers import coerce_answers
from recovery.domain.triage import Level, patient_message
from recovery.files import templates as templates_repo
from recovery.services import checkins
from recovery.services.enrolment import timeline_for
from recovery.store.models import Alert, Checkin, OutboundMessage
from tests.support.factories import enrol, make_clinic, make_staff, template_for

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
CASES = Path(__file__).resolve().parents[1] / "cases"


@pytest.fixture
def setup(session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    make_staff(session, clinic, on_call=1, now=NOW)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, baseline_back_pain=5)
    session.commit()
    ruleset = templates_repo.ruleset(current_app.config["RULESET_PATH"])
    return clinic, patient, template_for(clinic), ruleset


def setting(session, checkin, clinic, ruleset):
    return checkins.setting_for(session, checkin, template_for=lambda e, c: template_for(clinic), ruleset=ruleset)


def test_s19_goes_once_per_checkin_even_when_the_emergency_comes_before_submit(session, setup):
    clinic, patient, template, ruleset = setup
    enrolment = patient.enrolments[0]
    c = checkins.start_checkin(session, enrolment=enrolment, patient=patient, slot="day1", source="web", now=NOW)
    checkins.record_answers(session, checkin=c, enrolment=enrolment, patient=patient,
                            answers=coerce_answers({"cardioresp": ["chest_pain"]}), template=template,
                            ruleset=ruleset, now=NOW)
    # a second emergency rule later in the same check-in, then the submit five minutes on
    checkins.record_answers(session, checkin=c, enrolment=enrolment, patient=patient,
                            answers=coerce_answers({"confused_or_very_sleepy": True}), template=template,
                            ruleset=ruleset, now=NOW + timedelta(minutes=2))
    assessment = checkins.submit_checkin(session, checkin=c, enrolment=enrolment, patient=patient,
                                         answers={}, template=template, ruleset=ruleset,
                                         now=NOW + timedelta(minutes=5))
    session.commit()
    assert assessment.level == Level.EMERGENCY and {"E1", "E11"} <= set(assessment.rule_ids)
    texts = session.scalars(sa.select(OutboundMessage.message_id).where(
        OutboundMessage.checkin_id == c.id, OutboundMessage.recipient == "patient")).all()
    assert texts == ["S19"]
    # one check-in, one alert: both emergency rules (and the rest of the submit) on it, paged once
    (alert,) = session.scalars(sa.select(Alert).where(Alert.patient_id == patient.id)).all()
    assert (alert.family, alert.checkin_id, alert.level) == ("checkin", c.id, "EMERGENCY")
    assert alert.rules[:2] == ["E1", "E11"] and set(alert.rules) == set(assessment.rule_ids)
    assert session.scalar(sa.select(sa.func.count()).select_from(OutboundMessage).where(
        OutboundMessage.alert_id == alert.id, OutboundMessage.recipient == "staff")) == 1


def test_answer_step_saves_a_screen_scores_it_and_drops_stale_answers(session, setup):
    clinic, patient, template, ruleset = setup
    c = checkins.start_checkin(session, enrolment=patient.enrolments[0], patient=patient, slot=None,
                               source="web", now=NOW)
    s = setting(session, c, clinic, ruleset)
    assert s.day == 1 and not s.weekly
    r = checkins.answer_step(session, s, "emergency", {"cardioresp": ["none"], "neuro": ["not_sure"],
                                                      "bladder_bowel": ["no_change"]}, now=NOW)
    assert r.ok and r.new_emergency == ()  # not_sure on neuro is U5 (URGENT), acted on at submit
    r = checkins.answer_step(session, s, "pain", {"back_pain": ["3"], "pain_change": ["same"],
                                                 "new_pain_sites": ["down_leg", "ribs_or_side"]}, now=NOW)
    # one question per screen; a whole section (a page from before that) is still read at once
    assert [g.id for g in r.flow.steps][:8] == ["cardioresp", "neuro", "bladder_bowel", "back_pain", "pain_change",
                                                "new_pain_sites", "leg_pain", "rib_pain"]
    assert r.flow.next_incomplete.id == "leg_pain"
    r = checkins.answer_step(session, s, "pain_detail", {"leg_pain": ["8"], "rib_pain": ["2"]}, now=NOW)
    assert r.new_emergency == ("E9",)  # numbness (MR4: not sure) with severe leg pain
    r = checkins.answer_step(session, s, "pain", {"back_pain": ["3"], "pain_change": ["same"],
                                                 "new_pain_sites": ["ribs_or_side"]}, now=NOW)
    assert "leg_pain" not in r.flow.answers and r.flow.answers["rib_pain"] == 2
    # a screen with an error stores nothing
    before = dict(c.answers)
    r = checkins.answer_step(session, s, "pain", {"back_pain": ["12"], "pain_change": ["same"],
                                                 "new_pain_sites": ["none"]}, now=NOW)
    assert not r.ok and set(r.errors) == {"back_pain"} and c.answers == before
    # a draft stores what is valid and keeps the rest
    r = checkins.answer_step(session, s, "pain", {"back_pain": ["12"], "pain_change": ["worse"],
                                                 "new_pain_sites": ["none"]}, now=NOW, draft=True)
    assert c.answers["pain_change"] == "worse" and c.answers["back_pain"] == 3 and "rib_pain" not in c.answers


def test_finish_refuses_an_incomplete_checkin_and_then_submits(session, setup):
    clinic, patient, template, ruleset = setup
    c = checkins.start_checkin(session, enrolment=patient.enrolments[0], patient=patient, slot=None,
                               source="web", now=NOW)
    s = setting(session, c, clinic, ruleset)
    with pytest.raises(checkins.Incomplete) as e:
        checkins.finish(session, s, now=NOW)
    assert e.value.group.id == "cardioresp" and c.status == "in_progress"
    screens = {
        "emergency": {"cardioresp": ["none"], "neuro": ["none"], "bladder_bowel": ["no_change"]},
        "pain": {"back_pain": ["2"], "pain_change": ["better"], "new_pain_sites": ["none"]},
        "temperature": {"temp_status": ["measured"], "temp_value": ["37.6"], "temp_unit": ["C"], "chills": ["no"]},
        "wound": {"wound": ["normal"], "site_pain": ["1"]},
        "feel": {"dizzy": ["no"], "confused_or_very_sleepy": ["no"], "headache_upright": ["no"], "nausea": ["none"],
                 "cannot_keep_fluids": ["no"], "mobility": ["as_usual_or_better"]},
        "medicines": {"meds_taken": ["none"], "meds_more_than_told": ["no"], "meds_control": ["yes"]},
        "other": {"fall": ["no"], "call_request": ["no"], "free_text": [""]},
    }
    for group, form in screens.items():
        assert checkins.answer_step(session, s, group, form, now=NOW).ok, group
    result = checkins.finish(session, s, now=NOW)
    session.commit()
    assert result.level == Level.WATCH and result.rule_ids == ("W3",)
    # W3 plans the S23 re-measure text (4 h later) besides the neutral S22
    texts = session.scalars(sa.select(OutboundMessage).where(OutboundMessage.checkin_id == c.id)
                            .order_by(OutboundMessage.send_after)).all()
    assert [(t.message_id, t.send_after - NOW) for t in texts] == [("S22", timedelta(0)), ("S23", timedelta(hours=4))]
    with pytest.raises(checkins.CheckinClosed):
        checkins.finish(session, s, now=NOW)
    with pytest.raises(checkins.CheckinClosed):
        checkins.answer_step(session, s, "pain", screens["pain"], now=NOW)


def test_weekly_checkin_asks_temperature_and_the_lifting_question(session, frozen):
    at = NOW + timedelta(days=20)
    frozen.move_to(at)
    clinic = make_clinic(session, now=at)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, brace=True)
    session.commit()
    ruleset = templates_repo.ruleset(current_app.config["RULESET_PATH"])
    timeline = timeline_for(patient.enrolments[0], patient, template_for(clinic))
    assert checkins.is_weekly(timeline, "day21") and not checkins.is_weekly(timeline, "day10")
    assert not checkins.is_weekly(timeline, None)
    weekly = checkins.start_checkin(session, enrolment=patient.enrolments[0], patient=patient, slot="day21",
                                    source="web", now=at)
    s = setting(session, weekly, clinic, ruleset)
    items = {i for g in checkins.flow_for(s).steps for i in g.item_ids()}
    assert s.weekly and s.day == 21
    assert {"temp_status", "restrictions_ok", "brace_ok"} <= items and "wound" not in items
    adhoc = checkins.start_checkin(session, enrolment=patient.enrolments[0], patient=patient, slot=None,
                                   source="web", now=at)
    items = {i for g in checkins.flow_for(setting(session, adhoc, clinic, ruleset)).steps for i in g.item_ids()}
    assert "restrictions_ok" not in items and "temp_status" not in items


def test_due_checkin_is_the_one_whose_window_is_open_until_done(session, setup, frozen):
    clinic, patient, template, ruleset = setup
    enrolment = patient.enrolments[0]
    timeline = timeline_for(enrolment, patient, template)
    assert checkins.due_checkin(session, enrolment, timeline, NOW).slot == "day1"
    early = NOW - timedelta(hours=3)  # 08:00 local: day 0's check-in has closed, day 1's is not sent yet
    assert checkins.due_checkin(session, enrolment, timeline, early) is None
    assert checkins.next_checkin(timeline, early).slot == "day1"
    session.add(Checkin(enrolment_id=enrolment.id, patient_id=patient.id, slot="day1", source="web",
                        status="submitted", answers={}, started_at=NOW, updated_at=NOW, submitted_at=NOW,
                        fired_rules=[]))
    session.commit()
    assert checkins.due_checkin(session, enrolment, timeline, NOW) is None
    found = checkins.offer_for(session, enrolment, timeline, NOW)
    assert found.open.slot == "day1" and found.done and found.due is None and found.next.slot == "day2"
    last = timeline.checkins[-1]
    assert checkins.due_checkin(session, enrolment, timeline, last.invite.send_at + timedelta(hours=47)).slot == last.slot
    assert checkins.due_checkin(session, enrolment, timeline, last.invite.send_at + timedelta(hours=48)) is None
    assert checkins.next_checkin(timeline, last.invite.send_at) is None


def test_checkin_windows(session, setup):
    """A check-in is open from its invitation until it counts as missed (8 h daily, 48 h weekly),
    at least to the end of the day it was sent, never past the next invitation."""
    clinic, patient, template, ruleset = setup
    timeline = timeline_for(patient.enrolments[0], patient, template)
    tz = timeline.tz
    windows = {c.slot: checkins.checkin_window(timeline, i) for i, c in enumerate(timeline.checkins)}
    local = {slot: (a.astimezone(tz).strftime("%d %H:%M"), b.astimezone(tz).strftime("%d %H:%M"))
             for slot, (a, b) in windows.items()}
    assert local["day0"] == ("08 11:00", "09 00:00")  # T0+6 h, to the end of day 0 (missed at 19:00)
    assert local["day1"] == ("09 09:00", "10 00:00")  # missed at 17:00, open all evening
    assert local["day7"] == ("15 09:00", "16 00:00")
    assert local["day10"] == ("18 09:00", "20 09:00")  # missed after 48 h
    assert local["day35"] == ("12 09:00", "14 09:00")  # day 35 (12 Apr) closes on day 37, not day 42
    for (a, b), nxt in zip(windows.values(), list(windows.values())[1:]):
        assert a < b <= nxt[0]
    day35 = next(c for c in timeline.checkins if c.slot == "day35")
    day40 = day35.invite.send_at + timedelta(days=5)
    assert checkins.open_checkin(timeline, day40) is None
    assert checkins.open_checkin(timeline, day35.invite.send_at + timedelta(hours=47)) == day35


@pytest.mark.parametrize("level", list(Level))
def test_outcome_texts_are_the_neutral_ones_of_protocol_section_3(session, setup, level):
    clinic, *_ = setup
    c = Checkin(level=level.name)
    text = checkins.outcome_message(c, clinic)
    assert text == patient_message(level, emerg="911", phone="(202) 555-0100")
    assert "fine" not in text.lower() and "normal" not in text.lower()


def test_flask_rules_check_runs_through_app_py(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rules", "check", str(CASES / "vignettes.yaml")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "22 passed, 0 failed" and len(lines) == 24
    result = runner.invoke(args=["rules", "check", str(CASES / "probes.yaml")])
    assert result.exit_code == 0 and result.output.strip().endswith("110 passed, 0 failed")
    result = runner.invoke(args=["rules", "check", "no-such-file.yaml"])
    assert result.exit_code == 2

"""The messaging rules carriers enforce (CTIA / A2P 10DLC), through the real app: the opt-in
confirmation is the first text, every text fits one SMS with the real link, a name outside GSM-7
still goes (and the nurse sees what it cost), links are short and old long ones still work."""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recovery.scheduler.tick import tick
from recovery.domain import sms_encoding, texts
from recovery.domain.plan.errors import TemplateError
from recovery.domain.plan.overrides import Overrides
from recovery.domain.timeline import build_timeline
from recovery.files import templates as templates_repo
from recovery.services.tokens import digest
from recovery.store.models import AccessLink, Clinic, Enrolment, OutboundMessage, OutboxStatus
from tests.support.factories import enrol, login, make_clinic, make_staff
from tests.support.settings import app_config
from tests.services.test_dispatch import NOW, NY, patient_at, plant, row, rows, settings

SCHEDULES = Path(__file__).resolve().parents[2] / "schedules"
OPT_IN = ("Demo Clinic: Hi {first}, you are signed up for recovery texts. Msg frequency varies. Msg&data rates "
          "may apply. Reply STOP to stop, HELP for help.")


def demo_enrol(session, **kw):
    clinic = make_clinic(session, template_file="demo-clinic", now=NOW)
    kw.setdefault("procedure_end", NOW - timedelta(hours=2))
    kw.setdefault("discharge_at", NOW)
    return enrol(session, clinic, now=NOW, **kw)


# ---------------------------------------------------------------------------------------------
# The first text
# ---------------------------------------------------------------------------------------------

def test_the_first_text_is_the_opt_in_confirmation(app, session, sms):
    """Discharged now: S00 (at enrolment) and S01 (at discharge) are both due. S00 goes first, to the
    patient and to the caregiver, and the welcome follows in the same tick."""
    p = demo_enrol(session, first="Bartholomew", caregiver_name="Luis Diaz", caregiver_mobile_e164="+12025559876",
                   caregiver_consent=True)
    session.commit()
    (optin, carer_optin) = rows(session, message_id="S00")
    assert (optin.recipient, carer_optin.recipient) == ("patient", "caregiver")
    assert optin.urgent and optin.send_after == NOW and optin.occurrence_key == "S00:optin"
    tick(session, sms, NOW, settings(app, send_concurrency=4))
    mine = [s.body for s in sms.sent if s.to == p.mobile_e164]
    carers = [s.body for s in sms.sent if s.to == "+12025559876"]
    assert mine[0] == OPT_IN.format(first="Bartholomew") and mine[1].startswith("Hi Bartholomew, welcome home.")
    assert carers[0] == OPT_IN.format(first="Luis") and carers[1].startswith("Hi Bartholomew, welcome home.")
    assert all(sms_encoding.count(s.body).count == 1 for s in sms.sent)


def test_texts_wait_while_the_opt_in_confirmation_has_not_gone(app, session, sms):
    """S00 held back (a provider error being retried): a routine text waits for it, 30 s at a time;
    the safety text S01 ("have an adult stay with you tonight") waits one tick at most."""
    p = demo_enrol(session, first="Ada")
    session.commit()
    routine = plant(session, p, due=NOW, message_id="S03", text="{first}, an ice pack can help with soreness.")
    (optin,) = rows(session, message_id="S00")
    optin.send_after = NOW + timedelta(minutes=2)  # as record_error leaves a retried row
    session.commit()
    tick_length = timedelta(seconds=settings(app).tick_seconds)
    report = tick(session, sms, NOW, settings(app))
    assert sms.sent == () and report.send.outcomes.get("after_opt_in") == 2
    (welcome,) = rows(session, message_id="S01")
    assert welcome.safety
    assert (welcome.status, welcome.status_reason, welcome.send_after) == (
        OutboxStatus.PLANNED, "after_opt_in", NOW + tick_length)
    assert (row(session, routine.id).status_reason, row(session, routine.id).send_after) == (
        "after_opt_in", NOW + timedelta(seconds=30))
    assert welcome.attempts == 0 and row(session, routine.id).attempts == 0  # waiting is not a failed attempt
    tick(session, sms, NOW + tick_length, settings(app))  # the next tick: S01 goes, S00 or not
    assert [s.body[:21] for s in sms.sent] == ["Hi Ada, welcome home."]
    tick(session, sms, NOW + timedelta(seconds=30), settings(app))
    assert row(session, routine.id).send_after == NOW + timedelta(seconds=60) and len(sms.sent) == 1
    tick(session, sms, NOW + timedelta(minutes=2), settings(app))
    bodies = [s.body for s in sms.sent if s.to == p.mobile_e164]
    assert bodies[1:] == [OPT_IN.format(first="Ada"), "Ada, an ice pack can help with soreness."]


def test_a_safety_text_never_waits_for_the_opt_in_into_its_quiet_hours(app, session, sms):
    """S01 due at 22:59:58 in New York while S00 is being retried: waiting one tick would take it
    past 23:00, when it could only go at 08:00, so it goes now."""
    late = datetime(2026, 3, 10, 22, 59, 58, tzinfo=NY)
    p = demo_enrol(session, first="Ada", procedure_end=late - timedelta(hours=2), discharge_at=late)
    session.commit()
    (optin,) = rows(session, message_id="S00")
    optin.send_after = late + timedelta(minutes=2)
    session.commit()
    tick(session, sms, late, settings(app))
    (welcome,) = rows(session, message_id="S01")
    assert welcome.status == OutboxStatus.SENT and [s.to for s in sms.sent] == [p.mobile_e164]


def test_the_daily_limit_neither_counts_nor_moves_the_opt_in_confirmation(app, session):
    """S00 is planned beside the timeline: the texts of the plan are exactly the timeline's, with at
    most 3 routine texts a day, and S00 goes at once."""
    p = demo_enrol(session, procedure_end=NOW - timedelta(hours=2), discharge_at=NOW)
    session.commit()
    enrolment = session.scalars(sa.select(Enrolment).where(Enrolment.patient_id == p.id)).one()
    template = templates_repo.find_template(app.config["SCHEDULES_DIR"], enrolment.template_id,
                                            enrolment.template_version, "demo-clinic")
    assert template.daily_limit is not None and template.daily_limit.rank("S00") == len(template.daily_limit.order)
    tl = build_timeline(template, procedure_end=enrolment.procedure_end, discharge=enrolment.discharge_at,
                        tz=ZoneInfo(p.timezone), overrides=Overrides(), now=NOW)
    planned = [(r.occurrence_key, r.send_after) for r in rows(session) if r.recipient == "patient"]
    assert ("S00:optin", NOW) in planned
    assert sorted(k for k in planned if k[0] != "S00:optin") == sorted((m.key, m.send_at) for m in tl.messages)
    routine = {}
    for r in rows(session):
        if r.recipient == "patient" and r.kind in ("reminder", "checkin_reminder") and not r.safety:
            day = r.send_after.astimezone(ZoneInfo(p.timezone)).date()
            routine[day] = routine.get(day, 0) + 1
    assert routine and max(routine.values()) <= 3


def test_no_confirmation_without_consent_and_none_for_a_caregiver_without_consent(app, session):
    demo_enrol(session, sms_consent=False, caregiver_mobile_e164="+12025559876", caregiver_consent=False)
    p = demo_enrol(session, caregiver_mobile_e164="+12025559875", caregiver_consent=False)
    session.commit()
    assert [(r.patient_id, r.recipient) for r in rows(session, message_id="S00")] == [(p.id, "patient")]


def test_invitations_say_a_number_may_be_replied(app, session, sms):
    p = demo_enrol(session, first="Rosa", procedure_end=NOW - timedelta(days=5), discharge_at=None)
    session.execute(sa.delete(OutboundMessage).where(OutboundMessage.patient_id == p.id,
                                                     OutboundMessage.message_id != "S06"))
    session.commit()
    invite = min(rows(session, message_id="S06"), key=lambda r: r.send_after)
    tick(session, sms, invite.send_after, settings(app))
    (body,) = [s.body for s in sms.sent]
    assert body.startswith("Hi Rosa, time for your 2-minute check-in: https://recovery.example.org/l/")
    assert body.endswith(" Or reply with your pain score, 0 to 10.")


# ---------------------------------------------------------------------------------------------
# Every text fits one segment; a name outside GSM-7 still goes, and the nurse sees the cost
# ---------------------------------------------------------------------------------------------

def test_a_name_outside_gsm7_makes_the_text_ucs2_it_is_still_sent_and_the_nurse_sees_the_segments(
        app, session, client, sms):
    p = patient_at(session, first="Zoë")
    long_ = plant(session, p, due=NOW, message_id="S06", kind="checkin_invite", slot="day5",
                  text="Hi {first}, time for your 2-minute check-in: {link} Or reply with your pain score, 0 to 10.")
    plain = patient_at(session, first="Zoe")
    short = plant(session, plain, due=NOW, message_id="S09", text="{first}, short walks help.")
    tick(session, sms, NOW, settings(app))
    sent = {s.to: s.body for s in sms.sent}
    assert sms_encoding.count(sent[p.mobile_e164]).encoding == "UCS-2"
    got = row(session, long_.id)
    assert got.status == OutboxStatus.SENT  # never dropped for its cost
    assert (got.segments, got.encoding) == (sms_encoding.count(sent[p.mobile_e164]).count, "UCS-2") == (2, "UCS-2")
    assert (row(session, short.id).segments, row(session, short.id).encoding) == (1, "GSM-7")
    nurse = make_staff(session, session.get(Clinic, p.clinic_id), now=NOW)
    session.commit()
    login(client, nurse)
    page = client.get(f"/nurse/patients/{p.id}").get_data(as_text=True)
    assert "2 SMS segments (Unicode, because of a letter in the name)" in page


def test_every_text_of_every_template_fits_one_segment_with_a_12_character_name_and_the_real_link(app):
    """The budget of every file, as the app loaded it (texts.Budget from PUBLIC_BASE_URL). The one
    exception is version 1's S14, kept unchanged for the patients enrolled on v1: two segments."""
    budget = templates_repo.budget()
    assert budget == texts.Budget(link=len("https://recovery.example.org/l/") + 22, first=12)
    link = "https://recovery.example.org/l/" + secrets.token_urlsafe(16)
    d = app.config["SCHEDULES_DIR"]
    kept = [templates_repo.find_template(d, "kyphoplasty+demo-clinic", "1+1", "demo-clinic")]
    for t in [*templates_repo.all_templates(d), templates_repo.clinic_template(d, "demo-clinic", "kyphoplasty"), *kept]:
        for m in t.messages:
            body = texts.render(m.text, first="W" * 12, link=link, emerg=t.emerg, phone=max(t.phone, "P" * 14, key=len),
                                clinic=t.sms_name or "x")
            segments = 2 if (t.base_version, m.id) == (1, "S14") else 1
            assert sms_encoding.count(body) == sms_encoding.Segments("GSM-7", len(body), segments), (t.id, t.version, m.id)
            assert (segments == 2) == any(f": message {m.id}: text is " in w for w in t.warnings)


def test_the_kept_version_1_starts_with_a_warning_naming_its_file_and_line(tmp_path, db_url, caplog):
    from app import create_app
    for p in SCHEDULES.glob("*.toml"):
        (tmp_path / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "clinics").mkdir()
    caplog.set_level("WARNING", logger="recovery.files.templates")
    create_app(app_config(SQLALCHEMY_DATABASE_URI=db_url, SCHEDULES_DIR=str(tmp_path)))
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "recovery.files.templates"]
    assert warning.startswith(f"{tmp_path / 'kyphoplasty_v1.toml'}:") and ": message S14: text is 175 " in warning
    assert "kept as it is" in warning
    assert (tmp_path / "kyphoplasty_v1.toml").read_bytes() == (SCHEDULES / "kyphoplasty_v1.toml").read_bytes()


def test_a_text_that_cannot_fit_the_real_link_stops_the_app_from_starting(tmp_path, db_url):
    from app import create_app
    for p in SCHEDULES.glob("*.toml"):
        (tmp_path / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "clinics").mkdir()
    long_url = "https://recovery-texts.st-elsewhere-general-hospital.example.org"  # 70-character links
    with pytest.raises(TemplateError) as failed:
        create_app(app_config(SQLALCHEMY_DATABASE_URI=db_url, SCHEDULES_DIR=str(tmp_path), PUBLIC_BASE_URL=long_url))
    message = str(failed.value)
    # version 1, kept for its patients, only warns; version 2, the one new patients get, fails
    m = re.match(rf"{re.escape(str(tmp_path / 'kyphoplasty_v2.toml'))}:(\d+): message (S\d\d): text is (\d+) ", message)
    assert m, message
    lines = (tmp_path / "kyphoplasty_v2.toml").read_text(encoding="utf-8").splitlines()
    header = max(n for n, text in enumerate(lines[:int(m.group(1))], 1) if text.startswith("[messages."))
    assert lines[header - 1] == f"[messages.{m.group(2)}]" and lines[int(m.group(1)) - 1].startswith("text = ")
    assert int(m.group(3)) > 160
    assert "more than one SMS (max 160; checked with a 12-character first name and a 89-character link)" in message
    assert templates_repo.budget().link == 53  # a failed start changes nothing
    # the same files start with the usual base URL
    create_app(app_config(SQLALCHEMY_DATABASE_URI=db_url, SCHEDULES_DIR=str(tmp_path)))


# ---------------------------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------------------------

def test_a_long_link_sent_before_the_change_still_works_until_it_expires(app, session, client, frozen):
    frozen.move_to(NOW)
    p = patient_at(session)
    old_token = secrets.token_urlsafe(32)  # the 43-character tokens texts carried until now
    session.add(AccessLink(token_hash=digest(old_token), patient_id=p.id, purpose="today", created_at=NOW,
                           expires_at=NOW + timedelta(hours=72)))
    session.commit()
    assert len(old_token) == 43
    assert client.get(f"/l/{old_token}").status_code == 200
    resp = client.post(f"/l/{old_token}")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/me")
    expired = secrets.token_urlsafe(32)
    session.add(AccessLink(token_hash=digest(expired), patient_id=p.id, purpose="today", created_at=NOW,
                           expires_at=NOW + timedelta(hours=1)))
    session.commit()
    frozen.move_to(NOW + timedelta(hours=2))
    other = client.application.test_client()  # not signed in (the signed-in patient goes to Today)
    assert other.get(f"/l/{expired}").status_code == 410


def test_new_links_are_128_bit_single_use_and_hashed(app, session, client, sms, frozen):
    frozen.move_to(NOW)
    p = patient_at(session)
    plant(session, p, due=NOW, message_id="S16", text="Hi {first}, you have a follow-up visit in 7 days. Details: {link}")
    tick(session, sms, NOW, settings(app))
    token = sms.sent[0].body.rsplit("/l/", 1)[1]
    assert len(token) == texts.LINK_TOKEN_CHARS == 22
    stored = session.scalar(sa.select(AccessLink).where(AccessLink.token_hash == digest(token)))
    assert stored is not None and token not in stored.token_hash
    assert client.post(f"/l/{token}").status_code == 303
    other = client.application.test_client()  # not signed in (the signed-in patient goes to Today)
    assert other.post(f"/l/{token}").status_code == 410  # used

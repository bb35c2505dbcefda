"""The messaging rules carriers enforce (CTIA / A2P 10DLC), through the real app: the opt-in
confirmation is the first text, every text fits one SMS with the real link, a name outside GSM-7
still goes (and the nurse sees what it cost), links are short and old long ones still work."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from recovery import sms_encoding, templates_repo, texts
from recovery.dispatch import tick
from recovery.models import AccessLink, Clinic, OutboundMessage, OutboxStatus
from recovery.plan import TemplateError
from recovery.tokens import digest
from tests.factories import enrol, login, make_clinic, make_staff
from tests.settings import app_config
from tests.test_dispatch import NOW, patient_at, plant, row, rows, settings

SCHEDULES = Path(__file__).resolve().parents[1] / "schedules"
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
    """S00 held back (a provider error being retried): the texts behind it wait for it."""
    p = demo_enrol(session, first="Ada")
    session.commit()
    (optin,) = rows(session, message_id="S00")
    optin.send_after = NOW + timedelta(minutes=2)  # as record_error leaves a retried row
    session.commit()
    report = tick(session, sms, NOW, settings(app))
    assert sms.sent == () and report.send.outcomes.get("after_opt_in", 0) >= 1
    (welcome,) = rows(session, message_id="S01")
    assert (welcome.status, welcome.status_reason, welcome.send_after) == (
        OutboxStatus.PLANNED, "after_opt_in", NOW + timedelta(seconds=30))
    assert welcome.attempts == 0  # waiting is not a failed attempt
    tick(session, sms, NOW + timedelta(minutes=2), settings(app))
    bodies = [s.body for s in sms.sent if s.to == p.mobile_e164]
    assert bodies[0] == OPT_IN.format(first="Ada") and bodies[1].startswith("Hi Ada, welcome home.")


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
    """The budget of every file, as the app loaded it (texts.Budget from PUBLIC_BASE_URL)."""
    budget = templates_repo.budget()
    assert budget == texts.Budget(link=len("https://recovery.example.org/l/") + 22, first=12)
    link = "https://recovery.example.org/l/" + secrets.token_urlsafe(16)
    for t in [*templates_repo.all_templates(app.config["SCHEDULES_DIR"]),
              templates_repo.clinic_template(app.config["SCHEDULES_DIR"], "demo-clinic", "kyphoplasty")]:
        for m in t.messages:
            body = texts.render(m.text, first="W" * 12, link=link, emerg=t.emerg, phone=max(t.phone, "P" * 14, key=len),
                                clinic=t.sms_name or "x")
            assert sms_encoding.count(body) == sms_encoding.Segments("GSM-7", len(body), 1), (t.id, t.version, m.id)


def test_a_text_that_cannot_fit_the_real_link_stops_the_app_from_starting(tmp_path, db_url):
    from app import create_app
    for p in SCHEDULES.glob("*.toml"):
        (tmp_path / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "clinics").mkdir()
    long_url = "https://recovery-texts.st-elsewhere-general-hospital.example.org"  # 70-character links
    with pytest.raises(TemplateError) as failed:
        create_app(app_config(SQLALCHEMY_DATABASE_URI=db_url, SCHEDULES_DIR=str(tmp_path), PUBLIC_BASE_URL=long_url))
    message = str(failed.value)
    m = re.match(rf"{re.escape(str(tmp_path / 'kyphoplasty_v1.toml'))}:(\d+): message (S\d\d): text is (\d+) ", message)
    assert m, message
    lines = (tmp_path / "kyphoplasty_v1.toml").read_text(encoding="utf-8").splitlines()
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
    assert client.get(f"/l/{expired}").status_code == 410


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
    client.get("/signed-out")
    assert client.post(f"/l/{token}").status_code == 410  # used

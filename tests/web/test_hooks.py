"""Twilio webhooks: signatures (403 and zero writes), replays, out-of-order status callbacks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from recovery.dispatch.claims import claim_due
from recovery.messaging.twilio_gateway import compute_signature
from recovery.scheduler.tick import tick
from recovery.store.db import db
from recovery.store.models import Alert, AuditEvent, InboundMessage, OutboundMessage, OutboxStatus, Patient
from tests.support.factories import login, make_staff
from tests.services.test_dispatch import NOW, patient_at, plant, row, settings

TOKEN = "test-auth-token"
BASE = "https://recovery.example.org"
SID = "SM" + "5" * 32


def signed(client, path: str, form: dict, *, signature: str | None = None, url: str | None = None):
    sig = compute_signature(TOKEN, url or BASE + path, form) if signature is None else signature
    headers = {"X-Twilio-Signature": sig} if sig != "" else {}
    return client.post(path, data=form, headers=headers)


def table_counts(session) -> dict[str, int]:
    session.rollback()
    return {t.name: session.scalar(sa.select(sa.func.count()).select_from(t)) for t in db.metadata.sorted_tables}


def status_form(sid=SID, status="delivered", **extra):
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0123456789abcdef" * 2, "From": "+15005550006",
            "To": "+12025550143", "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}
    form.update(extra)
    return form


def sent_row(app, session, sms, **patient_kw):
    p = patient_at(session, **patient_kw)
    r = plant(session, p, due=NOW)
    tick(session, sms, NOW, settings(app))
    return p, row(session, r.id)


# ---------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------

BAD_SIGNATURES = ["unsigned", "wrong token", "tampered body", "other url", "internal url"]


@pytest.mark.parametrize("path", ["/twilio/status?ob=1", "/twilio/sms"])
def test_unsigned_or_wrongly_signed_requests_get_403_and_write_nothing(app, session, client, sms, path):
    p, r = sent_row(app, session, sms)
    path = path.replace("ob=1", f"ob={r.id}")
    form = status_form(sid=r.provider_sid) if "status" in path else {
        "MessageSid": SID, "From": p.mobile_e164, "To": "+15005550006", "Body": "STOP"}
    before = table_counts(session)
    for how in BAD_SIGNATURES:
        if how == "unsigned":
            resp = signed(client, path, form, signature="")
        elif how == "wrong token":
            resp = signed(client, path, form, signature=compute_signature("not-the-token", BASE + path, form))
        elif how == "tampered body":
            sig = compute_signature(TOKEN, BASE + path, form)
            tampered = dict(form, **({"MessageStatus": "failed"} if "status" in path else {"Body": "START"}))
            resp = signed(client, path, tampered, signature=sig)
        elif how == "other url":
            resp = signed(client, path, form, url=BASE + path + "&x=1")
        else:  # signed for the URL the app sees behind a proxy, not the public one Twilio called
            resp = signed(client, path, form, url="http://localhost" + path)
        assert resp.status_code == 403, how
        assert table_counts(session) == before, how
    session.refresh(p)
    assert not p.sms_opted_out and row(session, r.id).status == OutboxStatus.SENT
    assert signed(client, path, form).status_code in (200, 204)  # the same request, signed, is accepted
    assert table_counts(session) != before


def test_no_auth_token_configured_refuses_everything(app, session, client):
    app.config["TWILIO_AUTH_TOKEN"] = ""
    assert signed(client, "/twilio/sms", {"MessageSid": SID, "From": "+12025550143", "Body": "hi"}).status_code == 403


def test_webhooks_need_no_csrf_token_and_answer_empty_twiml(app, session, client):
    app.config["WTF_CSRF_ENABLED"] = True
    resp = signed(client, "/twilio/sms", {"MessageSid": SID, "From": "+19995550100", "To": "+15005550006",
                                          "Body": "hello"})
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    assert resp.data == b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    stored = session.scalar(sa.select(InboundMessage))
    assert (stored.sender_role, stored.handled_as, stored.patient_id) == ("unknown", "unknown_sender", None)


def test_missing_sid_or_sender_is_a_clear_400(app, session, client):
    resp = signed(client, "/twilio/sms", {"Body": "hi"})
    assert resp.status_code == 400 and b"MessageSid and From are required" in resp.data


# ---------------------------------------------------------------------------------------------
# Status callbacks
# ---------------------------------------------------------------------------------------------

def test_callbacks_move_a_text_forward_only_and_replays_change_nothing(app, session, client, sms):
    p, r = sent_row(app, session, sms)
    path = f"/twilio/status?ob={r.id}"
    assert signed(client, path, status_form(r.provider_sid, "sent")).status_code == 204
    assert (row(session, r.id).status, row(session, r.id).provider_status) == (OutboxStatus.SENT, "sent")
    assert signed(client, path, status_form(r.provider_sid, "delivered")).status_code == 204
    got = row(session, r.id)
    assert (got.status, got.provider_status, got.final_at is not None) == (OutboxStatus.DELIVERED, "delivered", True)
    before = table_counts(session)
    stamp = got.updated_at
    for late in ("delivered", "sent", "queued", "sending", "undelivered", "no-such-status"):
        assert signed(client, path, status_form(r.provider_sid, late, ErrorCode="30003")).status_code == 204
    got = row(session, r.id)
    assert (got.status, got.provider_status, got.error_code, got.updated_at) == (
        OutboxStatus.DELIVERED, "delivered", None, stamp)
    assert table_counts(session) == before
    signed(client, path, status_form(r.provider_sid, "read"))  # higher rank: recorded, still delivered
    assert (row(session, r.id).status, row(session, r.id).provider_status) == (OutboxStatus.DELIVERED, "read")
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "sms_delivered")) == 1


@pytest.mark.parametrize("days_after, task, level", [(1, "M4e", "URGENT"), (6, "M4", "WATCH")])
def test_an_undelivered_text_shows_on_the_patient_page_and_opens_a_task(app, session, client, sms, frozen,
                                                                       days_after, task, level):
    frozen.move_to(NOW + timedelta(minutes=1))
    p, r = sent_row(app, session, sms, procedure_end=NOW - timedelta(days=days_after))
    path = f"/twilio/status?ob={r.id}"
    signed(client, path, status_form(r.provider_sid, "sent"))
    signed(client, path, status_form(r.provider_sid, "undelivered", ErrorCode="30003"))
    signed(client, path, status_form(r.provider_sid, "undelivered", ErrorCode="30003"))  # Twilio retried it
    got = row(session, r.id)
    assert (got.status, got.error_code, got.status_reason) == (OutboxStatus.UNDELIVERED, "30003",
                                                              "provider_undelivered")
    alerts = session.scalars(sa.select(Alert).where(Alert.patient_id == p.id)).all()
    assert [(a.rules, a.level) for a in alerts] == [([task], level)]
    assert len(alerts[0].events) == 1  # the replay did not raise it again
    session.refresh(p)
    assert p.number_status == "ok"  # 30003 is a handset problem, not a bad number
    nurse = make_staff(session, p.clinic, now=NOW)
    session.commit()
    login(client, nurse)
    page = client.get(f"/nurse/patients/{p.id}")
    assert page.status_code == 200 and b"undelivered" in page.data and b"error 30003" in page.data


def test_a_landline_reported_by_callback_marks_the_number_invalid(app, session, client, sms):
    p, r = sent_row(app, session, sms)
    signed(client, f"/twilio/status?ob={r.id}", status_form(r.provider_sid, "failed", ErrorCode="30006"))
    session.refresh(p)
    assert p.number_status == "invalid" and row(session, r.id).status == OutboxStatus.FAILED


def test_the_callback_ties_the_sid_to_a_row_whose_sender_crashed_before_storing_it(app, session, client, sms):
    p = patient_at(session)
    r = plant(session, p, due=NOW)
    (claim,) = claim_due(session, NOW, settings(app, worker_id="crashed"))  # sent, then the process died
    assert row(session, r.id).provider_sid is None
    assert signed(client, f"/twilio/status?ob={r.id}", status_form(SID, "queued")).status_code == 204
    got = row(session, r.id)
    assert (got.status, got.provider_sid) == (OutboxStatus.SENT, SID)
    # after the lease the row is NOT sent again: it has its SID
    assert claim_due(session, NOW + timedelta(minutes=10), settings(app, worker_id="next")) == []
    tick(session, sms, NOW + timedelta(minutes=10), settings(app))
    assert sms.sent == ()


def test_a_callback_for_another_attempts_sid_is_recorded_as_a_duplicate_and_changes_nothing(app, session, client, sms):
    p, r = sent_row(app, session, sms)
    resp = signed(client, f"/twilio/status?ob={r.id}", status_form("SM" + "9" * 32, "failed", ErrorCode="30008"))
    assert resp.status_code == 204
    assert row(session, r.id).status == OutboxStatus.SENT
    assert session.scalar(sa.select(AuditEvent.action).where(AuditEvent.action == "sms_duplicate_suspected"))


def test_a_callback_without_ob_is_matched_by_sid_and_unknown_sids_are_ignored(app, session, client, sms):
    p, r = sent_row(app, session, sms)
    assert signed(client, "/twilio/status", status_form(r.provider_sid, "delivered")).status_code == 204
    assert row(session, r.id).status == OutboxStatus.DELIVERED
    before = table_counts(session)
    assert signed(client, "/twilio/status", status_form("SM" + "7" * 32, "delivered")).status_code == 204
    assert signed(client, "/twilio/status?ob=999999", status_form("SM" + "7" * 32, "delivered")).status_code == 204
    assert table_counts(session) == before

"""A patient whose link was used or expired can ask for a new one, safely."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from recovery.link_requests import LINK_TEXT
from recovery.models import AuditEvent, OutboundMessage
from recovery.texts import check_text
from tests.factories import enrol, make_clinic

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)


def _patient(session, **kw):
    clinic = make_clinic(session, now=NOW)
    p = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, mobile="+12025550143", **kw)
    session.commit()
    return p


def _link_rows(session, patient_id):
    return session.scalars(sa.select(OutboundMessage).where(OutboundMessage.patient_id == patient_id,
                                                            OutboundMessage.message_id == "LINK")).all()


def test_the_link_text_is_one_plain_sms():
    assert not check_text(LINK_TEXT).problems


def test_known_number_gets_a_link_unknown_gets_the_same_answer(client, session, frozen):
    frozen.move_to(NOW)
    p = _patient(session)
    r1 = client.post("/new-link", data={"mobile": "(202) 555-0143"})
    r2 = client.post("/new-link", data={"mobile": "(202) 555-0199"})
    assert r1.status_code == r2.status_code == 200
    assert r1.data == r2.data and b"Check your texts" in r1.data
    rows = _link_rows(session, p.id)
    assert len(rows) == 1 and rows[0].urgent and rows[0].recipient == "patient"
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "link_requested")) == 1


def test_no_link_to_a_patient_without_consent_or_opted_out(client, session, frozen):
    frozen.move_to(NOW)
    p = _patient(session, sms_consent=False)
    assert b"Check your texts" in client.post("/new-link", data={"mobile": "+12025550143"}).data
    assert _link_rows(session, p.id) == []


def test_bad_number_is_re_asked(client, session):
    r = client.post("/new-link", data={"mobile": "12"})
    assert r.status_code == 422 and b"phone number" in r.data and b"Text me a new link" in r.data


def test_requests_are_rate_limited_per_number(make_app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    with make_app(RATELIMIT_ENABLED=True) as app:
        p = _patient(session)
        client = app.test_client()
        codes = []
        for i in range(4):
            time_machine.move_to(NOW + timedelta(seconds=i + 1), tick=False)
            codes.append(client.post("/new-link", data={"mobile": "(202) 555-0143"}).status_code)
        assert codes == [200, 200, 200, 429]
        assert len(_link_rows(session, p.id)) == 3

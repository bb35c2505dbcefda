"""A patient whose link was used or expired can ask for a new one, safely."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from recovery.domain.texts import check_text
from recovery.services.link_requests import LINK_TEXT
from recovery.store.models import AuditEvent, OutboundMessage
from tests.support.factories import enrol, make_clinic

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


def test_texts_are_limited_per_patient_and_the_page_never_tells(make_app, session, time_machine):
    """Only texts count, per patient (whatever way the number is typed), and the 4th request gets
    the very page the 1st did: a 429 would tell a stranger that the number is enrolled."""
    time_machine.move_to(NOW, tick=False)
    with make_app(RATELIMIT_ENABLED=True) as app:
        p = _patient(session)
        client = app.test_client()
        pages = []
        for i, typed in enumerate(["(202) 555-0143", "+1 202 555 0143", "2025550143", "202.555.0143", "(202) 555-0143"]):
            time_machine.move_to(NOW + timedelta(seconds=i + 1), tick=False)
            r = client.post("/new-link", data={"mobile": typed})
            pages.append((r.status_code, r.data))
        unknown = client.post("/new-link", data={"mobile": "(202) 555-0199"})
        assert {page for page in pages} == {(200, unknown.data)}
        assert len(_link_rows(session, p.id)) == 3
        # an hour later the patient can ask again
        time_machine.move_to(NOW + timedelta(hours=1, seconds=10), tick=False)
        client.post("/new-link", data={"mobile": "(202) 555-0143"})
        assert len(_link_rows(session, p.id)) == 4


def test_requests_that_send_nothing_do_not_use_up_the_patients_texts(make_app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    with make_app(RATELIMIT_ENABLED=True) as app:
        p = _patient(session, sms_consent=False)
        client = app.test_client()
        for i in range(5):
            time_machine.move_to(NOW + timedelta(seconds=i + 1), tick=False)
            client.post("/new-link", data={"mobile": "(202) 555-0143"})
        assert _link_rows(session, p.id) == []
        session.get(type(p), p.id).sms_consent = True
        session.commit()
        for i in range(3):
            time_machine.move_to(NOW + timedelta(seconds=i + 10), tick=False)
            client.post("/new-link", data={"mobile": "(202) 555-0143"})
        assert len(_link_rows(session, p.id)) == 3


def test_requests_from_one_address_are_limited(make_app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    with make_app(RATELIMIT_ENABLED=True, LINK_RATE_LIMIT="4 per hour") as app:
        client = app.test_client()
        codes = [client.post("/new-link", data={"mobile": f"(202) 555-01{i:02d}"}).status_code for i in range(5)]
        assert codes == [200] * 4 + [429]

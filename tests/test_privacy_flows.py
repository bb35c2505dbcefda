"""End-to-end flows run with canary values, so tests/test_zz_privacy.py can prove none reaches a log."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import sqlalchemy as sa

from recovery.models import Patient
from tests.factories import login, make_clinic, make_staff
from tests.privacy import CANARY_PHONE, COLLECTOR

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)


def test_enrolment_with_a_canary_number_logs_nothing_identifying(client, session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    session.commit()
    login(client, nurse)
    before = COLLECTOR.count
    r = client.post("/nurse/patients/new", data={
        "first_name": "Canary", "last_name": "Bird", "mobile": "(202) 555-7731", "timezone": "America/New_York",
        "language": "en", "sms_consent": "y", "procedure_type": "kyphoplasty",
        "procedure_end": "2026-03-09T08:30"})
    assert r.status_code == 303, r.data
    assert session.scalar(sa.select(Patient.mobile_e164).where(Patient.last_name == "Bird")) == CANARY_PHONE
    # a second enrolment with the same number and a broken form: errors must not echo into logs either
    client.post("/nurse/patients/new", data={"first_name": "Canary", "mobile": "(202) 555-7731"})
    logging.getLogger("recovery.test").info("flow done")
    assert COLLECTOR.count > before

"""Found by the episode machine's new invariant (no text planned twice): a late-enrolled patient
(discharged 3 days ago) moved to another time zone got S11 twice. The time zone moved S11's due
time (09:00 New York -> 09:00 Chicago) but the daily limit kept its send time, so the re-plan left
the row alone, and the "plan what is still ahead" step then planned the new due time as a second
row (the outbox's dedupe key holds the due time). Failed before store/outbox.plan_timeline skipped
occurrences that already have a live row."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from recovery.services.patient_details import PatientDetails, change_details
from recovery.store.enrolments import current_enrolment
from recovery.store.models import OutboundMessage, OutboxStatus
from tests.support.factories import enrol, make_clinic, make_staff, template_for

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=NY).astimezone(timezone.utc)


def planned_twice(session):
    return session.execute(
        sa.select(OutboundMessage.recipient, OutboundMessage.occurrence_key, sa.func.count())
        .where(OutboundMessage.status == OutboxStatus.PLANNED)
        .group_by(OutboundMessage.enrolment_id, OutboundMessage.recipient, OutboundMessage.occurrence_key)
        .having(sa.func.count() > 1)).all()


def test_a_new_time_zone_does_not_plan_a_text_twice(app, session):
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    end = NOW - timedelta(hours=71)
    p = enrol(session, clinic, procedure_end=end, now=NOW, discharge_at=end + timedelta(hours=2))
    session.commit()
    assert planned_twice(session) == []
    change_details(session, patient=p, enrolment=current_enrolment(p),
                   new=replace(PatientDetails.of(p), timezone="America/Chicago"), template=template_for(clinic),
                   staff=nurse, now=NOW)
    session.commit()
    assert planned_twice(session) == []
    assert len(session.scalars(sa.select(OutboundMessage).where(OutboundMessage.message_id == "S11",
                                                                OutboundMessage.status == OutboxStatus.PLANNED)).all()) == 1

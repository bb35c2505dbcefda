"""Issue 13 §2: a booked follow-up appointment re-plans the texts timed from the follow-up visit
(S16 7 days before, S17 the day before, S18 the bone-health text): one live row per text, at the
new time; texts already sent are kept; clearing goes back to the plan's own day."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recovery.domain.timeline import TimelineError
from recovery.services.appointments import AppointmentRefused, book_followup
from recovery.services.enrolment import timeline_for
from recovery.services import episodes
from recovery.store.enrolments import current_enrolment
from recovery.store.models import AuditEvent, OutboundMessage, OutboxStatus
from tests.support.factories import enrol, make_clinic, make_staff, template_for

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=NY).astimezone(UTC)
NOW = T0 + timedelta(hours=3)
FOLLOWUP_TEXTS = ("S16", "S17", "S18")


@pytest.fixture
def world(app, session):
    clinic = make_clinic(session, now=T0)
    nurse = make_staff(session, clinic, now=T0)
    p = enrol(session, clinic, procedure_end=T0, now=NOW)
    session.commit()
    return clinic, nurse, p


def live(session, enrolment_id, code):
    return session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.enrolment_id == enrolment_id, OutboundMessage.message_id == code,
        OutboundMessage.recipient == "patient",
        OutboundMessage.status == OutboxStatus.PLANNED)).all()


def book(session, clinic, nurse, p, at, place="Spine clinic, 2nd floor", now=NOW):
    e = current_enrolment(p)
    return book_followup(session, enrolment=e, patient=p, template=template_for(clinic), at=at, place=place,
                         staff=nurse, now=now)


def test_booking_moves_the_follow_up_texts_once_each_to_the_new_time(app, session, world):
    clinic, nurse, p = world
    e = current_enrolment(p)
    before = {c: [r.send_after for r in live(session, e.id, c)] for c in FOLLOWUP_TEXTS}
    assert all(len(v) == 1 for v in before.values()), before  # day 42 by default
    at = datetime(2026, 4, 2, 14, 15, tzinfo=NY)  # Thu 2 Apr, 14:15: day 23
    result = book(session, clinic, nurse, p, at)
    session.commit()
    assert result.action == "followup_booked" and result.added >= 3
    for code, days_before in (("S16", 7), ("S17", 1), ("S18", 7)):
        rows = live(session, e.id, code)
        assert len(rows) == 1, (code, rows)
        local = rows[0].send_after.astimezone(NY)
        # 09:00 that day, or later that day when the daily limit spaces it from another text
        assert local.date() == (at - timedelta(days=days_before)).date() and 9 <= local.hour < 21, (code, local)
    old = session.scalars(sa.select(OutboundMessage).where(
        OutboundMessage.enrolment_id == e.id, OutboundMessage.message_id == "S16",
        OutboundMessage.status == OutboxStatus.CANCELLED)).all()
    assert [r.status_reason for r in old] == ["replanned"]
    tl = timeline_for(e, p, template_for(clinic))
    visit = tl.milestone("TL16")
    assert visit.starts_at == at.astimezone(UTC) and not visit.all_day and visit.place == "Spine clinic, 2nd floor"
    # quiet hours still hold: nothing routine planned between 21:00 and 08:00
    for row in session.scalars(sa.select(OutboundMessage).where(OutboundMessage.enrolment_id == e.id,
                                                                OutboundMessage.status == OutboxStatus.PLANNED,
                                                                OutboundMessage.urgent.is_(False))):
        assert 8 <= row.send_after.astimezone(NY).hour < 21 or row.safety, row.message_id


def test_changing_and_clearing_never_duplicates_and_is_audited_with_old_and_new(app, session, world):
    clinic, nurse, p = world
    e = current_enrolment(p)
    default = {c: live(session, e.id, c)[0].send_after for c in FOLLOWUP_TEXTS}
    first = datetime(2026, 4, 2, 14, 15, tzinfo=NY)
    second = datetime(2026, 4, 9, 9, 30, tzinfo=NY)
    book(session, clinic, nurse, p, first)
    book(session, clinic, nurse, p, first)  # the same again: nothing to do
    assert book(session, clinic, nurse, p, second, place="Room 4").action == "followup_changed"
    for c in FOLLOWUP_TEXTS:
        assert len(live(session, e.id, c)) == 1
    assert live(session, e.id, "S17")[0].send_after.astimezone(NY).date() == (second - timedelta(days=1)).date()
    assert book(session, clinic, nurse, p, None, place=None).action == "followup_cleared"
    session.commit()
    for c in FOLLOWUP_TEXTS:
        rows = live(session, e.id, c)
        assert len(rows) == 1 and rows[0].send_after == default[c], c
    assert e.followup_at is None and e.followup_place is None
    trail = session.scalars(sa.select(AuditEvent).where(AuditEvent.action.like("followup_%"))
                            .order_by(AuditEvent.id)).all()
    assert [a.action for a in trail] == ["followup_booked", "followup_changed", "followup_cleared"]
    assert trail[1].detail["old"] == {"at": first.astimezone(UTC).isoformat(), "place": "Spine clinic, 2nd floor"}
    assert trail[1].detail["new"] == {"at": second.astimezone(UTC).isoformat(), "place": "Room 4"}
    assert trail[2].detail["new"] is None


def test_a_text_already_sent_is_kept_and_not_sent_again(app, session, world):
    clinic, nurse, p = world
    e = current_enrolment(p)
    s16 = live(session, e.id, "S16")[0]
    s16.status, s16.sent_at = OutboxStatus.SENT, s16.send_after
    session.flush()
    at = datetime(2026, 4, 30, 11, 0, tzinfo=NY)
    book(session, clinic, nurse, p, at, now=s16.send_after + timedelta(days=1))
    assert live(session, e.id, "S16") == [] or all(r.send_after > s16.send_after for r in live(session, e.id, "S16"))
    assert session.get(OutboundMessage, s16.id).status == OutboxStatus.SENT


def test_refused_before_the_procedure_and_on_an_ended_episode(app, session, world):
    clinic, nurse, p = world
    with pytest.raises(ValueError, match="after the procedure"):
        book(session, clinic, nurse, p, T0 - timedelta(hours=1))
    e = current_enrolment(p)
    assert e.followup_at is None
    episodes.end_monitoring(session, enrolment=e, patient=p, reason="completed", note=None, staff=nurse, now=NOW)
    with pytest.raises(AppointmentRefused):
        book(session, clinic, nurse, p, datetime(2026, 4, 2, 14, 15, tzinfo=NY))


def test_an_appointment_before_discharge_is_a_timeline_error_not_a_crash(app, session, world):
    clinic, nurse, p = world
    with pytest.raises(TimelineError):
        book(session, clinic, nurse, p, T0 + timedelta(minutes=30))  # TL15/TL08 end at the visit, start at TD
    assert current_enrolment(p).followup_at is None

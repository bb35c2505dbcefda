"""Missed check-ins through the scheduler tick (protocol §3.5 M1-M3, M6): real enrolments, their
own outbox rows, ticks at chosen times."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from recovery.scheduler.tick import tick
from recovery.services import missed
from recovery.store.models import Alert, AuditEvent, Checkin, OutboundMessage, OutboxStatus
from tests.support.factories import enrol, make_clinic
from tests.services.test_dispatch import rows, settings

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=NY)  # Tue 10 Mar 2026, 10:00 New York; day 1 is 11 Mar


def local(day: int, hh: int, mm: int = 0) -> datetime:
    d = T0.date() + timedelta(days=day)
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=NY)


def enrolled(session, *, enrolled_at=None, **kw):
    clinic = make_clinic(session, now=T0)
    p = enrol(session, clinic, procedure_end=T0.astimezone(UTC), now=enrolled_at or T0 + timedelta(hours=2), **kw)
    session.commit()
    return p


def run(app, session, sms, *times):
    for t in times:
        report = tick(session, sms, t, settings(app))
        assert not report.errors, report.errors


def markers(session, patient):
    out = {}
    for a in session.scalars(sa.select(AuditEvent).where(AuditEvent.action == missed.MARKER,
                                                         AuditEvent.patient_id == patient.id)):
        assert a.detail["slot"] not in out, "a slot was closed twice"
        out[a.detail["slot"]] = (a.detail["outcome"], a.detail["rule"])
    return out


def alerts(session, patient):
    return [(a.rules, a.level) for a in session.scalars(
        sa.select(Alert).where(Alert.patient_id == patient.id, Alert.family == "missed_checkin")
        .execution_options(populate_existing=True))]


def submit(session, patient, at, slot=None, source="web", status="submitted", level=None):
    e = patient.enrolments[-1]
    session.add(Checkin(enrolment_id=e.id, patient_id=patient.id, slot=slot, source=source, status=status,
                        answers={}, started_at=at, updated_at=at, submitted_at=at if status == "submitted" else None,
                        level=level, fired_rules=[]))
    session.commit()


def test_m1_day0_and_day1_misses_are_urgent_and_a_done_checkin_is_not(app, session, sms):
    p = enrolled(session)
    # day 0: invite at T0+6h (16:00); missed at +8 h (midnight)
    run(app, session, sms, local(0, 16, 0), local(0, 23, 59))
    assert markers(session, p) == {} and alerts(session, p) == []
    run(app, session, sms, local(1, 0, 0))
    assert markers(session, p) == {"day0": ("missed", "M1")}
    assert alerts(session, p) == [(["M1"], "URGENT")]
    # day 1: done at 10:00, so its reminder is cancelled and the slot is completed
    run(app, session, sms, local(1, 9, 0))
    submit(session, p, local(1, 10, 0), slot="day1")
    run(app, session, sms, local(1, 13, 0), local(1, 17, 0))
    assert markers(session, p)["day1"] == ("completed", None)
    reminder = [r for r in rows(session, patient_id=p.id, occurrence_key="S07:day1")][0]
    assert (reminder.status, reminder.status_reason) == (OutboxStatus.CANCELLED, "checkin_done")
    assert alerts(session, p) == [(["M1"], "URGENT")]


def test_m2_first_miss_is_watch_and_the_second_day_in_a_row_is_urgent(app, session, sms):
    p = enrolled(session, enrolled_at=local(3, 7, 0))  # enrolled late: days 0-2 were never planned
    run(app, session, sms, local(3, 9, 0), local(3, 13, 0), local(3, 17, 0))
    assert markers(session, p) == {"day3": ("missed", "M2")}
    assert alerts(session, p) == [(["M2"], "WATCH")]
    run(app, session, sms, local(4, 9, 0), local(4, 13, 0), local(4, 16, 59))
    assert "day4" not in markers(session, p)
    run(app, session, sms, local(4, 17, 0))
    assert markers(session, p)["day4"] == ("missed", "M2x2")
    assert alerts(session, p) == [(["M2", "M2x2"], "URGENT")]
    sent = [r.occurrence_key for r in rows(session, patient_id=p.id, message_id="S07") if r.status == OutboxStatus.SENT]
    assert sent == ["S07:day3", "S07:day4"]  # the reminder at +4 h went out both days


def test_m3_weekly_reminder_at_24h_miss_at_48h_and_two_in_a_row(app, session, sms):
    p = enrolled(session, enrolled_at=local(13, 12, 0))
    run(app, session, sms, local(14, 9, 0), local(15, 9, 0), local(16, 8, 59))
    assert [r.status for r in rows(session, patient_id=p.id, occurrence_key="S07:day14")] == [OutboxStatus.SENT]
    assert markers(session, p) == {}
    run(app, session, sms, local(16, 9, 0))
    assert markers(session, p) == {"day14": ("missed", "M3")} and alerts(session, p) == [(["M3"], "WATCH")]
    run(app, session, sms, local(21, 9, 0), local(22, 9, 0), local(23, 9, 0))
    assert markers(session, p)["day21"] == ("missed", "M3x2")
    assert alerts(session, p) == [(["M3", "M3x2"], "URGENT")]


def test_m6_a_started_form_waits_two_idle_hours_and_a_red_flag_is_not_a_miss(app, session, sms):
    p = enrolled(session, enrolled_at=local(3, 7, 0))
    run(app, session, sms, local(3, 9, 0))
    submit(session, p, local(3, 16, 30), slot="day3", status="in_progress")
    run(app, session, sms, local(3, 17, 0), local(3, 18, 30))
    assert markers(session, p) == {}
    run(app, session, sms, local(3, 18, 31))
    assert markers(session, p) == {"day3": ("missed", "M2")}
    q = enrolled(session, enrolled_at=local(3, 7, 0))
    run(app, session, sms, local(4, 9, 0))
    submit(session, q, local(4, 10, 0), slot="day4", status="in_progress", level="EMERGENCY")
    run(app, session, sms, local(4, 17, 0))
    assert markers(session, q)["day4"] == ("red_flag", None) and alerts(session, q) == []


def test_missed_time_counts_from_when_the_invitation_really_went_out(app, session, sms):
    p = enrolled(session, enrolled_at=local(3, 7, 0))
    run(app, session, sms, local(3, 11, 0))  # the scheduler was down 09:00-11:00
    invite = rows(session, patient_id=p.id, occurrence_key="S06:day3")[0]
    assert invite.sent_at == local(3, 11, 0)
    run(app, session, sms, local(3, 18, 59))
    assert markers(session, p) == {}
    run(app, session, sms, local(3, 19, 0))
    assert markers(session, p) == {"day3": ("missed", "M2")}


def test_an_ad_hoc_checkin_after_the_invitation_counts(app, session, sms):
    p = enrolled(session, enrolled_at=local(3, 7, 0))
    run(app, session, sms, local(3, 9, 0))
    submit(session, p, local(3, 12, 0), slot=None)
    run(app, session, sms, local(3, 17, 0))
    assert markers(session, p) == {"day3": ("completed", None)} and alerts(session, p) == []


def test_no_invitation_sent_means_no_missed_task(app, session, sms):
    p = enrolled(session, enrolled_at=local(3, 7, 0))
    p.sms_opted_out = True  # the M5 task covers this patient
    session.commit()
    run(app, session, sms, local(3, 9, 0), local(3, 17, 0), local(4, 17, 0))
    assert markers(session, p) == {} and alerts(session, p) == []


def test_the_scan_closes_each_slot_once_however_often_it_runs(app, session, sms):
    p = enrolled(session, enrolled_at=local(3, 7, 0))
    run(app, session, sms, local(3, 9, 0))
    s1, s2 = settings(app, worker_id="one"), settings(app, worker_id="two")
    for _ in range(3):
        missed.scan(session, local(3, 17, 0), s1)
        missed.scan(session, local(3, 17, 0), s2)
    assert markers(session, p) == {"day3": ("missed", "M2")}
    (alert,) = session.scalars(sa.select(Alert).where(Alert.patient_id == p.id)).all()
    assert [e.kind for e in alert.events] == ["opened"]
    invite = rows(session, patient_id=p.id, occurrence_key="S06:day3")[0]
    assert missed.close_slot(session, invite.id, local(3, 18, 0), s1) == 0

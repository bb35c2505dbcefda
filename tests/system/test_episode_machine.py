"""Property-based test of the episode of care through the real scheduler tick (issue 13 §2: "no text
goes to an ended or paused enrolment"): random interleavings of time passing (ticks with the
missed-check-in scan), nurses pausing, resuming and ending monitoring, starting a new episode
(another procedure) once one has ended, booking, moving and clearing the follow-up appointment,
one-off texts by nurses (urgent or not), and patients texting in (a question, STOP, a pain score),
for three patients.

Invariants, checked after every step:
1. Nothing is handed to the provider for an episode whose monitoring ended before the tick.
2. While a patient's texts are paused, the only texts that go to them are replies to something
   they did themselves (event replies: S21, a link they asked for, ...).
3. An ended episode has no planned text and no unresolved alert; nothing is planned for it later
   (except the rows the machine plants straight into the outbox, which invariant 1 covers), also
   once the patient has a new episode.
4. A nurse's hand-written text is refused exactly when the episode is ended or paused (or the
   number cannot be texted).
5. No text is planned twice: one live planned row per episode, recipient and occurrence (booking
   and moving the appointment re-plan S16-S18, never duplicate them).
"""
from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from recovery.scheduler import tick as scheduler_tick
from recovery.services import appointments, episodes
from recovery.services.enrolment import EpisodeInput, EpisodeStillActive, start_new_episode
from recovery.services import inbound
from recovery.services import nurse_texts
from recovery.dispatch.settings import DispatchSettings
from recovery.domain.episode_rules import END_REASONS
from recovery.store.enrolments import current_enrolment
from recovery.store.models import Alert, AlertStatus, Clinic, Enrolment, OutboundMessage, OutboxStatus, Patient
from recovery.store.outbox import add_if_new, new_row
from recovery.services.patient_details import PatientDetails, change_details
from recovery.domain.timeline import PlannedMessage, TimelineError
from tests.support.factories import enrol, make_clinic, make_staff

NY = ZoneInfo("America/New_York")
START = datetime(2026, 3, 10, 10, 0, tzinfo=NY).astimezone(timezone.utc)
EXAMPLES = iter(range(10_000))


def run_machine(app, session, sms):
    inbound_settings = inbound.InboundSettings.from_config(app.config)
    base_url = app.config["PUBLIC_BASE_URL"]

    class EpisodeMachine(RuleBasedStateMachine):
        @initialize(discharged_hours=st.lists(st.integers(0, 80), min_size=3, max_size=3))
        def setup(self, discharged_hours):
            self.example = next(EXAMPLES)
            self.now = START
            self.clinic = make_clinic(session, now=self.now)
            self.nurse = make_staff(session, self.clinic, now=self.now)
            self.patients = []
            for i, hours in enumerate(discharged_hours):
                end = self.now - timedelta(hours=hours + 2)
                self.patients.append(enrol(session, self.clinic, procedure_end=end, now=self.now, first=f"E{i}",
                                           mobile=f"+1202557{self.example % 100:02d}{i:02d}",
                                           discharge_at=end + timedelta(hours=2)))
            # Only this example's rows are in play (earlier examples leave theirs planned).
            session.execute(sa.delete(OutboundMessage).where(
                OutboundMessage.patient_id.not_in([p.id for p in self.patients])))
            session.commit()
            self.ended: dict[int, datetime] = {}  # patient id -> when their current episode ended
            self.ended_enrolments: set[int] = set()  # every episode ended, current or earlier
            self.planted_on: set[int] = set()  # ended episodes the machine planted rows for on purpose
            self.paused_until: dict[int, datetime] = {}
            self.seen_attempts = len(sms.attempts)
            self.sent_kinds: list[tuple[int, str, datetime]] = []
            self.planted_after_end: set[int] = set()  # rows planted for them on purpose: invariant 3 skips

        # -- helpers ---------------------------------------------------------------------------
        def enrolment(self, i) -> Enrolment:
            """The patient's current episode, through the app's one helper."""
            session.rollback()
            session.expire_all()
            return current_enrolment(self.patient(i))

        def patient(self, i) -> Patient:
            return session.scalar(sa.select(Patient).where(Patient.id == self.patients[i].id)
                                  .execution_options(populate_existing=True))

        def paused(self, pid) -> bool:
            until = self.paused_until.get(pid)
            return until is not None and until > self.now

        # -- rules -----------------------------------------------------------------------------
        @rule(hours=st.sampled_from([0.25, 1, 3, 7, 13]))
        def time_passes(self, hours):
            self.now += timedelta(hours=hours)
            s = DispatchSettings.from_config(app.config, worker_id=f"ep{self.example}", max_per_second=0,
                                             send_concurrency=1)
            report = scheduler_tick.tick(session, sms, self.now, s, scan_missed=True)
            assert not report.errors, report.errors
            by_id = {}
            for attempt in sms.attempts[self.seen_attempts:]:
                row_id = int(dict(parse_qsl(urlsplit(attempt.status_callback).query))["ob"])
                by_id[row_id] = attempt
            self.seen_attempts = len(sms.attempts)
            if by_id:
                rows = session.scalars(sa.select(OutboundMessage).where(OutboundMessage.id.in_(by_id))).all()
                for row in rows:
                    if row.recipient == "staff":
                        continue
                    pid = row.patient_id
                    assert pid not in self.ended, f"{row.message_id} went to a patient whose monitoring ended"
                    assert row.enrolment_id not in self.ended_enrolments, f"{row.message_id} went for an ended episode"
                    if self.paused(pid):
                        assert row.kind == "event_reply", f"{row.message_id} ({row.kind}) went during a pause"
                    self.sent_kinds.append((pid, row.kind, self.now))

        @rule(i=st.integers(0, 2), days=st.integers(2, 6))
        def nurse_pauses(self, i, days):
            p = self.patient(i)
            e = self.enrolment(i)
            until = self.now.astimezone(NY).date() + timedelta(days=days)
            try:
                episodes.pause_texts(session, enrolment=e, patient=p, until=until, staff=self.nurse, now=self.now)
            except episodes.EpisodeConflict:
                assert p.id in self.ended
                session.rollback()
                return
            session.commit()
            assert p.id not in self.ended
            self.paused_until[p.id] = episodes.pause_starts_over(until, ZoneInfo(p.timezone))

        @rule(i=st.integers(0, 2))
        def nurse_resumes(self, i):
            p, e = self.patient(i), self.enrolment(i)
            clinic = session.get(Clinic, p.clinic_id)
            from tests.support.factories import template_for
            try:
                episodes.resume_texts(session, enrolment=e, patient=p, template=template_for(clinic),
                                      staff=self.nurse, now=self.now)
            except episodes.EpisodeConflict:
                assert not self.paused(p.id) or p.id in self.ended
                session.rollback()
                return
            session.commit()
            assert self.paused(p.id)
            self.paused_until.pop(p.id)

        @rule(i=st.integers(0, 2), reason=st.sampled_from(sorted(END_REASONS)))
        def nurse_ends(self, i, reason):
            p, e = self.patient(i), self.enrolment(i)
            try:
                episodes.end_monitoring(session, enrolment=e, patient=p, reason=reason, note="x", staff=self.nurse,
                                        now=self.now)
            except episodes.EpisodeConflict:
                assert p.id in self.ended
                session.rollback()
                return
            session.commit()
            self.ended[p.id] = self.now
            self.ended_enrolments.add(e.id)
            self.paused_until.pop(p.id, None)
            self.planted_after_end.discard(p.id)

        @rule(i=st.integers(0, 2), brace=st.booleans())
        def nurse_starts_a_new_episode(self, i, brace):
            """Another procedure: allowed only once the current episode has ended."""
            p, e = self.patient(i), self.enrolment(i)
            clinic = session.get(Clinic, p.clinic_id)
            from tests.support.factories import template_for
            episode = EpisodeInput(procedure_type="vertebroplasty", procedure_end=self.now - timedelta(hours=2),
                                   discharge_at=self.now - timedelta(hours=1), brace=brace)
            try:
                new = start_new_episode(session, patient=p, clinic=clinic, staff=self.nurse, episode=episode,
                                        template=template_for(clinic), now=self.now)
            except EpisodeStillActive:
                session.rollback()
                assert p.id not in self.ended
                return
            session.commit()
            assert p.id in self.ended and new.id not in self.ended_enrolments
            assert self.enrolment(i).id == new.id != e.id
            self.ended.pop(p.id)
            self.planted_after_end.discard(p.id)

        @rule(i=st.integers(0, 2), days=st.integers(-2, 60), hour=st.integers(7, 18), clear=st.booleans())
        def nurse_books_the_follow_up(self, i, days, hour, clear):
            p, e = self.patient(i), self.enrolment(i)
            clinic = session.get(Clinic, p.clinic_id)
            from tests.support.factories import template_for
            day = e.procedure_end.astimezone(ZoneInfo(p.timezone)).date() + timedelta(days=days)
            at = None if clear else datetime(day.year, day.month, day.day, hour, 0, tzinfo=ZoneInfo(p.timezone))
            try:
                appointments.book_followup(session, enrolment=e, patient=p, template=template_for(clinic), at=at,
                                           place="Clinic B, room 2", staff=self.nurse, now=self.now)
            except appointments.AppointmentRefused:
                session.rollback()
                assert p.id in self.ended
                return
            except (ValueError, TimelineError):  # before the procedure, or a time the plan cannot take
                session.rollback()
                assert at is not None and days <= 1
                return
            session.commit()
            assert p.id not in self.ended

        @rule(i=st.integers(0, 2), urgent=st.booleans())
        def nurse_texts_the_patient(self, i, urgent):
            p, e = self.patient(i), self.enrolment(i)
            clinic = session.get(Clinic, p.clinic_id)
            can = p.id not in self.ended and not self.paused(p.id) and not p.sms_opted_out
            try:
                nurse_texts.send_text(session, patient=p, enrolment=e, clinic=clinic, body="{first}, call us please.",
                                      urgent=urgent, nonce=uuid.uuid4().hex, staff=self.nurse, now=self.now,
                                      public_base_url=base_url)
            except nurse_texts.TextRefused:
                session.rollback()
                assert not can
                return
            session.commit()
            assert can

        @rule(i=st.integers(0, 2), zone=st.sampled_from(["America/New_York", "America/Chicago", "Europe/London"]))
        def nurse_changes_the_time_zone(self, i, zone):
            """Re-plans the texts still ahead, whatever the episode's state (a pause, an end)."""
            p, e = self.patient(i), self.enrolment(i)
            clinic = session.get(Clinic, p.clinic_id)
            from tests.support.factories import template_for
            details = PatientDetails.of(p)
            change_details(session, patient=p, enrolment=e, new=replace(details, timezone=zone),
                           template=template_for(clinic), staff=self.nurse, now=self.now)
            session.commit()

        @rule(i=st.integers(0, 2), kind=st.sampled_from(["reminder", "checkin_invite", "event_reply", "nurse_text"]),
              urgent=st.booleans(), in_minutes=st.integers(0, 600))
        def some_path_plans_a_text(self, i, kind, urgent, in_minutes):
            """A row straight into the outbox, as any future path might plan one: the send pipeline
            must still refuse it for an ended episode, and hold a routine one during a pause."""
            p = self.patient(i)
            e = self.enrolment(i)
            due = self.now + timedelta(minutes=in_minutes)
            message = PlannedMessage(id="SX", key=f"SX:{uuid.uuid4().hex[:12]}", kind=kind, send_at=due, due_at=due,
                                     text_template="{first}, a planted text.", urgent=urgent, quiet_moved=False)
            add_if_new(session, new_row(enrolment=e, patient_id=p.id, recipient="patient", message=message,
                                        now=self.now))
            session.commit()
            if p.id in self.ended:
                self.planted_after_end.add(p.id)
                self.planted_on.add(e.id)

        @rule(i=st.integers(0, 2), body=st.sampled_from(["Is this normal?", "STOP", "7", "START", "chest pain"]))
        def patient_texts_in(self, i, body):
            p = self.patient(i)
            inbound.handle_sms(session, sid="SM" + uuid.uuid4().hex, from_number=p.mobile_e164, body=body,
                               now=self.now, settings=inbound_settings)
            session.commit()

        def teardown(self):
            """Drive the clock on for two days, so every row planted or left planned meets the sender."""
            if hasattr(self, "ended"):
                for _ in range(8):
                    self.time_passes(6)

        # -- invariants ------------------------------------------------------------------------
        @invariant()
        def ended_episodes_hold_nothing(self):
            if not hasattr(self, "ended"):
                return
            session.rollback()
            for pid in set(self.ended) - self.planted_after_end:
                planned = session.scalars(sa.select(OutboundMessage.message_id).where(
                    OutboundMessage.patient_id == pid, OutboundMessage.status == OutboxStatus.PLANNED)).all()
                assert planned == [], f"planned for an ended episode: {planned}"
                open_alerts = session.scalars(sa.select(Alert.rules).where(
                    Alert.patient_id == pid, Alert.status != AlertStatus.RESOLVED)).all()
                assert open_alerts == [], f"open alerts of an ended episode: {open_alerts}"
            for eid in self.ended_enrolments - self.planted_on:
                planned = session.scalars(sa.select(OutboundMessage.message_id).where(
                    OutboundMessage.enrolment_id == eid, OutboundMessage.status == OutboxStatus.PLANNED)).all()
                assert planned == [], f"planned for an earlier, ended episode: {planned}"
                open_alerts = session.scalars(sa.select(Alert.rules).where(
                    Alert.enrolment_id == eid, Alert.status != AlertStatus.RESOLVED)).all()
                assert open_alerts == [], f"open alerts of an earlier, ended episode: {open_alerts}"

        @invariant()
        def no_text_is_planned_twice(self):
            if not hasattr(self, "ended"):
                return
            twice = session.execute(
                sa.select(OutboundMessage.enrolment_id, OutboundMessage.recipient, OutboundMessage.occurrence_key)
                .where(OutboundMessage.status == OutboxStatus.PLANNED,
                       OutboundMessage.patient_id.in_([p.id for p in self.patients]))
                .group_by(OutboundMessage.enrolment_id, OutboundMessage.recipient, OutboundMessage.occurrence_key)
                .having(sa.func.count() > 1)).all()
            assert twice == [], f"planned twice: {twice}"

    EpisodeMachine.TestCase.settings = settings(
        max_examples=int(os.environ.get("EPISODE_MACHINE_EXAMPLES", "20")), stateful_step_count=25, deadline=None,
        derandomize=True, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    return EpisodeMachine


def test_episode_state_machine(app, session, sms, db_factory):
    if db_factory.name != "sqlite":
        pytest.skip("one process at a time: PostgreSQL changes nothing this machine can observe (the same "
                    "use-cases and send pipeline run on PostgreSQL in tests/test_episode*.py)")
    machine = run_machine(app, session, sms)
    machine.TestCase().runTest()

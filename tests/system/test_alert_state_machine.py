"""Property-based test of alert state through the real use-cases (issues 7 and 10): random
interleavings of nurse tasks raised, check-ins answered (emergency drafts, then their submission),
acknowledgements, outcomes (every disposition, "no answer" with a follow-up time), escalation ticks
and clock moves.

Invariants after every step:
- at most one unresolved alert per patient and task family, and per check-in;
- one check-in, one alert: a check-in's alerts hold each of its rules once, every one but the last
  is resolved, and a later one follows the one before (it holds only rules new after that was
  resolved); an alert's level is the highest of its rules;
- a resolved alert never changes again (its history may grow) and pages nobody;
- an alert's level never goes down while it is unresolved;
- no page goes out while an alert is acknowledged; only URGENT and EMERGENCY alerts page anyone;
  no rung is paged twice for one alert; every EMERGENCY paged someone or says the ladder is empty;
- "no answer" never resolves: the alert stays on the worklist with its follow-up time;
- the worklist holds every unresolved alert, in `alerts.sort_key` order, a call-back whose time has
  come first in its level.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from recovery.domain import alerts as domain
from recovery.domain.alerts import DISPOSITIONS, FOLLOW_UP_MINUTES
from recovery.domain.triage import Level
from recovery.services import alerting
from recovery.services.worklist import worklist_rows
from recovery.store.models import Alert, AlertEvent, AlertStatus, Checkin, OutboundMessage
from tests.support.factories import enrol, make_clinic, make_staff

START = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
TASK_IDS = ["M1", "M2", "M2x2", "M4", "M4e", "M5", "R1"]
EMERGENCY_IDS = ["E1", "E2", "E4", "E11"]
CHECKIN_IDS = EMERGENCY_IDS + ["U1", "U5", "U16", "U20", "W3", "W8", "R1"]
CHECKINS = 3


def run_machine(session):
    class AlertMachine(RuleBasedStateMachine):
        @initialize()
        def setup(self):
            # Each example gets its own clinic and patient (audit rows cannot be deleted), and every
            # query below is scoped to them, so examples do not see each other.
            self.now = START
            self.clinic = make_clinic(session, now=START)
            self.nurse = make_staff(session, self.clinic, now=START)
            for pos in (1, 2):
                make_staff(session, self.clinic, on_call=pos, now=START)
            self.patient = enrol(session, self.clinic, procedure_end=START - timedelta(hours=30), now=START,
                                 sms_consent=False)
            self.enrolment = self.patient.enrolments[0]
            self.checkins = []
            for _ in range(CHECKINS):
                c = Checkin(enrolment_id=self.enrolment.id, patient_id=self.patient.id, slot=None, source="web",
                            status="in_progress", answers={}, started_at=START, updated_at=START, fired_rules=[])
                session.add(c)
                session.flush()
                self.checkins.append(c.id)
            session.commit()
            self.raised: dict[int, set[str]] = {c: set() for c in self.checkins}  # every rule a check-in raised
            self.submitted: set[int] = set()
            self.seen_levels: dict[int, int] = {}
            self.resolved: dict[int, tuple] = {}

        def _alerts(self):
            return session.scalars(sa.select(Alert).where(Alert.patient_id == self.patient.id)
                                   .order_by(Alert.id).execution_options(populate_existing=True)).all()

        def _pages(self, alert_id):
            return session.scalars(sa.select(OutboundMessage).where(OutboundMessage.alert_id == alert_id)
                                   .order_by(OutboundMessage.id)).all()

        def _unresolved(self):
            return [a for a in self._alerts() if a.status != AlertStatus.RESOLVED]

        # ---- what happens ------------------------------------------------------------------

        @rule(rules=st.lists(st.sampled_from(TASK_IDS), min_size=1, max_size=2, unique=True))
        def task_raised(self, rules):
            alerting.raise_rules(session, patient=self.patient, enrolment=self.enrolment, rule_ids=rules,
                                 now=self.now, source="missed_checkin")
            session.commit()

        @rule(k=st.integers(0, CHECKINS - 1), rules=st.lists(st.sampled_from(EMERGENCY_IDS), min_size=1,
                                                             max_size=2, unique=True))
        def emergency_draft(self, k, rules):
            cid = self.checkins[k]
            if cid in self.submitted:
                return
            alerting.raise_rules(session, patient=self.patient, enrolment=self.enrolment, rule_ids=rules,
                                 now=self.now, checkin_id=cid, source="checkin_partial")
            session.commit()
            self.raised[cid] |= set(rules)

        @rule(k=st.integers(0, CHECKINS - 1), extra=st.lists(st.sampled_from(CHECKIN_IDS), max_size=4, unique=True))
        def checkin_submitted(self, k, extra):
            """The submission scores everything again: the emergency rules the drafts raised and the rest."""
            cid = self.checkins[k]
            if cid in self.submitted:
                return
            rules = sorted(self.raised[cid]) + [r for r in extra if r not in self.raised[cid]]
            if not rules:
                return
            before = [(a.id, a.status, a.level, list(a.rules)) for a in self._alerts() if a.checkin_id == cid]
            pages_before = {a.id: len(self._pages(a.id)) for a in self._alerts()}
            handled = {r for _, status, _, rs in before if status == AlertStatus.RESOLVED for r in rs}
            alerting.raise_rules(session, patient=self.patient, enrolment=self.enrolment, rule_ids=rules,
                                 now=self.now, checkin_id=cid, source="checkin")
            session.commit()
            self.submitted.add(cid)
            self.raised[cid] |= set(rules)
            after = [a for a in self._alerts() if a.checkin_id == cid]
            if before and before[-1][1] == AlertStatus.RESOLVED and set(rules) <= handled:
                # resolved, then continued with nothing new: only its history grows; nobody paged
                assert [a.id for a in after] == [b[0] for b in before]
                assert {a.id: len(self._pages(a.id)) for a in self._alerts()} == pages_before
                last = session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == before[-1][0])
                                       .order_by(AlertEvent.id.desc()).limit(1)).one()
                assert last.kind == "checkin_completed" and last.detail["checkin_id"] == cid
            else:
                assert len(after) - len(before) <= 1  # at most one alert more, ever, per submission

        @rule(minutes=st.integers(1, 300))
        def time_passes(self, minutes):
            self.now += timedelta(minutes=minutes)

        @rule()
        def escalation_tick(self):
            alerting.escalate_due(session, self.now)
            session.commit()

        @precondition(lambda self: any(a.status == AlertStatus.OPEN for a in self._alerts()))
        @rule(data=st.data())
        def acknowledge(self, data):
            alert = data.draw(st.sampled_from([a for a in self._alerts() if a.status == AlertStatus.OPEN]))
            alerting.acknowledge(session, alert, self.nurse, self.now, note="called")
            session.commit()

        @precondition(lambda self: bool(self._unresolved()))
        @rule(data=st.data(), disposition=st.sampled_from(sorted(DISPOSITIONS)),
              minutes=st.sampled_from(FOLLOW_UP_MINUTES))
        def outcome(self, data, disposition, minutes):
            alert = data.draw(st.sampled_from(self._unresolved()))
            alerting.record_outcome(session, alert, self.nurse, self.now, disposition, follow_up_minutes=minutes)
            session.commit()
            if domain.resolves(disposition):
                assert alert.status == AlertStatus.RESOLVED and alert.follow_up_at is None
                self.resolved[alert.id] = (alert.level, tuple(alert.rules), alert.resolved_at,
                                           len(self._pages(alert.id)))
            else:  # "no answer" keeps it open, in hand, on the worklist, back at the chosen time
                assert alert.status == AlertStatus.ACKNOWLEDGED
                assert alert.follow_up_at == self.now + timedelta(minutes=minutes)
                assert alert.id in [r.alert.id for r in worklist_rows(session, self.clinic.id, self.now)]

        @precondition(lambda self: any(a.status == AlertStatus.RESOLVED for a in self._alerts()))
        @rule(data=st.data(), disposition=st.sampled_from(sorted(DISPOSITIONS)))
        def a_second_outcome_is_refused(self, data, disposition):
            alert = data.draw(st.sampled_from([a for a in self._alerts() if a.status == AlertStatus.RESOLVED]))
            with pytest.raises(alerting.AlertConflict):
                alerting.record_outcome(session, alert, self.nurse, self.now, disposition)
            session.rollback()

        # ---- what must always hold ----------------------------------------------------------

        @invariant()
        def one_unresolved_alert_per_task_family_and_per_checkin(self):
            if not hasattr(self, "patient"):
                return
            keys = [(a.family, a.checkin_id) if a.family == domain.CHECKIN_FAMILY else (a.family, None)
                    for a in self._unresolved()]
            assert len(keys) == len(set(keys))
            for a in self._alerts():
                assert (a.family == domain.CHECKIN_FAMILY) == (a.checkin_id is not None)

        @invariant()
        def one_checkin_one_alert_with_all_its_rules_at_its_highest_level(self):
            if not hasattr(self, "patient"):
                return
            alerts = self._alerts()
            for cid in self.checkins:
                mine = [a for a in alerts if a.checkin_id == cid]
                rules = [r for a in mine for r in a.rules]
                assert len(rules) == len(set(rules)), "a rule of one check-in on two alerts"
                assert set(rules) == self.raised[cid]
                assert all(a.status == AlertStatus.RESOLVED for a in mine[:-1])
                for earlier, later in zip(mine, mine[1:]):
                    opened = session.scalars(sa.select(AlertEvent).where(AlertEvent.alert_id == later.id,
                                                                         AlertEvent.kind == "opened")).one()
                    assert opened.detail["follows_alert_id"] == earlier.id
                    assert later.opened_at >= earlier.resolved_at
            for a in alerts:
                assert Level[a.level] == max(domain.rule_level(r) for r in a.rules)

        @invariant()
        def levels_never_go_down_and_resolved_alerts_stay_put(self):
            if not hasattr(self, "patient"):
                return
            for a in self._alerts():
                if a.status == AlertStatus.RESOLVED and a.id in self.resolved:
                    assert (a.level, tuple(a.rules), a.resolved_at, len(self._pages(a.id))) == self.resolved[a.id]
                level = int(Level[a.level])
                assert level >= self.seen_levels.get(a.id, 0)
                self.seen_levels[a.id] = level

        @invariant()
        def pages_only_when_open_once_per_rung_and_never_below_urgent(self):
            if not hasattr(self, "patient"):
                return
            self.__dict__.setdefault("ack_pages", {})
            for a in self._alerts():
                pages = self._pages(a.id)
                if a.status == AlertStatus.ACKNOWLEDGED:
                    before = self.ack_pages.setdefault(a.id, len(pages))
                    assert len(pages) == before, f"alert {a.id} paged while acknowledged"
                else:
                    self.ack_pages.pop(a.id, None)
                if pages:
                    assert a.level in ("URGENT", "EMERGENCY")
                assert len({(p.staff_id, p.to_e164) for p in pages}) == len(pages), f"a rung paged twice for alert {a.id}"
                if a.level == "EMERGENCY":
                    kinds = set(session.scalars(sa.select(AlertEvent.kind).where(AlertEvent.alert_id == a.id)))
                    assert kinds & {"escalated", "ladder_exhausted"}

        @invariant()
        def the_worklist_holds_every_unresolved_alert_in_order(self):
            if not hasattr(self, "patient"):
                return
            rows = worklist_rows(session, self.clinic.id, self.now)
            assert sorted(r.alert.id for r in rows) == sorted(a.id for a in self._unresolved())
            keys = [domain.sort_key(Level[r.level], r.status, r.alert.respond_by, self.now, r.alert.follow_up_at)
                    for r in rows]
            assert keys == sorted(keys)
            for i, r in enumerate(rows):
                if r.follow_up_due:  # back at the top of its level: nothing of its level above it is not due
                    assert all(o.follow_up_due for o in rows[:i] if o.level == r.level)

    AlertMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None,
                                              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])
    return AlertMachine


def test_alert_state_machine(session, db_factory):
    if db_factory.name != "sqlite":
        pytest.skip("the state machine runs on SQLite; the same use-cases run on PostgreSQL in other tests")
    run_machine(session).TestCase().runTest()

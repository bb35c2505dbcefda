"""Property-based test of alert state through the real use-cases (issue 7): random interleavings of
raised rules, acknowledgements, resolutions, escalation ticks and clock moves.

Invariants after every step: at most one unresolved alert per patient and family; a resolved alert
never changes again; an alert's level never goes down while it is unresolved; no page goes out while an
alert is acknowledged (worse news reopens it, and then it may page again); only URGENT and
EMERGENCY alerts page anyone.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from recovery import alerting
from recovery.alerts import DISPOSITIONS
from recovery.models import Alert, AlertEvent, AlertStatus, OutboundMessage
from recovery.triage import Level
from tests.factories import enrol, make_clinic, make_staff

START = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
RULE_IDS = ["E1", "E2", "U16", "U1", "U3", "W3", "U8", "W1", "U7", "M1", "M2", "M5", "R1", "W9", "U21"]


def run_machine(session):
    class AlertMachine(RuleBasedStateMachine):
        @initialize()
        def setup(self):
            # Each example gets its own clinic and patient (audit rows cannot be deleted), and every
            # query below is scoped to them, so examples do not see each other.
            self.now = START
            clinic = make_clinic(session, now=START)
            self.nurse = make_staff(session, clinic, now=START)
            for pos in (1, 2):
                make_staff(session, clinic, on_call=pos, now=START)
            self.patient = enrol(session, clinic, procedure_end=START - timedelta(hours=30), now=START,
                                 sms_consent=False)
            session.commit()
            self.seen_levels: dict[int, int] = {}
            self.resolved: dict[int, tuple] = {}

        def _alerts(self):
            return session.scalars(sa.select(Alert).where(Alert.patient_id == self.patient.id)).all()

        @rule(rules=st.lists(st.sampled_from(RULE_IDS), min_size=1, max_size=3, unique=True))
        def raise_rules(self, rules):
            alerting.raise_rules(session, patient=self.patient, enrolment=None, rule_ids=rules, now=self.now)
            session.commit()

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

        @precondition(lambda self: any(a.status != AlertStatus.RESOLVED for a in self._alerts()))
        @rule(data=st.data(), disposition=st.sampled_from(sorted(DISPOSITIONS)))
        def resolve(self, data, disposition):
            alert = data.draw(st.sampled_from([a for a in self._alerts() if a.status != AlertStatus.RESOLVED]))
            alerting.resolve(session, alert, self.nurse, self.now, disposition)
            session.commit()
            self.resolved[alert.id] = (alert.level, tuple(alert.rules), alert.resolved_at)

        @precondition(lambda self: any(a.status == AlertStatus.RESOLVED for a in self._alerts()))
        @rule(data=st.data())
        def double_resolve_is_refused(self, data):
            alert = data.draw(st.sampled_from([a for a in self._alerts() if a.status == AlertStatus.RESOLVED]))
            with pytest.raises(alerting.AlertConflict):
                alerting.resolve(session, alert, self.nurse, self.now, "other")
            session.rollback()

        @invariant()
        def one_unresolved_alert_per_family(self):
            if not hasattr(self, "patient"):
                return
            families = [a.family for a in self._alerts() if a.status != AlertStatus.RESOLVED]
            assert len(families) == len(set(families))

        @invariant()
        def levels_never_go_down_and_resolved_alerts_stay_put(self):
            if not hasattr(self, "patient"):
                return
            for a in self._alerts():
                if a.status == AlertStatus.RESOLVED and a.id in self.resolved:
                    assert (a.level, tuple(a.rules), a.resolved_at) == self.resolved[a.id]
                level = int(Level[a.level])
                assert level >= self.seen_levels.get(a.id, 0)
                self.seen_levels[a.id] = level

        @invariant()
        def no_page_while_acknowledged_and_none_below_urgent(self):
            if not hasattr(self, "patient"):
                return
            self.__dict__.setdefault("ack_pages", {})
            for a in self._alerts():
                pages = session.scalar(sa.select(sa.func.count()).select_from(OutboundMessage)
                                       .where(OutboundMessage.alert_id == a.id))
                if a.status == AlertStatus.ACKNOWLEDGED:
                    # a reopened alert (worse news) may page again; an acknowledged one never
                    before = self.ack_pages.setdefault(a.id, pages)
                    assert pages == before, f"alert {a.id} paged while acknowledged"
                else:
                    self.ack_pages.pop(a.id, None)
                if pages:
                    assert a.level in ("URGENT", "EMERGENCY")

    AlertMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None,
                                              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])
    return AlertMachine


def test_alert_state_machine(session, db_factory):
    if db_factory.name != "sqlite":
        pytest.skip("the state machine runs on SQLite; the same use-cases run on PostgreSQL in other tests")
    run_machine(session).TestCase().runTest()

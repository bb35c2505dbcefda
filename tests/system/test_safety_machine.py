"""Runs the whole-system state machine of the safety path (tests/support/safety_machine.py; issue 10 item 2).

About a minute in `make test`; `SAFETY_MACHINE_EXAMPLES=500` (and `SAFETY_MACHINE_STEPS`) for a
longer run. A failing example is kept as a plain test in tests/system/test_safety_regressions.py.
"""
from __future__ import annotations

import time

import pytest

from tests.support.safety_machine import COUNTS, build


def test_safety_path_state_machine(db_factory, time_machine):
    if db_factory.name != "sqlite":
        pytest.skip("the safety machine runs on SQLite only: it builds a fresh database per example and drives one "
                    "request at a time, so PostgreSQL's locks change nothing it observes; the same routes and "
                    "use-cases run on PostgreSQL in the per-feature suites (test_checkin_web, test_hooks, "
                    "test_escalation, test_worklist, test_dispatch)")
    started = time.monotonic()
    build(db_factory, time_machine).TestCase().runTest()
    print(f"safety machine: {COUNTS['examples']} examples, {COUNTS['steps'] - COUNTS['examples']} steps "
          f"({COUNTS['peg']} PEG answers) in {time.monotonic() - started:.0f} s")

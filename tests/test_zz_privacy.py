"""Collected last: no log line of the whole run (in-process or subprocess) carried a canary value."""
from __future__ import annotations

from tests.privacy import COLLECTOR, scan_log_files


def test_no_phone_number_or_symptom_in_any_log_line():
    assert COLLECTOR.count > 0, "the log collector saw nothing: is it installed?"
    assert COLLECTOR.hits == [], "PHI in logs:\n" + "\n".join(COLLECTOR.hits[:20])
    leaks = scan_log_files()
    assert leaks == [], "PHI in process logs:\n" + "\n".join(leaks[:20])

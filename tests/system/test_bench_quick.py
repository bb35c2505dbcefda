"""`python -m bench web --quick --json` (issue 17): the shortened web bench runs (gunicorn, the
scheduler, wrk when installed, the in-process worklist) and prints one JSON object with every figure
the issue names, each a number. No timing is asserted: the figures depend on the machine."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_web import QUICK_KEYS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
LOAD_KEYS = {"checkin_get_cpu_ms", "today_get_cpu_ms", "bare_get_cpu_ms", "screen_post_cpu_ms", "submit_post_cpu_ms",
             "screen_post_p99_ms", "submit_post_p99_ms", "database_locked"}  # need wrk


def test_the_quick_web_bench_prints_every_figure_as_a_number():
    # under a minute on an idle machine (about 40 s on 2 cores); the limit leaves room for a busy one
    done = subprocess.run([sys.executable, "-m", "bench", "web", "--quick", "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)  # the progress went to stderr: stdout is the one object
    assert figures["quick"] is True
    wrk = shutil.which("wrk") is not None
    for key in QUICK_KEYS:
        assert key in figures, key
        if key in LOAD_KEYS and not wrk:
            assert figures[key] is None  # said so on stderr; the in-process figures still come
            continue
        value = figures[key]
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), (key, value)
        assert value >= 0, (key, value)
    assert figures["worklist_poll_unchanged_bytes"] > 0 and figures["worklist_page_server_ms"] > 0

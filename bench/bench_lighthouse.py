"""Lighthouse 12 (npm, pinned) in mobile mode against the patient's Today and check-in pages.

Starts the real app the way the browser tests do (tests/e2e/server.py: fresh SQLite, gunicorn with
2 workers, the scheduler), opens a seeded patient link with `requests` to get a signed-in cookie,
and hands that cookie to Lighthouse with --extra-headers. Mobile form factor and Lighthouse's
default (simulated slow 4G, 4x CPU) throttling; Debian's Chromium, headless.

Prints performance, accessibility and best-practices scores, the total transfer size and the
request count of each page's first load (Lighthouse starts with an empty cache), against the
targets: performance >= 95, accessibility 100, <= 60 KB, <= 6 requests. The JSON reports are kept
in bench-results/.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LIGHTHOUSE = REPO_ROOT / "node_modules" / ".bin" / "lighthouse"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROME_FLAGS = ("--headless --no-sandbox --disable-gpu --disable-background-networking "
                "--disable-component-update --disable-sync --no-first-run")
RESULTS = REPO_ROOT / "bench-results"
PATIENT = "Dora Day-Zero"  # day 0: every early restriction is on the Today page
TARGETS = {"performance": 95, "accessibility": 100, "kb": 60, "requests": 6}


@dataclass(frozen=True)
class PageResult:
    name: str
    url_path: str
    performance: int
    accessibility: int
    best_practices: int
    transfer_kb: float
    requests: int

    def misses(self) -> list[str]:
        out = []
        if self.performance < TARGETS["performance"]:
            out.append(f"performance {self.performance} < {TARGETS['performance']}")
        if self.accessibility < TARGETS["accessibility"]:
            out.append(f"accessibility {self.accessibility} < {TARGETS['accessibility']}")
        if self.transfer_kb > TARGETS["kb"]:
            out.append(f"{self.transfer_kb:.1f} KB > {TARGETS['kb']} KB")
        if self.requests > TARGETS["requests"]:
            out.append(f"{self.requests} requests > {TARGETS['requests']}")
        return out


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html)
    if not m:
        raise RuntimeError("no CSRF token on the page")
    return m.group(1)


def patient_cookie(link: str):
    """Open a patient link as a phone would (confirm page, then its button): a requests.Session
    holding the signed-in session cookie."""
    import requests

    s = requests.Session()
    confirm = s.get(link, timeout=10)
    confirm.raise_for_status()
    today = s.post(link, data={"csrf_token": _csrf(confirm.text)}, timeout=10)
    today.raise_for_status()
    if not today.url.endswith("/me"):
        raise RuntimeError(f"the link did not open Today (ended at {today.url})")
    return s


def pages_to_measure(base_url: str, s) -> list[tuple[str, str]]:
    """Today always; the check-in pages when the app has them (a 404 means not built yet)."""
    pages = [("Today", "/me")]
    if s.get(f"{base_url}/me/checkin", timeout=10).status_code == 200:
        pages.append(("Check-in start", "/me/checkin"))
        today = s.get(f"{base_url}/me", timeout=10)
        # "Report a symptom" starts a check-in; its first question page is what a patient fills in.
        step = s.post(f"{base_url}/me/checkin/report", data={"csrf_token": _csrf(today.text)}, timeout=10)
        if step.status_code == 200 and "/step/" in step.url:
            pages.append(("Check-in question", step.url.removeprefix(base_url)))
    return pages


def lighthouse(url: str, cookie_header: str, report: Path) -> dict:
    env = {**os.environ, "CHROME_PATH": CHROMIUM}
    argv = [str(LIGHTHOUSE), url, "--quiet", "--form-factor=mobile",
            "--only-categories=performance,accessibility,best-practices",
            f"--chrome-flags={CHROME_FLAGS}", "--output=json", f"--output-path={report}",
            "--extra-headers", json.dumps({"Cookie": cookie_header})]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not report.exists():
        raise RuntimeError(f"lighthouse exited {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(report.read_text())


def summarise(name: str, path: str, lhr: dict) -> PageResult:
    if lhr.get("runtimeError"):
        raise RuntimeError(f"lighthouse could not load {path}: {lhr['runtimeError']}")
    cats = lhr["categories"]
    audits = lhr["audits"]
    requests = audits["network-requests"]["details"]["items"]
    return PageResult(
        name=name, url_path=path,
        performance=round(cats["performance"]["score"] * 100),
        accessibility=round(cats["accessibility"]["score"] * 100),
        best_practices=round(cats["best-practices"]["score"] * 100),
        transfer_kb=audits["total-byte-weight"]["numericValue"] / 1024,
        requests=len(requests))


def _problem() -> str | None:
    if not LIGHTHOUSE.exists():
        return f"{LIGHTHOUSE} is missing: run `make node` (npm ci)"
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM}: run `make browser` (as root)"
    if shutil.which("node") is None:
        return "node is not on PATH"
    return None


def run() -> list[PageResult]:
    problem = _problem()
    if problem:
        print(f"lighthouse: skipped ({problem})")
        return []
    from tests.e2e.server import start_app

    RESULTS.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-lighthouse-"))
    app = start_app(workdir)
    results: list[PageResult] = []
    try:
        s = patient_cookie(app.link_for(PATIENT))
        pages = pages_to_measure(app.base_url, s)
        cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
        for name, path in pages:
            slug = re.sub(r"\W+", "-", name.lower()).strip("-")
            lhr = lighthouse(app.base_url + path, cookie, RESULTS / f"lighthouse-{slug}.json")
            results.append(summarise(name, path, lhr))
    finally:
        app.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"Lighthouse {_lighthouse_version()} (mobile, simulated throttling), Chromium at {CHROMIUM}")
    print(f"  {'page':18} {'perf':>4} {'a11y':>4} {'best':>4} {'KB':>7} {'requests':>8}  targets "
          f"(perf >= {TARGETS['performance']}, a11y {TARGETS['accessibility']}, <= {TARGETS['kb']} KB, "
          f"<= {TARGETS['requests']} requests)")
    for r in results:
        misses = r.misses()
        print(f"  {r.name:18} {r.performance:4d} {r.accessibility:4d} {r.best_practices:4d} "
              f"{r.transfer_kb:7.1f} {r.requests:8d}  {'met' if not misses else 'MISSED: ' + '; '.join(misses)}")
    print(f"  reports: {RESULTS}/lighthouse-*.json")
    return results


def _lighthouse_version() -> str:
    try:
        return json.loads((REPO_ROOT / "node_modules" / "lighthouse" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


if __name__ == "__main__":  # python bench/bench_lighthouse.py
    import sys
    sys.path.insert(0, str(REPO_ROOT))
    run()

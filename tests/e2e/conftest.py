"""Browser-test fixtures: the real app (gunicorn + scheduler) and one headless Chromium per session,
a fresh browser context per use.

    app_server                  RunningApp (tests/e2e/server.py): base_url, staff logins, link_for(name)
    browser                     Debian's Chromium, launched once
    open_context(kind, ...)     Browsing: a new context + page, closed after the test
                                kind "phone" (390x844, touch) or "desktop" (1280x800);
                                javascript=False for the no-JS flows; axe=True bypasses the CSP so
                                axe-core can be injected (tests/e2e/axe.py); storage_state to reuse
                                a signed-in nurse or patient
    nurse_state                 storage state of a nurse who signed in through the login form
    patient_state(name)         storage state of a demo patient who opened a fresh Today link
    screenshot(page, file)      writes docs/screenshots/<file>
    sign_in(b, login), open_patient_link(b, link)   the two ways in, through the real pages

For a check-in flow: `app_server.issue_link("Tom Two", purpose="checkin", slot="day2")`, then
`open_patient_link(open_context("phone"), link)`; a nurse watching the worklist in a second
context is `open_context("desktop", storage_state=nurse_state)`; `b.assert_clean()` at the end.

Under CI=true a missing Chromium fails the run; elsewhere the browser tests skip and say why.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e import axe
from tests.e2e.server import REPO_ROOT, AppStartError, RunningApp, start_app

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() == "true"
# The README's screenshots are refreshed on request (`UPDATE_SCREENSHOTS=1 make test`); an ordinary
# run writes them to a scratch folder, so running the tests never dirties the working tree.
SCREENSHOTS = (REPO_ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS")
               else Path(tempfile.gettempdir()) / "recovery-screenshots")
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}


def _unavailable(message: str):
    if IN_CI:
        pytest.fail(f"{message} (CI=true: browser tests are required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> Iterator[RunningApp]:
    from tests.support.privacy import log_dir
    # The logs go where the end-of-run privacy check scans them for the canary phone number.
    logs = Path(tempfile.mkdtemp(prefix="e2e-", dir=log_dir()))
    try:
        running = start_app(tmp_path_factory.mktemp("e2e-app"), logs_in=logs)
    except AppStartError as e:
        pytest.fail(f"the app did not start for the browser tests:\n{e}", pytrace=False)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def playwright_driver():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"Playwright for Python is not installed ({e}); run `make venv`")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_driver):
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium not found at {CHROMIUM}; `make browser` installs Debian's chromium (as root)")
    try:
        b = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except Exception as e:  # noqa: BLE001 - any launch failure means "no usable browser"
        _unavailable(f"Chromium at {CHROMIUM} did not start: {str(e).splitlines()[0]}")
    yield b
    b.close()


@dataclass
class Browsing:
    """One browser context with one page, and what it saw: every request URL and every console
    error, page error or CSP violation (which `assert_clean` turns into a failure)."""
    base_url: str
    context: object
    page: object
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def goto(self, path: str):
        return self.page.goto(self.base_url + path)

    def foreign_requests(self) -> list[str]:
        """Requests to anything but the app's own origin (data: URIs are inline, not fetched)."""
        return [u for u in self.requests if not (u.startswith(self.base_url + "/") or u.startswith("data:"))]

    def assert_clean(self) -> None:
        assert not self.problems, "the browser reported problems:\n" + "\n".join(self.problems)


@pytest.fixture
def open_context(browser, app_server) -> Iterator[Callable[..., Browsing]]:
    opened = []

    def factory(kind: str = "phone", *, javascript: bool = True, axe: bool = False,
                storage_state=None, **options) -> Browsing:
        settings = {**{"phone": PHONE, "desktop": DESKTOP}[kind], **options}
        ctx = browser.new_context(**settings, java_script_enabled=javascript, bypass_csp=axe,
                                  storage_state=storage_state, accept_downloads=True)
        ctx.set_default_timeout(10_000)
        opened.append(ctx)
        page = ctx.new_page()
        b = Browsing(app_server.base_url, ctx, page)
        page.on("request", lambda r: b.requests.append(r.url))
        page.on("console", lambda m: b.problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)  # CSP violations and failed loads are errors
        page.on("pageerror", lambda e: b.problems.append(f"page error: {e}"))
        return b

    yield factory
    for ctx in opened:
        ctx.close()


def sign_in(b: Browsing, login) -> None:
    """Sign in through the real form, as a nurse would."""
    b.goto("/login")
    b.page.get_by_label("Email").fill(login.email)
    b.page.get_by_label("Password").fill(login.password)
    with b.page.expect_navigation():
        b.page.get_by_role("button", name="Sign in").click()
    assert "/login" not in b.page.url, f"sign-in failed, still on {b.page.url}"


def open_patient_link(b: Browsing, link: str) -> None:
    """Open a text-message link: the confirm page, then its one button ("Open my recovery plan" or
    "Start my check-in"); a GET never uses the link up."""
    response = b.page.goto(link)
    assert response.status == 200, f"{link} answered {response.status}"
    with b.page.expect_navigation():
        b.page.get_by_role("button", name=re.compile(r"^(Open my recovery plan|Start my check-in)$")).click()


@pytest.fixture(scope="session")
def nurse_state(browser, app_server):
    ctx = browser.new_context(**DESKTOP)
    b = Browsing(app_server.base_url, ctx, ctx.new_page())
    sign_in(b, app_server.login("nurse"))
    state = ctx.storage_state()
    ctx.close()
    return state


@pytest.fixture(scope="session")
def patient_state(browser, app_server) -> Callable[[str], dict]:
    cache: dict[str, dict] = {}

    def state(name: str) -> dict:
        if name not in cache:
            ctx = browser.new_context(**PHONE)
            b = Browsing(app_server.base_url, ctx, ctx.new_page())
            open_patient_link(b, app_server.issue_link(name))
            assert b.page.url.endswith("/me"), b.page.url
            cache[name] = ctx.storage_state()
            ctx.close()
        return cache[name]
    return state


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    def take(page, filename: str, *, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / filename
        page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
        return path
    return take


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test carries the tail of the app's process logs."""
    report = yield
    if report.failed and "app_server" in getattr(item, "fixturenames", ()):
        running = item.funcargs.get("app_server")
        if running is not None:
            report.sections.append(("app process logs", running.logs()))
    return report


def pytest_terminal_summary(terminalreporter):
    text = axe.summary()
    if text:
        terminalreporter.section("axe-core accessibility")
        terminalreporter.write_line(text)

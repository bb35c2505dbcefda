"""The nurse's side at 1280x800: sign in, enrol a patient through the real form, see the timeline and
the patient's first texts; every nurse page accessible."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from recovery.web.forms import COMMON_ZONES
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import sign_in
from tests.support.privacy import CANARY_PHONE

pytestmark = pytest.mark.browser

SEND_WAIT_S = 20  # scheduler ticks every second; sending paces at 1 text per second per number


def daytime_zone(now: datetime) -> str:
    """A zone on the form's list where it is now 10:00-18:59, so the welcome text is not held back
    by the 21:00-08:00 quiet hours whenever the suite runs (the offsets on the list leave no gap
    as wide as the window)."""
    for zone in COMMON_ZONES:
        if 10 <= now.astimezone(ZoneInfo(zone)).hour < 19:
            return zone
    raise AssertionError(f"no zone on the enrolment form is in daytime at {now:%H:%M} UTC")


def national(e164: str) -> str:
    """+12025557731 -> (202) 555-7731, the way a US nurse types it."""
    digits = e164.removeprefix("+1")
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def texts_row(page, message_id: str):
    return page.locator("#texts").locator("xpath=following::table[1]").locator("tbody tr").filter(
        has=page.locator("td", has_text=re.compile(rf"^\s*{message_id}\s*$")))


def test_nurse_signs_in_enrols_a_patient_and_sees_the_first_texts(open_context, app_server, screenshot):
    b = open_context("desktop")
    page = b.page
    sign_in(b, app_server.login("nurse"))
    assert page.url == f"{app_server.base_url}/nurse/"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Enrol a patient").click()
    page.wait_for_url("**/nurse/patients/new")
    now = datetime.now(timezone.utc)
    zone = daytime_zone(now)
    local = now.astimezone(ZoneInfo(zone))
    page.get_by_label("First name").fill("Ivy")
    page.get_by_label("Last name").fill("Browser")
    page.get_by_label("Mobile number").fill(national(CANARY_PHONE))  # tests/support/privacy.py watches the logs for it
    page.get_by_label("Patient's time zone").select_option(zone)
    page.get_by_label("The patient agrees to receive recovery texts").check()
    page.get_by_label("Balloon kyphoplasty").check()
    page.get_by_label("Procedure ended at").fill((local - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Discharged at").fill((local - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Usual back pain").fill("7")
    page.get_by_label("Numbness or tingling in legs or feet").check()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "enrol.png")

    with page.expect_navigation():
        page.get_by_role("button", name="Enrol patient").click()
    assert re.fullmatch(rf"{re.escape(app_server.base_url)}/nurse/patients/\d+", page.url), page.url
    assert "Ivy Browser is enrolled." in page.locator(".flashes").inner_text()
    assert page.get_by_role("heading", level=1).inner_text() == "Ivy Browser"

    timeline = page.locator("#timeline").locator("xpath=following::table[1]")
    for mid in ("TL03", "TL16"):
        assert timeline.locator("td", has_text=re.compile(rf"^{mid}$")).count() == 1, mid
    # The first text, due at discharge, is in the outbox list, in the patient's words.
    welcome = texts_row(page, "S01")
    assert welcome.count() == 1
    assert "welcome home" in welcome.inner_text()
    if app_server.scheduler:
        # The scheduler process sends it; the page shows it sent after a reload.
        deadline = time.monotonic() + SEND_WAIT_S
        while not re.search(r"\b(sent|delivered)\b", texts_row(page, "S01").inner_text()):
            assert time.monotonic() < deadline, f"S01 not sent within {SEND_WAIT_S} s:\n{app_server.logs()}"
            time.sleep(0.5)
            page.reload()
        assert "Hi Ivy, welcome home" in texts_row(page, "S01").inner_text()
    page.evaluate("document.getElementById('texts').scrollIntoView()")
    screenshot(page, "patient-page.png")
    b.assert_clean()


def test_nurse_pages_have_no_serious_accessibility_violations(open_context, app_server, nurse_state):
    signed_out = open_context("desktop", axe=True)
    signed_out.goto("/login")
    assert_accessible(signed_out.page, "nurse: sign in")
    signed_out.page.get_by_label("Email").fill("nobody@demo.clinic")
    signed_out.page.get_by_label("Password").fill("not the password")
    signed_out.page.get_by_role("button", name="Sign in").click()
    signed_out.page.wait_for_load_state()
    assert "do not match" in signed_out.page.locator(".error").inner_text()
    assert_accessible(signed_out.page, "nurse: sign in (error)")

    b = open_context("desktop", axe=True, storage_state=nurse_state)
    page = b.page
    assert b.goto("/nurse/").status == 200
    assert_accessible(page, "nurse: worklist")
    assert b.goto("/nurse/patients").status == 200
    assert_accessible(page, "nurse: patients")
    assert b.goto("/nurse/patients/new").status == 200
    assert_accessible(page, "nurse: enrol form")
    with page.expect_navigation():
        page.get_by_role("button", name="Enrol patient").click()  # nothing filled in
    assert page.locator(".error-summary").is_visible()
    assert_accessible(page, "nurse: enrol form (422)")
    b.goto("/nurse/patients")
    with page.expect_navigation():
        page.get_by_role("link", name="Day-Zero, Dora").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Dora Day-Zero"
    assert_accessible(page, "nurse: patient page")


def test_every_enrol_form_control_has_a_label(open_context, nurse_state):
    """axe checks labels too; this says which control lacks one, by name."""
    b = open_context("desktop", storage_state=nurse_state)
    b.goto("/nurse/patients/new")
    unlabelled = b.page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label')
                      && !el.getAttribute('aria-labelledby'))
        .map(el => el.name || el.id)""")
    assert unlabelled == []

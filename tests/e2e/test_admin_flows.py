"""An admin runs the on-call ladder and the service hours from the browser: adds a phone rung,
moves it to the top, sends it a test page and watches the status change from queued to sent (htmx,
while the real scheduler sends it through the console backend), then sets service hours without
JavaScript. What it adds to the shared demo clinic it takes away again at the end."""
from __future__ import annotations

import pytest

from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.browser


def test_admin_adds_a_phone_rung_reorders_sends_a_test_page_and_sets_service_hours(open_context, app_server):
    admin = open_context("desktop")
    sign_in(admin, app_server.login("admin"))
    page = admin.page
    admin.goto("/admin")
    with page.expect_navigation():
        page.get_by_role("link", name="On-call ladder").click()
    rows_before = page.locator("tbody tr").count()
    page.get_by_label("Name").fill("Dr Night")
    page.get_by_label("Mobile number").fill("(202) 555-0148")
    with page.expect_navigation():
        page.locator("form", has_text="Add a phone number").get_by_role("button", name="Add to the ladder").click()
    assert "Dr Night added to the on-call ladder." in page.locator(".flashes").inner_text()
    assert page.locator("tbody tr").count() == rows_before + 1
    assert "Dr Night" in page.locator("tbody tr").last.inner_text()
    for _ in range(rows_before):  # up to rung 1
        with page.expect_navigation():
            page.get_by_role("button", name="Move up: Dr Night").click()
    first = page.locator("tbody tr").first.inner_text()
    assert first.startswith("1") and "Dr Night" in first and "+12025550148" in first

    with page.expect_navigation():
        page.get_by_role("button", name="Send a test page: Dr Night").click()
    assert "Test page to Dr Night" in page.locator("h1").inner_text()
    status = page.locator(".page-status")
    status.filter(has_text="sent").wait_for(timeout=15_000)  # htmx polls while the scheduler sends it
    admin.assert_clean()
    axe = open_context("desktop", axe=True, storage_state=admin.context.storage_state())
    axe.goto("/admin/on-call")
    assert_accessible(axe.page, "on-call ladder")

    # service hours, JavaScript off: a closing time before the opening time is refused, then saved
    plain = open_context("desktop", javascript=False, storage_state=admin.context.storage_state())
    plain.goto("/admin/clinic")
    p = plain.page
    p.get_by_label("Monday opens").fill("18:00")
    p.get_by_label("Monday closes").fill("08:00")
    with p.expect_navigation():
        p.get_by_role("button", name="Save settings").click()
    assert "closing time must be after opening time" in p.locator("#service-hours").inner_text()
    assert p.get_by_label("Monday opens").input_value() == "18:00"
    plain.problems.clear()  # the 422 it was meant to get
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
        p.get_by_label(f"{day} opens").fill("08:00")
        p.get_by_label(f"{day} closes").fill("18:00")
    with p.expect_navigation():
        p.get_by_role("button", name="Save settings").click()
    assert "Saved." in p.locator(".flashes").inner_text()
    assert p.get_by_label("Friday closes").input_value() == "18:00"
    plain.assert_clean()

    # leave the demo clinic as the other browser tests expect it: no service hours, no Dr Night
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
        p.get_by_label(f"{day} opens").fill("")
        p.get_by_label(f"{day} closes").fill("")
    with p.expect_navigation():
        p.get_by_role("button", name="Save settings").click()
    plain.goto("/admin/on-call")
    with p.expect_navigation():
        p.get_by_role("button", name="Remove: Dr Night").click()
    assert "Dr Night" not in p.locator("tbody").inner_text()

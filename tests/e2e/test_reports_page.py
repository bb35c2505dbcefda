"""The clinic dashboard in headless Chromium at 1280x800: the pain band chart renders as an image
with its text alternative, the page passes axe, works with JavaScript off and raises no CSP report."""
from __future__ import annotations

import pytest

from tests.e2e.axe import assert_accessible

pytestmark = pytest.mark.browser


def test_the_reports_page_renders_its_charts_accessibly_with_and_without_javascript(
        open_context, app_server, nurse_state, screenshot):
    b = open_context("desktop", axe=True, storage_state=nurse_state)
    page = b.page
    assert b.goto("/nurse/reports").status == 200
    chart = page.locator("svg#pain-band")
    assert chart.get_attribute("role") == "img"
    assert chart.bounding_box()["width"] > 300
    assert page.get_by_role("img", name="Back pain by recovery day").count() == 1
    assert page.get_by_role("heading", name="Check-in adherence").count() == 1
    assert_accessible(page, "nurse: clinic reports")
    assert b.goto("/nurse/reports?from=2026-03-10&to=2026-03-01").status == 422
    assert_accessible(page, "nurse: clinic reports, bad period")
    # the 422 itself is the one console message Chromium logs: anything else (a CSP report) fails
    b.problems = [p for p in b.problems if "status of 422" not in p]
    b.assert_clean()

    plain = open_context("desktop", javascript=False, storage_state=nurse_state)
    assert plain.goto("/nurse/reports").status == 200
    plain.page.get_by_role("button", name="Show").click()
    assert plain.page.locator("svg#pain-band").count() == 1
    with plain.page.expect_download() as download:
        plain.page.get_by_role("link", name="Download this table as CSV").first.click()
    assert download.value.suggested_filename.startswith("adherence_")
    screenshot(plain.page, "reports.png", full_page=True)
    plain.assert_clean()

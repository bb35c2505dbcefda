"""An admin invites a nurse in the browser, the nurse chooses her password through the link, signs
in, sets up two-step sign-in (the code computed here with pyotp, as her phone would), signs out and
in again with a code. JavaScript off, the way every page must work; a nurse of her own, so the
demo staff other browser tests use are left alone."""
from __future__ import annotations

import time

import pyotp
import pytest

from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.browser

EMAIL = "ines.invited@demo.clinic"
PASSWORD = "quiet harbour lamplight 9"


def _sign_in_with_password(b) -> None:
    b.goto("/login")
    b.page.get_by_label("Email").fill(EMAIL)
    b.page.get_by_label("Password").fill(PASSWORD)
    with b.page.expect_navigation():
        b.page.get_by_role("button", name="Sign in").click()


def test_admin_invites_a_nurse_who_sets_a_password_and_two_step_sign_in(open_context, app_server):
    admin = open_context("desktop", javascript=False)
    sign_in(admin, app_server.login("admin"))
    admin.goto("/admin")
    with admin.page.expect_navigation():
        admin.page.get_by_role("link", name="Staff").click()
    page = admin.page
    page.get_by_label("Name").fill("Ines Invited")
    page.get_by_label("Work email").fill(EMAIL)
    page.get_by_label("Nurse").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Invite").click()
    link = page.get_by_label("Set-password link").input_value()
    assert "/staff/password/" in link and "works once, for 72 hours" in page.locator("main").inner_text()
    admin.assert_clean()

    nurse = open_context("phone", javascript=False)
    nurse.page.goto(link)
    assert "Welcome, Ines Invited" in nurse.page.locator("h1").inner_text()
    nurse.page.get_by_label("New password").fill("password1234")
    nurse.page.get_by_label("The same password again").fill("password1234")
    with nurse.page.expect_navigation():
        nurse.page.get_by_role("button", name="Set password").click()
    assert "too easy to guess" in nurse.page.locator(".error-summary").inner_text()
    assert [p for p in nurse.problems if "422" not in p] == []  # the browser logs the 422 it was meant to get
    nurse.problems.clear()
    nurse.page.get_by_label("New password").fill(PASSWORD)
    nurse.page.get_by_label("The same password again").fill(PASSWORD)
    with nurse.page.expect_navigation():
        nurse.page.get_by_role("button", name="Set password").click()
    assert nurse.page.url.endswith("/login") and "Your password is set" in nurse.page.locator(".flashes").inner_text()

    _sign_in_with_password(nurse)
    assert nurse.page.url.endswith("/nurse/")
    with nurse.page.expect_navigation():
        nurse.page.get_by_role("link", name="Ines Invited").click()  # her account, from the header
    assert nurse.page.locator(".qr-code svg").count() == 1
    secret = nurse.page.locator("#totp-secret").inner_text()
    totp = pyotp.TOTP(secret)
    nurse.page.get_by_label("6-digit code").fill(totp.now())
    with nurse.page.expect_navigation():
        nurse.page.get_by_role("button", name="Confirm").click()
    assert "Two-step sign-in is set up" in nurse.page.locator(".flashes").inner_text()
    with nurse.page.expect_navigation():
        nurse.page.get_by_role("button", name="Sign out").click()

    _sign_in_with_password(nurse)
    assert nurse.page.url.endswith("/login/code")
    nurse.goto("/nurse/")  # half signed in opens nothing
    assert "/login" in nurse.page.url and "/login/code" not in nurse.page.url
    nurse.goto("/login/code")
    # the code of the next 30 s step: the current one was used to confirm, and is never taken twice
    nurse.page.get_by_label("6-digit code").fill(totp.at(time.time() + 30))
    with nurse.page.expect_navigation():
        nurse.page.get_by_role("button", name="Sign in").click()
    assert nurse.page.url.endswith("/nurse/")
    assert nurse.page.get_by_role("link", name="Worklist").count() == 1
    nurse.assert_clean()
    assert not nurse.foreign_requests() and not admin.foreign_requests()

    admin.goto("/admin/staff")
    row = admin.page.get_by_role("row", name="Ines Invited")
    assert "On" in row.inner_text() and "Never" not in row.inner_text()

    # the staff page and the set-up page pass axe (a context that lets axe-core in past the CSP)
    admin_axe = open_context("desktop", axe=True, storage_state=admin.context.storage_state())
    admin_axe.goto("/admin/staff")
    assert_accessible(admin_axe.page, "admin staff page")
    nurse_axe = open_context("phone", axe=True, storage_state=nurse.context.storage_state())
    nurse_axe.goto("/account/two-factor")
    assert_accessible(nurse_axe.page, "two-step sign-in set-up page")

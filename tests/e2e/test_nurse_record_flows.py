"""Issue 13's nurse part at 1280x800, with JavaScript on and off: a nurse finds a patient on the roster
by the last 4 digits of the mobile and by MRN (set through "Edit details…" first: the demo patients
have none), changes the mobile and sees it on the patient page, books a real follow-up appointment
(day, time, place) and sees it there and on the patient's Today page, texts a new link and sees it
listed with its status, downloads the PDF record. The follow-up form passes axe-core at 0 violations.

The patient: Luis Uno. Every demo patient is used by another browser test; his only other use is
test_spanish_flows.py's check-ins (day 1 and a symptom report, links issued straight into the
database), which neither his number nor a follow-up appointment changes. The new numbers
(+1 202 555 0193 / 0194) are no other demo patient's, staff member's or browser test's."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from recovery.services.phones import readable
from tests.e2e.axe import run_axe, table
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.browser

LUIS = "Luis Uno"
MRN = "RT-13-4471"
PLACE = "Spine clinic, 2nd floor"
SEND_WAIT_S = 20
STATUSES = {"planned", "claimed", "sent", "delivered"}
# (JavaScript, the new mobile, the appointment's time): each pass leaves its own traces
PASSES = [pytest.param(True, "+12025550193", "14:30", id="javascript"),
          pytest.param(False, "+12025550194", "10:15", id="no-javascript")]


def demo_patient(app_server, name: str) -> tuple[int, str, str]:
    """(id, current mobile, time zone) of a demo patient, read from the e2e database."""
    from recovery.store.db import db
    from recovery.store.models import Patient

    first, _, last = name.partition(" ")
    with app_server._app().app_context():
        p = db.session.scalar(sa.select(Patient).where(Patient.first_name == first, Patient.last_name == last))
        found = (p.id, p.mobile_e164, p.timezone)
        db.session.remove()
    return found


def national(e164: str) -> str:
    digits = e164.removeprefix("+1")
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def find_on_roster(b, query: str, javascript: bool):
    """Type in the roster's search box: with JavaScript the rows change in place (htmx), without it
    the Search button loads the page. Returns the one row link found."""
    page = b.page
    b.goto("/nurse/patients")
    page.evaluate("window.sameDocument = true")  # gone if the search reloads the page
    box = page.get_by_label("Find a patient by name, MRN, date of birth or the last digits of their mobile")
    if javascript:
        with page.expect_response(lambda r: "/nurse/patients?" in r.url and "q=" in r.url):
            box.fill(query)
        page.wait_for_url(re.compile(r"/nurse/patients\?q=" + re.escape(query) + "(&|$)"))  # hx-push-url, no reload
    else:
        box.fill(query)
        with page.expect_navigation():
            page.get_by_role("button", name="Search").click()
    assert page.evaluate("window.sameDocument === true") is javascript
    rows = page.locator("#patient-rows")
    expect(rows.locator("caption")).to_have_text(re.compile(r"^\s*1 patient\b"))
    link = rows.get_by_role("link", name="Uno, Luis")
    expect(link).to_have_count(1)
    return link


def open_from_roster(b, query: str, javascript: bool) -> None:
    link = find_on_roster(b, query, javascript)
    with b.page.expect_navigation():
        link.click()
    assert b.page.get_by_role("heading", level=1).inner_text() == LUIS


def details(page) -> dict[str, str]:
    dl = page.locator("dl.kv")
    return dict(zip(dl.locator("dt").all_inner_texts(), dl.locator("dd").all_inner_texts()))


def edit_details(page, fill: dict[str, str]) -> None:
    with page.expect_navigation():
        page.get_by_role("link", name="Edit details…").click()
    for label, value in fill.items():
        page.get_by_label(label, exact=True).fill(value)
    with page.expect_navigation():
        page.get_by_role("button", name="Save changes").click()
    assert re.search(r"/nurse/patients/\d+$", page.url), page.url


def link_rows(page):
    return page.locator("#texts").locator("xpath=following::table[1]").locator("tbody tr").filter(
        has=page.locator("td", has_text=re.compile(r"^\s*LINK\s*$")))


def spanish() -> dict[str, str]:
    from babel.messages.mofile import read_mo

    from recovery.web.i18n import TRANSLATIONS_DIR
    with open(TRANSLATIONS_DIR / "es" / "LC_MESSAGES" / "messages.mo", "rb") as f:
        return {m.id: m.string for m in read_mo(f) if isinstance(m.id, str) and m.id}


@pytest.mark.parametrize(("javascript", "new_mobile", "clock"), PASSES)
def test_nurse_finds_edits_books_a_followup_resends_a_link_and_downloads_the_record(
        open_context, app_server, javascript, new_mobile, clock):
    patient_id, mobile, zone = demo_patient(app_server, LUIS)
    assert new_mobile != mobile
    nurse = open_context("desktop", javascript=javascript)
    page = nurse.page
    sign_in(nurse, app_server.login("nurse"))

    # 1. the roster: by the last 4 digits of the mobile, then by MRN (set first when there is none)
    open_from_roster(nurse, mobile[-4:], javascript)
    assert page.url.endswith(f"/nurse/patients/{patient_id}")
    if details(page).get("MRN") != MRN:
        edit_details(page, {"Medical record number (optional)": MRN})
        assert "Saved: medical record number." in page.locator(".flashes").inner_text()
        assert details(page)["MRN"] == MRN
    open_from_roster(nurse, MRN, javascript)

    # 2. a new mobile, shown on the patient page
    edit_details(page, {"Mobile number": national(new_mobile)})
    assert "Saved: mobile number." in page.locator(".flashes").inner_text()
    assert readable(new_mobile) in details(page)["Mobile"]
    assert page.locator("dl.kv a.tel").first.get_attribute("href") == f"tel:{new_mobile}"

    # 3. a real follow-up appointment: day, time, place, in the patient's zone
    day = (datetime.now(timezone.utc).astimezone(ZoneInfo(zone)) + timedelta(days=40)).date()
    followup = page.locator("#followup")
    with page.expect_navigation():
        followup.get_by_role("link", name=re.compile(r"^(Book the appointment…|Change or clear…)$")).click()
    page.get_by_label("Day", exact=True).fill(day.isoformat())
    page.get_by_label("Time", exact=True).fill(clock)
    page.get_by_label("Place", exact=True).fill(PLACE)
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile(r"^(Book|Change) the appointment$")).click()
    assert page.url.endswith(f"/nurse/patients/{patient_id}"), page.url
    booked = f"{day:%a %-d %b %Y}, {clock}"
    assert f"Follow-up appointment {booked}, {PLACE}." in page.locator(".flashes").inner_text()
    assert f"{booked}, {PLACE}" in followup.inner_text()
    tl16 = page.locator("#timeline").locator("xpath=following::table[1]").locator("tbody tr").filter(
        has=page.locator("td", has_text=re.compile(r"^\s*TL16\s*$")))
    assert f"booked: {PLACE}" in tl16.inner_text()

    # 4. a new link by text: listed with its status (sent by the scheduler, outside quiet hours)
    before = link_rows(page).count()
    with page.expect_navigation():
        page.get_by_role("button", name="Text a new link").click()
    assert "A new link is on its way" in page.locator(".flashes").inner_text()
    rows = link_rows(page)
    assert rows.count() == before + 1
    status = rows.last.locator("td").nth(3).inner_text().split()[0]
    assert status in STATUSES, rows.last.inner_text()
    if app_server.scheduler and 9 <= datetime.now(ZoneInfo(zone)).hour < 20:
        deadline = time.monotonic() + SEND_WAIT_S
        while status not in ("sent", "delivered"):
            assert time.monotonic() < deadline, f"the link was not sent within {SEND_WAIT_S} s:\n{app_server.logs()}"
            time.sleep(0.5)
            page.reload()
            status = link_rows(page).last.locator("td").nth(3).inner_text().split()[0]
        # to the new number (the logs show a number's last 4 digits only)
        assert re.search(rf"sent LINK \(row \d+\) to \+1\W*{new_mobile[-4:]}\b", app_server.logs(2000)), \
            "no 'sent LINK' to the new number in the scheduler's log"

    # 5. the PDF record
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("link", name="Download PDF").click()
    assert download.value.suggested_filename.endswith(".pdf")
    with open(download.value.path(), "rb") as f:
        assert f.read(5) == b"%PDF-"
    nurse.assert_clean()

    # the patient's Today page (he reads Spanish) shows the appointment's time and place
    es = spanish()
    patient = open_context("phone", javascript=javascript)
    assert patient.page.goto(app_server.issue_link(LUIS)).status == 200
    with patient.page.expect_navigation():
        patient.page.get_by_role("button", name=es["Open my recovery plan"]).click()
    card = patient.page.locator(".followup")
    assert card.get_by_role("heading", name=es["Your follow-up appointment"]).count() == 1
    text = card.inner_text()
    assert clock in text and es["Where: %(place)s"] % {"place": PLACE} in text, text
    patient.assert_clean()


def test_the_followup_form_has_no_accessibility_violations(open_context, app_server, nurse_state):
    patient_id, _, _ = demo_patient(app_server, LUIS)
    b = open_context("desktop", axe=True, storage_state=nurse_state)
    assert b.goto(f"/nurse/patients/{patient_id}/followup").status == 200
    found = run_axe(b.page, "nurse: follow-up form")
    assert found == [], f"axe on the follow-up form:\n{table(found)}"
    for label in ("Day", "Time", "Place"):  # nothing filled in (a booked one is shown filled)
        b.page.get_by_label(label, exact=True).fill("")
    with b.page.expect_navigation():
        b.page.get_by_role("button", name=re.compile(r"^(Book|Change) the appointment$")).click()
    assert b.page.locator(".error-summary").is_visible()
    found = run_axe(b.page, "nurse: follow-up form (422)")
    assert found == [], f"axe on the follow-up form (422):\n{table(found)}"

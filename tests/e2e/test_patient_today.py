"""The patient's side in a phone-sized Chromium: open the link from a text, see Today with its
countdowns in natural times, the call buttons on the first screen, finished items in a short
"done" list, save the dates to a calendar; with and without JavaScript; accessible and
self-contained."""
from __future__ import annotations

import re
from pathlib import Path
from datetime import date, datetime, timedelta

import pytest
from icalendar import Calendar

from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import open_patient_link

pytestmark = pytest.mark.browser

DORA = "Dora Day-Zero"  # seeded 3 hours after her procedure: every early restriction applies
FRED = "Fred Forty"  # day 40: most of the plan is done; the day-35 check-in is past its window
DEMO = ["Dora Day-Zero", "Tom Two", "Tessa Ten", FRED]
MIN_TARGET_PX = 44
PHONE_HEIGHT = 844
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# "Thursday 3 Dec, about 11 am", "Monday 9 Mar, 9:30 am", "Saturday 18 Apr"
NATURAL = re.compile(r"[A-Z][a-z]+day \d{1,2} [A-Z][a-z]{2}( \d{4})?"
                     r"(, (about )?(\d{1,2}(:30)? [ap]m|noon|midnight))?")


def as_shown(value: date | datetime) -> str:
    """A calendar value the way the Today page writes it, read independently of the app: the
    date, and for a time the next half hour at or after it ("about" when moved), so that a
    restriction never reads as ending earlier than it does: 13:12 -> "Friday 27 Nov, about 1:30 pm"."""
    if not isinstance(value, datetime):
        return f"{_DAYS[value.weekday()]} {value.day} {_MONTHS[value.month - 1]}"
    exact = value.minute in (0, 30) and value.second == 0
    if not exact:
        value = value.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=30 if value.minute < 30 else 60)
    day = value - timedelta(days=1) if (value.hour, value.minute) == (0, 0) else value
    when = f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}"
    if (value.hour, value.minute) == (0, 0):
        clock = "midnight"
    elif (value.hour, value.minute) == (12, 0):
        clock = "noon"
    else:
        clock = f"{value.hour % 12 or 12}{value.strftime(':%M') if value.minute else ''} {'am' if value.hour < 12 else 'pm'}"
    return f"{when}, {'' if exact else 'about '}{clock}"


def countdowns(page) -> dict[str, tuple[str, str]]:
    """{"No driving or public transport": ("Friday 27 Nov, about 1:30 pm", "1 day 21 hours left"), ...}"""
    out = {}
    for card in page.locator(".restriction").all():
        until = card.locator(".countdown").inner_text().strip()
        what, sep, when = until.partition(" until ")
        assert sep, f"a countdown without 'until': {until!r}"
        out[what] = (re.sub(r" \d{4}(?=,|$)", "", when), card.locator(".remaining").inner_text().strip())
    return out


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_patient_opens_the_link_sees_today_and_saves_the_calendar(open_context, app_server, screenshot,
                                                                    javascript):
    b = open_context("phone", javascript=javascript)
    page = b.page
    link = app_server.link_for(DORA)

    response = page.goto(link)
    assert response.status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "Your recovery plan"
    with page.expect_navigation():
        page.get_by_role("button", name="Open my recovery plan").click()
    assert page.url == f"{app_server.base_url}/me"

    assert page.get_by_role("heading", level=1).inner_text() == "Hello Dora"
    assert page.locator(".dayline").inner_text() == "Day of your procedure"
    shown = countdowns(page)
    assert "No driving or public transport" in shown, shown
    for what, (when, left) in shown.items():
        assert NATURAL.fullmatch(when), (what, when)
        assert re.fullmatch(r"(\d+ (day|hour|minute)s?)( \d+ (hour|minute)s?)? left", left), (what, left)
    driving_left = shown["No driving or public transport"][1]
    assert re.fullmatch(r"1 day \d+ hours? left|1 day left|2 days left", driving_left), driving_left  # 48 h minus ~3 h
    follow_up = page.get_by_text("Follow-up visit:").locator("strong").inner_text()
    if javascript:
        screenshot(page, "today.png")

    with page.expect_download() as dl:
        page.get_by_role("link", name="Add the dates to my calendar").click()
    download = dl.value
    assert download.suggested_filename == "recovery-plan.ics"
    cal = Calendar.from_ical(Path(download.path()).read_bytes())
    events = {str(e["summary"]): e.decoded("dtstart") for e in cal.walk("VEVENT")}
    # Every countdown on the page is an event at the same local time in the file (as the page
    # rounds it: to the half hour at or after it).
    for what, (when, _) in shown.items():
        assert f"{what}: ends" in events, (what, sorted(events))
        assert as_shown(events[f"{what}: ends"]) == when, what
    # The standard plan: driving ends 48 hours after the procedure; the follow-up is on day 42.
    driving_end = events["No driving or public transport: ends"]
    procedure_end = driving_end - timedelta(hours=48)
    assert events["Follow-up visit"] == procedure_end.date() + timedelta(days=42)
    assert as_shown(events["Follow-up visit"]) == re.sub(r" \d{4}$", "", follow_up)

    assert b.foreign_requests() == [], "patient pages must load nothing from another origin"
    assert any("/static/app.css?v=" in u for u in b.requests)
    if javascript:
        assert any("/static/vendor/htmx" in u for u in b.requests)  # CSP allowed our own script
    b.assert_clean()

    # The link worked once. Tapped again in this browser, still signed in: Today again.
    assert page.goto(link).status == 200 and page.url == f"{app_server.base_url}/me"
    assert page.get_by_role("heading", level=1).inner_text() == "Hello Dora"
    # Anywhere else it explains, and offers nothing to press.
    other = open_context("phone", javascript=javascript)
    assert other.page.goto(link).status == 410
    assert "already been used" in other.page.get_by_role("heading", level=1).inner_text()
    assert other.page.get_by_role("button").count() == 0
    b.assert_clean()


def test_patient_pages_have_no_serious_accessibility_violations(open_context, app_server):
    b = open_context("phone", axe=True)
    page = b.page
    page.goto(app_server.issue_link(DORA))
    assert_accessible(page, "patient: link confirm")
    with page.expect_navigation():
        page.get_by_role("button", name="Open my recovery plan").click()
    page.locator("details summary").first.click()  # the whole plan, opened
    assert_accessible(page, "patient: Today")
    fred = open_context("phone", axe=True)
    open_patient_link(fred, app_server.issue_link(FRED))
    assert fred.page.locator("#done-h").is_visible()
    assert_accessible(fred.page, "patient: Today on day 40 (done list)")
    fred.goto("/me/checkin")
    assert_accessible(fred.page, "patient: check-in start, none due")
    assert page.goto(f"{app_server.base_url}/l/not-a-real-link").status == 404
    assert_accessible(page, "patient: link not working")
    page.goto(f"{app_server.base_url}/signed-out")
    assert_accessible(page, "patient: signed out")


_TARGETS_JS = """() => {
  const out = [];
  const seen = new Set();
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary, label.choice')) {
    const target = el.closest('label.choice') || el;   // a radio or tick box is tapped through its label
    if (seen.has(target)) continue;
    seen.add(target);
    let r = target.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;       // not rendered (closed <details>)
    if (r.right <= 0 || r.bottom <= 0) {                 // off-screen until focused (skip link)
      target.focus(); r = target.getBoundingClientRect(); target.blur();
    }
    out.push({what: target.outerHTML.slice(0, 90), width: Math.round(r.width), height: Math.round(r.height)});
  }
  return out;
}"""


def small_targets(page) -> list[dict]:
    targets = page.evaluate(_TARGETS_JS)
    assert targets, "no tap targets measured: the selector found nothing"
    return [t for t in targets if t["width"] < MIN_TARGET_PX or t["height"] < MIN_TARGET_PX]


def test_patient_tap_targets_are_at_least_44_px(open_context, app_server, patient_state):
    b = open_context("phone")
    b.page.goto(app_server.issue_link(DORA))
    assert small_targets(b.page) == [], "link confirm page"
    b2 = open_context("phone", storage_state=patient_state(DORA))
    b2.goto("/me")
    b2.page.locator("details summary").first.click()
    assert small_targets(b2.page) == [], "Today"
    b.assert_clean()
    b2.assert_clean()


_ENLARGE_TEXT_JS = """() => {
  const root = document.documentElement;
  const before = parseFloat(getComputedStyle(document.querySelector('h1')).fontSize);
  root.style.fontSize = (2 * parseFloat(getComputedStyle(root).fontSize)) + 'px';
  const after = parseFloat(getComputedStyle(document.querySelector('h1')).fontSize);
  return {before, after, scrollWidth: root.scrollWidth, clientWidth: root.clientWidth};
}"""


@pytest.mark.parametrize("width", [390, 320])
def test_patient_text_enlarged_to_200_percent_still_fits(open_context, app_server, patient_state, width):
    """WCAG 1.4.4 / 1.4.10: twice the text size on a phone, nothing scrolls sideways or is cut off."""
    b = open_context("phone", viewport={"width": width, "height": 800},
                     storage_state=patient_state(DORA))
    for path in ("/me", "/signed-out"):
        b.goto(path)
        if path == "/me":
            b.page.locator("details summary").first.click()
        m = b.page.evaluate(_ENLARGE_TEXT_JS)
        assert m["after"] == pytest.approx(2 * m["before"]), m  # the text really doubled
        assert m["scrollWidth"] <= m["clientWidth"], f"{path} at {width} px overflows sideways: {m}"
    b.assert_clean()


_ABOVE_FOLD_JS = """() => [...document.querySelectorAll('main a[href^="tel:"]')].map(a => {
  const r = a.getBoundingClientRect();
  return {text: a.innerText.trim(), top: r.top + window.scrollY, bottom: r.bottom + window.scrollY};
})"""


@pytest.mark.parametrize("name", DEMO)
def test_the_call_buttons_are_on_the_first_screen_and_times_read_naturally(open_context, app_server,
                                                                          patient_state, name):
    """390x844: both call buttons are whole on the first screen without scrolling, and every time
    on Today reads naturally ("Thursday 3 Dec, about 11 am", never "10:48")."""
    b = open_context("phone", storage_state=patient_state(name))
    page = b.page
    assert b.goto("/me").status == 200
    calls = page.evaluate(_ABOVE_FOLD_JS)
    assert [c["text"].split(":")[0] for c in calls] == ["Call your care team", "Emergency"], calls
    for c in calls:
        assert c["bottom"] <= PHONE_HEIGHT, f"{name}: {c['text']!r} ends at {c['bottom']} px, below the first screen"
    page.locator("details summary").first.click()
    text = page.locator("main").inner_text()
    assert not re.search(r"\b\d{1,2}:\d\d\b(?! [ap]m)", text), re.findall(r".{30}\d{1,2}:\d\d.{10}", text)
    times = [t.inner_text() for t in page.locator(".countdown, .upcoming strong, .milestones strong").all()]
    for t in times:
        when = t.split(" until ")[-1]
        assert when == "Now" or NATURAL.fullmatch(when), (name, t)
    assert times
    b.assert_clean()


def test_day_40_shows_finished_items_in_a_short_done_list_and_no_old_checkin(open_context, app_server,
                                                                            patient_state):
    b = open_context("phone", storage_state=patient_state(FRED))
    page = b.page
    b.goto("/me")
    assert page.locator(".dayline").inner_text() == "Day 40 of your recovery"
    now = page.locator("section", has=page.locator("#now-h"))
    assert "No driving" not in now.inner_text()
    done = page.locator("section", has=page.locator("#done-h")).locator("li")
    titles = [t.inner_text() for t in done.all()]
    assert any(t.startswith("✓ No driving and no buses or trains (ended ") for t in titles), titles
    assert any("No shower for the first 2 days" in t for t in titles), titles
    assert len(titles) <= 12
    assert "Do not shower for the first 2 days" not in page.content()  # the finished advice is gone
    # no check-in is due on day 40 (day 35's closed on day 37): the report, and when the next one is
    offer = page.locator(".checkin-actions")
    assert offer.get_by_role("heading", level=2).inner_text() == "No check-in is due now"
    assert NATURAL.fullmatch(offer.locator(".next-checkin strong").inner_text())
    assert offer.get_by_role("button", name="Report a symptom").is_visible()
    assert offer.get_by_role("button", name="Start my check-in").count() == 0
    b.goto("/me/checkin")
    assert page.get_by_role("heading", level=1).inner_text() == "No check-in is due now"
    assert "day 35" not in page.locator("main").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Report a symptom").click()
    assert re.search(r"/step/cardioresp$", page.url), page.url
    b.assert_clean()

"""A patient who reads Spanish (issue 14), in a phone-sized Chromium: Today, an ordinary check-in
(JavaScript on) and the emergency screen (JavaScript off) in Spanish, `lang="es"`, axe-core at 0
violations on each kind of page. Rosa Dos (day 2, seeded with language "es") does the day-2
check-in and a symptom report; Luis Uno (day 1, Spanish) does the same the other way round (the
whole check-in without JavaScript, the emergency with it); no other test uses them."""
from __future__ import annotations

import re

import pytest
from babel.messages.mofile import read_mo

from recovery.web.i18n import TRANSLATIONS_DIR
from tests.e2e.axe import run_axe, table
from tests.e2e.test_checkin_flows import CHEST_PAIN, ORDINARY, answer_screen, asked_items, press

pytestmark = pytest.mark.browser
ROSA = "Rosa Dos"
LUIS = "Luis Uno"


def spanish() -> dict[str, str]:
    with open(TRANSLATIONS_DIR / "es" / "LC_MESSAGES" / "messages.mo", "rb") as f:
        return {m.id: m.string for m in read_mo(f) if isinstance(m.id, str) and m.id}


def open_patient_link(b, link: str) -> None:
    """The link page is in the link's patient's language already: its button in Spanish."""
    response = b.page.goto(link)
    assert response.status == 200 and b.page.locator("html").get_attribute("lang") == "es"
    with b.page.expect_navigation():
        b.page.get_by_role("button", name=re.compile(r"^(Abrir mi plan de recuperación|Empezar mi control)$")).click()


def no_violations(open_context, signed_in, url: str, name: str) -> None:
    checker = open_context("phone", axe=True, storage_state=signed_in.context.storage_state())
    assert checker.page.goto(url).status == 200
    assert checker.page.locator("html").get_attribute("lang") == "es"
    found = run_axe(checker.page, name)
    assert found == [], f"axe on {name}:\n{table(found)}"


def test_a_spanish_patient_reads_today_does_a_checkin_and_sees_the_emergency_screen_in_spanish(
        open_context, app_server):
    es = spanish()
    b = open_context("phone", javascript=True)
    page = b.page
    open_patient_link(b, app_server.issue_link(ROSA))
    assert page.locator("html").get_attribute("lang") == "es"
    assert page.get_by_role("heading", level=1).inner_text() == "Hola, Rosa"
    assert "Día 2 de su recuperación" in page.locator("main").inner_text()
    assert page.get_by_role("button", name="English").is_visible()  # the switch at the top
    no_violations(open_context, b, page.url, "patient (es): Today")

    # the day-2 check-in, every screen in Spanish, with JavaScript
    open_patient_link(b, app_server.issue_link(ROSA, purpose="checkin", slot="day2"))
    assert page.get_by_role("heading", level=1).inner_text() == es[
        "Do you have any of these right now or since your last check-in?"]
    no_violations(open_context, b, page.url, "patient (es): a check-in screen")
    # the same answers as the English flows, as a Spanish reader taps them (numbers stay numbers)
    answers = {k: ([es[x] for x in v] if isinstance(v, list) else v if k == "free_text" else es.get(v, v))
               for k, v in ORDINARY.items()}
    for _ in range(30):
        if "/review" in page.url:
            break
        assert "/step/" in page.url, page.url
        given = answer_screen(page, answers)
        assert set(asked_items(page)) - set(given) <= {"free_text"}, page.url
        assert press(page, "Siguiente").status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "Revise sus respuestas"
    no_violations(open_context, b, page.url, "patient (es): review")
    assert press(page, "Enviar mi control").status == 200
    assert page.locator(".outcome-message").inner_text() == es[
        "Thank you, your check-in is saved. If anything changes, check in again."]
    no_violations(open_context, b, page.url, "patient (es): check-in sent")
    b.assert_clean()

    # a symptom report with chest pain, without JavaScript: the emergency screen, in Spanish
    e = open_context("phone", javascript=False)
    open_patient_link(e, app_server.issue_link(ROSA, purpose="checkin"))
    answer_screen(e.page, {"cardioresp": [es[CHEST_PAIN]]})
    assert press(e.page, "Siguiente").status == 200
    assert re.search(r"/me/checkin/\d+/emergency$", e.page.url), e.page.url
    assert e.page.get_by_role("heading", level=1).inner_text() == \
        "Llame al 911 ahora. No maneje usted mismo. Ya se avisó a su equipo de atención."
    assert e.page.get_by_role("link", name="Llame al 911", exact=True).get_attribute("href") == "tel:911"
    no_violations(open_context, e, e.page.url, "patient (es): emergency")
    e.assert_clean()


def test_the_same_in_spanish_the_other_way_round_a_whole_checkin_without_javascript_the_emergency_with_it(
        open_context, app_server):
    """Issue 14's "with JavaScript on and off": each flow both ways (the test above does the check-in
    with JavaScript and the emergency without)."""
    es = spanish()
    answers = {k: ([es[x] for x in v] if isinstance(v, list) else v if k == "free_text" else es.get(v, v))
               for k, v in ORDINARY.items()}
    n = open_context("phone", javascript=False)
    open_patient_link(n, app_server.issue_link(LUIS, purpose="checkin", slot="day1"))
    page = n.page
    for _ in range(30):
        if "/review" in page.url:
            break
        assert "/step/" in page.url, page.url
        assert page.locator("html").get_attribute("lang") == "es"
        given = answer_screen(page, answers)
        assert set(asked_items(page)) - set(given) <= {"free_text"}, page.url
        assert press(page, "Siguiente").status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "Revise sus respuestas"
    assert press(page, "Enviar mi control").status == 200
    assert page.locator(".outcome-message").inner_text() == es[
        "Thank you, your check-in is saved. If anything changes, check in again."]
    n.assert_clean()

    j = open_context("phone", javascript=True)
    open_patient_link(j, app_server.issue_link(LUIS, purpose="checkin"))
    answer_screen(j.page, {"cardioresp": [es[CHEST_PAIN]]})
    # with JavaScript the tick alone is scored (MR2): the emergency screen comes before "Siguiente"
    j.page.wait_for_url(re.compile(r"/me/checkin/\d+/emergency$"), timeout=10_000)
    assert j.page.get_by_role("heading", level=1).inner_text() == \
        "Llame al 911 ahora. No maneje usted mismo. Ya se avisó a su equipo de atención."
    no_violations(open_context, j, j.page.url, "patient (es): emergency, JavaScript on")
    j.assert_clean()

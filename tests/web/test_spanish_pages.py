"""A Spanish-speaking patient (issue 14): every patient page they reach, from the link to the
emergency screen, is in Spanish (`lang="es"`, Babel's dates, no English string of the catalog left),
their choice at the top of the page is stored and audited, and staff pages stay in English."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from recovery.store.models import AuditEvent, OutboundMessage, OutboxStatus, Patient
from recovery.web.i18n import TRANSLATIONS_DIR
from tests.support.factories import enrol, make_clinic, make_staff, open_link, patient_link
from tests.web.test_checkin_web import NOW, checkin_client, follow, location, post_step, start_slot, today_client, walk
from tests.web.test_patient_pages import text_of


def english_left(page_text: str) -> list[str]:
    """Catalog strings (their longest literal part) whose English is on the page untranslated."""
    from babel.messages.mofile import read_mo
    with open(TRANSLATIONS_DIR / "es" / "LC_MESSAGES" / "messages.mo", "rb") as f:
        catalog = read_mo(f)
    left = []
    for m in catalog:
        msgid = m.id[0] if isinstance(m.id, (tuple, list)) else m.id
        if not msgid or msgid == (m.string[0] if isinstance(m.string, (tuple, list)) else m.string):
            continue
        fragment = max(re.split(r"%\(\w+\)s|\{\w+\}|%%", msgid), key=len).strip(" .,:()")
        if len(fragment) >= 4 and re.search(rf"(?<!\w){re.escape(fragment)}(?!\w)", page_text):
            left.append(msgid)
    return left


@pytest.fixture
def rosa(session, frozen):
    frozen.move_to(NOW)
    clinic = make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, on_call=1, now=NOW)
    patient = enrol(session, clinic, procedure_end=NOW - timedelta(hours=30), now=NOW, baseline_back_pain=5,
                    first="Rosa", language="es")
    session.commit()
    return clinic, nurse, patient


def assert_spanish(response, *, status=200):
    assert response.status_code == status, response.data[:500]
    assert '<html lang="es">' in response.data.decode()
    words = text_of(response)
    assert english_left(words) == [], words
    return words


def test_a_spanish_patient_reads_today_a_whole_checkin_and_the_emergency_screen_in_spanish(client, session, rosa):
    clinic, nurse, patient = rosa
    checkin_client(client, session, patient)
    cid, first = start_slot(client)
    words = assert_spanish(client.get(f"/me/checkin/{cid}/step/{first}"))
    assert "¿Tiene alguno de estos ahora o desde su último control?" in words and "Paso 1 de" in words
    # a bad answer re-renders in Spanish, the error included
    r = post_step(client, cid, first, {})
    assert "Marque al menos una respuesta. Si ninguna aplica, marque “Ninguno de estos”." in assert_spanish(r, status=422)
    review = follow(client, walk(client, cid))
    words = assert_spanish(review)
    assert "Revise sus respuestas" in words and "4 de 10" in words
    done = follow(client, client.post(f"/me/checkin/{cid}/review"))
    assert "Gracias, su control quedó guardado." in assert_spanish(done)
    words = assert_spanish(client.get("/me"))
    assert "Hola, Rosa" in words and "Día 1 de su recuperación" in words
    assert re.search(r"(lunes|martes|miércoles|jueves|viernes|sábado|domingo), \d+ de \w+", words), words

    # a symptom report with an emergency answer: the emergency screen, in Spanish
    r = follow(client, client.post("/me/checkin/report"))
    cid2 = int(re.search(r"/me/checkin/(\d+)/", r.request.path).group(1))
    r = post_step(client, cid2, "cardioresp", {"cardioresp": ["chest_pain"]})
    words = assert_spanish(follow(client, r))
    assert f"Llame al {clinic.emergency_number} ahora" in words

    # an error page reached from a patient page
    assert_spanish(client.get("/me/checkin/999999"), status=404)


def test_the_patient_switches_language_stored_and_audited_and_staff_pages_stay_english(client, session, rosa):
    clinic, nurse, patient = rosa
    planned = sa.select(OutboundMessage).where(OutboundMessage.patient_id == patient.id,
                                               OutboundMessage.status == OutboxStatus.PLANNED,
                                               OutboundMessage.message_id == "S13")
    assert session.scalars(planned).one().text_template.startswith("{first}, la mayoría ya hace")
    today_client(client, session, patient)
    page = client.get("/me").data.decode()
    assert 'name="language" value="en"' in page and 'aria-current="true">Español' in page
    r = client.post("/me/language", data={"language": "en", "next": "/me"})
    assert r.status_code == 303 and location(r).endswith("/me")
    assert '<html lang="en">' in client.get("/me").data.decode()
    session.expire_all()
    assert session.get(Patient, patient.id).language == "en"
    event = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "patient_language")).one()
    assert event.actor_type == "patient" and event.detail["changes"]["language"] == {"old": "es", "new": "en"}
    # the texts still planned now go in English
    assert session.scalars(planned).one().text_template.startswith("{first}, most people are back")
    assert event.detail["texts_retranslated"] > 0
    # an unknown language and an off-site `next` change nothing and go nowhere else
    r = client.post("/me/language", data={"language": "xx", "next": "//evil.example/"})
    assert location(r).endswith("/me") and session.get(Patient, patient.id).language == "en"


def test_a_used_link_new_link_page_and_its_phone_errors_stay_in_the_links_language(app, client, session, rosa):
    """Nobody is signed in on these pages: the language comes from the link's patient, then is
    carried by the "Text me a new link" address (`lang=es`), never from the browser."""
    clinic, nurse, patient = rosa
    token = patient_link(session, patient, purpose="today", now=NOW)
    session.commit()
    assert open_link(client, token).status_code == 303
    with app.test_client() as other:  # the same text tapped on another phone: the link is used
        r = other.get(f"/l/{token}")
        words = assert_spanish(r, status=410)
        href = re.search(r'href="([^"]*new-link[^"]*)"', r.data.decode()).group(1)
        assert "lang=es" in href, href
        assert_spanish(other.get(href.replace("&amp;", "&")))
        for raw, spanish in (("", "Escriba un número de teléfono"), ("12", "no es válido"),
                             ("+1 202 555 1", "no es válido"), ("+1 800 555 0100", "teléfono fijo")):
            r = other.post(href, data={"mobile": raw})
            assert spanish in assert_spanish(r, status=422), raw
            assert f'value="{raw}"' in r.data.decode()  # what they typed is kept
        assert "mensaje" in assert_spanish(other.post(href, data={"mobile": "+1 202 555 0143"}))
        # an unknown or missing lang is English, as before
        assert '<html lang="en">' in other.get("/new-link?lang=xx").data.decode()
        assert '<html lang="en">' in other.get("/new-link").data.decode()
    assert words


def test_signing_out_and_a_stale_form_are_explained_in_spanish(app, client, session, rosa):
    clinic, nurse, patient = rosa
    today_client(client, session, patient)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        # a form posted without its token (left open too long, or forged): a calm page, in Spanish
        r = client.post("/me/language", data={"language": "en", "next": "/me"})
        assert "demasiado tiempo" in assert_spanish(r, status=400)
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    session.expire_all()
    assert session.get(Patient, patient.id).language == "es"  # nothing changed
    r = client.post("/me/sign-out")
    assert r.status_code == 303 and location(r).endswith("/signed-out?lang=es")
    assert "Cerró la sesión" in assert_spanish(follow(client, r))

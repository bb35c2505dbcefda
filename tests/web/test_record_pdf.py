"""Issue 13 §2 "A printable record as PDF": GET /nurse/patients/<id>/record.pdf is the patient page
rendered by WeasyPrint (the print stylesheet), for the clinic's nurses and admins only, audited as a
read of the record, downloaded under a file name without the patient's name."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from flask import current_app

from recovery.domain.questionnaire.answers import coerce_answers
from recovery.files import templates as templates_repo
from recovery.services import checkins
from recovery.services.records import current_enrolment
from recovery.store.models import AuditEvent, StaffRole
from recovery.web import record_pdf
from tests.support.factories import enrol, login, make_clinic, make_staff, template_for

pytest.importorskip("weasyprint")

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
T0 = NOW - timedelta(hours=30)


@pytest.fixture
def world(app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    clinic, other = make_clinic(session, now=NOW), make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    admin = make_staff(session, clinic, role=StaffRole.ADMIN, now=NOW)
    outsider = make_staff(session, other, now=NOW)
    ann = enrol(session, clinic, procedure_end=T0, now=T0 + timedelta(hours=2), first="Annabel")
    enrolment = current_enrolment(ann)
    ruleset = templates_repo.ruleset(current_app.config["RULESET_PATH"])
    c = checkins.start_checkin(session, enrolment=enrolment, patient=ann, slot="day1", source="web", now=NOW)
    answers = {"cardioresp": ["none"], "neuro": ["none"], "bladder_bowel": "no_change", "back_pain": 6,
               "pain_change": "worse", "new_pain_sites": ["ribs_or_side"], "rib_pain": 4, "temp_status": "measured",
               "temp_value": "38.4", "temp_unit": "C", "chills": True}
    checkins.submit_checkin(session, checkin=c, enrolment=enrolment, patient=ann, answers=coerce_answers(answers),
                            template=template_for(clinic), ruleset=ruleset, now=NOW)
    session.commit()
    return {"ann": ann, "nurse": nurse, "admin": admin, "outsider": outsider}


def signed_in(app, staff):
    c = app.test_client()
    assert login(c, staff).status_code == 303
    return c


def _text_of(document) -> str:
    """The text WeasyPrint laid out on the PDF's pages (its own boxes: no PDF text extractor here)."""
    out = []

    def walk(box):
        if getattr(box, "text", None):
            out.append(box.text)
        for child in getattr(box, "children", ()) or ():
            walk(child)
    for page in document.pages:
        walk(page._page_box)
    return " ".join(out)


def test_the_record_pdf_is_a_pdf_with_the_answers_and_is_audited(app, session, world, monkeypatch):
    ann = world["ann"]
    documents = []
    real = record_pdf.render_document

    def keep(html, **kw):
        documents.append(real(html, **kw))
        return documents[-1]
    monkeypatch.setattr(record_pdf, "render_document", keep)
    r = signed_in(app, world["nurse"]).get(f"/nurse/patients/{ann.id}/record.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert r.data.startswith(b"%PDF-") and r.data.rstrip().endswith(b"%%EOF")
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and f"recovery-record-{ann.id}-" in disposition
    assert ann.first_name not in disposition and ann.last_name not in disposition
    assert r.headers["Cache-Control"] == "no-store"
    text = _text_of(documents[0])
    # the check-in's answers, its fired rules, the texts table, and none of the page's forms
    for words in ("Check-ins", "38.4", "Back pain", "Texts", "Annabel", "Audit trail"):
        assert words in text, words
    assert "Download PDF" not in text and "Correct and re-plan texts" not in text
    assert session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "record_viewed", AuditEvent.patient_id == ann.id,
        AuditEvent.actor_id == world["nurse"].id, AuditEvent.detail["page"].as_string() == "pdf"))


def test_an_admin_of_the_clinic_may_download_it(app, world):
    r = signed_in(app, world["admin"]).get(f"/nurse/patients/{world['ann'].id}/record.pdf")
    assert r.status_code == 200 and r.data.startswith(b"%PDF-")


def test_another_clinic_and_anonymous_are_refused_and_nothing_is_audited(app, session, world):
    ann = world["ann"]
    assert signed_in(app, world["outsider"]).get(f"/nurse/patients/{ann.id}/record.pdf").status_code == 404
    assert app.test_client().get(f"/nurse/patients/{ann.id}/record.pdf").status_code == 403
    assert not session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "record_viewed",
                                                           AuditEvent.patient_id == ann.id)).all()


def test_the_patient_page_links_the_pdf(app, world):
    page = signed_in(app, world["nurse"]).get(f"/nurse/patients/{world['ann'].id}")
    assert f'href="/nurse/patients/{world["ann"].id}/record.pdf"'.encode() in page.data and b"Download PDF" in page.data


def test_the_pdf_fetches_only_our_static_files(app):
    with app.app_context():
        fetch = record_pdf._static_only(app.static_folder, "/static/")
        css = fetch.fetch("http://localhost/static/app.css?v=1")
        assert css.content_type == "text/css" and b"@media print" in css.read()
        for url in ("http://example.org/x.png", "file:///etc/passwd", "http://localhost/static/../app.py"):
            with pytest.raises(ValueError):
                fetch.fetch(url)

"""The patient's record as a PDF (issue 13 §2 "A printable record"): the patient page's own HTML,
rendered by WeasyPrint with the print stylesheet (static/app.css, @media print), so there is one
layout for the screen, the browser's Print and the PDF.

WeasyPrint fetches nothing from the network: the only URLs it may load are our static files
(the stylesheet), read from disk; anything else (an image URL in a name, a link) is refused.
It needs Debian's pango (`make pango`)."""
from __future__ import annotations

import mimetypes
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Response, current_app, g, request
from flask_login import current_user
from werkzeug.security import safe_join

from recovery.clock import utcnow
from recovery.files import instruments
from recovery.services.records import patient_record
from recovery.services.enrolment import timeline_for
from recovery.store.db import db
from recovery.web.access import patient_for_staff
from recovery.web.nurse import bp, enrolment_template, patient_page


def _static_only(static_folder: str, prefix: str):
    """A WeasyPrint URL fetcher that serves our static files from disk and refuses everything else."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticOnly(URLFetcher):
        def fetch(self, url, headers=None):
            path = urlsplit(url).path
            name = path[len(prefix):] if path.startswith(prefix) else None
            joined = safe_join(static_folder, name) if name else None
            if joined is None or not Path(joined).is_file():
                raise ValueError("the PDF loads only the app's own static files")
            kind = mimetypes.guess_type(joined)[0] or "application/octet-stream"
            return URLFetcherResponse(url, body=Path(joined).read_bytes(), headers={"Content-Type": kind})

    return StaticOnly()


def render_document(html: str, *, base_url: str):
    """The laid-out pages (a weasyprint Document)."""
    import weasyprint  # here, so the app (and every test) starts without pango loaded
    static_prefix = current_app.static_url_path.rstrip("/") + "/"
    return weasyprint.HTML(string=html, base_url=base_url,
                           url_fetcher=_static_only(current_app.static_folder, static_prefix)).render()


def html_to_pdf(html: str, *, base_url: str) -> bytes:
    return render_document(html, base_url=base_url).write_pdf()


def pdf_filename(patient_id: int, now: datetime, tz: str) -> str:
    """No name in it (a download folder, a mail attachment): the record number and the day."""
    return f"recovery-record-{patient_id}-{now.astimezone(ZoneInfo(tz)):%Y%m%d}.pdf"


@bp.get("/patients/<int:patient_id>/record.pdf")
def record_pdf(patient_id: int):
    """The record as a PDF download, for the clinic's nurses and admins (another clinic's: 404).
    Audited as a read of the record (record_viewed, page "pdf")."""
    p = patient_for_staff(patient_id)
    now = utcnow()
    record = patient_record(db.session, p, staff_id=current_user.staff.id, now=now, request_id=g.request_id,
                            peg_instrument=instruments.peg(current_app.config["SCHEDULES_DIR"]), page="pdf")
    timeline = None
    if record.enrolment is not None:
        timeline = timeline_for(record.enrolment, p, enrolment_template(g.clinic, record.enrolment))
    html = patient_page(p, record, timeline, now, pdf=True)
    db.session.commit()  # the audit row first: a PDF that fails to render was still a read of the record
    body = html_to_pdf(html, base_url=request.host_url)
    resp = Response(body, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'attachment; filename="{pdf_filename(p.id, now, p.timezone)}"'
    return resp

"""Error pages. A 500 rolls the session back (microblog); nothing about the patient is logged."""
from __future__ import annotations

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from recovery.store.db import db


def init_app(app: Flask) -> None:
    def page(status: int, title: str, message: str):
        return render_template("errors/error.html", status=status, title=title, message=message), status

    @app.errorhandler(400)
    def bad_request(e):
        if isinstance(e, CSRFError):  # Flask-WTF's reasons are English and technical ("The CSRF token is missing.")
            return page(400, _("This page was open too long"),
                        _("For your safety, a form left open for a long time stops working. Please go back, "
                          "reload the page and try again."))
        return page(400, _("Something was wrong with that request"),
                    getattr(e, "description", None) or _("Please go back and try again."))

    @app.errorhandler(403)
    def forbidden(e):
        return render_template("errors/error.html", status=403, title=_("Not available"),
                               message=_("You do not have access to this page. Care team members may need "
                                         "to sign in again; patients, please open the newest link from "
                                         "your care team."), sign_in=True), 403

    def fhir_api() -> bool:
        # A URL under /fhir that no route matched: the FHIR API answers in FHIR (recovery/web/fhir.py)
        return request.path == "/fhir" or request.path.startswith("/fhir/")

    @app.errorhandler(404)
    def not_found(e):
        if fhir_api():
            from recovery.web.fhir import problem
            return problem(404, "No such resource type or interaction here (see /fhir/metadata).")
        return page(404, _("Page not found"), _("We could not find that page."))

    @app.errorhandler(405)
    def not_allowed(e):
        if fhir_api():
            from recovery.web.fhir import problem
            return problem(405, "That interaction is not supported here (see /fhir/metadata).")
        return e

    @app.errorhandler(410)
    def gone(e):
        return page(410, _("This link has been used"), getattr(e, "description", None) or
                    _("Please use the newest link from your care team."))

    @app.errorhandler(429)
    def too_many(e):
        return page(429, _("Please wait a moment"), _("Too many attempts. Please wait a few minutes and try again."))

    @app.errorhandler(500)
    def server_error(e):
        db.session.rollback()
        return page(500, _("Something went wrong"), _("Nothing you entered was lost. Please try again in a minute."))

"""Web adapters: blueprints parse the request, call one use-case and render."""
from __future__ import annotations

from flask import Flask, make_response, render_template, request


def wants_fragment() -> bool:
    """True for an htmx request that swaps part of the page (not boosted, not a history restore)."""
    return (request.headers.get("HX-Request") == "true"
            and request.headers.get("HX-Boosted") != "true"
            and request.headers.get("HX-History-Restore-Request") != "true")


def render_page_or_fragment(page: str, fragment: str, status: int = 200, **ctx):
    resp = make_response(render_template(fragment if wants_fragment() else page, **ctx), status)
    resp.vary.add("HX-Request")
    return resp


def register_blueprints(app: Flask) -> None:
    from recovery.web import (access, auth, checkin, errors, filters, hooks, input, nurse,
                              patient, responses, static_files)
    from recovery.web import alerts as alerts_views
    input.init_app(app)  # first: routes compile their converters when they are added
    static_files.init_app(app)
    responses.init_app(app)
    access.init_app(app)
    filters.init_app(app)
    errors.init_app(app)
    for module in (auth, nurse, patient, checkin, alerts_views, hooks):
        app.register_blueprint(module.bp)

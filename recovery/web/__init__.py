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
    from recovery.web import access, auth, errors, nurse, patient, filters
    from recovery.web import static_files
    static_files.init_app(app)
    access.init_app(app)
    filters.init_app(app)
    errors.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(nurse.bp)
    app.register_blueprint(patient.bp)
    from recovery.web import alerts_views, checkin
    app.register_blueprint(checkin.bp)
    app.register_blueprint(alerts_views.bp)
    try:  # the SMS webhooks live in their own module (recovery/web/hooks.py)
        from recovery.web import hooks
    except ImportError:
        hooks = None
    if hooks is not None:
        app.register_blueprint(hooks.bp)

"""Web adapters: blueprints parse the request, call one use-case and render (registered by
recovery.web.blueprints). Here: the page-or-fragment helpers every blueprint uses."""
from __future__ import annotations

from flask import make_response, render_template, request


def wants_fragment() -> bool:
    """True for an htmx request that swaps part of the page (not boosted, not a history restore)."""
    return (request.headers.get("HX-Request") == "true"
            and request.headers.get("HX-Boosted") != "true"
            and request.headers.get("HX-History-Restore-Request") != "true")


def render_page_or_fragment(page: str, fragment: str, status: int = 200, **ctx):
    resp = make_response(render_template(fragment if wants_fragment() else page, **ctx), status)
    resp.vary.add("HX-Request")
    return resp

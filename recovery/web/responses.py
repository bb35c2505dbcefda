"""What every response says about caching.

Every response except a static file gets ``Cache-Control: no-store``: pages, fragments, the
patient's .ics, redirects, errors and webhook answers may all carry patient data, and a shared
phone's cache or back-forward cache must not keep any of it. Static files have content-hashed
URLs and are cached for a year (static_files.py)."""
from __future__ import annotations

from flask import Flask, request


def init_app(app: Flask) -> None:
    @app.after_request
    def _no_store(response):
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response

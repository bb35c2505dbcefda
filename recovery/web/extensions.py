"""Flask extensions and cross-cutting request handling: CSRF, login, rate limits, headers."""
from __future__ import annotations

import uuid

from flask import Flask, g, request
from flask_compress import Compress
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

from recovery.config import REPO_ROOT
from recovery.web import ratelimits

csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=ratelimits.address_key, default_limits=[])
migrate = Migrate()
compress = Compress()

# Pages reached by a token in the URL must not leak it through Referer.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
       "frame-ancestors 'none'")


def init_app(app: Flask) -> None:
    from recovery.store.db import db
    migrate.init_app(app, db, directory=str(REPO_ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    # gzip/brotli for HTML, CSS and the vendored htmx: keeps a phone's first load small
    app.config.setdefault("COMPRESS_MIMETYPES", ["text/html", "text/css", "text/javascript",
                                               "application/javascript", "text/calendar"])
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    app.config.setdefault("COMPRESS_STREAMS", False)  # static files: recovery/web/static_files.py
    compress.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = None  # our server-side WebSession does this job
    ratelimits.configure(app)
    limiter.init_app(app)
    from recovery.web import redirects
    redirects.init_app(app)

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-Id") or str(uuid.uuid4())

    @app.after_request
    def _security_headers(response):
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if response.mimetype == "text/html":
            # Patient data must not sit in shared caches or the back-forward cache of a shared phone.
            h.setdefault("Cache-Control", "no-store")
        return response

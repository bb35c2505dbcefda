"""Composition root: `create_app(config=None)` wires config, database, SMS backend, web and CLI.

Run with `flask --app app run` (development) or `gunicorn 'app:create_app()'`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

from flask import Flask

from recovery.config import DEV_SECRET, Config, DevelopmentConfig, database_url


def _config_class() -> type[Config]:
    return DevelopmentConfig if os.environ.get("RECOVERY_ENV") == "development" else Config


def _instance_path(config: Mapping[str, Any] | type | None) -> str | None:
    """INSTANCE_PATH (config or environment) moves instance/ out of the checkout: the tests point
    it at a scratch folder so they never read a developer's instance/secret_key or database."""
    given = config.get("INSTANCE_PATH") if isinstance(config, Mapping) else getattr(config, "INSTANCE_PATH", None)
    given = given or os.environ.get("INSTANCE_PATH")
    return str(Path(given).resolve()) if given else None


def _cli_command() -> str | None:
    """The `flask` command being run ('run', 'scheduler', ...), or None outside the flask CLI."""
    if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        return None
    args = iter(sys.argv[1:])
    for arg in args:
        if arg in ("--app", "-A", "--env-file", "-e"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _serving() -> bool:
    """gunicorn or `flask run`, as opposed to a CLI command that serves nothing."""
    return os.environ.get("FLASK_RUN_FROM_CLI") != "true" or _cli_command() == "run"


def create_app(config: Mapping[str, Any] | type | None = None) -> Flask:
    app = Flask(__name__, instance_path=_instance_path(config), instance_relative_config=True)
    app.config.from_object(_config_class())
    if isinstance(config, type):
        app.config.from_object(config)
    elif config is not None:
        app.config.update(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config.get("SQLALCHEMY_DATABASE_URI") or database_url(
        app.config.get("DATABASE_URL"), Path(app.instance_path))
    key_file = Path(app.instance_path) / "secret_key"
    if app.config["SECRET_KEY"] == DEV_SECRET and key_file.exists():
        app.config["SECRET_KEY"] = key_file.read_text().strip()
    if app.config["ENV_NAME"] == "production" and app.config["SECRET_KEY"] == DEV_SECRET:
        # Serving with a guessable key would let anyone forge a session. CLI commands (`flask
        # timeline`, `flask db upgrade`, the scheduler) sign nothing, so they may run without one.
        if _serving():
            raise RuntimeError("SECRET_KEY is the development default; set SECRET_KEY in the environment")

    from recovery import logsetup
    logsetup.configure(os.environ.get("LOG_LEVEL", "INFO"))
    if app.config["ENV_NAME"] == "production" and not app.config.get("SMS_BACKEND") and (
            _serving() or _cli_command() == "scheduler"):
        # Printing texts instead of sending them must be a choice, never what a deployment falls into.
        raise RuntimeError("SMS_BACKEND is not set: set SMS_BACKEND=twilio (and the TWILIO_* settings) to "
                           "send texts, or SMS_BACKEND=console to print them (masked) instead")
    if app.config.get("PROXY_FIX_X_FOR"):
        # Behind N trusted proxies the client's address is the N-th from the right in X-Forwarded-For:
        # the per-address sign-in limit needs it (without it every request comes from the proxy).
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["PROXY_FIX_X_FOR"]))

    # Every text must fit one SMS with this deployment's real links: a template that cannot stops
    # the start here, naming its file, line and message.
    from recovery.files import templates as templates_repo
    templates_repo.configure(app.config["PUBLIC_BASE_URL"], app.config["SCHEDULES_DIR"])

    from recovery.store.db import db
    from recovery.store import models  # noqa: F401  (register the mappings before migrations look)
    from recovery.web import extensions

    db.init_app(app)
    extensions.init_app(app)

    from recovery.messaging.factory import init_app as init_messaging
    init_messaging(app)

    from recovery.web.blueprints import register_blueprints
    register_blueprints(app)

    from recovery.cli import register_cli
    register_cli(app)
    return app

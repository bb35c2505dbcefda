"""Every blueprint and request hook of the web app, in the order they must be added."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from recovery.web import (access, auth, checkin, errors, filters, hooks, input, nurse,
                              patient, reports, responses, static_files)
    from recovery.web import admin, fhir, hl7, i18n
    from recovery.web import admin_clinic  # noqa: F401  (its routes are on the admin blueprint: added before it is registered)
    from recovery.web import admin_staff  # noqa: F401  (its routes are on the admin blueprint: added before it is registered)
    from recovery.web import account  # noqa: F401  (its routes are on the auth blueprint)
    from recovery.web import admin_tokens  # noqa: F401  (its routes are on the admin blueprint)
    from recovery.web import admin_plan  # noqa: F401  (its routes are on the admin blueprint)
    from recovery.web import alerts as alerts_views
    from recovery.web import episode  # noqa: F401  (its routes are on the nurse blueprint: added before it is registered)
    from recovery.web import record_pdf  # noqa: F401  (its route is on the nurse blueprint)
    from recovery.web import episode_plan  # noqa: F401  (its routes are on the nurse blueprint, too)
    from recovery.web import peg_baseline, peg_screens  # noqa: F401  (routes on the nurse and check-in blueprints)
    input.init_app(app)  # first: routes compile their converters when they are added
    static_files.init_app(app)
    responses.init_app(app)
    access.init_app(app)
    filters.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    for module in (auth, nurse, reports, admin, patient, checkin, alerts_views, hooks, fhir, hl7):
        app.register_blueprint(module.bp)

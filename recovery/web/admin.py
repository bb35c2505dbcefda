"""The clinic's administration at /admin (issue 13 §1): role admin of the signed-in clinic only.

A nurse gets 403 on every page here, whoever they are; a page for another clinic's object is 404
(the object loaders check the clinic). Each section keeps its routes in a module of its own that
adds them to this blueprint (admin_staff, admin_clinic, ...); `blueprints.py` imports those before
the blueprint is registered.
"""
from __future__ import annotations

from flask import Blueprint, g, render_template
from flask_login import current_user

from recovery.store.db import begin_write, db
from recovery.store.models import Clinic
from recovery.web.access import admin_required

bp = Blueprint("admin", __name__, url_prefix="/admin")

# (endpoint, title, what it is for): the sections the admin home lists, added by each section's module.
SECTIONS: list[tuple[str, str, str]] = []


def section(endpoint: str, title: str, summary: str) -> None:
    SECTIONS.append((endpoint, title, summary))


@bp.before_request
def _admins_only():
    begin_write(db.session)  # the staff session touch, and every admin change, write
    return _guard()


@admin_required
def _guard():
    g.clinic = db.session.get(Clinic, current_user.clinic_id)
    return None


@bp.get("")
def home():
    return render_template("admin/home.html", sections=SECTIONS)

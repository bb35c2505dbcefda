"""The clinic's plan at /admin/plan (issue 13 §1): its overrides beside the base template, a
form for offsets and texts with a preview timeline, publish (a new immutable version), export of
any version and import of a clinic file. The use-cases are in recovery/services/clinic_plans.py."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from recovery.clock import utcnow
from recovery.domain import timeline_table
from recovery.domain.plan.clinic_changes import offset_keys
from recovery.domain.plan.errors import TemplateError
from recovery.domain.plan.overrides import Overrides
from recovery.domain.timeline import TimelineError, build_timeline, local_to_utc
from recovery.services import clinic_plans
from recovery.store.db import db
from recovery.web.admin import bp, section
from recovery.web.input import parse_id
from recovery.web.admin_plan_forms import MAX_IMPORT_BYTES, ImportPlanForm, offset_field, plan_form, text_field

section("admin.plan", "The clinic's plan",
        "what your clinic does differently from the standard plan; change timings and texts, preview, publish")


def _schedules() -> str:
    return current_app.config["SCHEDULES_DIR"]


def _current() -> clinic_plans.CurrentPlan:
    return clinic_plans.current(db.session, _schedules(), g.clinic, current_app.config["DEFAULT_TEMPLATE"])


def _page(plan, form, import_form=None, *, draft=None, preview=None, status=200):
    return render_template("admin/plan.html", plan=plan, form=form, import_form=import_form or ImportPlanForm(),
                           draft=draft, preview=preview, versions=clinic_plans.versions(db.session, g.clinic.id),
                           header=timeline_table), status


def _new_form(plan):
    form = plan_form(plan.template, formdata=None)
    form.fill(plan.template)
    tomorrow = utcnow().astimezone(ZoneInfo(g.clinic.timezone)).date() + timedelta(days=1)
    form.procedure_end.data = datetime.combine(tomorrow, time(10, 0))
    form.timezone.data = g.clinic.timezone
    form.replaces.data = str(plan.version)
    return form


@bp.get("/plan")
def plan():
    current = _current()
    return _page(current, _new_form(current))


def _place_error(form, e: clinic_plans.DraftError) -> None:
    field = None
    if e.place is not None:
        section_, eid, key = e.place
        if section_ == "messages" and key in (None, "text"):
            field = text_field(eid)
        elif section_ == "messages" and key and key.startswith("text_"):
            field = text_field(eid, key.removeprefix("text_"))
        elif section_ == "milestones":
            m = next((m for m in form.template.milestones if m.id == eid), None)
            if m is not None:
                field = offset_field(eid, key if key in offset_keys(m) else offset_keys(m)[-1])
    problem = e.error.problem
    if field is not None and field in form:
        form[field].errors = [*form[field].errors, problem]
    else:
        form.form_errors.append(f"{e.error.entry}: {problem}" if e.error.entry else problem)
    form._errors = None  # WTForms caches `errors`: let the summary see the new one


def _preview(draft, form):
    tz = ZoneInfo(form.timezone.data)
    t0 = local_to_utc(form.procedure_end.data.date(), form.procedure_end.data.time(), tz)
    return build_timeline(draft.template, procedure_end=t0, discharge=None, tz=tz, overrides=Overrides())


@bp.post("/plan")
def change_plan():
    """Preview (action=preview) or publish (action=publish) the plan with the form's values."""
    current = _current()
    form = plan_form(current.template)
    if not form.validate_on_submit():
        return _page(current, form, status=422)
    if form.replaces.data != str(current.version):
        form.form_errors.append(f"Version {current.version} was published after this page was shown; "
                                "reload the page and make your change again.")
        return _page(current, form, status=422)
    try:
        draft = clinic_plans.draft(_schedules(), g.clinic, current, offsets=form.offsets(), texts=form.texts(),
                                   translated=form.translated_texts())
    except clinic_plans.DraftError as e:
        _place_error(form, e)
        return _page(current, form, status=422)
    if request.form.get("action") != "publish":
        try:
            preview = _preview(draft, form)
        except TimelineError as e:
            form.form_errors.append(f"The preview could not be built: {e}")
            return _page(current, form, draft=draft, status=422)
        return _page(current, form, draft=draft, preview=preview)
    if not draft.changes:
        form.form_errors.append("Nothing changed: there is no new version to publish.")
        return _page(current, form, status=422)
    return _publish(current, draft, how="form")


def _publish(current, draft, *, how: str):
    try:
        row = clinic_plans.publish(db.session, clinic=g.clinic, staff=current_user.staff, plan=current, new=draft,
                                   now=utcnow(), how=how, request_id=g.request_id)
        db.session.commit()
    except (clinic_plans.StalePlan, IntegrityError):
        db.session.rollback()
        flash("Another version was published at the same time; yours was not. Check the plan and try again.")
        return redirect(url_for("admin.plan"), 303)
    flash(f"Version {row.version} is published: patients enrolled from now on get it; patients already "
          "enrolled keep their plan. It is marked unapproved until a clinician signs it off.")
    return redirect(url_for("admin.plan"), 303)


@bp.post("/plan/import")
def import_plan():
    current = _current()
    import_form = ImportPlanForm()
    if not import_form.validate_on_submit():
        return _page(current, _new_form(current), import_form, status=422)
    upload = import_form.plan_file.data
    filename = (upload.filename or "upload.toml").rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:80] or "upload.toml"
    raw = upload.read(MAX_IMPORT_BYTES + 1)
    problem = None
    if len(raw) > MAX_IMPORT_BYTES:
        problem = f"{filename}: larger than {MAX_IMPORT_BYTES // 1024} KB; a clinic file is a few KB"
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problem = f"{filename}:1: not UTF-8 text ({e.reason})"
    if problem is None:
        try:
            draft = clinic_plans.imported(_schedules(), g.clinic, current, text, filename)
        except TemplateError as e:
            problem = str(e)
    if problem is not None:
        import_form.plan_file.errors = [problem]
        import_form._errors = None
        return _page(current, _new_form(current), import_form, status=422)
    return _publish(current, draft, how=f"import of {filename}")


@bp.get("/plan/export")
def export_plan():
    """?version=N: that version of the clinic's plan as a clinic file (a version of this clinic only)."""
    version = parse_id(request.args.get("version"))
    text = clinic_plans.exported(db.session, _schedules(), g.clinic, version) if version is not None else None
    if text is None:
        abort(404)
    name = f"{clinic_plans.plan_name(g.clinic)}_v{version}.toml"
    return Response(text, mimetype="application/toml",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

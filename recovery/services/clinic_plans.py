"""The clinic's plan (issue 13 §1): the version a new enrolment gets, the version an enrolment
keeps, and publishing a new version from /admin/plan. Use-cases: they take a session and `now`.

Published versions are rows of clinic_plan_version, each the override text in the clinic file
format (schedules/clinics/*.toml), never changed; the files in schedules/ stay the shipped
defaults. Which plan an enrolment uses is decided by recovery.files.templates (for_enrolment,
for_new_enrolment); every caller comes through `plan_for` / `plan_for_new` here, which hand it
the database's versions."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain.plan.clinic_changes import differences, edit_changes
from recovery.domain.plan.errors import TemplateError
from recovery.domain.plan.model import Template
from recovery.files import plan_text, plans
from recovery.files import templates as templates_repo
from recovery.store import audit
from recovery.store.models import Clinic, ClinicPlanVersion, Enrolment, StaffUser


def plan_name(clinic: Clinic) -> str:
    """The `clinic` name its plan carries: its override file's, else its slug."""
    return clinic.template_file or clinic.slug


def _published(row: ClinicPlanVersion, clinic: Clinic) -> templates_repo.Published:
    return templates_repo.Published(id=row.id, clinic=plan_name(clinic), version=row.version, text=row.content)


# (database, row id) -> its Published: a published row never changes, so it is read once.
_rows: dict[tuple[str, int], templates_repo.Published] = {}
_rows_lock = threading.Lock()


def loader(session: Session) -> Callable[[int], templates_repo.Published]:
    """Reads a published version by its row, once per database and row."""
    def load(version_id: int) -> templates_repo.Published:
        key = (str(session.get_bind().url), version_id)
        with _rows_lock:
            hit = _rows.get(key)
        if hit is None:
            row = session.get(ClinicPlanVersion, version_id)
            if row is None:
                raise LookupError(f"no published plan version row {version_id}")
            hit = _published(row, session.get(Clinic, row.clinic_id))
            with _rows_lock:
                _rows[key] = hit
        return hit
    return load


def plan_for(session: Session, schedules_dir: str | Path, enrolment: Enrolment, clinic: Clinic | None = None) -> Template:
    """The plan an enrolment uses (the one it was enrolled on, whatever was published since)."""
    if clinic is None:
        clinic = session.get(Clinic, enrolment.clinic_id)
    return templates_repo.for_enrolment(schedules_dir, enrolment, clinic, published=loader(session))


def newest(session: Session, clinic_id: int) -> ClinicPlanVersion | None:
    return session.scalar(sa.select(ClinicPlanVersion).where(ClinicPlanVersion.clinic_id == clinic_id)
                          .order_by(ClinicPlanVersion.version.desc()).limit(1))


def plan_for_new(session: Session, schedules_dir: str | Path, clinic: Clinic, default_id: str) -> Template:
    """The plan a patient enrolled now gets: the clinic's newest version."""
    row = newest(session, clinic.id)
    return templates_repo.for_new_enrolment(schedules_dir, clinic, default_id,
                                            _published(row, clinic) if row is not None else None)


def versions(session: Session, clinic_id: int) -> list[ClinicPlanVersion]:
    return list(session.scalars(sa.select(ClinicPlanVersion).where(ClinicPlanVersion.clinic_id == clinic_id)
                                .order_by(ClinicPlanVersion.version.desc())))


@dataclass(frozen=True)
class CurrentPlan:
    """What /admin/plan shows: the clinic's plan for new enrolments beside its base template."""
    template: Template  # the effective plan
    base: Template  # the template it is based on
    text: str  # its override, in the clinic file format
    version: int  # the clinic's version number (0: none yet, the base template as it is)
    source: str  # "published", "file" (schedules/clinics/) or "template" (no override)
    row: ClinicPlanVersion | None

    @property
    def differences(self) -> list[str]:
        return differences(self.base, self.template)


def current(session: Session, schedules_dir: str | Path, clinic: Clinic, default_id: str) -> CurrentPlan:
    d = Path(schedules_dir)
    template = plan_for_new(session, d, clinic, default_id)
    base = templates_repo.find_template(d, template.base_id, str(template.base_version))
    row = newest(session, clinic.id)
    if row is not None:
        return CurrentPlan(template, base, row.content, row.version, "published", row)
    if template.clinic is not None:
        text = (d / "clinics" / f"{clinic.template_file}.toml").read_text(encoding="utf-8")
        return CurrentPlan(template, base, text, template.clinic_version, "file", None)
    text = plan_text.starting_text(clinic=plan_name(clinic), title=clinic.name, based_on=template.base_id,
                                   based_on_version=template.base_version)
    return CurrentPlan(template, base, text, 0, "template", None)


@dataclass(frozen=True)
class Draft:
    """A new version, checked like a clinic file: `template` is its effective plan."""
    text: str
    version: int
    template: Template
    changes: list[str]  # against the version it replaces


def draft_label(clinic: Clinic, version: int) -> str:
    return f"{plan_name(clinic)} plan v{version} (draft)"


def draft(schedules_dir: str | Path, clinic: Clinic, plan: CurrentPlan, *,
          offsets: Mapping[str, Mapping[str, str]], texts: Mapping[str, str],
          translated: Mapping[str, Mapping[str, str]] | None = None) -> Draft:
    """The next version with the offsets and texts typed on the form. Raises DraftError (the
    clinic file loader's error, and the field it is about) when it does not load."""
    version = plan.version + 1
    changes = edit_changes(plan.template, plan.base, offsets, texts, translated)
    text = plan_text.with_changes(plan.text, clinic=plan_name(clinic), version=version, changes=changes)
    label = draft_label(clinic, version)
    try:
        return check(schedules_dir, clinic, plan, text, label)
    except TemplateError as e:
        raise DraftError(e, error_place(e, text, label)) from None


class DraftError(Exception):
    """A draft that does not load: the loader's error and where it lies (see error_place)."""

    def __init__(self, error: TemplateError, place: tuple[str, str, str | None] | None):
        super().__init__(str(error))
        self.error, self.place = error, place


def check(schedules_dir: str | Path, clinic: Clinic, plan: CurrentPlan, text: str, label: str) -> Draft:
    """Load `text` as the clinic's next version with every check of a clinic file (a text must fit
    one SMS: a new version is never frozen). Raises TemplateError naming `label` and the line."""
    template = plans.load_clinic_text(text, label, schedules_dir, templates_repo.budget(), clinic=plan_name(clinic))
    return Draft(text=text, version=template.clinic_version, template=template,
                 changes=differences(plan.template, template))


def imported(schedules_dir: str | Path, clinic: Clinic, plan: CurrentPlan, text: str, filename: str) -> Draft:
    """A clinic file uploaded as the next version: checked as it was uploaded (a problem names the
    file and its line), then renumbered."""
    check(schedules_dir, clinic, plan, text, filename)
    renumbered = plan_text.with_version(text, filename, plan.version + 1)
    return check(schedules_dir, clinic, plan, renumbered, filename)


class StalePlan(Exception):
    """Another version was published after the form was shown."""


def publish(session: Session, *, clinic: Clinic, staff: StaffUser, plan: CurrentPlan, new: Draft, now: datetime,
            how: str = "form", request_id: str | None = None) -> ClinicPlanVersion:
    """Store the draft as the clinic's newest version (unapproved until a clinician signs it off)
    and audit it. Patients enrolled from now on get it; enrolled ones keep theirs."""
    latest = newest(session, clinic.id)
    if (latest.version if latest else None) != (plan.row.version if plan.row else None):
        raise StalePlan(f"version {latest.version} was published meanwhile")
    row = ClinicPlanVersion(clinic_id=clinic.id, version=new.version, based_on=new.template.base_id,
                            based_on_version=new.template.base_version, content=new.text,
                            changes=list(new.changes), published_by_id=staff.id, published_at=now)
    session.add(row)
    session.flush()  # a concurrent publish of the same number fails here (unique clinic + version)
    audit.record(session, at=now, actor_type="staff", actor_id=staff.id, action="clinic_plan_published",
                 subject_type="clinic_plan_version", subject_id=row.id,
                 detail={"clinic": plan_name(clinic), "version": new.version, "replaces": plan.version,
                         "template": new.template.id, "template_version": new.template.version,
                         "changes": list(new.changes), "how": how, "approval": row.approval.value},
                 request_id=request_id)
    return row


def exported(session: Session, schedules_dir: str | Path, clinic: Clinic, version: int) -> str | None:
    """The TOML text of one of the clinic's versions (published, or its file's), or None."""
    row = session.scalar(sa.select(ClinicPlanVersion).where(ClinicPlanVersion.clinic_id == clinic.id,
                                                            ClinicPlanVersion.version == version))
    if row is not None:
        return row.content
    if clinic.template_file:
        d = Path(schedules_dir) / "clinics"
        for path in (d / f"{clinic.template_file}.toml", d / f"{clinic.template_file}_v{version}.toml"):
            try:
                t = plans.load_clinic_template(path, schedules_dir, templates_repo.budget())
            except TemplateError:
                continue
            if t.clinic_version == version:
                return path.read_text(encoding="utf-8")
    return None


def error_place(e: TemplateError, text: str, label: str) -> tuple[str, str, str | None] | None:
    """Where a problem of a draft lies, as (section, entry id, key): from its line when it is in
    the draft text, else from the entry it names ("milestone TL03"); None for the plan as a whole."""
    if e.path == label:
        found = plans.key_at(text, e.line)
        if found is not None and len(found[0]) >= 2 and found[0][0] in ("milestones", "messages"):
            return found[0][0], found[0][1], found[1]
    kind, _, eid = e.entry.partition(" ")
    if kind in ("milestone", "message") and eid:
        return kind + "s", eid, None
    return None

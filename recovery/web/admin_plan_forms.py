"""Forms of /admin/plan (recovery/web/admin_plan.py). One field per milestone offset and per
message text of the clinic's plan; they only parse: the clinic file loader checks the plan."""
from __future__ import annotations

from flask_wtf.file import FileField, FileRequired
from wtforms import DateTimeLocalField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from recovery.domain.plan.clinic_changes import offset_keys, offset_text
from recovery.domain.languages import ENGLISH_NAMES
from recovery.domain.plan.model import Template
from recovery.web.forms import COMMON_ZONES, Form, valid_zone

KEY_WORDS = {"at": "happens", "start": "starts", "end": "ends"}
MAX_IMPORT_BYTES = 64 * 1024


def offset_field(milestone_id: str, key: str) -> str:
    return f"{milestone_id}_{key}"


def text_field(message_id: str, language: str | None = None) -> str:
    return f"{message_id}_text" + (f"_{language}" if language else "")


class _PlanForm(Form):
    replaces = HiddenField()  # the version shown: a publish after another one is refused
    procedure_end = DateTimeLocalField("Sample procedure end", format="%Y-%m-%dT%H:%M",
                                       validators=[InputRequired("Enter a sample procedure time, e.g. 2026-03-07T10:00.")])
    timezone = SelectField("Time zone", choices=[(z, z) for z in COMMON_ZONES], validate_choice=False,
                           validators=[valid_zone])

    template: Template

    def offsets(self) -> dict[str, dict[str, str]]:
        return {m.id: {k: self[offset_field(m.id, k)].data or "" for k in offset_keys(m)}
                for m in self.template.milestones}

    def texts(self) -> dict[str, str]:
        return {s.id: self[text_field(s.id)].data or "" for s in self.template.messages}

    def translated_texts(self) -> dict[str, dict[str, str]]:
        """language -> message id -> the text typed in that language."""
        out: dict[str, dict[str, str]] = {}
        for s in self.template.messages:
            for language, _ in s.translations:
                out.setdefault(language, {})[s.id] = self[text_field(s.id, language)].data or ""
        return out

    def milestone_fields(self):
        return [(m, [self[offset_field(m.id, k)] for k in offset_keys(m)]) for m in self.template.milestones]

    def message_fields(self):
        return [(s, self[text_field(s.id)]) for s in self.template.messages]

    def translation_fields(self, s):
        return [self[text_field(s.id, language)] for language, _ in s.translations]

    def fill(self, template: Template) -> None:
        for m in template.milestones:
            for k in offset_keys(m):
                self[offset_field(m.id, k)].data = offset_text(m, k)
        for s in template.messages:
            self[text_field(s.id)].data = s.text
            for language, text in s.translations:
                self[text_field(s.id, language)].data = text


def plan_form(template: Template, **kwargs) -> _PlanForm:
    """The edit form for this plan's milestones and messages."""
    fields = {}
    for m in template.milestones:
        for k in offset_keys(m):
            fields[offset_field(m.id, k)] = StringField(
                f"{m.id} {m.short}: {KEY_WORDS[k]}",
                validators=[InputRequired(f"Enter when {m.id} {KEY_WORDS[k]}, e.g. T0+48h."),
                            Length(max=80, message="Keep an offset to 80 characters.")])
    for s in template.messages:
        fields[text_field(s.id)] = TextAreaField(
            f"{s.id} text", validators=[InputRequired(f"Enter the text of {s.id}."),
                                        Length(max=600, message="Keep a text to 600 characters.")])
        for language, _ in s.translations:
            name = ENGLISH_NAMES.get(language, language)
            fields[text_field(s.id, language)] = TextAreaField(
                f"{s.id} text in {name}", validators=[InputRequired(f"Enter the {name} text of {s.id}."),
                                                      Length(max=600, message="Keep a text to 600 characters.")])
    cls = type("PlanForm", (_PlanForm,), fields)
    form = cls(**kwargs)
    form.template = template
    return form


class ImportPlanForm(Form):
    plan_file = FileField("Plan file (TOML, as schedules/clinics/ holds it)",
                          validators=[FileRequired("Choose a .toml file to import.")])

"""The clinic's settings (issue 13 §1, /admin/clinic): how texts name it, its numbers, its default
time zone, its own Twilio sender and its service hours.

Texts read these when they are rendered (dispatch/prepare.py, once per scheduler tick), so a change
applies to every text rendered after it; texts already sent keep what they said. Every change is one
audit row with each changed field's old and new value.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from recovery.domain import service_hours, texts
from recovery.domain.languages import ENGLISH_NAMES
from recovery.store import audit
from recovery.store.models import Clinic, StaffUser

EMERGENCY_NUMBERS = ("911", "999", "112", "000")


@dataclass(frozen=True)
class ClinicSettings:
    """What the settings form edits; None where a setting is not set (its default applies)."""
    sms_name: str | None
    care_phone: str
    after_hours_phone: str | None
    emergency_number: str
    timezone: str
    sender_number: str | None
    messaging_service_sid: str | None
    service_hours: dict[str, list[str]] | None

    @classmethod
    def of(cls, clinic: Clinic) -> ClinicSettings:
        return cls(**{f.name: getattr(clinic, f.name) for f in fields(cls)})


def hours_of(clinic: Clinic) -> dict[int, tuple]:
    """The clinic's service hours by weekday; {} when none are set. Stored hours are written only by
    the validated form, so a malformed value is a bug: it counts as none set (as before the setting)."""
    try:
        return service_hours.parse(clinic.service_hours)
    except service_hours.HoursError:
        return {}


def outside_service_hours(clinic: Clinic, now: datetime) -> bool | None:
    """Whether `now` is outside the clinic's service hours; None when it has set none."""
    return service_hours.outside_service_hours(hours_of(clinic), ZoneInfo(clinic.timezone), now)


def change(session: Session, *, clinic: Clinic, new: ClinicSettings, admin: StaffUser, now: datetime,
           request_id: str | None = None) -> list[str]:
    """Apply the settings; returns the names of the fields that changed (nothing changed: no audit row)."""
    old = ClinicSettings.of(clinic)
    changed: dict[str, dict[str, Any]] = {}
    for f in fields(ClinicSettings):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before != after:
            changed[f.name] = {"old": before, "new": after}
            setattr(clinic, f.name, after)
    if changed:
        audit.record(session, at=now, actor_type="staff", actor_id=admin.id, action="clinic_settings_changed",
                     patient_id=None, subject_type="clinic", subject_id=clinic.id, detail={"changes": changed},
                     request_id=request_id)
    return list(changed)


def text_problems(template, new: ClinicSettings) -> dict[str, str]:
    """Which setting would make one of the clinic's current texts longer than one SMS, by field:
    the name ({clinic}), the care-team number ({phone}) and the emergency number ({emerg}) go into
    texts. Checked on the plan new enrolments get (older versions keep their start-up warning)."""
    name = new.sms_name or template.sms_name
    out: dict[str, str] = {}
    for m in template.messages:
        used = texts.placeholders(m.text)
        check = texts.check_text(m.text, emerg=new.emergency_number, phone=new.care_phone, clinic=name,
                                 budget=template.budget)
        if not check.too_long:
            continue
        field = "sms_name" if "clinic" in used else "care_phone" if "phone" in used else "emergency_number"
        out.setdefault(field, f"{m.id} would be {check.length} characters, more than one SMS (160): "
                              "use a shorter one.")
    for m in template.messages:  # each language's text, in its real encoding (the plan file's rule)
        used = texts.placeholders(m.text)
        for language, text in m.translations:
            check = texts.check_translation(text, english=m.text, emerg=new.emergency_number, phone=new.care_phone,
                                            clinic=name, budget=template.budget)
            if check.segments.count <= texts.TRANSLATION_SEGMENTS:
                continue
            field = "sms_name" if "clinic" in used else "care_phone" if "phone" in used else "emergency_number"
            out.setdefault(field, f"{m.id} in {ENGLISH_NAMES.get(language, language)} would be "
                                  f"{check.segments.count} SMS segments ({check.segments.encoding}), more than "
                                  f"{texts.TRANSLATION_SEGMENTS}: use a shorter one.")
    return out

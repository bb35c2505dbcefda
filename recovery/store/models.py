"""The data model (SQLAlchemy 2.0 typed mappings). Times are aware UTC (UTCDateTime).

Nothing here reads the clock: every timestamp is set by a use-case from the `now` it was given.
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, Optional

import sqlalchemy as sa
import sqlalchemy.orm as so

from recovery.domain import contact
from recovery.store.db import UTCDateTime, db


class StaffRole(str, enum.Enum):
    NURSE = "nurse"
    ADMIN = "admin"


class EnrolmentStatus(str, enum.Enum):
    """ACTIVE (a pause is `Enrolment.paused_until`, not a status: a paused patient's own texts and
    check-ins are still handled) or ENDED by a nurse with `end_reason` (recovery/episodes.py).
    COMPLETED and WITHDRAWN are kept for rows written before monitoring could be ended."""
    ACTIVE = "active"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    ENDED = "ended"


class OutboxStatus(str, enum.Enum):
    """Forward-only: planned → claimed → sent → delivered/undelivered/failed; or suppressed/cancelled."""
    PLANNED = "planned"
    CLAIMED = "claimed"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"


class AlertStatus(str, enum.Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class CheckinStatus(enum.StrEnum):
    """in_progress → submitted, once and final. A draft never sent stays in_progress (the missed
    scan reads it as "started, not finished")."""
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"


class TriageLevel(enum.StrEnum):
    """The stored name of a `recovery.domain.triage.Level` (a check-in's result, an alert's level).
    A StrEnum, so that it compares equal to the name and renders as it in templates and CSV."""
    OK = "OK"
    WATCH = "WATCH"
    URGENT = "URGENT"
    EMERGENCY = "EMERGENCY"


def _enum(e: type[enum.Enum], name: str) -> sa.Enum:
    return sa.Enum(e, name=name, native_enum=False, length=16,
                   values_callable=lambda x: [m.value for m in x], validate_strings=True)


class Clinic(db.Model):
    __tablename__ = "clinic"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    slug: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(120))
    timezone: so.Mapped[str] = so.mapped_column(sa.String(64))
    # schedules/clinics/<template_file>.toml, or None for the plain default template
    template_file: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    emergency_number: so.Mapped[str] = so.mapped_column(sa.String(8), default="911")
    care_phone: so.Mapped[str] = so.mapped_column(sa.String(32))
    # every staff member must use a second factor (TOTP) to sign in (set on /admin/staff)
    require_totp: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())
    # Whether the FHIR API may show the words of the texts sent (Communication.payload); default not:
    # a text names the patient and may say what they are recovering from.
    fhir_text_bodies: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    # Set at /admin/clinic (recovery/services/clinic_settings.py); None: as before these settings.
    sms_name: so.Mapped[Optional[str]] = so.mapped_column(sa.String(30))  # {clinic} in texts; None: the plan's
    after_hours_phone: so.Mapped[Optional[str]] = so.mapped_column(sa.String(32))
    # The clinic's own Twilio sender (a number or a messaging service); None: the app's config.
    sender_number: so.Mapped[Optional[str]] = so.mapped_column(sa.String(16))
    messaging_service_sid: so.Mapped[Optional[str]] = so.mapped_column(sa.String(34))
    # {"0": ["08:00", "17:00"], ...}: weekday (Monday 0) -> open, close in the clinic's zone
    # (recovery/domain/service_hours.py). None: no service hours, every alert as before.
    service_hours: so.Mapped[Optional[dict[str, Any]]] = so.mapped_column(sa.JSON)


class StaffUser(db.Model):
    __tablename__ = "staff_user"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    clinic_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("clinic.id"), index=True)
    email: so.Mapped[str] = so.mapped_column(sa.String(254), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(120))
    role: so.Mapped[StaffRole] = so.mapped_column(_enum(StaffRole, "staff_role"))
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(255))
    mobile_e164: so.Mapped[Optional[str]] = so.mapped_column(sa.String(16))
    active: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    last_sign_in_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    # TOTP second factor: the confirmed secret (base32), one being enrolled, and the last time step
    # a code was accepted for (a code is never accepted twice).
    totp_secret: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    totp_pending_secret: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    totp_last_step: so.Mapped[Optional[int]] = so.mapped_column(sa.BigInteger)
    clinic: so.Mapped[Clinic] = so.relationship()


class StaffPasswordLink(db.Model):
    """A single-use set-password link an admin hands over (invite or reset). Only the SHA-256 of
    the token is stored; a newer link for the same account voids the older ones."""
    __tablename__ = "staff_password_link"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    staff_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("staff_user.id"), index=True)
    purpose: so.Mapped[str] = so.mapped_column(sa.String(16))  # invite | reset
    created_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    expires_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    used_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    voided_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    staff: so.Mapped[StaffUser] = so.relationship(foreign_keys=[staff_id])


class OnCallStep(db.Model):
    """The clinic's escalation ladder: position 1 is asked first after the duty nurse. A rung is a
    staff member (their account's mobile, skipped while disabled) or a name and a mobile number."""
    __tablename__ = "on_call_step"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "position"),
                      sa.CheckConstraint("(staff_id IS NULL) <> (mobile_e164 IS NULL)", name="ck_on_call_step_target"))
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    clinic_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("clinic.id"))
    position: so.Mapped[int]
    staff_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    name: so.Mapped[Optional[str]] = so.mapped_column(sa.String(120))  # a phone rung's name
    mobile_e164: so.Mapped[Optional[str]] = so.mapped_column(sa.String(16))  # a phone rung's number
    staff: so.Mapped[Optional[StaffUser]] = so.relationship()


class PlanApproval(str, enum.Enum):
    """Clinical content is marked unapproved until a clinician signs it off (house rules)."""
    UNAPPROVED = "unapproved"
    APPROVED = "approved"


class ClinicPlanVersion(db.Model):
    """One published version of a clinic's plan (issue 13 §1): the override text in the clinic
    file format (schedules/clinics/*.toml), laid over its base template. Never updated or deleted:
    enrolments on it keep reading it (recovery/services/clinic_plans.py)."""
    __tablename__ = "clinic_plan_version"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "version"),)
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    clinic_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("clinic.id"), index=True)
    version: so.Mapped[int]  # the clinic file's `version`: one more than the version it replaces
    based_on: so.Mapped[str] = so.mapped_column(sa.String(64))
    based_on_version: so.Mapped[int]
    content: so.Mapped[str] = so.mapped_column(sa.Text)  # TOML, as a clinic file holds it
    changes: so.Mapped[list[str]] = so.mapped_column(sa.JSON, default=list)  # the differences, in words
    approval: so.Mapped[PlanApproval] = so.mapped_column(_enum(PlanApproval, "plan_approval"),
                                                         default=PlanApproval.UNAPPROVED)
    published_by_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    published_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    published_by: so.Mapped[StaffUser] = so.relationship()


class Patient(db.Model):
    __tablename__ = "patient"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "mrn", name="uq_patient_clinic_mrn"),)
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    clinic_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("clinic.id"), index=True)
    first_name: so.Mapped[str] = so.mapped_column(sa.String(60))
    last_name: so.Mapped[str] = so.mapped_column(sa.String(60))
    # The hospital's medical record number (FHIR Patient.identifier), unique within the clinic.
    mrn: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    birth_date: so.Mapped[Optional[date]] = so.mapped_column(sa.Date)
    mobile_e164: so.Mapped[str] = so.mapped_column(sa.String(16), index=True)
    timezone: so.Mapped[str] = so.mapped_column(sa.String(64))
    language: so.Mapped[str] = so.mapped_column(sa.String(8), default="en")
    sms_consent: so.Mapped[bool] = so.mapped_column(default=False)
    sms_opted_out: so.Mapped[bool] = so.mapped_column(default=False)
    # ok | invalid (Twilio 21211/21614/landline): never texted again until a nurse fixes it
    number_status: so.Mapped[str] = so.mapped_column(sa.String(16), default="ok")
    caregiver_name: so.Mapped[Optional[str]] = so.mapped_column(sa.String(120))
    caregiver_mobile_e164: so.Mapped[Optional[str]] = so.mapped_column(sa.String(16), index=True)
    caregiver_consent: so.Mapped[bool] = so.mapped_column(default=False)
    caregiver_opted_out: so.Mapped[bool] = so.mapped_column(default=False)
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    clinic: so.Mapped[Clinic] = so.relationship()
    enrolments: so.Mapped[list["Enrolment"]] = so.relationship(
        back_populates="patient", order_by="Enrolment.id")

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def text_block(self) -> str | None:
        """Why the patient's number must not be texted, or None (recovery.domain.contact)."""
        return contact.patient_block(consent=self.sms_consent, opted_out=self.sms_opted_out,
                                     number_status=self.number_status)

    @property
    def text_status(self) -> str:
        """The nurse's pages' words for it: "On", "Opted out", "No consent", "Number not working"."""
        return contact.LABELS[self.text_block]


class Enrolment(db.Model):
    __tablename__ = "enrolment"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "source_procedure", name="uq_enrolment_source_procedure"),)
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patient.id"), index=True)
    clinic_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("clinic.id"), index=True)
    procedure_type: so.Mapped[str] = so.mapped_column(sa.String(32))
    procedure_end: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    discharge_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    template_id: so.Mapped[str] = so.mapped_column(sa.String(64))
    template_version: so.Mapped[str] = so.mapped_column(sa.String(32))
    overrides: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    baseline_back_pain: so.Mapped[Optional[int]]
    baseline_leg_symptoms: so.Mapped[list[str]] = so.mapped_column(sa.JSON, default=list)
    working: so.Mapped[bool] = so.mapped_column(default=False)
    brace: so.Mapped[bool] = so.mapped_column(default=False)
    status: so.Mapped[EnrolmentStatus] = so.mapped_column(
        _enum(EnrolmentStatus, "enrolment_status"), default=EnrolmentStatus.ACTIVE)
    # Routine texts are held (cancelled as they come due) until this instant: the start of the
    # chosen day in the patient's zone. None or past: not paused.
    paused_until: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    ended_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    # completed | readmitted | transferred | deceased | withdrew | other (recovery/episodes.py)
    end_reason: so.Mapped[Optional[str]] = so.mapped_column(sa.String(16))
    end_note: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    created_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    # "system|value" of the hospital's Procedure.identifier when enrolled through FHIR: a resent
    # feed finds the enrolment it made instead of enrolling twice (unique per clinic).
    source_procedure: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255))
    # The clinic plan version published at /admin/plan that the plan was built from; None: read
    # from the files in schedules/ (template_id + template_version find it there).
    plan_version_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("clinic_plan_version.id"))
    # The booked follow-up appointment (issue 13 §2): when (aware UTC) and where, in the clinic's
    # words. None: the plan's own "about 6 weeks" day (services/appointments.py books it).
    followup_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    followup_place: so.Mapped[Optional[str]] = so.mapped_column(sa.String(120))
    patient: so.Mapped[Patient] = so.relationship(back_populates="enrolments")


class OutboundMessage(db.Model):
    """The outbox: one row per planned text. It is the single source of truth for sending."""
    __tablename__ = "outbound_message"
    __table_args__ = (
        sa.Index("ix_outbox_due", "status", "send_after"),
        sa.Index("ix_outbox_lease", "status", "lease_until"),
    )
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    dedupe_key: so.Mapped[str] = so.mapped_column(sa.String(200), unique=True)
    enrolment_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("enrolment.id"), index=True)
    patient_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("patient.id"), index=True)
    staff_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    alert_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("alert.id"))
    # A page to an on-call rung: its clinic (whose sender it goes from; test pages have no alert),
    # and for a phone rung (no staff account) the number as it was when paged.
    clinic_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("clinic.id"))
    to_e164: so.Mapped[Optional[str]] = so.mapped_column(sa.String(16))
    recipient: so.Mapped[str] = so.mapped_column(sa.String(16))  # patient | caregiver | staff
    message_id: so.Mapped[str] = so.mapped_column(sa.String(16))  # S06, S11, ESC …
    occurrence_key: so.Mapped[str] = so.mapped_column(sa.String(64))
    slot: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))  # check-in occurrence, for links
    kind: so.Mapped[str] = so.mapped_column(sa.String(24))
    urgent: so.Mapped[bool] = so.mapped_column(default=False)
    # A safety text of the plan (S01, the discharge-day S02): the sender's quiet hours start at 23:00.
    safety: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())
    text_template: so.Mapped[str] = so.mapped_column(sa.Text)
    body: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)  # rendered at send time
    due_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    send_after: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    status: so.Mapped[OutboxStatus] = so.mapped_column(
        _enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PLANNED)
    status_reason: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    claimed_by: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    lease_until: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    provider_sid: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64), index=True)
    provider_status: so.Mapped[Optional[str]] = so.mapped_column(sa.String(24))
    error_code: so.Mapped[Optional[str]] = so.mapped_column(sa.String(16))
    # As rendered at send time (recovery/domain/sms_encoding.py): a name outside GSM-7 makes a text UCS-2
    # and may make it 2 or 3 segments; nurses see it on the patient page.
    segments: so.Mapped[Optional[int]] = so.mapped_column(sa.SmallInteger)
    encoding: so.Mapped[Optional[str]] = so.mapped_column(sa.String(8))  # GSM-7 | UCS-2
    checkin_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("checkin.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    sent_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    final_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())


class AccessLink(db.Model):
    """A passwordless link. Only the SHA-256 of the 256-bit token is stored."""
    __tablename__ = "access_link"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patient.id"), index=True)
    purpose: so.Mapped[str] = so.mapped_column(sa.String(16))  # today | checkin
    checkin_slot: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    expires_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    used_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())


class WebSession(db.Model):
    """Server-side session record, so logout, idle time-out and disabling an account end it."""
    __tablename__ = "web_session"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    staff_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"), index=True)
    patient_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("patient.id"), index=True)
    scope: so.Mapped[str] = so.mapped_column(sa.String(16))  # staff | patient | checkin
    checkin_slot: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    last_seen_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    expires_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    revoked_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    staff: so.Mapped[Optional[StaffUser]] = so.relationship()
    patient: so.Mapped[Optional[Patient]] = so.relationship()


class Checkin(db.Model):
    __tablename__ = "checkin"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    enrolment_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("enrolment.id"), index=True)
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patient.id"), index=True)
    slot: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))  # scheduled occurrence, None = ad hoc
    source: so.Mapped[str] = so.mapped_column(sa.String(16))  # web | sms
    status: so.Mapped[CheckinStatus] = so.mapped_column(_enum(CheckinStatus, "checkin_status"),
                                                        default=CheckinStatus.IN_PROGRESS)
    answers: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    started_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    submitted_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    hours: so.Mapped[Optional[float]]  # hours since T0 when submitted
    level: so.Mapped[Optional[TriageLevel]] = so.mapped_column(_enum(TriageLevel, "triage_level"))
    fired_rules: so.Mapped[list[str]] = so.mapped_column(sa.JSON, default=list)
    ruleset_version: so.Mapped[Optional[str]] = so.mapped_column(sa.String(32))


class PegAnswer(db.Model):
    """The PEG outcome score at one time point of an enrolment (baseline, day14, week6), one row
    each (recovery/domain/peg.py). Its own table, never the check-in's answers: the triage rules
    never see it. A patient's row fills in screen by screen (its check-in); a nurse enters the
    baseline whole. `completed_at` is set once all three items are answered."""
    __tablename__ = "peg_answer"
    __table_args__ = (sa.UniqueConstraint("enrolment_id", "point", name="uq_peg_answer_point"),)
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    enrolment_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("enrolment.id"))
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patient.id"), index=True)
    point: so.Mapped[str] = so.mapped_column(sa.String(16))  # baseline | day14 | week6
    pain: so.Mapped[Optional[int]]
    enjoyment: so.Mapped[Optional[int]]
    activity: so.Mapped[Optional[int]]
    source: so.Mapped[str] = so.mapped_column(sa.String(16))  # patient | nurse
    checkin_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("checkin.id"))
    staff_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    instrument_version: so.Mapped[int]  # the peg_v<n>.toml the questions were asked from
    language: so.Mapped[str] = so.mapped_column(sa.String(8))
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    completed_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())


_OPEN_TASK = "status != 'resolved' AND family != 'checkin'"
_OPEN_CHECKIN = "status != 'resolved' AND family = 'checkin'"


class Alert(db.Model):
    """A nurse work item. A check-in's answers raise one alert (family "checkin", at most one
    unresolved per check-in); a nurse task from the schedule or the SMS side is one open alert per
    patient and task family. Partial unique indexes make a race lose, not duplicate."""
    __tablename__ = "alert"
    __table_args__ = (
        sa.Index("uq_alert_open_task", "patient_id", "family", unique=True,
                 sqlite_where=sa.text(_OPEN_TASK), postgresql_where=sa.text(_OPEN_TASK)),
        sa.Index("uq_alert_open_checkin", "checkin_id", unique=True,
                 sqlite_where=sa.text(_OPEN_CHECKIN), postgresql_where=sa.text(_OPEN_CHECKIN)),
        sa.Index("ix_alert_checkin_id", "checkin_id"),
        sa.Index("ix_alert_status_level", "status", "level"),
    )
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    clinic_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("clinic.id"), index=True)
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patient.id"))
    enrolment_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("enrolment.id"))
    # the check-in whose answers raised it (never changed afterwards); None for a nurse task
    checkin_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("checkin.id"))
    family: so.Mapped[str] = so.mapped_column(sa.String(32))
    level: so.Mapped[TriageLevel] = so.mapped_column(_enum(TriageLevel, "triage_level"))
    rules: so.Mapped[list[str]] = so.mapped_column(sa.JSON, default=list)
    summary: so.Mapped[str] = so.mapped_column(sa.String(300))
    status: so.Mapped[AlertStatus] = so.mapped_column(
        _enum(AlertStatus, "alert_status"), default=AlertStatus.OPEN)
    opened_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    respond_by: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    acknowledged_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    acknowledged_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    resolved_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    resolved_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    disposition: so.Mapped[Optional[str]] = so.mapped_column(sa.String(32))
    note: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    escalation_step: so.Mapped[int] = so.mapped_column(default=0)
    next_escalation_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    # "No answer – will try again": when the alert comes back to the top of the worklist
    follow_up_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    # Opened outside the clinic's service hours (an URGENT one then pages the ladder at once);
    # None: the clinic had no service hours set, or the alert is older than the setting.
    outside_service_hours: so.Mapped[Optional[bool]]
    patient: so.Mapped[Patient] = so.relationship()
    events: so.Mapped[list["AlertEvent"]] = so.relationship(order_by="AlertEvent.id")


class AlertEvent(db.Model):
    __tablename__ = "alert_event"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    alert_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("alert.id"), index=True)
    at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    kind: so.Mapped[str] = so.mapped_column(sa.String(24))
    actor_staff_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    detail: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)


class InboundMessage(db.Model):
    """A text from a patient or caregiver. The provider SID makes webhook replays harmless."""
    __tablename__ = "inbound_message"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    provider_sid: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    patient_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("patient.id"), index=True)
    sender_role: so.Mapped[str] = so.mapped_column(sa.String(16))  # patient | caregiver | unknown
    body: so.Mapped[str] = so.mapped_column(sa.Text)
    handled_as: so.Mapped[str] = so.mapped_column(sa.String(24))
    received_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    read_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())


class SmsConversation(db.Model):
    """Reply-by-text check-in state, keyed by patient (never a cookie)."""
    __tablename__ = "sms_conversation"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patient.id"), unique=True)
    state: so.Mapped[str] = so.mapped_column(sa.String(24))  # awaiting_pain | awaiting_redflag | idle
    checkin_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("checkin.id"))
    slot: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    reprompted: so.Mapped[bool] = so.mapped_column(default=False)
    updated_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    expires_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())


class AuditEvent(db.Model):
    """Append-only (database triggers refuse UPDATE and DELETE)."""
    __tablename__ = "audit_event"
    # the roster's missed check-ins: a page's patients' markers (migration 0013)
    __table_args__ = (sa.Index("ix_audit_event_patient_action", "patient_id", "action"),)
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    at: so.Mapped[datetime] = so.mapped_column(UTCDateTime(), index=True)
    actor_type: so.Mapped[str] = so.mapped_column(sa.String(16))  # staff | patient | system | twilio | api_token
    actor_id: so.Mapped[Optional[int]]
    action: so.Mapped[str] = so.mapped_column(sa.String(48))
    patient_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("patient.id"), index=True)
    subject_type: so.Mapped[Optional[str]] = so.mapped_column(sa.String(32))
    subject_id: so.Mapped[Optional[int]]
    detail: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    request_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(36))


class RateLimitCounter(db.Model):
    """One fixed-window counter of the rate limiter (recovery/web/ratelimits.py). The key is an HMAC
    of what is counted (an address, an email, a patient), never the value itself."""
    __tablename__ = "rate_limit_counter"
    key: so.Mapped[str] = so.mapped_column(sa.String(255), primary_key=True)
    count: so.Mapped[int] = so.mapped_column(sa.Integer)
    # Epoch seconds, on the clock the `limits` library windows with (time.time()).
    expires_at: so.Mapped[float] = so.mapped_column(sa.Float, index=True)


class ApiToken(db.Model):
    """A clinic's key to the FHIR API (recovery/services/api_tokens.py). Only the SHA-256 of the
    256-bit secret is stored; the secret is shown once, when it is made."""
    __tablename__ = "api_token"
    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    clinic_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("clinic.id"), index=True)
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    label: so.Mapped[str] = so.mapped_column(sa.String(120))
    scopes: so.Mapped[list[str]] = so.mapped_column(sa.JSON, default=list)  # fhir.read | fhir.write
    created_at: so.Mapped[datetime] = so.mapped_column(UTCDateTime())
    created_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("staff_user.id"))
    last_used_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    revoked_at: so.Mapped[Optional[datetime]] = so.mapped_column(UTCDateTime())
    clinic: so.Mapped[Clinic] = so.relationship()

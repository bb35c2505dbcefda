"""Read-side use-cases for the nurse pages: the patient list and one patient's record.

Each query is written so a page costs a fixed, small number of SQL statements (no N+1)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery import audit
from recovery.models import (Alert, AlertStatus, AuditEvent, Checkin, Enrolment, InboundMessage,
                             OutboundMessage, Patient)
from recovery.triage import Level


@dataclass(frozen=True)
class PatientRow:
    patient: Patient
    enrolment: Enrolment | None
    day: int | None
    open_level: str | None


def recovery_day(enrolment: Enrolment, tz: str, now: datetime) -> int:
    zone = ZoneInfo(tz)
    return (now.astimezone(zone).date() - enrolment.procedure_end.astimezone(zone).date()).days


def current_enrolment(patient: Patient) -> Enrolment | None:
    return patient.enrolments[-1] if patient.enrolments else None


def patient_list(session: Session, clinic_id: int, now: datetime, query: str = "") -> list[PatientRow]:
    latest = (sa.select(Enrolment.patient_id, sa.func.max(Enrolment.id).label("eid"))
              .group_by(Enrolment.patient_id).subquery())
    stmt = (sa.select(Patient, Enrolment)
            .outerjoin(latest, latest.c.patient_id == Patient.id)
            .outerjoin(Enrolment, Enrolment.id == latest.c.eid)
            .where(Patient.clinic_id == clinic_id)
            .order_by(Enrolment.procedure_end.desc().nullslast(), Patient.last_name))
    if query:
        like = f"%{query.strip().lower()}%"
        stmt = stmt.where(sa.or_(sa.func.lower(Patient.last_name).like(like),
                                 sa.func.lower(Patient.first_name).like(like)))
    rows = session.execute(stmt).all()
    levels: dict[int, str] = {}
    for pid, level in session.execute(
            sa.select(Alert.patient_id, Alert.level).where(Alert.clinic_id == clinic_id,
                                                           Alert.status != AlertStatus.RESOLVED)):
        if pid not in levels or Level[level] > Level[levels[pid]]:
            levels[pid] = level
    return [PatientRow(p, e, recovery_day(e, p.timezone, now) if e else None, levels.get(p.id))
            for p, e in rows]


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
    enrolment: Enrolment | None
    checkins: list[Checkin]
    messages: list[OutboundMessage]
    inbound: list[InboundMessage]
    alerts: list[Alert]
    audit: list[AuditEvent]


def patient_record(session: Session, patient: Patient, *, staff_id: int, now: datetime,
                   request_id: str | None = None) -> PatientRecord:
    """Everything the nurse page shows; viewing a record writes an audit row (HIPAA audit controls)."""
    enrolment = current_enrolment(patient)
    checkins = list(session.scalars(sa.select(Checkin).where(Checkin.patient_id == patient.id)
                                    .order_by(Checkin.started_at.desc())))
    messages = list(session.scalars(sa.select(OutboundMessage).where(OutboundMessage.patient_id == patient.id)
                                    .order_by(OutboundMessage.send_after, OutboundMessage.id)))
    inbound = list(session.scalars(sa.select(InboundMessage).where(InboundMessage.patient_id == patient.id)
                                   .order_by(InboundMessage.received_at.desc())))
    alerts = list(session.scalars(sa.select(Alert).where(Alert.patient_id == patient.id)
                                  .options(sa.orm.selectinload(Alert.events))
                                  .order_by(Alert.opened_at.desc())))
    trail = list(session.scalars(sa.select(AuditEvent).where(AuditEvent.patient_id == patient.id)
                                 .order_by(AuditEvent.id.desc()).limit(200)))
    audit.record(session, at=now, actor_type="staff", actor_id=staff_id, action="record_viewed",
                 patient_id=patient.id, subject_type="patient", subject_id=patient.id,
                 request_id=request_id)
    return PatientRecord(patient, enrolment, checkins, messages, inbound, alerts, trail)

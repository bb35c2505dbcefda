"""Reading a clinic's record as FHIR R4 (issue 15): loads the rows, hands them to the pure mapping
(recovery/domain/fhir/) and says which patients a request showed, for the audit trail (the web
layer writes it with the token's use: recovery/services/api_tokens.record_use)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recovery.domain.fhir import resources as fr
from recovery.domain.fhir.bundles import DateRange, parse_instant
from recovery.services.enrolment import timeline_for
from recovery.store.models import Alert, Checkin, Clinic, Enrolment, EnrolmentStatus, InboundMessage, OutboundMessage, Patient


MAX_ID = 2**31 - 1  # an INTEGER id column's largest value


def row(obj) -> dict[str, Any]:
    """A row's columns as a plain dict (enums as their values), what the mapping takes."""
    out = {}
    for col in obj.__table__.columns:
        value = getattr(obj, col.key)
        out[col.key] = getattr(value, "value", value)
    return out


@dataclass
class Reader:
    """One request's view of one clinic. `shown` collects the patients whose data it returned."""
    session: Session
    clinic: Clinic
    base: str
    now: datetime
    template_of: Callable[[Enrolment], Any]  # the enrolment's plan (recovery.files.templates.for_enrolment)
    shown: set[int] = field(default_factory=set)

    # ---- loaders (every one checks the clinic: another clinic's record is "not found") ----------

    def patient(self, patient_id: int) -> Patient | None:
        if not 1 <= patient_id <= MAX_ID:  # PostgreSQL refuses a larger integer outright
            return None
        p = self.session.get(Patient, patient_id)
        return p if p is not None and p.clinic_id == self.clinic.id else None

    def patients_by_mrn(self, mrn: str) -> list[Patient]:
        return list(self.session.scalars(sa.select(Patient).where(
            Patient.clinic_id == self.clinic.id, Patient.mrn == mrn).order_by(Patient.id)))

    def clinic_patients(self) -> list[Patient]:
        return list(self.session.scalars(sa.select(Patient).where(Patient.clinic_id == self.clinic.id)
                                         .order_by(Patient.id)))

    # ---- resources ----------------------------------------------------------------------------

    def patient_resource(self, p: Patient) -> dict:
        self.shown.add(p.id)
        active = any(e.status == EnrolmentStatus.ACTIVE for e in p.enrolments)
        return fr.patient(row(p), active=active, clinic_name=self.clinic.name)

    def of_patient(self, p: Patient, kinds: Iterable[str]) -> list[dict]:
        """The patient's resources of these types, in a stable order."""
        kinds = set(kinds)
        self.shown.add(p.id)
        out: list[dict] = []
        if "Patient" in kinds:
            out.append(self.patient_resource(p))
        for e in p.enrolments:
            if "Procedure" in kinds:
                out.append(fr.procedure(row(e), self.base))
            if "CarePlan" in kinds:
                out.append(self._careplan(p, e))
        if kinds & {"QuestionnaireResponse", "Observation"}:
            for c in self.session.scalars(sa.select(Checkin).where(Checkin.patient_id == p.id).order_by(Checkin.id)):
                data = row(c)
                if "QuestionnaireResponse" in kinds:
                    out.append(fr.questionnaire_response(data, self.base))
                if "Observation" in kinds:
                    out.extend(fr.observations(data, self.base))
        if kinds & {"Flag", "Task"}:
            for a in self.session.scalars(sa.select(Alert).where(Alert.patient_id == p.id).order_by(Alert.id)):
                data = row(a)
                if "Flag" in kinds:
                    out.append(fr.flag(data, self.base))
                if "Task" in kinds:
                    out.append(fr.task(data, self.base))
        if "Communication" in kinds:
            bodies = bool(self.clinic.fhir_text_bodies)
            for m in self.session.scalars(sa.select(OutboundMessage).where(
                    OutboundMessage.patient_id == p.id, OutboundMessage.recipient != "staff").order_by(OutboundMessage.id)):
                out.append(fr.communication_out(row(m), with_body=bodies))
            for m in self.session.scalars(sa.select(InboundMessage).where(
                    InboundMessage.patient_id == p.id).order_by(InboundMessage.id)):
                out.append(fr.communication_in(row(m), with_body=bodies))
        return out

    def _careplan(self, p: Patient, e: Enrolment) -> dict:
        template = self.template_of(e)
        timeline = timeline_for(e, p, template)
        milestones = [{"id": m.id, "title": m.title, "detail": m.detail, "starts_at": m.starts_at,
                       "ends_at": m.ends_at, "point": m.point} for m in timeline.milestones]
        return fr.careplan(row(e), milestones=milestones, horizon_end=timeline.horizon_end, base=self.base,
                           now=self.now, template={"id": template.id, "version": template.version,
                                                   "title": template.title, "status": template.status})

    def everything(self, p: Patient) -> list[dict]:
        kinds = ("Patient", "Procedure", "CarePlan", "QuestionnaireResponse", "Observation", "Flag", "Task",
                 "Communication")
        return self.of_patient(p, kinds) + [fr.questionnaire(self.base)]

    def search(self, kind: str, p: Patient, dates: list[DateRange]) -> list[dict]:
        found = self.of_patient(p, [kind])
        if dates:
            found = [r for r in found if all(d.matches(parse_instant(fr.date_of(r))) for d in dates)]
        return found

    def read(self, kind: str, rid: str) -> dict | None:
        """One resource by its id, if this clinic holds it."""
        if kind == "Questionnaire":
            return fr.questionnaire(self.base) if rid == fr.QUESTIONNAIRE_ID else None
        patient_id = self._owner(kind, rid)
        p = self.patient(patient_id) if patient_id is not None else None
        if p is None:
            return None
        if kind == "Patient":
            return self.patient_resource(p)
        return next((r for r in self.of_patient(p, [kind]) if r["id"] == rid), None)

    def _owner(self, kind: str, rid: str) -> int | None:
        m = re.fullmatch(r"(?:(out|in)-)?([0-9]{1,12})(?:-[a-z-]{1,40})?", rid)
        if not m or not 1 <= int(m.group(2)) <= MAX_ID:
            return None
        n = int(m.group(2))
        s = self.session
        if kind == "Patient":
            return n if m.group(0) == m.group(2) else None
        if kind in ("Procedure", "CarePlan"):
            return s.scalar(sa.select(Enrolment.patient_id).where(Enrolment.id == n))
        if kind in ("QuestionnaireResponse", "Observation"):
            return s.scalar(sa.select(Checkin.patient_id).where(Checkin.id == n))
        if kind in ("Flag", "Task"):
            return s.scalar(sa.select(Alert.patient_id).where(Alert.id == n))
        if kind == "Communication":
            model = InboundMessage if m.group(1) == "in" else OutboundMessage
            return s.scalar(sa.select(model.patient_id).where(model.id == n))
        return None

"""The app's rows (plain dicts of their columns) as FHIR R4 resources (plain dicts).

`base` is the API's base URL (".../fhir"): canonical URLs and the app's own code systems hang off it.
Ids: a resource's id is its row's id ("Flag/12" and "Task/12" are the two faces of alert 12); an
Observation is "<check-in id>-<item>", a Communication "out-<id>" (a text sent) or "in-<id>" (a
text received).
"""
from __future__ import annotations

import hashlib
import json
from functools import cache
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from recovery.domain.fhir import codes
from recovery.domain.fhir.codes import coding, concept, local_system
from recovery.domain.questionnaire.items import ITEMS
from recovery.domain.questionnaire.model import Kind

Row = Mapping[str, Any]
QUESTIONNAIRE_ID = "checkin"


def instant(value: datetime | None) -> str | None:
    """An aware datetime as a FHIR instant/dateTime, UTC, to the second."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def ref(kind: str, rid: Any, display: str | None = None) -> dict:
    r = {"reference": f"{kind}/{rid}"}
    if display:
        r["display"] = display
    return r


def _drop_empty(d: dict) -> dict:
    return {k: v for k, v in d.items() if v not in (None, [], {}, "")}


# ---- Patient and Procedure ----------------------------------------------------------------------

def patient(p: Row, *, active: bool, clinic_name: str) -> dict:
    identifiers = []
    if p.get("mrn"):
        identifiers.append({"use": "usual", "type": concept(codes.V2_0203, "MR", "Medical record number"),
                            "value": p["mrn"]})
    birth = p.get("birth_date")
    return _drop_empty({
        "resourceType": "Patient", "id": str(p["id"]),
        "identifier": identifiers,
        "active": active,
        "name": [{"use": "official", "family": p["last_name"], "given": [p["first_name"]]}],
        "telecom": [{"system": "phone", "value": p["mobile_e164"], "use": "mobile"}],
        "birthDate": birth.isoformat() if isinstance(birth, date) else None,
        "communication": [{"language": concept(codes.BCP47, p.get("language") or "en"), "preferred": True}],
        "managingOrganization": {"display": clinic_name},
    })


def procedure(e: Row, base: str) -> dict:
    kind = e["procedure_type"]
    identifiers = []
    if e.get("source_procedure"):
        system, _, value = e["source_procedure"].rpartition("|")
        identifiers.append(_drop_empty({"system": system or None, "value": value}))
    return _drop_empty({
        "resourceType": "Procedure", "id": str(e["id"]),
        "identifier": identifiers,
        "status": "completed",
        "code": concept(local_system(base, "procedure"), kind, codes.PROCEDURE_WORDS.get(kind),
                        text=codes.PROCEDURE_WORDS.get(kind, kind)),
        "subject": ref("Patient", e["patient_id"]),
        # T0: every time in the plan counts from the recorded end of the procedure
        "performedPeriod": {"end": instant(e["procedure_end"])},
    })


# ---- CarePlan -----------------------------------------------------------------------------------

def careplan_status(e: Row, now: datetime) -> str:
    status = e["status"]
    if status in ("completed",) or (status == "ended" and e.get("end_reason") == "completed"):
        return "completed"
    if status != "active":
        return "revoked"
    paused = e.get("paused_until")
    return "on-hold" if paused is not None and paused > now else "active"


def _activity_status(m: Row, now: datetime, plan_status: str) -> str:
    if now >= m["ends_at"] and (now > m["ends_at"] or m["point"]):
        return "completed"
    if plan_status in ("revoked", "completed"):
        return "cancelled"
    if plan_status == "on-hold":
        return "on-hold"
    return "in-progress" if m["starts_at"] <= now else "not-started"


def careplan(e: Row, *, milestones: list[Row], template: Row, horizon_end: datetime | None,
             base: str, now: datetime) -> dict:
    """The enrolment's plan: one activity per milestone of its timeline (the per-patient changes
    already applied), the period from the procedure's end (T0) to the end of monitoring."""
    status = careplan_status(e, now)
    system = local_system(base, "milestone")
    activities = []
    for m in milestones:
        period = {"start": instant(m["starts_at"])}
        if not m["point"]:
            period["end"] = instant(m["ends_at"])
        activities.append({"detail": _drop_empty({
            "code": concept(system, m["id"], m["title"]),
            "status": _activity_status(m, now, status),
            "scheduledPeriod": period,
            "description": m.get("detail") or None,
        })})
    end = e.get("ended_at") if status in ("revoked", "completed") and e.get("ended_at") else horizon_end
    return _drop_empty({
        "resourceType": "CarePlan", "id": str(e["id"]),
        "identifier": [{"system": local_system(base, "plan"),
                        "value": f"{template['id']}|{template['version']}"}],
        "status": status,
        "intent": "plan",
        "title": template.get("title") or None,
        # The plan's texts are clinical content awaiting sign-off until the template says otherwise.
        "description": f"Recovery plan {template['id']} version {template['version']} ({template.get('status') or 'draft'})",
        "subject": ref("Patient", e["patient_id"]),
        "period": _drop_empty({"start": instant(e["procedure_end"]), "end": instant(end)}),
        "created": instant(e["created_at"]),
        "supportingInfo": [ref("Procedure", e["id"])],
        "activity": activities,
    })


# ---- Questionnaire and QuestionnaireResponse ----------------------------------------------------

_TYPES = {Kind.INT: "integer", Kind.ENUM: "choice", Kind.MULTI: "choice", Kind.BOOL: "boolean",
          Kind.DECIMAL: "decimal", Kind.TEXT: "text"}


def _answer_system(base: str, item_id: str) -> str:
    return local_system(base, "checkin-" + item_id.replace("_", "-"))


@cache
def questionnaire_version() -> str:
    """The questionnaire has no version number of its own: its version is a digest of what it asks
    and how answers are coded, so any change to an item is a new version."""
    shape = [(i.id, i.kind.value, i.question, i.minimum, i.maximum, [(o.value, o.label) for o in i.options])
             for i in ITEMS.values()]
    return "1+" + hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:12]


def questionnaire_url(base: str) -> str:
    return f"{base}/Questionnaire/{QUESTIONNAIRE_ID}"


def questionnaire(base: str) -> dict:
    items = []
    for i in ITEMS.values():
        item: dict = {"linkId": i.id, "text": i.question, "type": _TYPES[i.kind], "required": i.required}
        if i.kind is Kind.MULTI:
            item["repeats"] = True
        if i.kind in (Kind.ENUM, Kind.MULTI):
            system = _answer_system(base, i.id)
            item["answerOption"] = [{"valueCoding": coding(system, o.value, o.label)} for o in i.options]
        if i.kind is Kind.TEXT and i.max_length:
            item["maxLength"] = i.max_length
        if i.id in codes.PAIN_ITEMS:
            item["code"] = [coding(codes.LOINC, *codes.PAIN_SCORE)]
        elif i.id == "temp_value":
            item["code"] = [coding(codes.LOINC, *codes.BODY_TEMPERATURE)]
        items.append(item)
    return {
        "resourceType": "Questionnaire", "id": QUESTIONNAIRE_ID,
        "url": questionnaire_url(base), "version": questionnaire_version(),
        "name": "RecoveryCheckin", "title": "Recovery symptom check-in",
        # Clinical content awaiting sign-off (README): not "active".
        "status": "draft",
        "subjectType": ["Patient"],
        "item": items,
    }


def _answers(item_id: str, value: Any, base: str) -> list[dict]:
    item = ITEMS[item_id]
    if value is None:
        return []
    if item.kind is Kind.INT:
        return [{"valueInteger": int(value)}]
    if item.kind is Kind.BOOL:
        return [{"valueBoolean": bool(value)}]
    if item.kind is Kind.DECIMAL:
        return [{"valueDecimal": float(Decimal(str(value)))}]
    if item.kind is Kind.TEXT:
        return [{"valueString": str(value)}] if str(value).strip() else []
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    system = _answer_system(base, item_id)
    labels = {o.value: o.label for o in item.options}
    return [{"valueCoding": coding(system, v, labels.get(v))} for v in values]


_QR_STATUS = {"submitted": "completed", "in_progress": "in-progress", "abandoned": "stopped"}


def questionnaire_response(c: Row, base: str) -> dict:
    items = []
    answers = c.get("answers") or {}
    for item_id in ITEMS:  # the questionnaire's order, not the order answers came in
        if item_id in answers:
            a = _answers(item_id, answers[item_id], base)
            if a:
                items.append({"linkId": item_id, "text": ITEMS[item_id].question, "answer": a})
    return _drop_empty({
        "resourceType": "QuestionnaireResponse", "id": str(c["id"]),
        "questionnaire": f"{questionnaire_url(base)}|{questionnaire_version()}",
        "status": _QR_STATUS.get(c["status"], "in-progress"),
        "subject": ref("Patient", c["patient_id"]),
        "basedOn": [ref("CarePlan", c["enrolment_id"])],
        "authored": instant(c.get("submitted_at") or c["updated_at"]),
        "source": ref("Patient", c["patient_id"]),
        "item": items,
    })


# ---- Observation --------------------------------------------------------------------------------

def observations(c: Row, base: str) -> list[dict]:
    """The numbers of a submitted check-in with standard codes: each pain score (LOINC 72514-3,
    with its body site) and a measured temperature (LOINC 8310-5, UCUM Cel or [degF])."""
    if c["status"] != "submitted":
        return []
    answers = c.get("answers") or {}
    when = instant(c.get("submitted_at") or c["updated_at"])
    common = {"status": "final", "subject": ref("Patient", c["patient_id"]), "effectiveDateTime": when,
              "issued": when, "derivedFrom": [ref("QuestionnaireResponse", c["id"])]}
    out = []
    for item_id, site in codes.PAIN_ITEMS.items():
        value = answers.get(item_id)
        if value is None:
            continue
        out.append({"resourceType": "Observation", "id": f"{c['id']}-{item_id.replace('_', '-')}",
                    "category": [concept(codes.OBSERVATION_CATEGORY, "survey", "Survey")],
                    "code": concept(codes.LOINC, *codes.PAIN_SCORE, text=f"{site} pain (0-10)"),
                    **common, "valueInteger": int(value), "bodySite": {"text": site}})
    if answers.get("temp_status") == "measured" and answers.get("temp_value") is not None:
        unit = answers.get("temp_unit") or "C"
        ucum, symbol = codes.UCUM_UNITS.get(unit, codes.UCUM_UNITS["C"])
        out.append({"resourceType": "Observation", "id": f"{c['id']}-temperature",
                    "category": [concept(codes.OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")],
                    "code": concept(codes.LOINC, *codes.BODY_TEMPERATURE, text="Highest temperature since the last check-in"),
                    **common,
                    "valueQuantity": {"value": float(Decimal(str(answers["temp_value"]))), "unit": symbol,
                                      "system": codes.UCUM, "code": ucum}})
    return out


# ---- Flag and Task (an alert) ------------------------------------------------------------------

def flag(a: Row, base: str) -> dict:
    level = a["level"]
    priority, words = codes.FLAG_PRIORITIES.get(level, ("PN", "No alarm"))
    rules = local_system(base, "triage-rule")
    return _drop_empty({
        "resourceType": "Flag", "id": str(a["id"]),
        "extension": [{"url": codes.FLAG_PRIORITY_EXT, "valueCodeableConcept": {
            "coding": [coding(codes.FLAG_PRIORITY, priority, words),
                       coding(local_system(base, "alert-level"), level)], "text": level}}],
        "status": "inactive" if a["status"] == "resolved" else "active",
        "category": [concept(codes.FLAG_CATEGORY, "clinical", "Clinical")],
        "code": {"coding": [coding(rules, r) for r in (a.get("rules") or [])] or [coding(rules, a["family"])],
                 "text": a["summary"]},
        "subject": ref("Patient", a["patient_id"]),
        "period": _drop_empty({"start": instant(a["opened_at"]), "end": instant(a.get("resolved_at"))}),
    })


def task_status(a: Row) -> str:
    return {"open": "requested", "acknowledged": "in-progress", "resolved": "completed"}.get(a["status"], "requested")


def task(a: Row, base: str) -> dict:
    """The nurse's work on an alert: requested until acknowledged, in progress until resolved."""
    notes = [{"text": a["note"]}] if a.get("note") else []
    return _drop_empty({
        "resourceType": "Task", "id": str(a["id"]),
        "status": task_status(a),
        "businessStatus": concept(local_system(base, "disposition"), a["disposition"]) if a.get("disposition") else None,
        "intent": "order",
        "priority": codes.TASK_PRIORITIES.get(a["level"], "routine"),
        "code": concept(local_system(base, "alert-family"), a["family"]),
        "description": a["summary"],
        "focus": ref("Flag", a["id"]),
        "for": ref("Patient", a["patient_id"]),
        "basedOn": [ref("CarePlan", a["enrolment_id"])] if a.get("enrolment_id") else [],
        "authoredOn": instant(a["opened_at"]),
        "lastModified": instant(a["updated_at"]),
        "executionPeriod": _drop_empty({"start": instant(a.get("acknowledged_at")), "end": instant(a.get("resolved_at"))}),
        "restriction": {"period": {"end": instant(a["respond_by"])}},
        "note": notes,
    })


# ---- Communication (texts) ---------------------------------------------------------------------

_COMMUNICATION_STATUS = {"planned": "preparation", "claimed": "preparation", "sent": "in-progress",
                         "delivered": "completed", "undelivered": "stopped", "failed": "stopped",
                         "suppressed": "not-done", "cancelled": "not-done"}
_SMS = concept(codes.PARTICIPATION_MODE, "SMSWRIT", "SMS message")


def communication_out(m: Row, *, with_body: bool) -> dict:
    """A text to the patient or their caregiver; its words only where the clinic allows it."""
    status = m["status"]
    recipient = (ref("Patient", m["patient_id"]) if m["recipient"] == "patient"
                 else {"display": "The patient's caregiver"})
    reason = m.get("status_reason") or m.get("error_code")
    return _drop_empty({
        "resourceType": "Communication", "id": f"out-{m['id']}",
        "identifier": [{"system": "urn:recovery-tracker:message", "value": m["message_id"]}],
        "status": _COMMUNICATION_STATUS.get(status, "unknown"),
        "statusReason": {"text": str(reason)} if reason and status in ("undelivered", "failed", "suppressed", "cancelled") else None,
        "category": [concept(codes.COMMUNICATION_CATEGORY,
                             "alert" if m.get("urgent") else "reminder" if m["kind"].endswith("reminder") else "notification")],
        "medium": [_SMS],
        "subject": ref("Patient", m["patient_id"]),
        "topic": {"text": m["message_id"]},
        "basedOn": [ref("CarePlan", m["enrolment_id"])] if m.get("enrolment_id") else [],
        "sent": instant(m.get("sent_at")),
        "received": instant(m.get("final_at")) if status == "delivered" else None,
        "recipient": [recipient],
        "payload": [{"contentString": m["body"]}] if with_body and m.get("body") else [],
    })


def communication_in(m: Row, *, with_body: bool) -> dict:
    """A text the patient (or caregiver) sent."""
    sender = ref("Patient", m["patient_id"]) if m["sender_role"] == "patient" else {"display": "The patient's caregiver"}
    return _drop_empty({
        "resourceType": "Communication", "id": f"in-{m['id']}",
        "status": "completed",
        "medium": [_SMS],
        "subject": ref("Patient", m["patient_id"]),
        "topic": {"text": m["handled_as"]},
        "sent": instant(m["received_at"]),
        "received": instant(m["received_at"]),
        "sender": sender,
        "payload": [{"contentString": m["body"]}] if with_body and m.get("body") else [],
    })


def date_of(resource: dict) -> str | None:
    """The instant the `date` search parameter looks at, per resource type."""
    kind = resource["resourceType"]
    if kind == "Observation":
        return resource.get("effectiveDateTime")
    if kind == "QuestionnaireResponse":
        return resource.get("authored")
    if kind in ("Flag", "CarePlan"):
        return resource.get("period", {}).get("start")
    if kind == "Communication":
        return resource.get("sent")
    if kind == "Task":
        return resource.get("authoredOn")
    if kind == "Procedure":
        return resource.get("performedPeriod", {}).get("end")
    return None

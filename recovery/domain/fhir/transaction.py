"""An enrolment sent as a FHIR transaction Bundle (issue 15), read into the nurse's enrolment form
fields so that the form's own validation judges it (recovery/web/fhir.py). Each field remembers
the FHIR element it came from, so every error names its element (FHIRPath, as
OperationOutcome.issue.expression does).

What is read: a Patient (name, a mobile telecom, birthDate, an MR identifier, language in
communication), a Procedure (code, performed end, identifier) and, optionally, an Encounter
(period.end = discharge) and a Consent (status active = the patient agreed to texts)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from recovery.domain.fhir import codes

# form field -> the element it is read from, when the bundle has no such element at all
_WHERE = {"first_name": "Patient.name.given", "last_name": "Patient.name.family", "mobile": "Patient.telecom",
          "procedure_type": "Procedure.code", "procedure_end": "Procedure.performedPeriod.end",
          "discharge_at": "Encounter.period.end", "language": "Patient.communication.language"}
FORM_TIME = "%Y-%m-%dT%H:%M"  # the form's datetime-local format


@dataclass
class Enrolment:
    form: dict[str, Any] = field(default_factory=dict)  # what the nurse's form would have been sent
    where: dict[str, str] = field(default_factory=lambda: dict(_WHERE))  # form field -> FHIR element
    problems: list[tuple[str, str]] = field(default_factory=list)  # (FHIR element, message)
    mrn: str | None = None
    birth_date: date | None = None
    procedure_key: str | None = None  # "system|value" of Procedure.identifier
    readable: bool = False  # the Bundle has a Patient and a Procedure, so its fields can be judged


def _is_obj(v) -> bool:
    return isinstance(v, dict)


def _list(v) -> list:
    return v if isinstance(v, list) else []


def _text(v) -> str | None:
    return v if isinstance(v, str) else None


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def read_transaction(bundle: Any, tz: ZoneInfo) -> Enrolment:
    """`tz`: the zone the patient's times are read in (the clinic's, as the form defaults to)."""
    out = Enrolment()
    if not _is_obj(bundle) or bundle.get("resourceType") != "Bundle":
        out.problems.append(("Bundle", "The body must be a FHIR Bundle (resourceType Bundle)."))
        return out
    if bundle.get("type") != "transaction":
        out.problems.append(("Bundle.type", "The Bundle must be of type transaction."))
    found: dict[str, list[tuple[int, dict]]] = {}
    for i, entry in enumerate(_list(bundle.get("entry"))):
        resource = entry.get("resource") if _is_obj(entry) else None
        if not _is_obj(resource) or not isinstance(resource.get("resourceType"), str):
            out.problems.append((f"Bundle.entry[{i}].resource", "Each entry needs a resource."))
            continue
        found.setdefault(resource["resourceType"], []).append((i, resource))
    for kind in found:
        if kind not in ("Patient", "Procedure", "Encounter", "Consent"):
            out.problems.append((f"Bundle.entry[{found[kind][0][0]}].resource",
                                 f"{kind[:40]} is not read here: send a Patient, a Procedure, and optionally "
                                 "an Encounter and a Consent."))
    for kind, required in (("Patient", True), ("Procedure", True), ("Encounter", False), ("Consent", False)):
        n = len(found.get(kind, []))
        if n > 1 or (required and n == 0):
            out.problems.append(("Bundle.entry", f"The Bundle must hold {'exactly' if required else 'at most'} one {kind}."))
    if out.problems:
        return out
    out.readable = True
    _patient(out, *found["Patient"][0], tz)
    _procedure(out, *found["Procedure"][0], tz)
    if "Encounter" in found:
        i, enc = found["Encounter"][0]
        end = enc.get("period", {}).get("end") if _is_obj(enc.get("period")) else None
        if end is not None:
            _time_field(out, "discharge_at", end, f"Bundle.entry[{i}].resource.period.end", tz)
    if "Consent" in found:
        i, consent = found["Consent"][0]
        out.form["sms_consent"] = "y" if consent.get("status") == "active" else ""
    return out


def _patient(out: Enrolment, i: int, p: dict, tz: ZoneInfo) -> None:
    at = f"Bundle.entry[{i}].resource"
    names = _list(p.get("name"))
    name = names[0] if names and _is_obj(names[0]) else {}
    out.form["first_name"] = " ".join(g for g in _list(name.get("given")) if isinstance(g, str))
    out.form["last_name"] = _text(name.get("family")) or ""
    out.where["first_name"], out.where["last_name"] = f"{at}.name[0].given", f"{at}.name[0].family"
    for j, t in enumerate(_list(p.get("telecom"))):
        if _is_obj(t) and t.get("system") in ("phone", "sms") and t.get("use") == "mobile":
            out.form["mobile"] = _text(t.get("value")) or ""
            out.where["mobile"] = f"{at}.telecom[{j}].value"
            break
    else:
        out.where["mobile"] = f"{at}.telecom"
    for j, c in enumerate(_list(p.get("communication"))):
        codings = _list(c.get("language", {}).get("coding")) if _is_obj(c) and _is_obj(c.get("language")) else []
        code = next((_text(x.get("code")) for x in codings if _is_obj(x) and _text(x.get("code"))), None)
        if code:
            out.form["language"] = code.split("-")[0].lower()  # BCP 47: "en-US" is English
            out.where["language"] = f"{at}.communication[{j}].language"
            break
    mrn_at = f"{at}.identifier"
    for j, ident in enumerate(_list(p.get("identifier"))):
        types = _list(ident.get("type", {}).get("coding")) if _is_obj(ident) and _is_obj(ident.get("type")) else []
        if any(_is_obj(t) and t.get("code") == "MR" for t in types):
            value = (_text(ident.get("value")) or "").strip()
            mrn_at = f"{at}.identifier[{j}].value"
            if value and len(value) <= 64:
                out.mrn = value
            break
    out.where["mrn"] = mrn_at
    if out.mrn is None:
        out.problems.append((mrn_at, "Give the medical record number: an identifier of type MR "
                                     f"({codes.V2_0203}), at most 64 characters."))
    birth = p.get("birthDate")
    if birth is not None:
        try:
            out.birth_date = date.fromisoformat(birth) if isinstance(birth, str) and len(birth) == 10 else None
        except ValueError:
            out.birth_date = None
        if out.birth_date is None:
            out.problems.append((f"{at}.birthDate", "birthDate must be a full date, e.g. 1948-05-17."))


def _procedure(out: Enrolment, i: int, proc: dict, tz: ZoneInfo) -> None:
    at = f"Bundle.entry[{i}].resource"
    codings = _list(proc.get("code", {}).get("coding")) if _is_obj(proc.get("code")) else []
    out.where["procedure_type"] = f"{at}.code"
    for c in codings:
        if not _is_obj(c):
            continue
        code = _text(c.get("code")) or ""
        if c.get("system") == codes.CPT and code in codes.CPT_PROCEDURES:
            out.form["procedure_type"] = codes.CPT_PROCEDURES[code]
            break
        if (_text(c.get("system")) or "").endswith("/CodeSystem/procedure") and code in codes.PROCEDURE_WORDS:
            out.form["procedure_type"] = code
            break
    else:
        if codings:
            out.form["procedure_type"] = "unknown"  # the form says which are known
    period = proc.get("performedPeriod")
    if _is_obj(period) and "end" in period:
        _time_field(out, "procedure_end", period["end"], f"{at}.performedPeriod.end", tz)
    elif "performedDateTime" in proc:
        _time_field(out, "procedure_end", proc["performedDateTime"], f"{at}.performedDateTime", tz)
    idents = [x for x in _list(proc.get("identifier")) if _is_obj(x) and _text(x.get("value"))]
    if not idents:
        out.problems.append((f"{at}.identifier", "The Procedure needs an identifier (the hospital's own), so that "
                                                 "a resent message enrols once."))
    else:
        key = f"{_text(idents[0].get('system')) or ''}|{idents[0]['value'].strip()}"
        if len(key) > 255:
            out.problems.append((f"{at}.identifier[0]", "The Procedure identifier is too long (255 characters)."))
        else:
            out.procedure_key = key


def _time_field(out: Enrolment, name: str, text: Any, where: str, tz: ZoneInfo) -> None:
    out.where[name] = where
    value = _instant(text)
    if value is None:
        out.problems.append((where, "A dateTime with a time and a zone, e.g. 2026-03-07T10:30:00-05:00."))
        return
    try:
        out.form[name] = value.astimezone(tz).strftime(FORM_TIME)
    except (OverflowError, ValueError):
        out.problems.append((where, "That time is out of range."))

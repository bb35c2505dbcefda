"""Bundles, OperationOutcomes, the CapabilityStatement and the search parameters the API reads."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from recovery.domain.fhir import codes

SEARCHABLE = ("Observation", "QuestionnaireResponse", "Flag", "Communication", "CarePlan", "Task")
READABLE = ("Patient", "Procedure", "Questionnaire") + SEARCHABLE


def searchset(resources: list[dict], base: str, *, self_url: str, included: tuple[str, ...] = ()) -> dict:
    return {
        "resourceType": "Bundle", "type": "searchset", "total": sum(1 for r in resources if r["resourceType"] not in included),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                   "search": {"mode": "include" if r["resourceType"] in included else "match"}}
                  for r in resources],
    }


def outcome(issues: list[tuple[str, str, str | None]], severity: str = "error") -> dict:
    """issues: (FHIR issue type code, what is wrong, the element it is about or None)."""
    out = []
    for code, text, where in issues:
        issue = {"severity": severity, "code": code, "diagnostics": text}
        if where:
            issue["expression"] = [where]
        out.append(issue)
    return {"resourceType": "OperationOutcome", "issue": out}


def capability_statement(base: str, *, now: datetime, software_version: str) -> dict:
    def resource(kind: str, params: list[tuple[str, str]], interactions=("read", "search-type")) -> dict:
        r = {"type": kind, "interaction": [{"code": i} for i in interactions]}
        if params:
            r["searchParam"] = [{"name": n, "type": t} for n, t in params]
        return r
    by_patient = [("patient", "reference"), ("date", "date")]
    resources = [resource("Patient", [("identifier", "token")]),
                 resource("Procedure", [], ("read",)), resource("Questionnaire", [], ("read",))]
    resources += [resource(k, by_patient) for k in SEARCHABLE]
    resources[0]["operation"] = [{"name": "everything",
                                  "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]
    return {
        "resourceType": "CapabilityStatement", "status": "active",
        "date": now.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "kind": "instance", "software": {"name": "Recovery Tracker", "version": software_version},
        "implementation": {"description": "Recovery Tracker FHIR API", "url": base},
        "fhirVersion": codes.FHIR_VERSION, "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {"description": "A clinic API token: 'Authorization: Bearer rt_…' (scope fhir.read to "
                                        "read, fhir.write to enrol). Each request sees its own clinic only."},
            "resource": resources,
            "interaction": [{"code": "transaction"}],
        }],
    }


# ---- search parameters -------------------------------------------------------------------------

class SearchError(ValueError):
    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


_ID = re.compile(r"[0-9]{1,12}")


def patient_param(value: str, base: str) -> int:
    """`patient=12`, `Patient/12` or the full URL."""
    v = value.strip()
    for prefix in (base + "/Patient/", "Patient/"):
        if v.startswith(prefix):
            v = v[len(prefix):]
            break
    if not _ID.fullmatch(v):
        raise SearchError("patient", "patient must be a Patient id or reference, e.g. Patient/12")
    return int(v)


@dataclass(frozen=True)
class DateRange:
    prefix: str
    start: datetime  # the value's own range: [start, end)
    end: datetime

    def matches(self, when: datetime | None) -> bool:
        if when is None:
            return False
        p = self.prefix
        return {"eq": self.start <= when < self.end, "ne": not (self.start <= when < self.end),
                "ge": when >= self.start, "gt": when >= self.end, "le": when < self.end,
                "lt": when < self.start, "sa": when >= self.end, "eb": when < self.start}[p]


_DATE = re.compile(r"(eq|ne|ge|gt|le|lt|sa|eb)?(\d{4})(?:-(\d{2})(?:-(\d{2})(T.+)?)?)?")


def date_param(value: str) -> DateRange:
    """A FHIR date search value (`ge2026-03-09`, `2026-03`, `lt2026-03-09T10:00:00Z`). A date
    without a zone is read in UTC."""
    m = _DATE.fullmatch(value.strip())
    problem = SearchError("date", f"date must be a FHIR date search value such as ge2026-03-09, not {value[:40]!r}")
    if not m:
        raise problem
    prefix, y, mo, d, t = m.group(1) or "eq", int(m.group(2)), m.group(3), m.group(4), m.group(5)
    try:
        if t:
            start = datetime.fromisoformat(f"{m.group(2)}-{mo}-{d}{t.replace('Z', '+00:00')}")
            if start.tzinfo is None:
                start = start.replace(tzinfo=timezone.utc)
            end = start + timedelta(seconds=1)
        elif d:
            start = datetime.combine(date(y, int(mo), int(d)), datetime.min.time(), timezone.utc)
            end = start + timedelta(days=1)
        elif mo:
            start = datetime(y, int(mo), 1, tzinfo=timezone.utc)
            end = datetime(y + (int(mo) == 12), int(mo) % 12 + 1, 1, tzinfo=timezone.utc)
        else:
            start, end = datetime(y, 1, 1, tzinfo=timezone.utc), datetime(y + 1, 1, 1, tzinfo=timezone.utc)
    except ValueError:
        raise problem from None
    return DateRange(prefix, start, end)


def parse_instant(text: str | None) -> datetime | None:
    if not text:
        return None
    if len(text) == 10:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def identifier_value(value: str) -> tuple[str | None, str]:
    """`system|value`, `|value` or `value` -> (system or None, value)."""
    if "|" in value:
        system, _, v = value.partition("|")
        return (system or None), v
    return None, value

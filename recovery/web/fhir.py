"""The FHIR R4 API at /fhir (issue 15; docs/fhir.md): JSON only (`application/fhir+json`), a clinic
API token in `Authorization: Bearer …` on everything but /fhir/metadata, each token seeing its own
clinic only (another clinic's resource is 404, as one that does not exist). Every use of a token
is audited with the patients the answer showed. CSRF does not apply: no cookie is read here."""
from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, g, request
from werkzeug.exceptions import HTTPException

from recovery.services import clinic_plans
from recovery.clock import utcnow
from recovery.domain.fhir import bundles, codes
from recovery.domain.fhir.bundles import READABLE, SEARCHABLE, SearchError
from recovery.domain.fhir.transaction import read_transaction
from recovery.services import api_tokens
from recovery.services.fhir import Reader
from recovery.store.db import db
from recovery.web import api_auth, ratelimits
from recovery.web.extensions import csrf, limiter
from recovery.web.feed_enrolment import enrol_from
from recovery.web.input import clean_text

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
csrf.exempt(bp)

NO_TOKEN = {"fhir.metadata"}
MAX_BUNDLE_BYTES = 256 * 1024  # an enrolment Bundle is a few kB
ERROR_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               413: "too-costly", 415: "not-supported", 422: "invariant", 429: "throttled"}


def _limit() -> str:
    return current_app.config["FHIR_RATE_LIMIT"]


limiter.limit(_limit, key_func=ratelimits.bearer_key)(bp)


def base_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/fhir"


def fhir_response(resource: dict, status: int = 200, headers: dict | None = None):
    resp = current_app.response_class(json.dumps(resource, ensure_ascii=False), status=status,
                                      mimetype=codes.MIME)
    resp.headers["Cache-Control"] = "no-store"  # patient data: never in a shared cache
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def problem(status: int, text: str, where: str | None = None, headers: dict | None = None):
    return fhir_response(bundles.outcome([(ERROR_CODES.get(status, "processing"), text, where)]), status, headers)


def _http_error(e: HTTPException):
    text = {404: "No such resource in this clinic.", 405: "That interaction is not supported here.",
            429: "Too many requests with this token: wait a minute and try again."}.get(e.code, e.description)
    return problem(e.code or 500, text)


# By code: Flask prefers an app-wide handler for the code (the HTML pages of recovery/web/errors.py)
# over a blueprint's handler for HTTPException in general.
for _code in (400, 401, 403, 404, 405, 413, 415, 429):
    bp.register_error_handler(_code, _http_error)


@bp.before_request
def _authenticate():
    if request.endpoint in NO_TOKEN:
        g.api_caller = None
        return None
    needed = api_tokens.READ if request.method in ("GET", "HEAD") else api_tokens.WRITE
    refused = api_auth.authenticate(needed)
    caller = g.api_caller
    if caller is not None:
        g.fhir = Reader(db.session, caller.clinic, base_url(), caller.now, _template_of, shown=caller.shown)
    if refused:
        status, message = refused
        return problem(status, message, headers=api_auth.CHALLENGE if status == 401 else None)
    return None


bp.after_request(api_auth.audit)


def _template_of(enrolment):
    return clinic_plans.plan_for(db.session, current_app.config["SCHEDULES_DIR"], enrolment, g.fhir.clinic)


# ---- read ----------------------------------------------------------------------------------------

@bp.get("/metadata")
def metadata():
    return fhir_response(bundles.capability_statement(base_url(), now=utcnow(), software_version="1"))


@bp.get("/Patient/<int:patient_id>")
def read_patient(patient_id: int):
    p = g.fhir.patient(patient_id)
    if p is None:
        return problem(404, f"No Patient/{patient_id} in this clinic.")
    return fhir_response(g.fhir.patient_resource(p))


@bp.get("/Patient")
def search_patients():
    identifier = request.args.get("identifier")
    if identifier is None:
        found = g.fhir.clinic_patients()
    else:
        _system, value = bundles.identifier_value(identifier)
        found = g.fhir.patients_by_mrn(value.strip()[:64]) if value.strip() else []
    return fhir_response(bundles.searchset([g.fhir.patient_resource(p) for p in found], base_url(),
                                           self_url=request.url))


@bp.get("/Patient/<int:patient_id>/$everything")
def everything(patient_id: int):
    p = g.fhir.patient(patient_id)
    if p is None:
        return problem(404, f"No Patient/{patient_id} in this clinic.")
    return fhir_response(bundles.searchset(g.fhir.everything(p), base_url(), self_url=request.url,
                                           included=("Questionnaire",)))


@bp.get("/<kind>")
def search(kind: str):
    if kind not in SEARCHABLE:
        return problem(404, f"{kind[:40]} is not a resource type this server searches.")
    try:
        if not request.args.get("patient"):
            raise SearchError("patient", "Search by patient: ?patient=Patient/12 (the clinic's whole record: "
                                         "the bulk export).")
        patient_id = bundles.patient_param(request.args["patient"], base_url())
        dates = [bundles.date_param(v) for v in request.args.getlist("date") + request.args.getlist("authored-on")]
    except SearchError as e:
        return problem(400, str(e), e.param)
    p = g.fhir.patient(patient_id)
    found = g.fhir.search(kind, p, dates) if p is not None else []
    return fhir_response(bundles.searchset(found, base_url(), self_url=request.url))


@bp.get("/<kind>/<rid>")
def read(kind: str, rid: str):
    if kind not in READABLE:
        return problem(404, f"{kind[:40]} is not a resource type this server reads.")
    found = g.fhir.read(kind, rid)
    if found is None:
        return problem(404, "No such resource in this clinic.")
    return fhir_response(found)


# ---- enrolment in ----------------------------------------------------------------------------------

@bp.post("/")
def transaction():
    """A transaction Bundle that enrols a patient, judged by the nurse's own enrolment form: the
    same validation, every problem named by its FHIR element, nothing written on error; a resent
    Bundle (same Procedure identifier) answers with the enrolment it made."""
    request.max_content_length = MAX_BUNDLE_BYTES  # a larger body: 413
    bundle = _cleaned(request.get_json(force=True, silent=True))
    clinic = g.fhir.clinic
    parsed = read_transaction(bundle, ZoneInfo(clinic.timezone))
    outcome = enrol_from(parsed, clinic=clinic, token=g.api_caller.token, now=g.fhir.now, request_id=g.request_id,
                         fallback="Bundle")
    if outcome.problems:
        return _invalid(outcome.problems)
    return _transaction_response(outcome.enrolment, created=outcome.created)


def _cleaned(value):
    """Every string of the JSON as recovery/web/input.py cleans form values (no NUL, no control
    characters, NFC): the Bundle's MRN and identifiers go to the database as they are."""
    if isinstance(value, str):
        return clean_text(value, multiline=False)
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k, multiline=False): _cleaned(v) for k, v in value.items()}
    return value


def _invalid(problems: list[tuple[str, str]]):
    return fhir_response(bundles.outcome([("invalid", text, where) for where, text in problems]), 422)


def _transaction_response(enrolment, *, created: bool):
    g.fhir.shown.add(enrolment.patient_id)
    status = "201 Created" if created else "200 OK"
    return fhir_response({"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": status, "location": f"Patient/{enrolment.patient_id}"}},
        {"response": {"status": status, "location": f"Procedure/{enrolment.id}"}},
    ]}, 200)

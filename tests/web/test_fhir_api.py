"""The FHIR R4 API (issue 15): tokens, the read API, the bulk export and enrolment by transaction
Bundle. Every resource returned is checked against the official R4 JSON schema and the
fhir.resources R4B models (tests/support/fhir_validation.py); a FHIR client no one here wrote (fhirpy)
reads the API from a live server on 127.0.0.1 (werkzeug's server in a thread, on the test's
database: cheaper than gunicorn, and a real HTTP exchange)."""
from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from flask import current_app
from werkzeug.serving import make_server

from recovery.domain.questionnaire.answers import coerce_answers
from recovery.files import templates as templates_repo
from recovery.services import alerting, checkins
from recovery.services.api_tokens import create_token
from recovery.store.enrolments import current_enrolment
from recovery.store.models import (Alert, ApiToken, AuditEvent, Clinic, Enrolment, InboundMessage, OutboundMessage,
                                   Patient, StaffRole)
from tests.support.factories import enrol, make_clinic, make_staff, template_for
from tests.support.fhir_validation import validate

NOW = datetime(2026, 3, 9, 15, 0, tzinfo=timezone.utc)
T0 = NOW - timedelta(hours=30)
MIME = "application/fhir+json"


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def world(app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    clinic, other = make_clinic(session, now=NOW), make_clinic(session, now=NOW)
    nurse = make_staff(session, clinic, now=NOW)
    ann = enrol(session, clinic, procedure_end=T0, now=T0 + timedelta(hours=2), first="Annabel")
    ann.mrn, ann.birth_date = "MRN-1001", date(1948, 5, 17)
    carl = enrol(session, other, procedure_end=T0, now=T0 + timedelta(hours=2), first="Carlotta")
    enrolment = current_enrolment(ann)
    ruleset = templates_repo.ruleset(current_app.config["RULESET_PATH"])
    c = checkins.start_checkin(session, enrolment=enrolment, patient=ann, slot="day1", source="web", now=NOW)
    answers = {"cardioresp": ["none"], "neuro": ["none"], "bladder_bowel": "no_change", "back_pain": 6,
               "pain_change": "worse", "new_pain_sites": ["ribs_or_side"], "rib_pain": 4, "temp_status": "measured",
               "temp_value": "38.4", "temp_unit": "C", "chills": True}
    checkins.submit_checkin(session, checkin=c, enrolment=enrolment, patient=ann, answers=coerce_answers(answers),
                            template=template_for(clinic), ruleset=ruleset, now=NOW)
    alert = session.scalars(sa.select(Alert).where(Alert.patient_id == ann.id)).first() or \
        alerting.raise_rules(session, patient=ann, enrolment=enrolment, rule_ids=["U20"], now=NOW)[0]
    alerting.acknowledge(session, alert, nurse, NOW + timedelta(minutes=5))
    session.add(InboundMessage(provider_sid="SM" + "1" * 32, patient_id=ann.id, sender_role="patient",
                               body="feeling rough", handled_as="free_text", received_at=NOW))
    read = create_token(session, clinic=clinic, scopes=["fhir.read"], label="EHR", now=NOW)
    write = create_token(session, clinic=clinic, scopes=["fhir.write"], label="ADT feed", now=NOW)
    other_token = create_token(session, clinic=other, scopes=["fhir.read", "fhir.write"], label="B", now=NOW)
    session.commit()
    return {"clinic": clinic, "ann": ann, "carl": carl, "alert": alert, "checkin": c, "read": read.secret,
            "write": write.secret, "other": other_token.secret, "nurse": nurse}


def everything(client, world, secret=None) -> dict:
    r = client.get(f"/fhir/Patient/{world['ann'].id}/$everything", headers=bearer(secret or world["read"]))
    assert r.status_code == 200 and r.mimetype == MIME
    return r.json


def test_everything_validates_and_maps_the_record_with_standard_codes(app, client, session, world):
    bundle = everything(client, world)
    validate(bundle)  # every entry: the R4 JSON schema and the R4B models
    by_type: dict[str, list[dict]] = {}
    for e in bundle["entry"]:
        by_type.setdefault(e["resource"]["resourceType"], []).append(e["resource"])
    assert set(by_type) == {"Patient", "Procedure", "CarePlan", "Questionnaire", "QuestionnaireResponse",
                            "Observation", "Flag", "Task", "Communication"}
    (patient,) = by_type["Patient"]
    assert patient["identifier"][0]["value"] == "MRN-1001" and patient["birthDate"] == "1948-05-17"
    assert patient["telecom"][0]["use"] == "mobile" and patient["name"][0]["given"] == ["Annabel"]
    (proc,) = by_type["Procedure"]
    t0 = T0.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert proc["performedPeriod"]["end"] == t0
    (plan,) = by_type["CarePlan"]
    assert plan["period"]["start"] == t0 and plan["status"] == "active"
    assert {a["detail"]["code"]["coding"][0]["code"] for a in plan["activity"]} >= {"TL03"}
    (q,) = by_type["Questionnaire"]
    (qr,) = by_type["QuestionnaireResponse"]
    assert qr["questionnaire"] == f"{q['url']}|{q['version']}" and qr["status"] == "completed"
    obs = {o["id"]: o for o in by_type["Observation"]}
    cid = world["checkin"].id
    assert obs[f"{cid}-back-pain"]["code"]["coding"][0]["code"] == "72514-3"
    assert obs[f"{cid}-back-pain"]["valueInteger"] == 6 and obs[f"{cid}-rib-pain"]["valueInteger"] == 4
    temp = obs[f"{cid}-temperature"]
    assert temp["code"]["coding"][0]["code"] == "8310-5"
    assert temp["valueQuantity"] == {"value": 38.4, "unit": "°C", "system": "http://unitsofmeasure.org", "code": "Cel"}
    assert temp["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{cid}"}]
    alert = world["alert"]
    flag = next(f for f in by_type["Flag"] if f["id"] == str(alert.id))
    assert [c["code"] for c in flag["code"]["coding"]] == alert.rules and flag["status"] == "active"
    assert flag["extension"][0]["valueCodeableConcept"]["text"] == alert.level
    task = next(t for t in by_type["Task"] if t["id"] == str(alert.id))
    assert task["status"] == "in-progress" and task["focus"] == {"reference": f"Flag/{alert.id}"}
    texts = by_type["Communication"]
    assert all(t["medium"][0]["coding"][0]["code"] == "SMSWRIT" for t in texts)
    assert not any("payload" in t for t in texts), "the words of texts are shown only where the clinic allows"
    assert any(t["id"].startswith("in-") for t in texts)
    # a clinic that allows it sees the words
    world["clinic"].fhir_text_bodies = True
    session.commit()
    assert any(t["resource"].get("payload") for t in everything(client, world)["entry"]
               if t["resource"]["resourceType"] == "Communication")
    # each answer a PHI read on the audit trail, with the token's use
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.actor_type == "api_token")).all()
    assert actions.count("fhir_read") == 2 and actions.count("api_token_used") == 2


def test_search_by_patient_and_date_and_by_mrn(app, client, session, world):
    h, ann = bearer(world["read"]), world["ann"]
    for kind in ("Observation", "QuestionnaireResponse", "Flag", "Communication", "CarePlan", "Task"):
        all_ = client.get(f"/fhir/{kind}?patient=Patient/{ann.id}", headers=h).json
        validate(all_)
        assert all_["total"] >= 1, kind
        later = client.get(f"/fhir/{kind}?patient={ann.id}&date=gt2026-03-10", headers=h).json
        assert later["total"] < all_["total"] or kind == "Communication", kind
        one = all_["entry"][0]["resource"]
        assert client.get(f"/fhir/{kind}/{one['id']}", headers=h).json == one
    today = client.get(f"/fhir/Observation?patient={ann.id}&date=2026-03-09", headers=h).json
    assert today["total"] == 3
    found = client.get("/fhir/Patient?identifier=MRN-1001", headers=h).json
    assert [e["resource"]["id"] for e in found["entry"]] == [str(ann.id)]
    bad = client.get(f"/fhir/Observation?patient={ann.id}&date=yesterday", headers=h)
    assert bad.status_code == 400 and bad.json["issue"][0]["expression"] == ["date"]
    validate(bad.json)


def test_tokens_are_made_once_revoked_and_see_only_their_own_clinic(app, client, session, world):
    ann, carl = world["ann"], world["carl"]
    assert client.get(f"/fhir/Patient/{ann.id}").status_code == 401
    assert client.get(f"/fhir/Patient/{ann.id}", headers=bearer("rt_wrong")).status_code == 401
    for url in (f"/fhir/Patient/{ann.id}", f"/fhir/Patient/{ann.id}/$everything",
                f"/fhir/Flag/{world['alert'].id}", f"/fhir/Observation?patient={ann.id}"):
        r = client.get(url, headers=bearer(world["other"]))
        assert r.status_code in (404, 200) and b"Annabel" not in r.data and b"MRN-1001" not in r.data, url
    assert client.get(f"/fhir/Patient/{carl.id}", headers=bearer(world["read"])).status_code == 404
    # a read token cannot enrol, a write token cannot read
    assert client.post("/fhir/", json={}, headers=bearer(world["read"])).status_code == 403
    assert client.get(f"/fhir/Patient/{ann.id}", headers=bearer(world["write"])).status_code == 403
    validate(client.get("/fhir/metadata").json)
    runner = app.test_cli_runner()
    made = runner.invoke(args=["api-token", "create", "--clinic", world["clinic"].slug, "--scope", "fhir.read"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    row = session.scalar(sa.select(ApiToken).order_by(ApiToken.id.desc()))
    assert secret.startswith("rt_") and secret not in row.token_hash and len(row.token_hash) == 64
    assert client.get(f"/fhir/Patient/{ann.id}", headers=bearer(secret)).status_code == 200
    listed = runner.invoke(args=["api-token", "list", "--clinic", world["clinic"].slug])
    assert secret not in listed.output and "last used" in listed.output
    assert runner.invoke(args=["api-token", "revoke", "--clinic", world["clinic"].slug, str(row.id)]).exit_code == 0
    session.expire_all()
    assert client.get(f"/fhir/Patient/{ann.id}", headers=bearer(secret)).status_code == 401
    bad = runner.invoke(args=["api-token", "create", "--clinic", world["clinic"].slug, "--scope", "fhir.admin"])
    assert bad.exit_code == 2


def test_each_token_is_rate_limited_on_its_own(make_app, session, world):
    with make_app(RATELIMIT_ENABLED=True, FHIR_RATE_LIMIT="3 per minute") as limited:
        c = limited.test_client()
        url = f"/fhir/Patient/{world['ann'].id}"
        assert [c.get(url, headers=bearer(world["read"])).status_code for _ in range(3)] == [200, 200, 200]
        over = c.get(url, headers=bearer(world["read"]))
        assert over.status_code == 429 and over.json["issue"][0]["code"] == "throttled"
        validate(over.json)
        assert c.get("/fhir/Patient?identifier=x", headers=bearer(world["other"])).status_code == 200


def test_an_admin_makes_a_token_on_the_admin_page_sees_it_once_and_revokes_it(app, session, world):
    from tests.support.factories import login
    clinic, ann = world["clinic"], world["ann"]
    admin = make_staff(session, clinic, role=StaffRole.ADMIN, now=NOW)
    other_admin = make_staff(session, world["carl"].clinic, role=StaffRole.ADMIN, now=NOW)
    session.commit()
    c = app.test_client()
    assert login(c, admin).status_code == 303
    assert b"API tokens" in c.get("/admin").data
    assert c.post("/admin/api-tokens", data={"label": "EHR"}).status_code == 422  # no scope ticked
    page = c.post("/admin/api-tokens", data={"label": "EHR export", "scopes": ["fhir.read"]})
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    secret = page.get_data(as_text=True).split('<code class="secret">')[1].split("</code>")[0]
    assert secret.startswith("rt_") and secret not in c.get("/admin/api-tokens").get_data(as_text=True)
    assert app.test_client().get(f"/fhir/Patient/{ann.id}", headers=bearer(secret)).status_code == 200
    token = session.scalar(sa.select(ApiToken).where(ApiToken.label == "EHR export"))
    nurse = app.test_client()
    login(nurse, world["nurse"])
    assert nurse.post(f"/admin/api-tokens/{token.id}/revoke").status_code == 403
    stranger = app.test_client()
    login(stranger, other_admin)
    assert stranger.post(f"/admin/api-tokens/{token.id}/revoke").status_code == 404
    assert b"EHR export" not in stranger.get("/admin/api-tokens").data
    assert c.post(f"/admin/api-tokens/{token.id}/revoke").status_code == 303
    session.expire_all()
    assert app.test_client().get(f"/fhir/Patient/{ann.id}", headers=bearer(secret)).status_code == 401
    assert {"api_token_created", "api_token_revoked"} <= set(session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.actor_type == "staff", AuditEvent.actor_id == admin.id)).all())


def test_a_fhir_client_reads_the_api_from_a_live_server(app, session, world):
    from fhirpy import SyncFHIRClient
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = SyncFHIRClient(f"http://127.0.0.1:{server.server_port}/fhir", authorization=f"Bearer {world['read']}")
        (patient,) = client.resources("Patient").search(identifier="MRN-1001").fetch()
        assert patient["name"][0]["family"] == world["ann"].last_name
        pain = client.resources("Observation").search(patient=patient.reference, date="ge2026-03-09").fetch_all()
        assert {o["code"]["coding"][0]["code"] for o in pain} == {"72514-3", "8310-5"}
        flag = client.reference("Flag", str(world["alert"].id)).to_resource()
        assert flag["subject"]["reference"] == patient.reference
        bundle = client.execute(f"Patient/{patient.id}/$everything", method="get")
        assert bundle["resourceType"] == "Bundle" and bundle["total"] > 5
    finally:
        server.shutdown()
        thread.join(5)


def test_bulk_export_and_each_demo_patients_everything_are_valid(app, client, session, world, tmp_path):
    from recovery.cli.demo import DEMO_PATIENTS, DEMO_SLUG, seed
    seed(session, now=NOW, base_url="http://127.0.0.1:5000")
    demo = session.scalar(sa.select(Clinic).where(Clinic.slug == DEMO_SLUG))
    secret = create_token(session, clinic=demo, scopes=["fhir.read"], label="demo", now=NOW).secret
    session.commit()
    demo_patients = session.scalars(sa.select(Patient).where(Patient.clinic_id == demo.id)).all()
    assert len(demo_patients) == len(DEMO_PATIENTS)
    for p in demo_patients:
        r = client.get(f"/fhir/Patient/{p.id}/$everything", headers=bearer(secret))
        assert r.status_code == 200
        validate(r.json)
    out = tmp_path / "export"
    result = app.test_cli_runner().invoke(args=["fhir", "export", "--clinic", world["clinic"].slug, "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    kinds = {o["type"] for o in manifest["output"]}
    assert {"Patient", "Observation", "Flag", "Task", "Communication", "CarePlan", "Questionnaire"} <= kinds
    for o in manifest["output"]:
        lines = (out / o["url"]).read_text().splitlines()
        assert len(lines) == o["count"]
        for line in lines:
            resource = json.loads(line)
            assert resource["resourceType"] == o["type"]
            validate(resource)
    patients = [json.loads(x) for x in (out / "Patient.ndjson").read_text().splitlines()]
    assert [p["id"] for p in patients] == [str(world["ann"].id)], "only the clinic's own patients"
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "fhir_exported")) == 1
    assert app.test_cli_runner().invoke(args=["fhir", "export", "--clinic", "nope", "--out", str(out)]).exit_code == 2


def adt_bundle(*, mrn="MRN-2002", mobile="+12025550163", family="Dalton", code=("http://www.ama-assn.org/go/cpt", "22513"),
               end="2026-03-09T09:30:00-05:00", discharge="2026-03-09T13:00:00-05:00", procedure_id="PROC-77") -> dict:
    patient = {"resourceType": "Patient", "identifier": [
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
         "system": "urn:oid:1.2.3.4", "value": mrn}],
        "name": [{"family": family, "given": ["Dora"]}], "birthDate": "1950-02-03",
        "telecom": [{"system": "phone", "value": mobile, "use": "mobile"}],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]}}]}
    procedure = {"resourceType": "Procedure", "status": "completed", "subject": {"reference": "urn:uuid:p1"},
                 "identifier": [{"system": "urn:oid:1.2.3.5", "value": procedure_id}],
                 "code": {"coding": [{"system": code[0], "code": code[1]}]}, "performedPeriod": {"end": end}}
    encounter = {"resourceType": "Encounter", "status": "finished", "class": {"code": "IMP"},
                 "period": {"end": discharge}}
    consent = {"resourceType": "Consent", "status": "active", "scope": {"text": "texts"}, "category": [{"text": "SMS"}]}
    entries = [patient, procedure, encounter, consent]
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": f"urn:uuid:p{i}", "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
                      for i, r in enumerate(entries, 1)]}


def _counts(session) -> tuple[int, ...]:
    return tuple(session.scalar(sa.select(sa.func.count()).select_from(m)) for m in (Patient, Enrolment, OutboundMessage))


def test_a_transaction_bundle_enrols_as_the_form_does_once_and_bad_ones_write_nothing(app, client, session, world):
    h = bearer(world["write"])
    validate(adt_bundle())  # what the test sends is itself valid R4
    before = _counts(session)
    # bad bundles: every problem named by its element, nothing written
    bad = client.post("/fhir/", json=adt_bundle(mobile="+12025550", family="", code=("http://www.ama-assn.org/go/cpt", "99213"),
                                                end="2026-03-09T09:30:00"), headers=h)
    assert bad.status_code == 422
    validate(bad.json)
    where = {i["expression"][0] for i in bad.json["issue"]}
    assert where == {"Bundle.entry[0].resource.telecom[0].value", "Bundle.entry[0].resource.name[0].family",
                     "Bundle.entry[1].resource.code", "Bundle.entry[1].resource.performedPeriod.end"}, bad.json
    assert len(bad.json["issue"]) == 4
    no_patient = client.post("/fhir/", json={**adt_bundle(), "entry": adt_bundle()["entry"][1:]}, headers=h)
    assert no_patient.status_code == 422 and "one Patient" in no_patient.json["issue"][0]["diagnostics"]
    old = client.post("/fhir/", json=adt_bundle(end="2025-01-09T09:30:00-05:00", discharge="2025-01-09T13:00:00-05:00"), headers=h)
    assert old.status_code == 422 and "90 days" in old.json["issue"][0]["diagnostics"]
    assert client.post("/fhir/", data=b"\xff not json", headers=h).status_code == 422
    assert _counts(session) == before
    # a good one enrols; the same again enrols nobody new
    ok = client.post("/fhir/", json=adt_bundle(), headers=h)
    assert ok.status_code == 200, ok.json
    validate(ok.json)
    assert ok.json["entry"][0]["response"]["status"] == "201 Created"
    patient_id = int(ok.json["entry"][0]["response"]["location"].split("/")[1])
    again = client.post("/fhir/", json=adt_bundle(), headers=h)
    assert again.json["entry"][0]["response"] == {"status": "200 OK", "location": f"Patient/{patient_id}"}
    session.expire_all()
    dora = session.get(Patient, patient_id)
    assert (dora.mrn, dora.birth_date, dora.mobile_e164, dora.sms_consent) == ("MRN-2002", date(1950, 2, 3), "+12025550163", True)
    e = current_enrolment(dora)
    assert (e.procedure_type, e.procedure_end, e.source_procedure) == (
        "kyphoplasty", datetime(2026, 3, 9, 14, 30, tzinfo=timezone.utc), "urn:oid:1.2.3.5|PROC-77")
    assert _counts(session)[:2] == (before[0] + 1, before[1] + 1)
    # the same texts as a patient the nurse enrolled with the same details
    by_hand = enrol(session, world["clinic"], procedure_end=e.procedure_end, discharge_at=e.discharge_at, now=NOW,
                    first="Dora", tz=world["clinic"].timezone)
    session.commit()

    def plan(p):
        return sorted((m.message_id, m.send_after) for m in session.scalars(
            sa.select(OutboundMessage).where(OutboundMessage.patient_id == p.id)))
    assert plan(dora) == plan(by_hand) and plan(dora)
    # the same MRN with another procedure: refused, named
    taken = client.post("/fhir/", json=adt_bundle(procedure_id="PROC-78"), headers=h)
    assert taken.status_code == 422 and "medical record number" in taken.json["issue"][0]["diagnostics"]


def test_hostile_ids_parameters_and_bundles_get_an_operation_outcome_and_write_nothing(app, client, session, world):
    from tests.system.test_fuzz_routes import HOSTILE, HOSTILE_IDS
    h, w = bearer(world["read"]), bearer(world["write"])
    before = _counts(session)
    texts = [v.decode("latin-1") if isinstance(v, bytes) else v for v in HOSTILE + HOSTILE_IDS]
    texts = [v for v in texts if "\x00" not in v] + ["Patient/1", "out-1", "in-99999999999", "1-back-pain", "$everything"]
    for v in texts:
        for url, params in ((f"/fhir/Patient/{v}", None), (f"/fhir/Flag/{v}", None), (f"/fhir/{v}", None),
                            (f"/fhir/Communication/{v}", None), ("/fhir/Patient", {"identifier": v}),
                            ("/fhir/Task", {"patient": v}),
                            ("/fhir/Observation", {"patient": str(world["ann"].id), "date": v})):
            r = client.get(url, query_string=params, headers=h)
            assert r.status_code < 500 and r.mimetype == MIME, (url, v, r.status_code)
            if r.status_code >= 400:
                assert r.json["resourceType"] == "OperationOutcome"
    good = adt_bundle()
    p_entry, proc_entry = good["entry"][0]["resource"], good["entry"][1]["resource"]
    broken = [None, [], "x", {"resourceType": "Bundle", "type": "transaction", "entry": "x"},
              {"resourceType": "Bundle", "type": "transaction", "entry": [1, {"resource": []}]},
              {**good, "entry": [{"resource": {**p_entry, "name": "Dora", "telecom": {"a": 1}, "identifier": [None]}},
                                 {"resource": {**proc_entry, "performedPeriod": "x", "code": []}}]},
              {**good, "entry": [{"resource": {**p_entry, "birthDate": 1950, "communication": [{"language": "en"}]}},
                                 {"resource": {**proc_entry, "performedDateTime": None, "performedPeriod": {"end": 7},
                                               "identifier": [{"value": "x" * 300}]}}]},
              adt_bundle(end="9999-12-31T23:59:00-12:00"), adt_bundle(mobile="\u202e+12025550163"),
              adt_bundle(family="x" * 5000), adt_bundle(mrn="9" * 400), adt_bundle(mrn="\x00\x01"),
              {**good, "padding": "x" * 300_000}]
    for body in broken:
        r = client.post("/fhir/", data=json.dumps(body), content_type=MIME, headers=w)
        assert r.status_code in (413, 422) and r.json["resourceType"] == "OperationOutcome", (r.status_code, r.data[:300])
        validate(r.json)
    assert _counts(session) == before

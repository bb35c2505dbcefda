"""HL7 v2 ADT^A03 at /hl7/v2 (issue 15): a discharge message enrols the patient as the nurse's form
does, once however often it is resent; a bad one gets an error ACK naming each field, and nothing
is written. The ACKs are read back with hl7apy."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from hl7apy.parser import parse_message

from recovery.services.api_tokens import create_token
from recovery.store.enrolments import current_enrolment
from recovery.store.models import AuditEvent, Enrolment, OutboundMessage, Patient
from tests.support.factories import enrol, make_clinic

NOW = datetime(2026, 3, 9, 20, 0, tzinfo=timezone.utc)


def a03(*, mobile="+12025550164", family="Ellis", code="22514^Kyphoplasty lumbar^C4", end="202603090930-0500",
        discharge="202603091300", mrn="MRN-4004", proc_id="PR-501^HOSP", consent="Y", kind="ADT^A03^ADT_A03") -> bytes:
    pr1 = ["PR1", "1", "", code, "", end] + [""] * 13 + [proc_id]  # PR1-19 is the 20th item
    pv1 = ["PV1", "1", "I"] + [""] * 42 + [discharge]  # PV1-45
    segments = [
        f"MSH|^~\\&|ADT|GENHOSP|RT|SPINE|202603092000||{kind}|CTRL-77|P|2.5",
        "EVN|A03|202603092000",
        f"PID|1||X1^^^GENHOSP^PI~{mrn}^^^GENHOSP^MR||{family}^Eve||19470911|F|||||^PRN^PH^^^^^^^^^+12025550100~"
        f"^PRN^CP^^^^^^^^^{mobile}||en",
        "|".join(pv1), "|".join(pr1), f"ZRT|{consent}"]
    return "\r".join(segments).encode()


def _counts(session):
    return tuple(session.scalar(sa.select(sa.func.count()).select_from(m)) for m in (Patient, Enrolment, OutboundMessage))


def test_an_adt_a03_enrols_once_like_the_form_and_a_bad_one_gets_an_error_ack(app, client, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    clinic = make_clinic(session, now=NOW)
    write = create_token(session, clinic=clinic, scopes=["fhir.write"], label="ADT", now=NOW).secret
    read = create_token(session, clinic=clinic, scopes=["fhir.read"], label="EHR", now=NOW).secret
    session.commit()
    h = {"Authorization": f"Bearer {write}", "Content-Type": "x-application/hl7-v2+er7"}
    before = _counts(session)
    assert client.post("/hl7/v2", data=a03(), headers={"Content-Type": "text/plain"}).status_code == 401
    refused = client.post("/hl7/v2", data=a03(), headers={**h, "Authorization": f"Bearer {read}"})
    assert refused.status_code == 403 and parse_message(refused.get_data(as_text=True).strip()).msa.msa_1.to_er7() == "AR"
    # bad: every problem an ERR segment naming its field
    bad = client.post("/hl7/v2", data=a03(mobile="555", family="", code="99213^Visit^C4", end="20260309"), headers=h)
    assert bad.status_code == 422
    ack = parse_message(bad.get_data(as_text=True).strip(), find_groups=False)
    assert ack.msa.msa_1.to_er7() == "AE" and ack.msa.msa_2.to_er7() == "CTRL-77"
    errs = [s for s in ack.children if s.name == "ERR"]
    assert {e.err_2.to_er7() for e in errs} == {"PID^1^13", "PID^1^5", "PR1^1^3", "PR1^1^5"}, [e.to_er7() for e in errs]
    for body in (b"not hl7", b"MSH|^~\\&|A|B|C|D|2026||ADT^A03|1|P|9.9", a03(kind="ADT^A01^ADT_A01"),
                 a03(mrn=""), b"\xff\xfe" * 10, a03(end="209903090930-0500"), a03(mrn="\x00\x01"),
                 a03() + b"\rNTE|" + b"x" * 70_000):
        r = client.post("/hl7/v2", data=body, headers=h)
        assert r.status_code in (400, 413, 422), (body[:40], r.status_code)
        assert parse_message(r.get_data(as_text=True).strip()).msa.msa_1.to_er7() in ("AE", "AR")
    assert _counts(session) == before
    # good: enrolled, acknowledged; resent: acknowledged, nobody new
    ok = client.post("/hl7/v2", data=a03(), headers=h)
    assert ok.status_code == 200 and ok.mimetype == "x-application/hl7-v2+er7"
    ack = parse_message(ok.get_data(as_text=True).strip())
    assert (ack.msa.msa_1.to_er7(), ack.msa.msa_2.to_er7(), ack.msh.msh_5.to_er7()) == ("AA", "CTRL-77", "ADT")
    assert client.post("/hl7/v2", data=a03(), headers=h).status_code == 200
    assert _counts(session)[:2] == (before[0] + 1, before[1] + 1)
    eve = session.scalar(sa.select(Patient).where(Patient.mrn == "MRN-4004"))
    e = current_enrolment(eve)
    assert (eve.first_name, eve.last_name, eve.mobile_e164, eve.sms_consent) == ("Eve", "Ellis", "+12025550164", True)
    assert (e.procedure_type, e.procedure_end, e.discharge_at, e.source_procedure) == (
        "kyphoplasty", datetime(2026, 3, 9, 14, 30, tzinfo=timezone.utc),
        datetime(2026, 3, 9, 17, 0, tzinfo=timezone.utc), "HOSP|PR-501")  # PV1-45 without offset: the clinic's zone
    by_hand = enrol(session, clinic, procedure_end=e.procedure_end, discharge_at=e.discharge_at, now=NOW, first="Eve")
    session.commit()

    def plan(p):
        return sorted((m.message_id, m.send_after) for m in session.scalars(
            sa.select(OutboundMessage).where(OutboundMessage.patient_id == p.id)))
    assert plan(eve) == plan(by_hand) and plan(eve)
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "fhir_enrolled", AuditEvent.patient_id == eve.id)) == 1

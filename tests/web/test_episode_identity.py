"""Issue 13 §2 "Identity and finding people" and "The roster": date of birth and MRN (optional, unique
per clinic) on the enrolment and edit forms; the roster's search by MRN, date of birth, name and
phone digits; its columns, filters and pages; phone numbers as tel: links."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from recovery.services import alerting, records
from recovery.services.missed import MARKER
from recovery.store import audit
from recovery.store.models import (AuditEvent, Checkin, CheckinStatus, OutboundMessage, OutboxStatus, Patient,
                                   TriageLevel)
from recovery.store.enrolments import current_enrolment
from recovery.web.filters import local
from tests.support.factories import enrol, make_clinic, make_staff
from tests.web.test_episode import T0, nurse_client
from tests.web.test_episode_edit import FORM
from tests.web.test_foundation_web import enrolment_form
from tests.support.statements import count_statements

NOW = T0 + timedelta(hours=2)


def names(page: bytes) -> list[str]:
    return re.findall(r">([A-Z][A-Za-z-]+, [A-Z][a-z]+)</a>", page.decode())


@pytest.fixture
def clinic_world(app, session, time_machine):
    time_machine.move_to(NOW, tick=False)
    clinic, other = make_clinic(session, now=T0), make_clinic(session, now=T0)
    nurse = make_staff(session, clinic, now=T0)
    people = {}
    for first, last, mobile, mrn, born in (("Dora", "Day-Zero", "+12025550101", "AB-1234", date(1950, 3, 7)),
                                           ("Daisy", "Dayton", "+12025550404", "77001", date(1961, 7, 3)),
                                           ("Omar", "Other", "+12025550505", None, None)):
        p = enrol(session, clinic, procedure_end=T0, now=NOW, first=first, mobile=mobile, mrn=mrn, birth_date=born)
        p.last_name = last
        people[first] = p
    hidden = enrol(session, other, procedure_end=T0, now=NOW, first="Dora", mobile="+12025550109", mrn="XY-9",
                   birth_date=date(1950, 3, 7))
    hidden.last_name = "Day"
    session.commit()
    return {"clinic": clinic, "nurse": nurse, "people": people}


def test_search_by_mrn_birth_date_whole_or_part_name_and_phone_digits(app, session, clinic_world):
    c = nurse_client(app, clinic_world["nurse"])
    for query, expected in (("ab-1234", ["Day-Zero, Dora"]), ("77001", ["Dayton, Daisy"]),
                            ("1950-03-07", ["Day-Zero, Dora"]), ("03/07/1950", ["Day-Zero, Dora"]),  # US clinic: M/D/Y
                            ("7/3/1961", ["Dayton, Daisy"]), ("Dora Day", ["Day-Zero, Dora"]),
                            ("day zero", ["Day-Zero, Dora"]), ("0505", ["Other, Omar"]),
                            ("XY-9", []), ("1950-02-30", []), ("2026-13-01", [])):
        r = c.get("/nurse/patients", query_string={"q": query})
        assert r.status_code == 200, query
        assert names(r.data) == expected, query


def test_roster_columns_filters_and_few_statements(app, session, clinic_world):
    dora, daisy = clinic_world["people"]["Dora"], clinic_world["people"]["Daisy"]
    e = current_enrolment(dora)
    session.add(Checkin(enrolment_id=e.id, patient_id=dora.id, slot=None, source="web",
                        status=CheckinStatus.SUBMITTED, answers={}, started_at=NOW - timedelta(minutes=20),
                        updated_at=NOW - timedelta(minutes=10), submitted_at=NOW - timedelta(minutes=10),
                        level=TriageLevel.OK))
    alerting.raise_rules(session, patient=dora, enrolment=e, rule_ids=["U20"], now=NOW)
    alerting.raise_rules(session, patient=dora, enrolment=e, rule_ids=["E1"], now=NOW)
    invite = session.scalar(sa.select(OutboundMessage).where(
        OutboundMessage.enrolment_id == current_enrolment(daisy).id, OutboundMessage.kind == "checkin_invite")
        .order_by(OutboundMessage.send_after))
    for outcome in ("missed", "completed"):  # only "missed" counts
        audit.record(session, at=NOW, actor_type="system", actor_id=None, action=MARKER, patient_id=daisy.id,
                     subject_type="outbound_message", subject_id=invite.id, detail={"outcome": outcome})
    invite.status = OutboxStatus.SENT
    session.commit()
    next_invite = session.scalar(sa.select(sa.func.min(OutboundMessage.send_after)).where(
        OutboundMessage.enrolment_id == current_enrolment(daisy).id, OutboundMessage.kind == "checkin_invite",
        OutboundMessage.status == OutboxStatus.PLANNED))
    c = nurse_client(app, clinic_world["nurse"])
    with count_statements() as seen:
        page = c.get("/nurse/patients").get_data(as_text=True)
    roster_reads = [s for s in seen if "patient" in s.lower() and s.lstrip().upper().startswith("SELECT")
                    and "staff_user" not in s.lower() and "web_session" not in s.lower()]
    # the count, the page, the page's figures (grouped for those patients only, issue 17), however many patients
    assert len(roster_reads) == 3, roster_reads
    rows = {m.group(1): m.group(2) for m in re.finditer(r">([A-Z][A-Za-z-]+, [A-Z][a-z]+)</a>(.*?)</tr>", page, re.S)}
    dora_row, daisy_row = rows["Day-Zero, Dora"], rows["Dayton, Daisy"]
    assert "Day 0" in dora_row and "Tue 10 Mar, 11:50" in dora_row  # last check-in, New York time
    assert re.search(r'class="open-alerts"><span class="level level-EMERGENCY">Emergency</span> 2<', dora_row)
    assert '<td class="missed">0</td>' in dora_row and '<td class="missed">1</td>' in daisy_row
    assert next_invite is not None and local(next_invite, "America/New_York") in daisy_row
    for only, expected in (("alerts", ["Day-Zero, Dora"]), ("missed", ["Dayton, Daisy"]), ("nonsense", None)):
        r = c.get("/nurse/patients", query_string={"only": only})
        assert r.status_code == 200
        assert expected is None and len(names(r.data)) == 3 or names(r.data) == expected


def test_pages_with_plain_links_and_hostile_page_values(app, session, clinic_world, monkeypatch):
    monkeypatch.setattr(records, "ROSTER_PAGE_SIZE", 2)
    c = nurse_client(app, clinic_world["nurse"])
    first = c.get("/nurse/patients").get_data(as_text=True)
    assert "page 1 of 2" in first and 'href="/nurse/patients?page=2"' in first and 'rel="prev"' not in first
    second = c.get("/nurse/patients?page=2").get_data(as_text=True)
    assert len(names(second.encode())) == 1 and 'href="/nurse/patients?page=1"' in second
    assert set(names(first.encode())) | set(names(second.encode())) == {"Day-Zero, Dora", "Dayton, Daisy",
                                                                         "Other, Omar"}
    filtered = c.get("/nurse/patients?q=day&page=1").get_data(as_text=True)
    assert "page 1 of" not in filtered  # two found: one page, no pager
    for hostile in ("0", "-1", "abc", "1e9", "99999999999999999999", "٣", "2.5", " ", "%00", "1" * 400):
        r = c.get("/nurse/patients", query_string={"page": hostile})
        assert r.status_code == 200, hostile
        assert "page 1 of 2" in r.get_data(as_text=True), hostile
    last = c.get("/nurse/patients?page=999999").get_data(as_text=True)
    assert "page 2 of 2" in last  # clamped to the last page


def test_enrol_with_birth_date_and_mrn_and_a_taken_mrn_is_a_field_error(app, session, clinic_world):
    c = nurse_client(app, clinic_world["nurse"])
    r = c.post("/nurse/patients/new", data=enrolment_form(procedure_end="2026-03-10T09:30", discharge_at="",
                                                          birth_date="12/31/1948", mrn=" ZZ-1 "))
    assert r.status_code == 303, r.data[-2000:]
    p = session.scalar(sa.select(Patient).where(Patient.mrn == "ZZ-1"))
    assert p.birth_date == date(1948, 12, 31)
    count = session.scalar(sa.select(sa.func.count()).select_from(Patient))
    for mrn, dob, message in (("ab-1234", "", b"Another patient of this clinic has this medical record number."),
                              ("", "31/12/1948", b"Enter the date of birth as 03/07/1950 or 1950-03-07."),
                              ("", "2030-01-01", b"A date of birth cannot be in the future.")):
        r = c.post("/nurse/patients/new", data=enrolment_form(procedure_end="2026-03-10T09:30", discharge_at="",
                                                              birth_date=dob, mrn=mrn))
        assert r.status_code == 422 and message in r.data, (mrn, dob)
        assert b'value="Maria"' in r.data
    assert session.scalar(sa.select(sa.func.count()).select_from(Patient)) == count
    # Another clinic's MRN is no clash.
    r = c.post("/nurse/patients/new", data=enrolment_form(procedure_end="2026-03-10T09:30", discharge_at="",
                                                          mrn="XY-9", mobile="(202) 555-0149"))
    assert r.status_code == 303


def test_edit_mrn_and_birth_date_audited_and_a_taken_mrn_is_a_422(app, session, clinic_world):
    dora, daisy = clinic_world["people"]["Dora"], clinic_world["people"]["Daisy"]
    c = nurse_client(app, clinic_world["nurse"])
    page = c.get(f"/nurse/patients/{daisy.id}/edit").get_data(as_text=True)
    assert 'value="77001"' in page and 'value="1961-07-03"' in page
    base = {**FORM, "mobile": daisy.mobile_e164}
    r = c.post(f"/nurse/patients/{daisy.id}/edit", data={**base, "mrn": "AB-1234", "birth_date": "1961-07-03"})
    assert r.status_code == 422 and b"Another patient of this clinic has this medical record number." in r.data
    r = c.post(f"/nurse/patients/{daisy.id}/edit", data={**base, "mrn": "77002", "birth_date": "07/04/1961"})
    assert r.status_code == 303, r.data[-2000:]
    (detail,) = [a.detail for a in session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "patient_details_changed", AuditEvent.patient_id == daisy.id))]
    assert detail["changes"] == {"mrn": {"old": "77001", "new": "77002"},
                                 "birth_date": {"old": "1961-07-03", "new": "1961-07-04"}}
    # Keeping one's own MRN, in another case, is no clash.
    r = c.post(f"/nurse/patients/{dora.id}/edit", data={**FORM, "mobile": dora.mobile_e164, "mrn": "AB-1234",
                                                         "birth_date": "1950-03-07"})
    assert r.status_code == 303


def test_phone_numbers_are_tap_to_call_links_on_the_worklist_and_the_patient_page(app, session, clinic_world):
    dora = clinic_world["people"]["Dora"]
    alerting.raise_rules(session, patient=dora, enrolment=current_enrolment(dora), rule_ids=["U20"], now=NOW)
    session.commit()
    c = nurse_client(app, clinic_world["nurse"])
    link = '<a class="tel" href="tel:+12025550101">+1 202-555-0101</a>'
    assert link in c.get("/nurse/").get_data(as_text=True)
    page = c.get(f"/nurse/patients/{dora.id}").get_data(as_text=True)
    assert link in page and "AB-1234" in page and "1950-03-07" in page

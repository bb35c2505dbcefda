"""A realistic large clinic for the benches: 500 patients at every stage of recovery and 5,000
submitted check-ins, written through the real use-cases (so alerts, replies and audit rows exist too)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from flask import current_app

from recovery.files import templates as templates_repo
from recovery.services.checkins import start_checkin, submit_checkin
from recovery.services.enrolment import EnrolmentInput, enrol_patient
from recovery.services.passwords import hash_password
from recovery.store.models import Clinic, Enrolment, OnCallStep, Patient, StaffRole, StaffUser

BENCH_PASSWORD = "bench-password-2026"


def seed_large(session, *, now: datetime, patients: int = 500, checkins: int = 5000, seed: int = 7) -> dict:
    rng = random.Random(seed)
    clinic = Clinic(slug="bench-clinic", name="Bench Clinic", timezone="America/New_York", template_file=None,
                    emergency_number="911", care_phone="(202) 555-0100", created_at=now)
    session.add(clinic)
    session.flush()
    pw = hash_password(BENCH_PASSWORD)
    nurses = []
    for i in range(3):
        s = StaffUser(clinic_id=clinic.id, email=f"bench{i}@example.org", name=f"Bench Nurse {i}",
                      role=StaffRole.NURSE, password_hash=pw, mobile_e164=f"+120255501{i:02d}", active=True,
                      created_at=now)
        session.add(s)
        nurses.append(s)
    session.flush()
    for pos, s in enumerate(nurses[1:], start=1):
        session.add(OnCallStep(clinic_id=clinic.id, position=pos, staff_id=s.id))
    cfg = current_app.config
    template = templates_repo.clinic_template(cfg["SCHEDULES_DIR"], None, cfg["DEFAULT_TEMPLATE"])
    ruleset = templates_repo.ruleset(cfg["RULESET_PATH"])
    per_patient = max(1, checkins // patients)
    enrolled = []
    for i in range(patients):
        days = rng.randint(per_patient + 1, 42)
        end = now - timedelta(days=days, hours=rng.randint(0, 8))
        data = EnrolmentInput(first_name=f"Pat{i}", last_name=f"Bench{i}", mobile_e164=f"+1202556{i:04d}",
                              timezone=clinic.timezone, procedure_type="kyphoplasty", procedure_end=end,
                              discharge_at=end + timedelta(hours=2), sms_consent=True,
                              baseline_back_pain=rng.randint(5, 9))
        e = enrol_patient(session, clinic=clinic, staff=nurses[0], data=data, template=template, now=now)
        enrolled.append(e)
    session.flush()
    done = 0
    for e in enrolled:
        patient = session.get(Patient, e.patient_id)
        pain = e.baseline_back_pain or 6
        for k in range(per_patient):
            at = e.procedure_end + timedelta(hours=12 + 24 * k)
            c = start_checkin(session, enrolment=e, patient=patient, slot=f"day{k + 1}", source="web", now=at)
            pain = max(0, min(10, pain + rng.choice((-2, -1, -1, 0, 0, 1))))
            answers = {"back_pain": pain, "pain_change": "same", "mobility": "as_usual_or_better",
                       "cardioresp": frozenset({"none"}), "neuro": frozenset({"none"}), "bladder_bowel": "no_change"}
            if rng.random() < 0.03:
                answers["cardioresp"] = frozenset({"short_of_breath"})
            submit_checkin(session, checkin=c, enrolment=e, patient=patient, answers=answers, template=template,
                           ruleset=ruleset, now=at)
            done += 1
        if done % 500 == 0:
            session.flush()
    session.commit()
    return {"clinic_id": clinic.id, "nurse_email": nurses[0].email, "patients": len(enrolled), "checkins": done}

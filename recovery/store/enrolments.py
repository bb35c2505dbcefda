"""Which enrolment of a patient counts now: the one place that decides it (pages, check-ins,
inbound texts, contactability, the send pipeline). A patient may have several episodes (a new
procedure after the earlier episode ended, services/episodes.start_new_episode); the current one
is the newest, and it is the only one that may be active. Rows that belong to an enrolment
(texts, check-ins, alerts) name it themselves and never go through here."""
from __future__ import annotations

from recovery.store.models import Enrolment, EnrolmentStatus, Patient


def current_enrolment(patient: Patient) -> Enrolment | None:
    """The patient's current episode: the newest enrolment (Patient.enrolments is ordered by id)."""
    return patient.enrolments[-1] if patient.enrolments else None


def active_enrolment(session, patient: Patient) -> Enrolment | None:
    """The current episode when it is active (monitoring not ended), else None."""
    enrolment = current_enrolment(patient)
    return enrolment if enrolment is not None and enrolment.status == EnrolmentStatus.ACTIVE else None

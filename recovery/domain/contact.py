"""May we text this person? One rule for the send pipeline, the replies to texts, the link texts, a
nurse's one-off text and the pages that show it (through `Patient.text_block`).

Each answer is None (yes) or the reason, which is also the outbox's suppression reason.
"""
from __future__ import annotations

NO_CONSENT = "no_consent"
OPTED_OUT = "opted_out"
NUMBER_INVALID = "number_invalid"

# How the nurse's pages name each answer.
LABELS = {None: "On", NO_CONSENT: "No consent", OPTED_OUT: "Opted out", NUMBER_INVALID: "Number not working"}


def patient_block(*, consent: bool, opted_out: bool, number_status: str, opt_out_reply: bool = False) -> str | None:
    """Why the patient's own number must not get a text, or None. `opt_out_reply`: the one
    confirmation of an opt-out in their own words, which goes after the opt-out (CTIA)."""
    if not consent:
        return NO_CONSENT
    if opted_out and not opt_out_reply:
        return OPTED_OUT
    if number_status != "ok":
        return NUMBER_INVALID
    return None


def caregiver_block(*, mobile: str | None, consent: bool, opted_out: bool, opt_out_reply: bool = False) -> str | None:
    """Why the caregiver must not get a text, or None (no number counts as no consent)."""
    if not mobile or not consent:
        return NO_CONSENT
    if opted_out and not opt_out_reply:
        return OPTED_OUT
    return None

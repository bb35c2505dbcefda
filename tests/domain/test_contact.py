""""May we text this person": one rule (recovery/domain/contact.py) for every place that asks."""
from recovery.domain import contact


def test_patient_needs_consent_no_opt_out_and_a_working_number():
    ok = dict(consent=True, opted_out=False, number_status="ok")
    assert contact.patient_block(**ok) is None
    assert contact.patient_block(**{**ok, "consent": False}) == contact.NO_CONSENT
    assert contact.patient_block(**{**ok, "opted_out": True}) == contact.OPTED_OUT
    assert contact.patient_block(**{**ok, "opted_out": True}, opt_out_reply=True) is None
    assert contact.patient_block(**{**ok, "number_status": "invalid"}) == contact.NUMBER_INVALID
    # consent first: without it nothing goes, not even the opt-out confirmation
    assert contact.patient_block(consent=False, opted_out=True, number_status="ok", opt_out_reply=True) == "no_consent"


def test_caregiver_needs_a_number_consent_and_no_opt_out():
    assert contact.caregiver_block(mobile="+12025550100", consent=True, opted_out=False) is None
    assert contact.caregiver_block(mobile=None, consent=True, opted_out=False) == contact.NO_CONSENT
    assert contact.caregiver_block(mobile="+12025550100", consent=False, opted_out=False) == contact.NO_CONSENT
    assert contact.caregiver_block(mobile="+12025550100", consent=True, opted_out=True) == contact.OPTED_OUT
    assert contact.caregiver_block(mobile="+12025550100", consent=True, opted_out=True, opt_out_reply=True) is None


def test_every_answer_has_words_for_the_pages():
    assert set(contact.LABELS) == {None, contact.NO_CONSENT, contact.OPTED_OUT, contact.NUMBER_INVALID}

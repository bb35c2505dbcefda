"""Phone numbers (phonenumbers): mobile numbers checked and stored as E.164, landlines refused.

One place for patients, caregivers and staff (the enrolment form, "text me a new link",
`flask create-staff`, `flask sms simulate-inbound`)."""
from __future__ import annotations

from functools import lru_cache

import phonenumbers

# The messages a person can act on; patient pages show them in the patient's language (they are
# msgids: recovery/web/i18n_extract.py lists them for the catalog).
ENTER_A_NUMBER = "Enter a phone number, for example (202) 555-0143 or +44 7700 900123."
NOT_VALID = "That is not a valid phone number. Check the digits and the country code."
LANDLINE = "This looks like a landline. Texts need a mobile number."
MOBILE_ERRORS = (ENTER_A_NUMBER, NOT_VALID, LANDLINE)


def region_for_zone(timezone: str) -> str:
    """The region a number written without a country code belongs to, from the clinic's zone."""
    return "GB" if timezone.startswith("Europe/London") else "US"


def parse_mobile(raw: str, region: str) -> str:
    """E.164 for a mobile number, or ValueError with a message a nurse can act on."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError(ENTER_A_NUMBER)
    if not phonenumbers.is_valid_number(number):
        raise ValueError(NOT_VALID)
    kind = phonenumbers.number_type(number)
    if kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.TOLL_FREE,
                phonenumbers.PhoneNumberType.PREMIUM_RATE):
        raise ValueError(LANDLINE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def to_e164(raw: str, region: str) -> str:
    """Any valid number (a sender may be a landline) as E.164, or ValueError."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"not a phone number: {raw!r}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"not a phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def readable(e164: str | None) -> str:
    """A stored number as people read it (+1 202-555-0143); what cannot be parsed is shown as stored."""
    if not e164:
        return ""
    return _readable(e164)


@lru_cache(maxsize=4096)  # a list of 50 numbers parsed on every render was a tenth of the worklist (issue 17)
def _readable(e164: str) -> str:
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return e164

"""An HL7 v2 ADT^A03 (discharge) read into the nurse's enrolment form fields (issue 15), as
recovery/domain/fhir/transaction.py does for a FHIR Bundle: the same judge (recovery/web/
feed_enrolment.py) then decides. Pure: the message's fields come in as strings, already split by
hl7apy in recovery/web/hl7.py; each form field remembers the HL7 field it came from ("PID-13").

Read: PID-3 (the identifier whose type, CX.5, is MR: the MRN), PID-5 (family ^ given), PID-7 (birth
date), PID-13/PID-14 (the first number whose equipment type, XTN.3, is CP: a mobile; XTN.12 or
XTN.1), PID-15 (language), PV1-45 (discharge), PR1-3 (procedure code, CPT-4 "C4"/"CPT"), PR1-5
(the procedure's date/time: taken as its end, T0), PR1-19 (procedure identifier; without one the
MRN, code and time make the key a resent message matches) and a ZRT segment (a local Z-segment:
ZRT-1 "Y" = the patient agreed to texts, as the form's tick box). A time without an offset is the
clinic's local time, as HL7 v2 senders mean it."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from recovery.domain.fhir import codes
from recovery.domain.fhir.transaction import FORM_TIME, Enrolment

_WHERE = {"first_name": "PID-5.2", "last_name": "PID-5.1", "mobile": "PID-13", "language": "PID-15",
          "procedure_type": "PR1-3", "procedure_end": "PR1-5", "discharge_at": "PV1-45", "mrn": "PID-3"}
_DTM = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?")


def dtm(text: str, tz: ZoneInfo) -> datetime | None:
    """An HL7 v2 DTM to the minute or finer, as an aware datetime (no offset: local in `tz`)."""
    m = _DTM.fullmatch(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, off = m.groups()
    try:
        naive = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0))
        if off:
            sign = 1 if off[0] == "+" else -1
            zone = timezone(sign * timedelta(hours=int(off[1:3]), minutes=int(off[3:5])))
            return naive.replace(tzinfo=zone)
        return naive.replace(tzinfo=tz)
    except ValueError:
        return None


def read_a03(fields: dict[str, Any], tz: ZoneInfo) -> Enrolment:
    """`fields`: "segments" (names present), "MSH-9" (e.g. "ADT^A03^ADT_A03"), "PID-3" [(id, type)],
    "PID-5.1", "PID-5.2", "PID-7", "PID-13" [(equipment, number)], "PID-15", "PV1-45", "PR1-3.1",
    "PR1-3.3", "PR1-5", "PR1-19.1", "PR1-19.2", "ZRT-1"."""
    out = Enrolment(where=dict(_WHERE))
    kind = fields.get("MSH-9", "").split("^")
    if kind[:2] != ["ADT", "A03"]:
        out.problems.append(("MSH-9", "Only ADT^A03 (discharge) messages enrol a patient here."))
    for segment in ("PID", "PR1"):
        if segment not in fields.get("segments", ()):
            out.problems.append((segment, f"The message needs a {segment} segment."))
    if out.problems:
        return out
    out.readable = True
    out.form["first_name"] = fields.get("PID-5.2", "")
    out.form["last_name"] = fields.get("PID-5.1", "")
    mobile = next((n for equipment, n in fields.get("PID-13", []) if equipment == "CP" and n), None)
    out.form["mobile"] = mobile or ""
    language = fields.get("PID-15", "")
    if language:
        out.form["language"] = language.split("-")[0].lower()
    ids = fields.get("PID-3", [])
    mrn = next((i for i, kind in ids if kind == "MR" and i), None)
    if mrn is None or len(mrn) > 64:
        out.problems.append(("PID-3", "Give the medical record number in PID-3 with identifier type MR (CX.5), "
                                      "at most 64 characters."))
    else:
        out.mrn = mrn
    birth = fields.get("PID-7", "")
    if birth:
        try:
            out.birth_date = date(int(birth[0:4]), int(birth[4:6]), int(birth[6:8]))
        except ValueError:
            out.problems.append(("PID-7", "The birth date must be YYYYMMDD."))
    code, system = fields.get("PR1-3.1", ""), fields.get("PR1-3.3", "")
    if system.upper() in ("C4", "CPT", "CPT4") and code in codes.CPT_PROCEDURES:
        out.form["procedure_type"] = codes.CPT_PROCEDURES[code]
    elif code in codes.PROCEDURE_WORDS:
        out.form["procedure_type"] = code
    elif code:
        out.form["procedure_type"] = "unknown"  # the form says which are known
    for name, key in (("procedure_end", "PR1-5"), ("discharge_at", "PV1-45")):
        text = fields.get(key, "")
        if not text:
            continue
        when = dtm(text, tz)
        if when is None:
            out.problems.append((key, "A date and time to the minute, e.g. 202603070930 or 202603070930-0500."))
            continue
        try:
            out.form[name] = when.astimezone(tz).strftime(FORM_TIME)
        except (OverflowError, ValueError):
            out.problems.append((key, "That time is out of range."))
    ident = fields.get("PR1-19.1", "")
    key = (f"{fields.get('PR1-19.2', '')}|{ident}" if ident
           else f"hl7v2:{mrn or ''}:{code}:{fields.get('PR1-5', '')}|a03")
    if len(key) > 255:
        out.problems.append(("PR1-19", "The procedure identifier is too long (255 characters)."))
    else:
        out.procedure_key = key
    out.form["sms_consent"] = "y" if fields.get("ZRT-1", "").upper() == "Y" else ""
    return out

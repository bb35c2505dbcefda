"""HL7 v2 ADT^A03 at /hl7/v2 (issue 15): a discharge message from the hospital's interface engine
enrols the patient exactly as the nurse's form does (recovery/web/feed_enrolment.py), answering
with an HL7 ACK: AA when enrolled (or already enrolled by the same message), AE with one ERR
segment per problem (ERR-2 the field, ERR-8 what is wrong) and nothing written, AR when the message
cannot be read. Parsed with hl7apy; authenticated with a clinic API token of scope fhir.write
(`Authorization: Bearer …`), audited and rate-limited as the FHIR API is."""
from __future__ import annotations

import logging
import re
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, g, request
from hl7apy.core import Message, Segment
from hl7apy.parser import parse_message

from recovery.clock import utcnow
from recovery.domain.hl7v2 import read_a03
from recovery.services import api_tokens
from recovery.web import api_auth, ratelimits
from recovery.web.extensions import csrf, limiter
from recovery.web.feed_enrolment import enrol_from
from recovery.web.input import clean_text

log = logging.getLogger(__name__)

bp = Blueprint("hl7", __name__, url_prefix="/hl7")
csrf.exempt(bp)
MIME = "x-application/hl7-v2+er7"
MAX_BYTES = 64 * 1024
_FIELD = re.compile(r"([A-Z0-9]{3})(?:-(\d+))?")


def _limit() -> str:
    return current_app.config["FHIR_RATE_LIMIT"]


limiter.limit(_limit, key_func=ratelimits.bearer_key)(bp)
bp.after_request(api_auth.audit)


def _text(element) -> str:
    return element.to_er7().strip() if element is not None else ""


def _fields(m) -> dict:
    names = [s.name for s in m.children]
    fields: dict = {"segments": set(names), "MSH-9": _text(m.msh.msh_9)}
    if "PID" in names:
        pid = m.pid
        fields["PID-3"] = [(_text(cx.cx_1), _text(cx.cx_5)) for cx in pid.pid_3]
        name = pid.pid_5[0] if len(pid.pid_5) else None
        fields["PID-5.1"] = _text(name.xpn_1).split("&")[0] if name is not None else ""  # FN.1, the surname
        fields["PID-5.2"] = _text(name.xpn_2) if name is not None else ""
        fields["PID-7"] = _text(pid.pid_7)[:8]
        fields["PID-13"] = [(_text(x.xtn_3), _text(x.xtn_12) or _text(x.xtn_1)) for x in list(pid.pid_13) + list(pid.pid_14)]
        fields["PID-15"] = _text(pid.pid_15).split("^")[0]  # CE.1, the code
    if "PV1" in names:
        fields["PV1-45"] = _text(m.pv1.pv1_45)
    if "PR1" in names:
        pr1 = m.pr1
        fields["PR1-3.1"], fields["PR1-3.3"] = _text(pr1.pr1_3.ce_1), _text(pr1.pr1_3.ce_3)
        fields["PR1-5"] = _text(pr1.pr1_5)
        fields["PR1-19.1"], fields["PR1-19.2"] = _text(pr1.pr1_19.ei_1), _text(pr1.pr1_19.ei_2)
    zrt = next((s for s in m.children if s.name == "ZRT"), None)
    if zrt is not None and zrt.children:
        fields["ZRT-1"] = _text(zrt.children[0])
    return fields


def _ack(code: str, control_id: str, problems: list[tuple[str, str]], *, received=None, status: int = 200):
    ack = Message("ACK", version="2.5")
    if received is not None:  # answer to whoever sent it
        ack.msh.msh_3, ack.msh.msh_4 = _text(received.msh.msh_5) or "RECOVERY", _text(received.msh.msh_6)
        ack.msh.msh_5, ack.msh.msh_6 = _text(received.msh.msh_3), _text(received.msh.msh_4)
    else:
        ack.msh.msh_3 = "RECOVERY"
    ack.msh.msh_7 = utcnow().strftime("%Y%m%d%H%M%S+0000")
    ack.msh.msh_9 = "ACK^A03^ACK"
    ack.msh.msh_10 = (g.get("request_id") or "1")[:20]
    ack.msh.msh_11 = "P"
    ack.msa.msa_1 = code
    ack.msa.msa_2 = control_id[:20]
    for where, text in problems:
        err = Segment("ERR", version="2.5")
        m = _FIELD.fullmatch(where.split(".")[0])
        if m:
            err.err_2 = f"{m.group(1)}^1" + (f"^{m.group(2)}" if m.group(2) else "")
        err.err_3 = "207^Application internal error^HL70357" if code == "AR" else "101^Required field missing^HL70357" \
            if "needs" in text or "Give" in text or "Enter" in text else "102^Data type error^HL70357"
        err.err_4 = "E"
        err.err_8 = _escape(f"{where}: {text}")[:250]
        ack.add(err)
    body = ack.to_er7() + "\r"
    return current_app.response_class(body, status=status, mimetype=MIME, headers={"Cache-Control": "no-store"})


def _escape(text: str) -> str:
    """HL7 escapes for the delimiters, so a message's words never split a field."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\").replace("~", "\\R\\")
    return " ".join(out.split())


def _http_error(e):
    words = {429: "Too many requests with this token: wait a minute and try again."}
    return _ack("AR", "", [("MSH", words.get(e.code, e.description or e.name))], status=e.code)


for _code in (400, 403, 404, 405, 413, 429):  # by code: see recovery/web/fhir.py
    bp.register_error_handler(_code, _http_error)


@bp.post("/v2")
def adt():
    refused = api_auth.authenticate(api_tokens.WRITE)
    if refused:
        status, message = refused
        return _ack("AR", "", [("MSH", message)], status=status) if status != 401 else \
            current_app.response_class(message, status=401, mimetype="text/plain", headers=api_auth.CHALLENGE)
    request.max_content_length = MAX_BYTES  # a larger body: 413 with an AR
    raw = request.get_data(cache=False)
    lines = raw.decode("utf-8", "replace").replace("\r\n", "\r").replace("\n", "\r").strip().split("\r")
    # as recovery/web/input.py cleans form values: no NUL or control character reaches the database
    text = "\r".join(clean_text(line, multiline=False) for line in lines)
    try:
        received = parse_message(text, find_groups=False)
        fields = _fields(received)
    except Exception as e:  # noqa: BLE001 - whatever hl7apy makes of arbitrary bytes, it is unreadable
        log.info("refused an HL7 v2 message that could not be read (%s)", type(e).__name__)
        return _ack("AR", "", [("MSH", "The message could not be read as HL7 v2 (ER7, MSH first, version 2.3–2.8).")],
                    status=400)
    control_id = _text(received.msh.msh_10)
    caller = g.api_caller
    parsed = read_a03(fields, ZoneInfo(caller.clinic.timezone))
    outcome = enrol_from(parsed, clinic=caller.clinic, token=caller.token, now=caller.now,
                         request_id=g.get("request_id"), fallback="MSH")
    if outcome.problems:
        return _ack("AE", control_id, outcome.problems, received=received, status=422)
    caller.shown.add(outcome.enrolment.patient_id)
    return _ack("AA", control_id, [], received=received)

"""Twilio webhooks: delivery status callbacks and inbound texts.

Both verify X-Twilio-Signature against the PUBLIC URL Twilio called (PUBLIC_BASE_URL + path and
query; behind a proxy request.url is the internal one) and all of the form as received. A request
that is unsigned or wrongly signed gets 403 before anything is read or written. Replays are
harmless: inbound texts are unique by MessageSid, status callbacks only ever move a row forward.
CSRF does not apply (Twilio cannot hold a token; the signature is the proof).
"""
from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, abort, current_app, g, request

from recovery.clock import utcnow
from recovery.dispatch.status import apply_status
from recovery.messaging.twilio_gateway import validate_signature
from recovery.services import inbound
from recovery.store.db import db
from recovery.web.extensions import csrf
from recovery.web.input import parse_id

log = logging.getLogger("recovery.web.hooks")

bp = Blueprint("hooks", __name__, url_prefix="/twilio")
csrf.exempt(bp)

# Twilio's SIDs are two letters and 32 hex digits; the column holds 64 characters.
SID_RE = re.compile(r"[A-Za-z]{2}[0-9A-Za-z]{1,62}")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def public_url() -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path + query (no bare trailing '?')."""
    path = request.full_path
    if path.endswith("?"):
        path = path[:-1]
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def _require_signature() -> None:
    token = current_app.config.get("TWILIO_AUTH_TOKEN") or ""
    if not token:
        log.error("TWILIO_AUTH_TOKEN is not set: every Twilio webhook is refused")
        abort(403)
    # Twilio signed the values as sent, before recovery/web/input.py cleaned them
    if not validate_signature(token, public_url(), request.raw_form, request.headers.get("X-Twilio-Signature")):
        log.warning("refused a %s webhook with a missing or wrong signature", request.path)
        abort(403)


def _message_sid(required: bool) -> str | None:
    sid = request.form.get("MessageSid") or request.form.get("SmsSid")
    if sid is None and not required:
        return None
    if not sid or not SID_RE.fullmatch(sid):
        abort(400, description="MessageSid is missing or is not a Twilio message SID")
    return sid


@bp.post("/status")
def status():
    _require_signature()
    ob = request.args.get("ob")
    outbox_id = parse_id(ob)
    if ob and outbox_id is None:
        abort(400, description="ob must be the id of an outbox row")
    form = request.form
    apply_status(db.session, outbox_id=outbox_id, sid=_message_sid(required=False),
                          status=form.get("MessageStatus") or form.get("SmsStatus"),
                          error_code=form.get("ErrorCode"), now=utcnow())
    db.session.commit()
    return Response(status=204)


@bp.post("/sms")
def sms():
    _require_signature()
    form = request.form
    sender = form.get("From")
    if not (form.get("MessageSid") or form.get("SmsSid")) or not sender:
        abort(400, description="MessageSid and From are required")
    sid = _message_sid(required=True)
    inbound.handle_sms(db.session, sid=sid, from_number=sender, body=form.get("Body", ""), now=utcnow(),
                       settings=inbound.InboundSettings.from_config(current_app.config),
                       request_id=g.get("request_id"))
    db.session.commit()
    return Response(EMPTY_TWIML, mimetype="text/xml")

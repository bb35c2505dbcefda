"""Twilio webhooks: delivery status callbacks and inbound texts.

Both verify X-Twilio-Signature against the PUBLIC URL Twilio called (PUBLIC_BASE_URL + path and
query; behind a proxy request.url is the internal one) and all of the form as received. A request
that is unsigned or wrongly signed gets 403 before anything is read or written. Replays are
harmless: inbound texts are unique by MessageSid, status callbacks only ever move a row forward.
CSRF does not apply (Twilio cannot hold a token; the signature is the proof).
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, g, request

from recovery import dispatch, inbound
from recovery.clock import utcnow
from recovery.db import db
from recovery.messaging.twilio_gateway import validate_signature
from recovery.web.extensions import csrf

log = logging.getLogger("recovery.web.hooks")

bp = Blueprint("hooks", __name__, url_prefix="/twilio")
csrf.exempt(bp)

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
    if not validate_signature(token, public_url(), request.form, request.headers.get("X-Twilio-Signature")):
        log.warning("refused a %s webhook with a missing or wrong signature", request.path)
        abort(403)


@bp.post("/status")
def status():
    _require_signature()
    ob = request.args.get("ob", "")
    form = request.form
    dispatch.apply_status(db.session, outbox_id=int(ob) if ob.isdigit() else None,
                          sid=form.get("MessageSid") or form.get("SmsSid"),
                          status=form.get("MessageStatus") or form.get("SmsStatus"),
                          error_code=form.get("ErrorCode"), now=utcnow())
    db.session.commit()
    return Response(status=204)


@bp.post("/sms")
def sms():
    _require_signature()
    form = request.form
    sid = form.get("MessageSid") or form.get("SmsSid")
    sender = form.get("From")
    if not sid or not sender:
        abort(400, description="MessageSid and From are required")
    inbound.handle_sms(db.session, sid=sid, from_number=sender, body=form.get("Body", ""), now=utcnow(),
                       settings=inbound.InboundSettings.from_config(current_app.config),
                       request_id=g.get("request_id"))
    db.session.commit()
    return Response(EMPTY_TWIML, mimetype="text/xml")

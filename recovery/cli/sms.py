"""`flask sms simulate-inbound --from NUMBER --body TEXT`: try reply-by-text without Twilio.

The text goes through the very use-case the signed `/twilio/sms` webhook calls
(`recovery.services.inbound.handle_sms`), with a made-up MessageSid, in one transaction; the command then
prints what it was handled as and the replies it queued. The replies go out like any other text:
the scheduler (running under `make run`) hands them to the SMS backend. Refused when the app sends
real texts (SMS_BACKEND=twilio): it would act as a real patient. It never prints a phone number or
the text itself."""
from __future__ import annotations

import uuid

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from recovery.cli.exit import fail
from recovery.clock import utcnow
from recovery.dispatch.prepare import preview
from recovery.services import inbound
from recovery.services.phones import to_e164
from recovery.store.db import begin_write, db
from recovery.store.models import OutboundMessage


@click.group("sms", help="Texts: try reply-by-text locally.")
def sms_group() -> None:
    pass


@sms_group.command("simulate-inbound")
@click.option("--from", "sender", required=True, help="The sender's number, e.g. +12025550112 or (202) 555-0112")
@click.option("--body", required=True, help='The text, e.g. "3", "N", "STOP", "HELP"')
@click.option("--region", default="US", show_default=True, help="Country of a number written without +")
@with_appcontext
def simulate_inbound_command(sender: str, body: str, region: str) -> None:
    """Handle a text as if Twilio had delivered it to the webhook."""
    if current_app.config.get("SMS_BACKEND") == "twilio":
        fail("this app sends real texts (SMS_BACKEND=twilio); simulate-inbound would act as a real patient")
    try:
        number = to_e164(sender, region.upper())
    except ValueError:
        fail("--from: not a phone number (use e.g. +12025550112)")
    now = utcnow()
    begin_write(db.session)
    last = db.session.scalar(sa.select(sa.func.max(OutboundMessage.id))) or 0
    result = inbound.handle_sms(db.session, sid="SM" + uuid.uuid4().hex, from_number=number, body=body, now=now,
                                settings=inbound.InboundSettings.from_config(current_app.config))
    replies = db.session.scalars(sa.select(OutboundMessage).where(OutboundMessage.id > last)
                                 .order_by(OutboundMessage.id)).all()
    base = current_app.config["PUBLIC_BASE_URL"]
    lines = [f"  {r.message_id} to the {r.recipient}: {preview(db.session, r, base)}" for r in replies]
    db.session.commit()
    click.echo(f"handled as {result.handled_as}" + (" (a replay)" if result.replay else ""))
    if lines:
        click.echo("replies queued (the scheduler sends them; `flask scheduler --once` for one tick):")
        for line in lines:
            click.echo(line)
    else:
        click.echo("no reply queued")

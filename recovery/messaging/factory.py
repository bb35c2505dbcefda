"""Choose the SMS backend from config (SMS_BACKEND=console|twilio|recording)."""
from __future__ import annotations

from flask import Flask, current_app


def build_gateway(config):
    backend = config["SMS_BACKEND"]
    if backend == "console":
        from recovery.messaging.console import ConsoleGateway
        return ConsoleGateway()
    if backend == "recording":
        from recovery.messaging.console import RecordingGateway
        return RecordingGateway()
    if backend == "twilio":
        from recovery.messaging.twilio_gateway import LocalMockHttpClient, TwilioGateway
        http_client = (LocalMockHttpClient(config["TWILIO_API_BASE_URL"])
                       if config.get("TWILIO_API_BASE_URL") else None)
        return TwilioGateway(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"],
                             from_number=config.get("TWILIO_FROM_NUMBER") or None,
                             messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID") or None,
                             http_client=http_client)
    if not backend:
        raise RuntimeError("SMS_BACKEND is not set: twilio to send texts, console to print them (masked)")
    raise RuntimeError(f"SMS_BACKEND must be console, twilio or recording, not {backend!r}")


def init_app(app: Flask) -> None:
    # Built lazily: the web workers never send, so they never need Twilio credentials.
    app.extensions["sms_gateway"] = None


def gateway():
    gw = current_app.extensions.get("sms_gateway")
    if gw is None:
        gw = current_app.extensions["sms_gateway"] = build_gateway(current_app.config)
    return gw

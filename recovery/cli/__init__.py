"""Command-line entry points: `flask --app app <command>`. Each command parses its options, calls
a use-case and prints; bad input is one line on stderr and exit status 2 (recovery.cli.exit)."""
from __future__ import annotations

from flask import Flask


def register_cli(app: Flask) -> None:
    from recovery.cli.api_tokens import api_token_group
    from recovery.cli.demo import seed_demo_command
    from recovery.cli.fhir import fhir_group
    from recovery.cli.rules import rules_group
    from recovery.cli.sms import sms_group
    from recovery.cli.staff import create_staff_command
    from recovery.cli.timeline import timeline_command, timeline_days_command
    from recovery.scheduler.process import scheduler_command

    app.cli.add_command(timeline_command, "timeline")
    app.cli.add_command(timeline_days_command, "timeline-days")
    app.cli.add_command(rules_group, "rules")
    app.cli.add_command(scheduler_command, "scheduler")
    app.cli.add_command(seed_demo_command, "seed-demo")
    app.cli.add_command(create_staff_command, "create-staff")
    app.cli.add_command(sms_group, "sms")
    app.cli.add_command(api_token_group, "api-token")
    app.cli.add_command(fhir_group, "fhir")

"""`flask --app app timeline`: print a patient's recovery timeline from a template, for review.

    flask --app app timeline --procedure-end 2026-03-07T10:00 --tz America/New_York [--json]

A naive --procedure-end/--discharge is wall time in --tz (a time skipped by a DST jump moves
forward; a repeated one means its first occurrence); an ISO time with an offset is taken as given.
Bad input prints one line "Error: …" and exits with status 2.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from recovery import plan, templates_repo, texts
from recovery.timeline import Timeline, TimelineError, build_timeline, local_to_utc

DEFAULT_TEMPLATE = "kyphoplasty"


def schedules_dir() -> Path:
    """SCHEDULES_DIR from the Flask app config when there is an app context, else <repo>/schedules."""
    try:
        from flask import current_app, has_app_context
    except ImportError:  # the command also works without Flask installed
        return Path(__file__).resolve().parent.parent / "schedules"
    if has_app_context() and current_app.config.get("SCHEDULES_DIR"):
        return Path(current_app.config["SCHEDULES_DIR"])
    return Path(__file__).resolve().parent.parent / "schedules"


class _BadInput(Exception):
    pass


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise _BadInput(f"--tz {name!r} is not an IANA time zone (e.g. America/New_York, Europe/London)") from None


def _instant(option: str, value: str, tz: ZoneInfo) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _BadInput(f"{option} {value!r} is not an ISO 8601 time (e.g. 2026-03-07T10:00 "
                        "or 2026-03-07T10:00-05:00)") from None
    if parsed.tzinfo is None:
        return local_to_utc(parsed.date(), parsed.time(), tz)
    return parsed


def _template(catalog: plan.Catalog, template_id: str | None, clinic: str | None) -> plan.Template:
    try:
        if clinic:
            t = catalog.for_clinic(clinic)
            if template_id and t.base_id != template_id:
                raise _BadInput(f"clinic {clinic!r} is based on template {t.base_id!r}, not {template_id!r}")
            return t
        return catalog.get(template_id or DEFAULT_TEMPLATE)
    except KeyError as e:
        raise _BadInput(e.args[0]) from None


def _as_json(t: plan.Template, tl: Timeline) -> dict:
    local = tl.local
    return {
        "template": t.id,
        "version": t.version,
        "milestones": [{"id": m.id, "title": m.title, "starts_at": local(m.starts_at).isoformat(),
                        "ends_at": local(m.ends_at).isoformat()} for m in tl.milestones],
        "messages": [{"id": m.id, "send_at": local(m.send_at).isoformat(),
                      "text": texts.render(m.text_template, first="{first}", link="{link}",
                                           emerg=t.emerg, phone=t.phone)} for m in tl.messages],
    }


def _table(t: plan.Template, tl: Timeline) -> str:
    def when(instant: datetime) -> str:
        return tl.local(instant).strftime("%a %Y-%m-%d %H:%M %z")

    lines = [f"{t.title}: template {t.id} version {t.version}",
             f"Procedure end {when(tl.procedure_end)}, discharge {when(tl.discharge)} ({tl.tz.key})",
             "", "MILESTONES (* = restriction with countdown)"]
    rows = [(m.id + ("*" if m.restriction else ""), when(m.starts_at), "" if m.point else when(m.ends_at), m.title)
            for m in tl.milestones]
    lines += _align(("ID", "Starts", "Ends", "Title"), rows)
    lines += ["", "TEXTS (moved = held back by quiet hours)"]
    rows = [(when(m.send_at), m.key, "moved" if m.quiet_moved else "",
             texts.render(m.text_template, first="{first}", link="{link}", emerg=t.emerg, phone=t.phone))
            for m in tl.messages]
    lines += _align(("Send at", "Occurrence", "", "Text"), rows)
    return "\n".join(lines)


def _align(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    out = []
    for r in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(r, widths)] + [str(r[-1])]
        out.append("  ".join(cells).rstrip())
    return out


@click.command("timeline")
@click.option("--procedure-end", "procedure_end", required=True, metavar="ISO",
              help="End of the procedure (T0). Without an offset: wall time in --tz.")
@click.option("--tz", "tz_name", required=True, metavar="IANA", help="Patient's time zone, e.g. America/New_York.")
@click.option("--discharge", default=None, metavar="ISO", help="Discharge time (TD). Default: T0 + 2 h.")
@click.option("--template", "template_id", default=None, help=f"Template id (default {DEFAULT_TEMPLATE}, newest version).")
@click.option("--clinic", default=None, metavar="NAME", help="Clinic file schedules/clinics/NAME.toml.")
@click.option("--working", is_flag=True, help="Patient works (adds the return-to-work text S12).")
@click.option("--brace", is_flag=True, help="Patient has a brace (adds S15).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def timeline_command(procedure_end: str, tz_name: str, discharge: str | None, template_id: str | None,
                     clinic: str | None, working: bool, brace: bool, as_json: bool) -> None:
    """Print the milestones and planned texts for a procedure time, in the patient's zone."""
    try:
        tz = _zone(tz_name)
        t0 = _instant("--procedure-end", procedure_end, tz)
        td = _instant("--discharge", discharge, tz) if discharge else None
        try:
            catalog = plan.load_all(schedules_dir(), templates_repo.budget())
        except plan.TemplateError as e:
            raise _BadInput(str(e)) from None
        template = _template(catalog, template_id, clinic)
        try:
            tl = build_timeline(template, procedure_end=t0, discharge=td, tz=tz,
                                overrides=plan.Overrides(working=working, brace=brace))
        except (TimelineError, plan.OverrideError) as e:
            raise _BadInput(str(e)) from None
    except _BadInput as e:
        click.echo(f"Error: {e}", err=True)
        raise click.exceptions.Exit(2) from None
    if as_json:
        click.echo(json.dumps(_as_json(template, tl), ensure_ascii=False, indent=2))
    else:
        click.echo(_table(template, tl))

"""`flask --app app timeline`: print a patient's recovery timeline from a template, for review.

    flask --app app timeline --procedure-end 2026-03-07T10:00 --tz America/New_York [--json]
        [--enrolled-at 2026-03-07T13:50] [--language es]

`--enrolled-at` shows the plan a patient enrolled at that moment gets (texts already too late are
left out, due ones go at once; safety texts go at once up to 24 h after discharge).
A naive --procedure-end/--discharge/--enrolled-at is wall time in --tz (a time skipped by a DST jump moves
forward; a repeated one means its first occurrence); an ISO time with an offset is taken as given.
Bad input prints one line "Error: …" and exits with status 2.
"""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from recovery.config import REPO_ROOT
from recovery.domain import texts
from recovery.domain import timeline_table as rows
from recovery.domain.plan.errors import OverrideError, TemplateError
from recovery.domain.plan.model import Template
from recovery.domain.plan.overrides import Overrides
from recovery.domain.timeline import PlannedMessage, Timeline, TimelineError, build_timeline, local_to_utc
from recovery.files import plans
from recovery.files import templates as templates_repo

DEFAULT_TEMPLATE = "kyphoplasty"


def schedules_dir() -> Path:
    """SCHEDULES_DIR from the Flask app config when there is an app context, else <repo>/schedules."""
    try:
        from flask import current_app, has_app_context
    except ImportError:  # the command also works without Flask installed
        return REPO_ROOT / "schedules"
    if has_app_context() and current_app.config.get("SCHEDULES_DIR"):
        return Path(current_app.config["SCHEDULES_DIR"])
    return REPO_ROOT / "schedules"


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


def _template(catalog: plans.Catalog, template_id: str | None, clinic: str | None) -> Template:
    try:
        if clinic:
            t = catalog.for_clinic(clinic)
            if template_id and t.base_id != template_id:
                raise _BadInput(f"clinic {clinic!r} is based on template {t.base_id!r}, not {template_id!r}")
            return t
        return catalog.get(template_id or DEFAULT_TEMPLATE)
    except KeyError as e:
        raise _BadInput(e.args[0]) from None


def _as_json(t: Template, tl: Timeline) -> dict:
    local = tl.local
    return {
        "template": t.id,
        "version": t.version,
        "milestones": [{"id": m.id, "title": m.title, "starts_at": local(m.starts_at).isoformat(),
                        "ends_at": local(m.ends_at).isoformat()} for m in tl.milestones],
        "messages": [{"id": m.id, "send_at": local(m.send_at).isoformat(),
                      "text": texts.render(m.text_template, first="{first}", link="{link}",
                                           emerg=t.emerg, phone=t.phone, clinic=t.sms_name)} for m in tl.messages],
    }


def _table(t: Template, tl: Timeline) -> str:
    lines = [f"{t.title}: template {t.id} version {t.version}",
             f"Procedure end {rows.when(tl, tl.procedure_end)}, discharge {rows.when(tl, tl.discharge)} ({tl.tz.key})",
             "", "MILESTONES (* = restriction with countdown)"]
    lines += _align(rows.MILESTONE_HEADER, rows.milestone_rows(tl))
    lines += ["", "TEXTS (safety = safety text; moved = held back by quiet hours; later = moved later that "
                  "day by the daily limit)"]
    lines += _align(rows.TEXT_HEADER, rows.text_rows(t, tl))
    if tl.held:
        lines += ["", "NOT SENT: over the daily limit of routine texts (the patient reads this on the Today page)"]
        lines += _align(rows.HELD_HEADER, rows.held_rows(t, tl))
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
@click.option("--enrolled-at", "enrolled_at", default=None, metavar="ISO",
              help="Show the plan of a patient enrolled at this time (default: every text of the plan).")
@click.option("--language", default="en", metavar="CODE",
              help="The texts in this language (the template's text_<CODE>), e.g. es. Default: en.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def timeline_command(procedure_end: str, tz_name: str, discharge: str | None, template_id: str | None,
                     clinic: str | None, working: bool, brace: bool, enrolled_at: str | None, language: str,
                     as_json: bool) -> None:
    """Print the milestones and planned texts for a procedure time, in the patient's zone."""
    try:
        tz = _zone(tz_name)
        t0 = _instant("--procedure-end", procedure_end, tz)
        td = _instant("--discharge", discharge, tz) if discharge else None
        now = _instant("--enrolled-at", enrolled_at, tz) if enrolled_at else None
        try:
            catalog = plans.load_all(schedules_dir(), templates_repo.budget())
        except TemplateError as e:
            raise _BadInput(str(e)) from None
        template = _template(catalog, template_id, clinic)
        has = sorted({"en"} | {lang for m in template.messages for lang, _ in m.translations})
        if language not in has:
            raise _BadInput(f"--language {language!r}: template {template.id} version {template.version} has no "
                            f"texts in it (it has: {', '.join(has)})")
        try:
            tl = build_timeline(template, procedure_end=t0, discharge=td, tz=tz,
                                overrides=Overrides(working=working, brace=brace), now=now, language=language)
        except (TimelineError, OverrideError) as e:
            raise _BadInput(str(e)) from None
    except _BadInput as e:
        click.echo(f"Error: {e}", err=True)
        raise click.exceptions.Exit(2) from None
    if as_json:
        click.echo(json.dumps({**_as_json(template, tl), **({"language": language} if language != "en" else {})},
                              ensure_ascii=False, indent=2))
    else:
        click.echo(_table(template, tl) + ("" if language == "en" else f"\n\nTexts in {language!r}."))


# ---------------------------------------------------------------------------------------------
# What a patient receives on days 0-3 (the README table; `flask --app app timeline-days`)
# ---------------------------------------------------------------------------------------------

FIRST_DAYS_ZONE = "America/New_York"
FIRST_DAYS_DATE = date(2026, 6, 10)  # an ordinary Wednesday, far from a DST change
FIRST_DAYS_CASES = (("Morning", time(9, 0)), ("Afternoon", time(13, 0)), ("Evening", time(19, 30)))
ROUTINE_KINDS = ("reminder", "checkin_reminder")


def _cell(tl: Timeline, day: int) -> tuple[str, int, int]:
    """'11:00 **S01**, 12:00 **S02** S04' for one day, the number of texts and of routine ones."""
    items: dict[str, list[str]] = {}
    count = routine = 0
    for m in tl.messages:
        if tl.day_number(m.send_at) != day:
            continue
        count += 1
        routine += m.kind in ROUTINE_KINDS and not m.safety
        name = f"**{m.id}**" if m.safety else (f"_{m.id}_" if m.kind == "checkin_invite" else m.id)
        items.setdefault(f"{tl.local(m.send_at):%H:%M}", []).append(name)
    return ", ".join(f"{at} {' '.join(ids)}" for at, ids in items.items()) or "–", count, routine


def first_days_timelines(template: Template) -> list[tuple[str, Timeline]]:
    """The three example patients of the README, each enrolled at discharge (T0 + 2 h)."""
    tz = ZoneInfo(FIRST_DAYS_ZONE)
    out = []
    for label, at in FIRST_DAYS_CASES:
        t0 = local_to_utc(FIRST_DAYS_DATE, at, tz)
        tl = build_timeline(template, procedure_end=t0, discharge=None, tz=tz, overrides=Overrides(),
                            now=t0 + timedelta(hours=2))
        out.append((label, tl))
    return out


def first_days_markdown(template: Template, days: int = 4) -> str:
    """The README table: per discharge time, the texts of days 0 to days-1, from the real timeline."""
    cases = first_days_timelines(template)

    def hhmm(instant: datetime, tl: Timeline) -> str:
        return f"{tl.local(instant):%H:%M}"

    head = ["Day"] + [f"{label}: procedure ends {hhmm(tl.procedure_end, tl)}, discharge {hhmm(tl.discharge, tl)}"
                      for label, tl in cases]
    lines = [f"Template {template.id} version {template.version}, {FIRST_DAYS_ZONE}, procedure on "
             f"{FIRST_DAYS_DATE:%a %d %b %Y}, enrolled at discharge. **Bold**: safety text; _italic_: check-in "
             "invitation (neither counts towards the 3 routine texts a day).", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for day in range(days):
        cells = []
        for _, tl in cases:
            text, count, routine = _cell(tl, day)
            cells.append(f"{text} ({count} text{'s' if count != 1 else ''}, {routine} routine)")
        lines.append(f"| {day} | " + " | ".join(cells) + " |")

    def held(tl: Timeline) -> str:
        by_day: dict[int, list[PlannedMessage]] = {}
        for m in tl.held:
            if tl.day_number(m.send_at) < days:
                by_day.setdefault(tl.day_number(m.send_at), []).append(m)
        return "; ".join(f"day {d}: {', '.join(m.id for m in ms)}" for d, ms in sorted(by_day.items())) or "none"

    lines.append("| Left to the Today page | " + " | ".join(held(tl) for _, tl in cases) + " |")
    return "\n".join(lines)


@click.command("timeline-days")
@click.option("--template", "template_id", default=None, help=f"Template id (default {DEFAULT_TEMPLATE}, newest version).")
def timeline_days_command(template_id: str | None) -> None:
    """Print the README table of what a patient receives on days 0-3 (morning, afternoon, evening)."""
    try:
        catalog = plans.load_all(schedules_dir(), templates_repo.budget())
        template = _template(catalog, template_id, None)
    except (TemplateError, _BadInput) as e:
        click.echo(f"Error: {e}", err=True)
        raise click.exceptions.Exit(2) from None
    click.echo(first_days_markdown(template))

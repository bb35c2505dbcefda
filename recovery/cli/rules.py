"""``flask rules check FILE``: run a worked-case file (protocol.md §4) through the rules engine.

Register with ``app.cli.add_command(rules_group)``. A plain click group, so it also runs without a
Flask app (tests, a clinician's laptop). Exit status: 0 all cases passed, 1 a case failed,
2 the case file or rule set is malformed.
"""

from __future__ import annotations

from pathlib import Path

import click

from recovery.config import REPO_ROOT
from recovery.domain.triage import RulesetError
from recovery.files.rulesets import load_ruleset
from recovery.files.casefile import CaseFileError, check_file

__all__ = ["DEFAULT_RULESET_PATH", "rules_group"]

# From this module's location, so the command works from any working directory.
DEFAULT_RULESET_PATH = REPO_ROOT / "schedules" / "rulesets" / "va-recovery.toml"


def _configured_ruleset_path() -> Path:
    """``RULESET_PATH`` from the Flask app config when run as ``flask rules``, else the default."""
    try:
        from flask import current_app, has_app_context
    except ImportError:  # pragma: no cover - Flask is a runtime dependency
        return DEFAULT_RULESET_PATH
    if has_app_context():
        configured = current_app.config.get("RULESET_PATH")
        if configured:
            return Path(configured)
    return DEFAULT_RULESET_PATH


@click.group("rules", help="Triage rule set tools.")
def rules_group() -> None:
    pass


@rules_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--ruleset",
    "ruleset_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Rule-set TOML file (default: RULESET_PATH from the app config, else "
    "schedules/rulesets/va-recovery.toml).",
)
@click.pass_context
def check_command(ctx: click.Context, file: Path, ruleset_path: Path | None) -> None:
    """Score every case in FILE and compare with its expected level and rules."""
    try:
        ruleset = load_ruleset(ruleset_path or _configured_ruleset_path())
        report = check_file(file, ruleset)
    except (CaseFileError, RulesetError) as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(2)
    click.echo(f"Rule set {ruleset.name} {ruleset.version}"
               + ("" if ruleset.approved else " (NOT clinically approved)"))
    for line in report.lines():
        click.echo(line)
    click.echo(report.summary)
    ctx.exit(0 if report.ok else 1)

"""Reading a triage rule-set file (schedules/rulesets/*.toml). The checks on its fields are pure and
live with the rules (recovery.domain.triage.ruleset_from_mapping); this module only reads the file."""
from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

from recovery.domain.triage import Ruleset, RulesetError, ruleset_from_mapping


def load_ruleset(path: str | Path) -> Ruleset:
    """Read and validate a rule-set TOML file (see schedules/rulesets/va-recovery.toml)."""
    path = Path(path)
    where = str(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh, parse_float=Decimal)
    except FileNotFoundError:
        raise RulesetError(f"{where}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesetError(f"{where}: not valid TOML: {exc}") from None
    return ruleset_from_mapping(data, where)

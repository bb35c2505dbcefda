"""What goes wrong with a plan: a template or clinic file, an offset, per-patient overrides."""
from __future__ import annotations




# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

class TemplateError(ValueError):
    """A template or clinic file is wrong. str() is ``file:line: entry: problem``."""

    def __init__(self, path: str, line: int, entry: str, problem: str):
        self.path, self.line, self.entry, self.problem = str(path), line, entry, problem
        super().__init__(f"{self.path}:{line}: {entry}: {problem}" if entry else f"{self.path}:{line}: {problem}")


class OffsetError(ValueError):
    """An offset string cannot be read."""


class OverrideError(ValueError):
    """Per-patient overrides are wrong. The message starts with the field path, e.g. ``milestones.TL03.end``."""

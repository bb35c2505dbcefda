"""axe-core (npm, pinned by package-lock.json) run inside a page, and a session-wide report.

Our CSP is `script-src 'self'`, and `page.add_script_tag(path=...)` injects the file's text as an
inline script, which that CSP refuses. So axe runs only in contexts opened with `bypass_csp=True`
(`open_context(..., axe=True)` in conftest.py); the flow tests keep the CSP enforced and fail on any
CSP violation, so the pages are still proved to work under it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
AXE_JS = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


@dataclass(frozen=True)
class Violation:
    page: str
    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    @property
    def blocking(self) -> bool:
        return self.impact in BLOCKING


# Every page checked in this run, with what axe found there (printed at the end of the run).
REPORT: dict[str, list[Violation]] = {}


def axe_version() -> str:
    try:
        return json.loads((AXE_JS.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def require_axe() -> None:
    if AXE_JS.exists():
        return
    message = f"axe-core is not installed ({AXE_JS} missing); run `make node` (npm ci)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def run_axe(page, name: str) -> list[Violation]:
    """Run axe-core's default rules (WCAG 2.x A/AA and best practices) on the page as it is now."""
    require_axe()
    page.add_script_tag(path=str(AXE_JS))
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    found = [Violation(page=name, rule=v["id"], impact=v.get("impact") or "minor", help=v["help"],
                       targets=tuple(" ".join(t) if isinstance(t, list) else str(t)
                                     for n in v["nodes"] for t in n["target"][:1]))
             for v in results["violations"]]
    REPORT[name] = found
    return found


def table(violations: list[Violation]) -> str:
    if not violations:
        return "  (no violations)"
    rows = [f"  {v.page:28} {v.impact:9} {v.rule:28} {len(v.targets):3} node(s)  {v.help}"
            + "".join(f"\n      {t}" for t in v.targets[:5]) for v in violations]
    return "\n".join(rows)


def assert_accessible(page, name: str) -> list[Violation]:
    """axe on the page: print every violation with its impact, fail on serious or critical ones."""
    found = run_axe(page, name)
    print(f"axe-core {axe_version()} on {name}:\n{table(found)}")
    blocking = [v for v in found if v.blocking]
    assert not blocking, f"axe found serious/critical violations on {name}:\n{table(blocking)}"
    return found


def summary() -> str:
    if not REPORT:
        return ""
    lines = [f"axe-core {axe_version()}: {len(REPORT)} page(s) checked"]
    for name, found in REPORT.items():
        counts = {i: sum(v.impact == i for v in found) for i in ("critical", "serious", "moderate", "minor")}
        lines.append(f"  {name:28} " + "  ".join(f"{k} {n}" for k, n in counts.items()))
        lines.extend(table(found).splitlines() if found else [])
    return "\n".join(lines)

"""House rules that code review would otherwise have to remember (architecture.md §2-§3)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "recovery"
# Pure domain modules: standard library only, and never read the clock.
PURE = ["timeline", "triage", "texts", "sms_encoding", "questionnaire", "alerts", "plan", "charts", "sms_keywords",
        "missed_rules", "today"]
STDLIB = set(sys.stdlib_module_names)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def all_modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("name", PURE)
def test_pure_domain_modules_import_only_the_standard_library(name):
    path = PACKAGE / f"{name}.py"
    if not path.exists():
        pytest.skip(f"recovery/{name}.py does not exist")
    foreign = {m for m in imports_of(path) if m not in STDLIB and m != "recovery"}
    assert not foreign, f"recovery/{name}.py imports {sorted(foreign)}"
    # and only other pure modules of ours
    tree = ast.parse(path.read_text())
    ours = {n.module.split(".")[1] for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("recovery.")}
    assert ours <= set(PURE), f"recovery/{name}.py imports non-pure recovery modules {sorted(ours - set(PURE))}"


@pytest.mark.parametrize("name", PURE)
def test_pure_domain_modules_never_read_the_clock(name):
    path = PACKAGE / f"{name}.py"
    if not path.exists():
        pytest.skip(f"recovery/{name}.py does not exist")
    src = path.read_text()
    for banned in ("datetime.now(", "datetime.utcnow(", "date.today(", "time.time(", "utcnow("):
        assert banned not in src, f"recovery/{name}.py reads the clock ({banned})"


def test_only_the_gateway_imports_twilio():
    offenders = [p.relative_to(ROOT).as_posix() for p in all_modules() + [ROOT / "app.py"]
                 if "twilio" in imports_of(p)]
    assert offenders == ["recovery/messaging/twilio_gateway.py"]


def test_flask_stays_at_the_edges():
    allowed_prefixes = ("recovery/web/", "recovery/cli", "recovery/scheduler.py", "recovery/db.py",
                        "recovery/demo.py", "recovery/messaging/factory.py")
    offenders = [p.relative_to(ROOT).as_posix() for p in all_modules()
                 if {"flask", "flask_sqlalchemy", "flask_login", "flask_wtf"} & imports_of(p)
                 and not p.relative_to(ROOT).as_posix().startswith(allowed_prefixes)]
    assert offenders == []


def test_no_legacy_query_api_and_no_pickle():
    for p in all_modules():
        src = p.read_text()
        assert ".query.get(" not in src and ".query.filter" not in src, f"{p}: use select()"
        assert "import pickle" not in src and "SQLAlchemyJobStore" not in src, f"{p}: no pickled job state"


def test_templates_have_no_inline_script_or_handlers():
    for p in (ROOT / "templates").rglob("*.html"):
        src = p.read_text()
        assert "<script>" not in src and "<script " not in src.replace('<script src=', ''), f"{p}: inline script"
        assert " onclick=" not in src and "hx-on" not in src and ' style="' not in src, f"{p}: inline JS/CSS"


def test_partials_are_underscored_and_included():
    templates = ROOT / "templates"
    for p in templates.rglob("_*.html"):
        name = p.relative_to(templates).as_posix()
        users = [q for q in templates.rglob("*.html") if q != p and name in q.read_text()]
        assert users, f"partial {name} is not included by any page"

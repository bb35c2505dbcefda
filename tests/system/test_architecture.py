"""House rules that code review would otherwise have to remember (architecture.md §2-§3).

The layers are folders (README "How it is built"), so the rules are written per folder: a new module
is checked by where it stands, with no list to keep up to date.
"""
from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "recovery"
STDLIB = set(sys.stdlib_module_names)
# Where SQLAlchemy may be imported: persistence and the layers that hold a session.
SQLALCHEMY_LAYERS = ("store", "services", "dispatch", "scheduler", "web", "cli")
# Flask belongs to the edges (requests, commands, the scheduler process) and the app-bound db object.
FLASK_AT = ("recovery/web/", "recovery/cli/", "recovery/scheduler/", "recovery/store/db.py",
            "recovery/messaging/factory.py")
FLASK = {"flask", "flask_sqlalchemy", "flask_login", "flask_wtf", "flask_limiter", "flask_migrate",
         "flask_compress", "werkzeug", "wtforms"}


def all_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@cache
def imported(path: Path) -> frozenset[str]:
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    return imports_in(path.read_text(), package, str(path))


def imports_in(source: str, package: str, filename: str = "<source>") -> frozenset[str]:
    """Every module a source imports, anywhere in it (functions included), as full dotted names.
    `from recovery.domain import texts` counts as recovery.domain.texts when that is a module."""
    tree = ast.parse(source, filename=filename)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            submodules = {f"{module}.{a.name}" for a in node.names if is_module(f"{module}.{a.name}")}
            names |= submodules
            if len(submodules) < len(node.names):  # something defined in `module` itself
                names.add(module)
    return frozenset(names)


def is_module(dotted: str) -> bool:
    if not dotted.startswith("recovery."):
        return False
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def top_level(names) -> set[str]:
    return {n.split(".")[0] for n in names}


def ours(path: Path) -> set[str]:
    """The recovery modules this file imports (a package counts as its __init__)."""
    return {n for n in imported(path) if n == "recovery" or n.startswith("recovery.")} - {"recovery"}


def in_layer(path: Path, *layers: str) -> bool:
    return rel(path).split("/")[1] in layers if len(rel(path).split("/")) > 2 else False


DOMAIN = [p for p in all_modules() if in_layer(p, "domain")]


def test_the_layers_exist():
    for layer in ("domain", "files", "store", "services", "dispatch", "scheduler", "messaging", "web", "cli"):
        assert (PACKAGE / layer / "__init__.py").exists(), f"recovery/{layer}/ is missing"
    assert len(DOMAIN) >= 10


@pytest.mark.parametrize("path", DOMAIN, ids=rel)
def test_domain_imports_only_the_standard_library_and_the_domain(path):
    foreign = {m for m in top_level(imported(path)) if m not in STDLIB and m != "recovery"}
    assert not foreign, f"{rel(path)} imports {sorted(foreign)}"
    outside = {m for m in ours(path) if not (m == "recovery.domain" or m.startswith("recovery.domain."))}
    assert not outside, f"{rel(path)} imports recovery modules outside the domain: {sorted(outside)}"


@pytest.mark.parametrize("path", DOMAIN, ids=rel)
def test_domain_never_reads_the_clock(path):
    src = path.read_text()
    for banned in ("datetime.now(", "datetime.utcnow(", "date.today(", "time.time(", "utcnow(", "time.monotonic("):
        assert banned not in src, f"{rel(path)} reads the clock ({banned})"


def test_only_the_layers_that_hold_a_session_import_sqlalchemy():
    offenders = [rel(p) for p in all_modules()
                 if {"sqlalchemy", "flask_sqlalchemy"} & top_level(imported(p))
                 and not in_layer(p, *SQLALCHEMY_LAYERS)]
    assert offenders == []


def test_only_the_gateway_imports_twilio():
    offenders = [rel(p) for p in all_modules() + [ROOT / "app.py"] if "twilio" in top_level(imported(p))]
    assert offenders == ["recovery/messaging/twilio_gateway.py"]


def test_flask_stays_at_the_edges():
    offenders = [rel(p) for p in all_modules()
                 if FLASK & top_level(imported(p)) and not rel(p).startswith(FLASK_AT)]
    assert offenders == []


def _graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in all_modules()}
    graph = {}
    for name, path in modules.items():
        # importing recovery.a.b also runs recovery.a's __init__; test_package_inits_import_nothing_of_ours
        # keeps that from adding edges the graph does not show
        graph[name] = {m for m in ours(path) if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as the list of modules around it), or None: depth-first search."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    # a late import inside a function is an import all the same, and so is a relative one
    late = "def f():\n    from recovery.store import models\n    from . import timeline\n"
    assert {"recovery.store.models", "recovery.domain.timeline"} <= imports_in(late, "recovery.domain")


def test_package_inits_import_nothing_of_ours_when_loaded():
    """So that importing recovery.x.y never runs a sibling module as a side effect (the graph above
    would not see that edge). cli/__init__.py imports its commands inside register_cli only."""
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        package = module_name(init)
        loaded = {m for m in imports_in(ast.unparse(ast.Module(body=top, type_ignores=[])), package)
                  if m.startswith("recovery.")}
        assert not loaded, f"{rel(init)} imports {sorted(loaded)} when it loads"


def test_no_import_cycles_among_recovery_modules():
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


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

"""`python -m bench [--quick] [--json] [name ...]`: run every bench/bench_*.py module's `run()` in
turn (or only the named ones, e.g. `python -m bench sms`) and print its figures.

--quick and --json go to the modules whose run() takes them (`quick`, `json_out`; bench_web does):
a shortened run, and one JSON object of figures on stdout (everything else on stderr)."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def discover() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    names = discover()
    flags = {"--quick": "quick", "--json": "json_out"}
    options = {flags[a]: True for a in argv if a in flags}
    bad = [a for a in argv if a.startswith("-") and a not in flags]
    if bad:
        print(f"unknown option: {', '.join(bad)} (have: {', '.join(flags)})", file=sys.stderr)
        return 2
    wanted = [a if a.startswith("bench_") else f"bench_{a}" for a in argv if not a.startswith("-")]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        print(f"no such bench module: {', '.join(unknown)} (have: {', '.join(names) or 'none'})", file=sys.stderr)
        return 2
    failed = []
    for name in wanted or names:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "run", None)
        if not callable(run):
            print(f"bench/{name}.py has no run() function", file=sys.stderr)
            failed.append(name)
            continue
        accepted = {k: v for k, v in options.items() if k in inspect.signature(run).parameters}
        log = sys.stderr if options.get("json_out") else sys.stdout
        print(f"=== {name} ===", flush=True, file=log)
        started = time.perf_counter()
        try:
            run(**accepted)
        except Exception:  # noqa: BLE001 - report and go on with the next module
            traceback.print_exc()
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - started:.1f} s ===\n", flush=True, file=log)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

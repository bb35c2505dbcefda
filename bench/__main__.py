"""`python -m bench [name ...]`: run every bench/bench_*.py module's `run()` in turn (or only the
named ones, e.g. `python -m bench sms`) and print its figures."""
from __future__ import annotations

import importlib
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
    wanted = [a if a.startswith("bench_") else f"bench_{a}" for a in argv]
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
        print(f"=== {name} ===", flush=True)
        started = time.perf_counter()
        try:
            run()
        except Exception:  # noqa: BLE001 - report and go on with the next module
            traceback.print_exc()
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - started:.1f} s ===\n", flush=True)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

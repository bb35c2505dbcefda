"""Benchmarks for `make bench` (`python -m bench`): every bench/bench_*.py module with a `run()`.

Not timed tests: they print figures for the issue notes and the README, and never fail on a slow
machine (they fail only when something is broken)."""

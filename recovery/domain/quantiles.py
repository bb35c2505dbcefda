"""Medians and percentiles for the clinic dashboard. Pure: standard library only.

Definition (stated once, used everywhere): linear interpolation between the closest ranks, the
"inclusive" method of `statistics.quantiles` (R type 7, numpy's default). For sorted values
x[0..n-1] the q-quantile is x[h] interpolated at h = (n - 1) * q; the 0.5-quantile is the median.
One value is its own quantile; no values have none (None, shown as "–").
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Spread", "quantile", "spread"]


def quantile(values: Sequence[float], q: float) -> float | None:
    if not 0 <= q <= 1:
        raise ValueError(f"q must be within 0-1, not {q!r}")
    xs = sorted(values)
    if not xs:
        return None
    for v in xs:
        if not math.isfinite(v):
            raise ValueError(f"not a finite number: {v!r}")
    h = (len(xs) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


@dataclass(frozen=True)
class Spread:
    n: int
    p25: float | None
    median: float | None
    p75: float | None
    p90: float | None


def spread(values: Iterable[float]) -> Spread:
    xs = sorted(values)
    return Spread(n=len(xs), p25=quantile(xs, 0.25), median=quantile(xs, 0.5), p75=quantile(xs, 0.75),
                  p90=quantile(xs, 0.9))

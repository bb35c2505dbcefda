"""Server-rendered SVG charts (no JavaScript, no chart CDN). Pure: standard library only.

`pain_trend_svg` draws back pain (0-10) at each submitted check-in against days since the end of
the procedure, with the pre-procedure baseline as a dashed line. The SVG is an image to assistive
technology (role="img") named by its <title> and described by its <desc>, which lists every value,
so nothing is shown only as a picture. Styling comes from classes (app.css); the element attributes
carry only geometry, so the Content-Security-Policy (no inline styles) is respected.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PAIN_MAX = 10


@dataclass(frozen=True)
class PainPoint:
    day: float  # days since the end of the procedure (hours / 24)
    pain: int  # 0-10
    label: str = ""  # e.g. "Mon 9 Mar 09:05"; used in the description and the point's tooltip


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    left: int = 44
    right: int = 16
    top: int = 14
    bottom: int = 38

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom


class _Plot:
    """The frame both charts share: pain 0-10 up, whole days across, gridlines and labels, and the
    opening of an SVG that is an image named by its <title> and described by its <desc>."""

    def __init__(self, width: int, height: int, max_day: float):
        self.f = _Frame(width, height)
        self.ticks = day_ticks(max_day)

    def x(self, day: float) -> float:
        f = self.f
        return f.left + f.plot_w * day / self.ticks[-1]

    def y(self, pain: float) -> float:
        f = self.f
        return f.top + f.plot_h * (1 - pain / PAIN_MAX)

    def open(self, *, cid: str, css: str, title: str, desc: str, axis_title: str) -> list[str]:
        f, x, y = self.f, self.x, self.y
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="{css}" viewBox="0 0 {f.width} {f.height}" '
               f'role="img" aria-labelledby="{cid}-title {cid}-desc" id="{cid}">',
               f'<title id="{cid}-title">{escape(title)}</title>',
               f'<desc id="{cid}-desc">{escape(desc)}</desc>',
               '<g class="chart-grid" aria-hidden="true">']
        for pain in range(0, PAIN_MAX + 1, 2):
            out.append(f'<line x1="{f.left}" y1="{_fmt(y(pain))}" x2="{f.left + f.plot_w}" y2="{_fmt(y(pain))}"/>')
            out.append(f'<text class="chart-label" x="{f.left - 8}" y="{_fmt(y(pain) + 4)}" '
                       f'text-anchor="end">{pain}</text>')
        for day in self.ticks:
            out.append(f'<text class="chart-label" x="{_fmt(x(day))}" y="{f.top + f.plot_h + 18}" '
                       f'text-anchor="middle">{day}</text>')
        out.append(f'<text class="chart-axis-title" x="{f.left + f.plot_w / 2:g}" y="{f.height - 4}" '
                   f'text-anchor="middle">{escape(axis_title)}</text>')
        out.append('</g>')
        return out

    def empty(self, text: str) -> str:
        f = self.f
        return (f'<text class="chart-empty" x="{f.left + f.plot_w / 2:g}" y="{f.top + f.plot_h / 2:g}" '
                f'text-anchor="middle">{escape(text)}</text>')


def day_ticks(max_day: float) -> list[int]:
    """Whole-day tick positions from 0 to at least `max_day`: every day up to 10 days, then every
    2, 7, 14 or 28 days, so the axis holds about ten labels at most."""
    span = max(1, math.ceil(max_day))
    step = next(s for s in (1, 2, 7, 14, 28) if span / s <= 10)
    last = math.ceil(span / step) * step
    return list(range(0, last + 1, step))


def _fmt(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _safe_id(value: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", value)
    return cleaned if cleaned[:1].isalpha() else f"c-{cleaned}"


def describe(points: Sequence[PainPoint], baseline: int | None) -> str:
    """The chart in words (its <desc>): every value in order, and the baseline."""
    if not points:
        text = "No submitted check-ins yet."
    else:
        values = "; ".join(f"day {math.floor(p.day)}{f' ({p.label})' if p.label else ''}: {p.pain}"
                           for p in points)
        text = f"Back pain out of 10 at each check-in: {values}."
    if baseline is not None:
        text += f" Usual back pain before the procedure: {baseline}."
    else:
        text += " Usual back pain before the procedure was not recorded."
    return text


def pain_trend_svg(points: Sequence[PainPoint], *, baseline: int | None, title: str = "Back pain trend",
                   chart_id: str = "pain-chart", width: int = 640, height: int = 240) -> str:
    """An SVG line chart of back pain per check-in. Raises ValueError for a pain outside 0-10 or a
    negative day (a chart must never silently draw an impossible value)."""
    for i, p in enumerate(points):
        if isinstance(p.pain, bool) or not isinstance(p.pain, int) or not 0 <= p.pain <= PAIN_MAX:
            raise ValueError(f"points[{i}].pain: expected a whole number 0-10, got {p.pain!r}")
        if not math.isfinite(p.day) or p.day < 0:
            raise ValueError(f"points[{i}].day: expected a number of days from 0, got {p.day!r}")
    if baseline is not None and not 0 <= baseline <= PAIN_MAX:
        raise ValueError(f"baseline: expected 0-10, got {baseline!r}")
    pts = sorted(points, key=lambda p: p.day)
    plot = _Plot(width, height, max((p.day for p in pts), default=1.0))
    f, x, y = plot.f, plot.x, plot.y
    out = plot.open(cid=_safe_id(chart_id), css="chart pain-chart", title=title, desc=describe(pts, baseline),
                    axis_title="Days since the procedure")
    if baseline is not None:
        by = _fmt(y(baseline))
        out.append(f'<g class="chart-baseline" aria-hidden="true"><line x1="{f.left}" y1="{by}" '
                   f'x2="{f.left + f.plot_w}" y2="{by}"/>'
                   f'<text class="chart-label" x="{f.left + f.plot_w}" y="{_fmt(y(baseline) - 5)}" '
                   f'text-anchor="end">before: {baseline}</text></g>')
    if pts:
        coords = " ".join(f"{_fmt(x(p.day))},{_fmt(y(p.pain))}" for p in pts)
        out.append(f'<polyline class="chart-line" aria-hidden="true" points="{coords}"/>')
        out.append('<g class="chart-points" aria-hidden="true">')
        for p in pts:
            tip = f"Day {_fmt(p.day)}{f' ({p.label})' if p.label else ''}: pain {p.pain}/10"
            out.append(f'<circle cx="{_fmt(x(p.day))}" cy="{_fmt(y(p.pain))}" r="5"><title>{escape(tip)}</title></circle>')
        out.append('</g>')
    else:
        out.append(plot.empty("No submitted check-ins yet"))
    out.append('</svg>')
    return "".join(out)


@dataclass(frozen=True)
class DayBand:
    """The cohort's back pain on one recovery day: median and 25th-75th percentile band."""
    day: int
    n: int
    p25: float
    median: float
    p75: float


def describe_band(bands: Sequence[DayBand]) -> str:
    if not bands:
        return "No submitted check-ins in this period."
    values = "; ".join(f"day {b.day}: median {_fmt(b.median)}, middle half {_fmt(b.p25)} to {_fmt(b.p75)} "
                       f"({b.n} check-in{'s' if b.n != 1 else ''})" for b in bands)
    return f"Back pain out of 10 by recovery day across the clinic's patients: {values}."


def pain_band_svg(bands: Sequence[DayBand], *, title: str = "Back pain by recovery day",
                  chart_id: str = "pain-band", width: int = 640, height: int = 260) -> str:
    """The cohort's median back pain per recovery day as a line, with the 25th-75th percentile band
    as a shaded area (same frame, axes and accessibility as `pain_trend_svg`). Raises ValueError
    for an impossible value rather than drawing it."""
    for i, b in enumerate(bands):
        if b.day < 0 or b.n < 1:
            raise ValueError(f"bands[{i}]: expected a day from 0 and at least one value, got {b!r}")
        if not 0 <= b.p25 <= b.median <= b.p75 <= PAIN_MAX:
            raise ValueError(f"bands[{i}]: expected 0 <= p25 <= median <= p75 <= 10, got {b!r}")
    bs = sorted(bands, key=lambda b: b.day)
    plot = _Plot(width, height, max((b.day for b in bs), default=1))
    x, y = plot.x, plot.y
    out = plot.open(cid=_safe_id(chart_id), css="chart pain-chart band-chart", title=title,
                    desc=describe_band(bs), axis_title="Recovery day")
    if bs:
        upper = [f"{_fmt(x(b.day))},{_fmt(y(b.p75))}" for b in bs]
        lower = [f"{_fmt(x(b.day))},{_fmt(y(b.p25))}" for b in reversed(bs)]
        out.append(f'<polygon class="chart-band" aria-hidden="true" points="{" ".join(upper + lower)}"/>')
        coords = " ".join(f"{_fmt(x(b.day))},{_fmt(y(b.median))}" for b in bs)
        out.append(f'<polyline class="chart-line" aria-hidden="true" points="{coords}"/>')
        out.append('<g class="chart-points" aria-hidden="true">')
        for b in bs:
            tip = f"Day {b.day}: median {_fmt(b.median)}, {_fmt(b.p25)}-{_fmt(b.p75)} ({b.n})"
            out.append(f'<circle cx="{_fmt(x(b.day))}" cy="{_fmt(y(b.median))}" r="4"><title>{escape(tip)}</title></circle>')
        out.append('</g>')
    else:
        out.append(plot.empty("No submitted check-ins in this period"))
    out.append('</svg>')
    return "".join(out)

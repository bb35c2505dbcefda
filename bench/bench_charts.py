"""Chart mechanisms compared on the same data (issue 16): recovery/domain/charts.py (hand-written SVG),
pygal and matplotlib's SVG backend. Printed, never asserted: output size, render time, and what the
strict CSP and assistive technology see in the SVG (inline style attributes and <style>/<script>
elements, which the CSP blocks; an image role with a title and a description listing the values).

The data: the dashboard's band chart (median and 25th-75th percentile of back pain on recovery days
0-42) and a patient's pain trend (21 check-ins and a baseline). pygal and matplotlib are not
requirements: install them into a separate environment to compare (`pip install pygal matplotlib`);
without them their rows say "not installed".
"""
from __future__ import annotations

import io
import random
import re
import statistics
import time

RUNS = 30


def _data():
    from recovery.domain.charts import DayBand, PainPoint
    rng = random.Random(16)
    bands = []
    for day in range(43):
        mid = max(0.0, 7 - day / 7 + rng.uniform(-0.5, 0.5))
        bands.append(DayBand(day, rng.randint(5, 40), max(0.0, mid - 1.5), mid, min(10.0, mid + 1.5)))
    points = [PainPoint(day=d * 2 + 0.4, pain=max(0, 8 - d // 3), label=f"day {d * 2}") for d in range(21)]
    return bands, points


def _ours(bands, points):
    from recovery.domain.charts import pain_band_svg, pain_trend_svg
    return pain_band_svg(bands), pain_trend_svg(points, baseline=7)


def _pygal(bands, points):
    import pygal
    band = pygal.XY(js=[], disable_xml_declaration=True, show_legend=False, range=(0, 10),
                    title="Back pain by recovery day")
    band.add("p75", [(b.day, b.p75) for b in bands], fill=True)
    band.add("median", [(b.day, b.median) for b in bands])
    band.add("p25", [(b.day, b.p25) for b in bands], fill=True)
    trend = pygal.XY(js=[], disable_xml_declaration=True, show_legend=False, range=(0, 10),
                     title="Back pain trend")
    trend.add("pain", [(p.day, p.pain) for p in points])
    trend.add("before", [(0, 7), (points[-1].day, 7)], stroke_style={"dasharray": "4"})
    return band.render(is_unicode=True), trend.render(is_unicode=True)


def _matplotlib(bands, points):
    import matplotlib
    matplotlib.use("svg")
    from matplotlib import pyplot as plt
    out = []
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    days = [b.day for b in bands]
    ax.fill_between(days, [b.p25 for b in bands], [b.p75 for b in bands], alpha=0.3)
    ax.plot(days, [b.median for b in bands])
    ax.set_ylim(0, 10)
    ax.set_xlabel("Recovery day")
    for f in (fig,):
        buf = io.StringIO()
        f.savefig(buf, format="svg", metadata={"Title": "Back pain by recovery day"})
        out.append(buf.getvalue())
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    ax.plot([p.day for p in points], [p.pain for p in points], marker="o")
    ax.axhline(7, linestyle="--")
    ax.set_ylim(0, 10)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Title": "Back pain trend"})
    out.append(buf.getvalue())
    plt.close(fig)
    return tuple(out)


def _inspect(svg: str) -> dict:
    return {"bytes": len(svg.encode()),
            "style_attrs": len(re.findall(r"\sstyle=", svg)),
            "style_elements": len(re.findall(r"<style", svg)),
            "scripts": len(re.findall(r"<script", svg)),
            "role_img": 'role="img"' in svg,
            "title": "<title" in svg,
            "desc_with_values": bool(re.search(r"<desc[^>]*>[^<]*\d", svg))}


def run() -> None:
    bands, points = _data()
    for name, render in (("charts.py (hand-written SVG)", _ours), ("pygal", _pygal),
                         ("matplotlib SVG backend", _matplotlib)):
        try:
            svgs = render(bands, points)
        except ImportError as e:
            print(f"  {name}: not installed ({e.name}); install it into a separate environment to compare")
            continue
        times = []
        for _ in range(RUNS):
            t = time.perf_counter()
            render(bands, points)
            times.append((time.perf_counter() - t) * 1000)
        for label, svg in zip(("band chart (43 days)", "pain trend (21 points)"), svgs):
            f = _inspect(svg)
            print(f"  {name}: {label}: {f['bytes'] / 1024:.1f} KB; CSP: {f['style_attrs']} style attributes, "
                  f"{f['style_elements']} <style>, {f['scripts']} <script>; accessibility: role=img "
                  f"{'yes' if f['role_img'] else 'no'}, title {'yes' if f['title'] else 'no'}, values in <desc> "
                  f"{'yes' if f['desc_with_values'] else 'no'}", flush=True)
        print(f"  {name}: both charts rendered in median {statistics.median(times):.2f} ms "
              f"(max {max(times):.2f} ms) over {RUNS} runs", flush=True)

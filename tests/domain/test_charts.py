"""The server-rendered pain trend (recovery/domain/charts.py): valid SVG, accessible name and description,
one marker per check-in at the right place, the baseline, and refusal of impossible values."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from recovery.domain.charts import PainPoint, day_ticks, describe, pain_trend_svg

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def test_chart_has_an_accessible_name_description_and_one_marker_per_checkin():
    points = [PainPoint(0.3, 8, "Mon 2 Mar 17:00"), PainPoint(1.0, 6), PainPoint(2.0, 5), PainPoint(7.0, 2)]
    svg = parse(pain_trend_svg(points, baseline=6, title="Back pain, <Ann & Bob>", chart_id="pain-7"))
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "pain-7-title pain-7-desc"
    assert svg.find(f"{SVG}title").text == "Back pain, <Ann & Bob>"  # escaped in the markup, intact when read
    desc = svg.find(f"{SVG}desc").text
    assert desc == ("Back pain out of 10 at each check-in: day 0 (Mon 2 Mar 17:00): 8; day 1: 6; day 2: 5; "
                    "day 7: 2. Usual back pain before the procedure: 6.")
    circles = svg.findall(f".//{SVG}circle")
    assert len(circles) == 4
    # y grows downwards: pain 8 sits higher (smaller y) than pain 2; x follows the day
    ys = [float(c.get("cy")) for c in circles]
    xs = [float(c.get("cx")) for c in circles]
    assert ys[0] < ys[1] < ys[2] < ys[3] and xs == sorted(xs)
    baseline = svg.find(f".//{SVG}g[@class='chart-baseline']/{SVG}line")
    assert baseline is not None
    # the baseline at 6 lies at the same height as a point with pain 6
    assert float(baseline.get("y1")) == pytest.approx(ys[1])
    line = svg.find(f"{SVG}polyline")
    assert len(line.get("points").split()) == 4


def test_no_style_attributes_only_classes():
    markup = pain_trend_svg([PainPoint(1, 3)], baseline=None)
    assert "style=" not in markup and "<script" not in markup
    assert 'class="chart-line"' in markup


def test_empty_chart_says_so_and_points_are_sorted():
    svg = parse(pain_trend_svg([], baseline=None))
    assert svg.findall(f".//{SVG}circle") == []
    assert "No submitted check-ins yet" in ET.tostring(svg, encoding="unicode")
    assert describe([], None) == ("No submitted check-ins yet. Usual back pain before the procedure was not "
                                  "recorded.")
    svg = parse(pain_trend_svg([PainPoint(3, 1), PainPoint(1, 9)], baseline=None))
    xs = [float(c.get("cx")) for c in svg.findall(f".//{SVG}circle")]
    assert xs == sorted(xs)


@pytest.mark.parametrize(("max_day", "ticks"), [
    (0.2, [0, 1]), (1.0, [0, 1]), (6.5, list(range(0, 8))), (12, list(range(0, 14, 2))),
    (42, [0, 7, 14, 21, 28, 35, 42]), (90, list(range(0, 99, 14)))])
def test_day_ticks(max_day, ticks):
    assert day_ticks(max_day) == ticks


@pytest.mark.parametrize("bad", [PainPoint(1, 11), PainPoint(1, -1), PainPoint(-1, 3), PainPoint(1, True),
                                 PainPoint(float("nan"), 2)])
def test_impossible_values_are_refused_with_the_place_named(bad):
    with pytest.raises(ValueError, match=r"points\[1\]"):
        pain_trend_svg([PainPoint(0, 2), bad], baseline=3)


def test_bad_baseline_is_refused():
    with pytest.raises(ValueError, match="baseline"):
        pain_trend_svg([], baseline=12)


def test_chart_id_is_made_safe():
    markup = pain_trend_svg([], baseline=None, chart_id='x" onload="alert(1)')
    assert 'onload="' not in markup

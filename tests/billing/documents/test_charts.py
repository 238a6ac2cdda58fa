"""The SVG charts of the billing dashboard (billing.documents.charts): pure functions of their points."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import pytest

from billing.documents.charts import EMPTY_TEXT, bar_chart, format_number, line_chart, value_axis

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("values", "axis"),
    [
        ([], (0.0, 1.0, 0.25)),
        ([0, 0, 0], (0.0, 1.0, 0.25)),
        ([3, 10], (0.0, 10.0, 2.5)),
        ([-5, 12], (-5.0, 15.0, 5.0)),
        ([Decimal("1234567")], (0.0, 1_500_000.0, 500_000.0)),
        ([Decimal("0.3")], (0.0, 0.30000000000000004, 0.1)),
        ([475, 240.75], (0.0, 600.0, 200.0)),
    ],
)
def test_value_axis_includes_zero_and_every_value_in_round_steps(
    values: list[Any], axis: tuple[float, float, float]
) -> None:
    assert value_axis([float(v) for v in values]) == pytest.approx(axis)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (1234567, "1,234,567"),
        (Decimal("1234.5000"), "1,234.5"),
        (Decimal("1E+3"), "1,000"),
        (Decimal("0.012"), "0.012"),
        (0.1, "0.1"),
        (Decimal("-20"), "-20"),
    ],
)
def test_format_number(value: Any, text: str) -> None:
    assert format_number(value) == text


CHARTS = [bar_chart, line_chart]
MARKS = {bar_chart: "rect", line_chart: "circle"}


@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize(
    "points",
    [
        [("Jan", 1)],
        [("Jan", Decimal("1200.50")), ("Feb", 0), ("Mar", Decimal("-20"))],
        [(str(day), day * 3) for day in range(1, 32)],
        [("a", 0), ("b", 0)],
    ],
)
def test_charts_are_well_formed_svg_with_one_mark_and_tooltip_per_point(chart: Any, points: list[Any]) -> None:
    svg = ET.fromstring(chart(points, title="Chart"))
    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img" and svg.get("aria-label") == "Chart"
    marks = svg.findall(f"{SVG}{MARKS[chart]}")
    assert len(marks) == len(points)
    assert [mark.find(f"{SVG}title").text for mark in marks] == [  # type: ignore[union-attr]
        f"{label}: {format_number(value)}" for label, value in points
    ]
    # Every mark sits inside the drawing.
    for mark in marks:
        y = float(mark.get("y") or mark.get("cy") or 0)
        assert 0 <= y <= float(svg.get("height") or 0)


@pytest.mark.parametrize("chart", CHARTS)
def test_charts_escape_labels_and_title(chart: Any) -> None:
    hostile = "<script>alert('x')</script> & \"co\""
    svg = chart([(hostile, 5)], title=hostile)
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    parsed = ET.fromstring(svg)
    assert parsed.get("aria-label") == hostile
    assert hostile in [text.text for text in parsed.iter(f"{SVG}text")]


@pytest.mark.parametrize("chart", CHARTS)
def test_charts_without_points_say_so(chart: Any) -> None:
    svg = ET.fromstring(chart([], title="Nothing"))
    assert [text.text for text in svg.iter(f"{SVG}text")] == [EMPTY_TEXT]


def test_bar_heights_are_proportional_to_the_values_and_negatives_hang_below_zero() -> None:
    svg = ET.fromstring(bar_chart([("a", 10), ("b", 5), ("c", -5)], title="t"))
    bars = svg.findall(f"{SVG}rect")
    heights = [float(bar.get("height") or 0) for bar in bars]
    assert heights[0] == pytest.approx(2 * heights[1], rel=0.02)
    assert heights[2] == pytest.approx(heights[1], rel=0.02)
    zero = float(bars[0].get("y") or 0) + heights[0]
    assert float(bars[2].get("y") or 0) == pytest.approx(zero, abs=0.1)  # starts at the zero line


def test_long_series_label_every_nth_point_but_keep_every_tooltip() -> None:
    points = [(f"Oct {day}", day) for day in range(1, 32)]
    svg = ET.fromstring(bar_chart(points, title="t"))
    labels = [t.text for t in svg.iter(f"{SVG}text") if (t.text or "").startswith("Oct")]
    assert labels == [f"Oct {day}" for day in range(1, 32, 3)]
    assert len(svg.findall(f"{SVG}rect")) == 31


def test_line_chart_draws_one_polyline_through_every_point() -> None:
    svg = ET.fromstring(line_chart([("a", 1), ("b", 4), ("c", 2)], title="t"))
    polyline = svg.find(f"{SVG}polyline")
    assert polyline is not None
    assert len((polyline.get("points") or "").split()) == 3

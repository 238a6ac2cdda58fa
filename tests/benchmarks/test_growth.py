"""The benchmark's arithmetic: growth curves and targets met by either of two figures."""

from __future__ import annotations

import pytest

from tests.benchmarks.growth import curve
from tests.benchmarks.report import BY_KEY, met


def test_curve_compares_each_size_with_the_previous_one() -> None:
    points = curve(
        [{"n": 1_000, "s": 2.0, "cpu": 1.0}, {"n": 10_000, "s": 20.0, "cpu": 5.0}, {"n": 50_000, "s": 20.0}],
        size="n",
        time="s",
        cpu="cpu",
    )
    assert "growth" not in points[0]
    assert points[1]["size_ratio"] == 10
    assert points[1]["time_ratio"] == 10
    assert points[1]["growth"] == 1  # linear
    assert points[1]["exponent"] == 1
    assert points[1]["cpu_growth"] == 0.5
    assert points[2]["growth"] == 0.2  # flat: 1 / ×size
    assert points[2]["exponent"] == 0
    assert "cpu_growth" not in points[2]  # no CPU figure at that size


def test_curve_leaves_the_measured_points_unchanged() -> None:
    measured = [{"n": 1, "s": 1.0}, {"n": 2, "s": 4.0}]
    points = curve(measured, size="n", time="s")
    assert points[1]["exponent"] == 2  # quadratic
    assert measured[1] == {"n": 2, "s": 4.0}


@pytest.mark.parametrize(
    ("req_per_s", "cpu_ms", "expected"),
    [(1_200, 3.0, True), (500, 1.8, True), (500, 3.0, False)],
)
def test_single_event_target_is_met_by_its_rate_or_its_cpu(req_per_s: float, cpu_ms: float, expected: bool) -> None:
    results = {"ingest_single_req_per_s": req_per_s, "ingest_single_cpu_ms_per_request": cpu_ms}
    assert met(BY_KEY["ingest_single_req_per_s"], results) is expected


def test_a_target_without_its_alternative_figure_is_judged_alone() -> None:
    assert met(BY_KEY["ingest_vs_copy_ratio"], {"ingest_vs_copy_ratio": 0.1}) is False
    assert met(BY_KEY["ingest_vs_copy_ratio"], {"ingest_vs_copy_ratio": 0.3}) is True

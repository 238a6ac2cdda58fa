"""Medians of several benchmark reports, with each target judged on the medians."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.medians import ReportError, main, medians


def report(**figures: float) -> dict[str, object]:
    return {"mode": "full", **figures}


def test_each_figure_is_the_median_of_the_runs_that_measured_it() -> None:
    result = medians(
        [
            report(close_s=30.0, ingest_single_cpu_ms_per_request=2.4),
            report(close_s=18.0, ingest_single_cpu_ms_per_request=1.9),
            report(close_s=19.0),
        ]
    )
    assert result["close_s"] == 19.0
    assert result["close_s__values"] == [30.0, 18.0, 19.0]
    assert result["ingest_single_cpu_ms_per_request"] == pytest.approx(2.15)
    assert result["ingest_single_cpu_ms_per_request__runs"] == 2
    assert "unique_count_s" not in result


def test_quick_and_full_runs_are_not_mixed() -> None:
    with pytest.raises(ReportError, match="mix modes"):
        medians([report(close_s=1.0), {"mode": "quick", "close_s": 1.0}])


def test_command_prints_targets_met_on_the_medians(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for i, cpu in enumerate((2.4, 1.9, 1.8)):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(report(ingest_single_req_per_s=700.0, ingest_single_cpu_ms_per_request=cpu)))
        paths.append(str(path))
    out = tmp_path / "medians.json"
    assert main([*paths, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Medians of 3 full run(s)" in printed
    line = next(line for line in printed.splitlines() if line.startswith("Single-event ingestion"))
    assert "yes" in line  # 700 req/s misses 1,000, but the CPU's median (1.90 ms) meets its 2 ms
    assert json.loads(out.read_text())["ingest_single_cpu_ms_per_request"] == 1.9


def test_a_file_that_is_not_a_report_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert main([str(bad)]) == 2
    assert f"{bad}: not a benchmark report" in capsys.readouterr().err

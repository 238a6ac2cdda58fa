"""The results table (figure, value, target, met?) and benchmark-report.json."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.benchmarks.context import Bench
from tests.benchmarks.database import ROOT

REPORT_FILE = ROOT / "benchmark-report.json"


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    target: float | None = None
    higher_is_better: bool = True
    digits: int = 0

    def met(self, value: float) -> bool | None:
        if self.target is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return ""
        sign = "≥" if self.higher_is_better else "≤"
        return f"{sign} {self.target:,.{self.digits}f} {self.unit}"


FIGURES = (
    Figure("ingest_batch_events_per_s", "Batch ingestion (best batch size)", "events/s", 25_000),
    Figure("ingest_batch100_events_per_s", "  batches of 100", "events/s"),
    Figure("ingest_batch100_projected_events_per_s_quiet", "    if nothing else ran (CPU/event)", "events/s"),
    Figure("ingest_batch1000_events_per_s", "  batches of 1,000", "events/s"),
    Figure("ingest_batch1000_projected_events_per_s_quiet", "    if nothing else ran (CPU/event)", "events/s"),
    Figure("ingest_single_req_per_s", "Single-event ingestion", "req/s", 800),
    Figure("ingest_single_cpu_ms_per_request", "  server + database CPU per request", "ms", digits=2),
    Figure("ingest_single_projected_req_per_s_quiet", "  if nothing else ran (CPU/request)", "req/s"),
    Figure("copy_events_per_s", "Raw COPY, same rows", "rows/s"),
    Figure("ingest_vs_copy_ratio", "  HTTP batch / COPY", "", digits=3),
    Figure("unique_count_s", "unique_count (maintained set)", "s", 1.0, higher_is_better=False, digits=3),
    Figure("count_distinct_s", "COUNT(DISTINCT) over raw events", "s", digits=3),
    Figure("unique_vs_count_distinct_ratio", "  unique_count / COUNT DISTINCT", "", digits=4),
    Figure("current_usage_p50_ms", "current_usage p50 (under ingest load)", "ms", digits=1),
    Figure(
        "current_usage_p99_ms", "current_usage p99 (under ingest load)", "ms", 100, higher_is_better=False, digits=1
    ),
    Figure("current_usage_idle_p99_ms", "  p99 with an idle server", "ms", digits=1),
    Figure("current_usage_5m_p99_ms", "  p99, customer with 5M events", "ms", digits=1),
    Figure("close_s", "Period close wall time", "s", 60, higher_is_better=False, digits=1),
    Figure("close_peak_rss_mb", "Period close peak RSS", "MB", 300, higher_is_better=False, digits=1),
)


def _value_text(figure: Figure, value: float) -> str:
    unit = f" {figure.unit}" if figure.unit else ""
    return f"{value:,.{figure.digits}f}{unit}"


def table(bench: Bench) -> list[str]:
    r = bench.results
    rows: list[tuple[str, str, str, str]] = []
    for figure in FIGURES:
        if figure.key not in r:
            continue
        value = r[figure.key]
        met = figure.met(value)
        label = figure.label
        if figure.key == "close_s":
            label = f"Period close, {r['close_customers']:,} customers"
        if figure.key == "unique_count_s":
            label = f"unique_count, {bench.sizes.unique_distinct:,} distinct"
        rows.append(
            (label, _value_text(figure, value), figure.target_text(), "" if met is None else ("yes" if met else "NO"))
        )
    for run in r.get("close_runs", [])[:-1]:
        rows.append((f"  close of {run['customers']:,} customers", f"{run['s']:,.1f} s", "", ""))
        rows.append(("  its peak RSS", f"{run['peak_rss_mb']:,.1f} MB", "", ""))
    headers = ("Figure", "Value", "Target", "Met?")
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    for row in rows:
        out.append(
            "  ".join(
                cell.rjust(w) if i == 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return out


def write(bench: Bench, *, sections: set[str], path: Path = REPORT_FILE) -> Path:
    r = bench.results
    targets: dict[str, Any] = {}
    for figure in FIGURES:
        if figure.target is not None and figure.key in r:
            targets[figure.key] = {"target": figure.target, "met": figure.met(r[figure.key])}
    document = {
        "mode": "quick" if bench.quick else "full",
        "reduced": bench.quick,
        "sections": sorted(sections),
        "started_at": bench.now.isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "sizes": asdict(bench.sizes),
        "targets": targets,
        **r,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def print_table(bench: Bench, write_line: Callable[[str], None]) -> None:
    for line in table(bench):
        write_line(line)

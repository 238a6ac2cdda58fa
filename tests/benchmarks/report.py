"""The results table (figure, value, target, met?), the growth curves, and benchmark-report.json.

Targets are issue 18's. Where the issue accepts either of two figures (a rate, or the CPU it
costs: the rate depends on what else runs on the machine, the CPU much less), the figure names
the other one as `either` and is met if one of them is.
"""

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
    either: str = ""  # the key of another figure whose target, if met, meets this one too

    def met(self, value: float) -> bool | None:
        if self.target is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return ""
        sign = "≥" if self.higher_is_better else "≤"
        unit = f" {self.unit}" if self.unit else ""
        return f"{sign} {self.target:,.{self.digits}f}{unit}"


FIGURES = (
    Figure("ingest_batch_events_per_s", "Batch ingestion (best batch size)", "events/s"),
    Figure(
        "ingest_batch_cpu_us_per_event", "  server + database CPU per event", "µs", 30, digits=1, higher_is_better=False
    ),
    Figure("ingest_batch100_events_per_s", "  batches of 100", "events/s"),
    Figure("ingest_batch100_cpu_us_per_event", "    CPU per event", "µs", digits=1),
    Figure("ingest_batch100_projected_events_per_s_quiet", "    if nothing else ran (CPU/event)", "events/s"),
    Figure("ingest_batch1000_events_per_s", "  batches of 1,000", "events/s"),
    Figure("ingest_batch1000_cpu_us_per_event", "    CPU per event", "µs", digits=1),
    Figure("ingest_batch1000_projected_events_per_s_quiet", "    if nothing else ran (CPU/event)", "events/s"),
    Figure(
        "ingest_single_req_per_s", "Single-event ingestion", "req/s", 1000, either="ingest_single_cpu_ms_per_request"
    ),
    Figure(
        "ingest_single_cpu_ms_per_request",
        "  server + database CPU per request",
        "ms",
        2,
        digits=2,
        higher_is_better=False,
    ),
    Figure("ingest_single_projected_req_per_s_quiet", "  if nothing else ran (CPU/request)", "req/s"),
    Figure("copy_events_per_s", "Raw COPY, same rows", "rows/s"),
    Figure("copy_db_cpu_us_per_row", "  database CPU per row", "µs", digits=1),
    Figure("ingest_vs_copy_ratio", "  HTTP batch / COPY", "", 0.25, digits=3, either="ingest_batch_cpu_us_per_event"),
    Figure("unique_count_s", "unique_count (maintained set)", "s", 0.2, digits=3, higher_is_better=False),
    Figure("unique_count_cpu_ms", "  application + database CPU per call", "ms", digits=2),
    Figure("count_distinct_s", "COUNT(DISTINCT) over raw events", "s", digits=3),
    Figure("unique_vs_count_distinct_ratio", "  unique_count / COUNT DISTINCT", "", digits=4),
    Figure("current_usage_p50_ms", "current_usage p50 (under ingest load)", "ms", digits=1),
    Figure("current_usage_p99_ms", "current_usage p99 (under ingest load)", "ms", 50, digits=1, higher_is_better=False),
    Figure("current_usage_idle_p99_ms", "  p99 with an idle server", "ms", digits=1),
    Figure("current_usage_cpu_ms_per_request", "  server + database CPU per request", "ms", digits=2),
    Figure("current_usage_5m_p99_ms", "  p99, customer with 5M events", "ms", digits=1),
    Figure("close_s", "Period close wall time", "s", 20, digits=1, higher_is_better=False),
    Figure(
        "close_cpu_ms_per_customer", "  close + database CPU per customer", "ms", 2, digits=2, higher_is_better=False
    ),
    Figure("close_app_cpu_ms_per_customer", "    of which close_period and its workers", "ms", digits=2),
    Figure("close_db_cpu_ms_per_customer", "    of which the database", "ms", digits=2),
    Figure("close_peak_rss_mb", "Period close peak RSS", "MB", 300, digits=1, higher_is_better=False),
    Figure("close_growth_time_ratio", "Period close time ratio", "×", digits=2),
    Figure(
        "close_growth_factor", "  per customer ratio (5.5× at 5× = 1.10)", "", 1.1, digits=2, higher_is_better=False
    ),
    Figure("close_growth_cpu_factor", "  per customer CPU ratio", "", digits=2),
    Figure(
        "close_rss_growth_ratio", "  peak RSS ratio, largest / smallest run", "", 1.1, digits=2, higher_is_better=False
    ),
)
BY_KEY = {figure.key: figure for figure in FIGURES}


def met(figure: Figure, results: dict[str, Any]) -> bool | None:
    """The figure's own target, or its `either` figure's."""
    own = figure.met(results[figure.key])
    other = BY_KEY.get(figure.either)
    if own is None or other is None or other.key not in results:
        return own
    return own or bool(other.met(results[other.key]))


def _value_text(figure: Figure, value: float) -> str:
    unit = f" {figure.unit}" if figure.unit else ""
    return f"{value:,.{figure.digits}f}{unit}"


def _label(figure: Figure, bench: Bench) -> str:
    r = bench.results
    if figure.key == "close_s":
        return f"Period close, {r['close_customers']:,} customers, {r.get('close_workers', 1)} worker(s)"
    if figure.key == "unique_count_s":
        return f"unique_count, {bench.sizes.unique_events:,} events / {bench.sizes.unique_distinct:,} users"
    if figure.key == "close_growth_time_ratio":
        return f"Period close, {r['close_growth_vs']}: time ratio"
    return figure.label


def _target_text(figure: Figure) -> str:
    other = BY_KEY.get(figure.either)
    if other is None:
        return figure.target_text()
    return f"{figure.target_text()} or CPU {other.target_text()}"


def _aligned(headers: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), "  ".join("-" * w for w in widths)]
    for row in rows:
        cells = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        out.append("  ".join(cells).rstrip())
    return out


def table(bench: Bench) -> list[str]:
    r = bench.results
    rows: list[tuple[str, ...]] = []
    for figure in FIGURES:
        if figure.key not in r or r[figure.key] is None:
            continue
        value = r[figure.key]
        ok = met(figure, r)
        rows.append(
            (
                _label(figure, bench),
                _value_text(figure, value),
                _target_text(figure),
                "" if ok is None else "yes" if ok else "NO",
            )
        )
    return _aligned(("Figure", "Value", "Target", "Met?"), rows, right={1})


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _num(value: float | None, unit: str, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f} {unit}"


def growth_table(bench: Bench) -> list[str]:
    """One row per size of each curve; ×size, ×time and their quotient against the row above."""
    growth = bench.results.get("growth") or {}
    rows: list[tuple[str, ...]] = []
    for name, size_key, unit in (
        ("close", "customers", "customers"),
        ("unique_count", "events", "events"),
        ("current_usage", "events", "events"),
    ):
        for point in growth.get(name, []):
            if name == "close":
                time_text = f"{point['s']:,.1f} s"
                cpu = _num(point.get("cpu_ms_per_customer"), "ms/customer")
                other = f"peak RSS {point['peak_rss_mb']:,.1f} MB"
            elif name == "unique_count":
                time_text = _ms(point["s"])
                cpu = _num(point.get("cpu_ms"), "ms/call")
                other = f"COUNT(DISTINCT) {_ms(point['count_distinct_s'])}"
            else:
                time_text = f"idle p50 {point['idle_p50_ms']:,.1f} ms"
                cpu = _num(point.get("cpu_ms_per_request"), "ms/request")
                other = f"under load p50 {point['p50_ms']:,.1f} / p99 {point['p99_ms']:,.1f} ms"
            steps = ("", "", "", "", "")
            if "growth" in point:
                steps = (
                    f"{point['size_ratio']:.1f}",
                    f"{point['time_ratio']:.2f}",
                    f"{point['growth']:.2f}",
                    "" if point["exponent"] is None else f"{point['exponent']:.2f}",
                    f"{point['cpu_growth']:.2f}" if "cpu_growth" in point else "",
                )
            rows.append((name, f"{point[size_key]:,} {unit}", time_text, cpu, other, *steps))
    if not rows:
        return []
    headers = ("Growth", "Size", "Time", "CPU", "", "×size", "×time", "growth", "k", "CPU growth")
    return [
        "Against the row above: growth = ×time / ×size (1.00 linear, 1/×size flat); k = log ×time / log ×size",
        "(time ∝ size^k: 1 linear, 0 flat); CPU growth = ×CPU / ×size.",
        *_aligned(headers, rows, right={2, 3, 5, 6, 7, 8, 9}),
    ]


def write(bench: Bench, *, sections: set[str], path: Path = REPORT_FILE) -> Path:
    r = bench.results
    targets: dict[str, Any] = {}
    for figure in FIGURES:
        if figure.target is not None and r.get(figure.key) is not None:
            entry: dict[str, Any] = {"target": figure.target, "met": met(figure, r)}
            if figure.either:
                entry["met_alone"] = figure.met(r[figure.key])
                entry["or"] = figure.either
            targets[figure.key] = entry
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
    growth = growth_table(bench)
    if growth:
        write_line("")
        for line in growth:
            write_line(line)
    durations = bench.results.get("durations_s") or {}
    if durations:
        write_line("")
        write_line("Time taken: " + ", ".join(f"{name} {seconds:,.0f} s" for name, seconds in durations.items()))

"""Section `unique`: unique_count over the maintained set beside COUNT(DISTINCT) over the raw
events, at each size of the growth curve (one customer each: 1M, 5M and 20M events from the same
1M users in full mode). The figure is the largest size's; the curve says how the time grows
with the events (flat is the design: the set holds one row per user, however many events).
The period close is in `close`."""

from __future__ import annotations

import json
from typing import Any

from tests.benchmarks.context import Bench
from tests.benchmarks.database import BenchmarkError, python_module
from tests.benchmarks.growth import curve


def measure_unique(bench: Bench, customer: str) -> dict[str, Any]:
    """One customer's unique_count and COUNT(DISTINCT) (median of repeats, CPU per call)."""
    args = {
        "customer": customer,
        "metric": "mtu",
        "start": bench.this_month.isoformat(),
        "end": bench.next_month.isoformat(),
        "repeats": bench.sizes.repeats,
    }
    out = python_module(bench.db, "tests.benchmarks.child", "unique", json.dumps(args), timeout=3600)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    expected = bench.sizes.unique_distinct
    if result["unique_count"] != expected or result["count_distinct"] != expected:
        raise BenchmarkError(
            f"unique_count {result['unique_count']} / COUNT DISTINCT {result['count_distinct']} for {customer}, "
            f"expected {expected}"
        )
    return result


def _cpu_text(result: dict[str, Any], name: str) -> str:
    if f"{name}_cpu_ms" in result:
        return f"CPU {result[f'{name}_cpu_ms']:,.2f} ms a call (database {result[f'{name}_db_cpu_ms']:,.2f})"
    return f"application CPU {result[f'{name}_app_cpu_ms']:,.2f} ms a call"


def unique(bench: Bench) -> None:
    sizes = bench.sizes
    points = []
    result: dict[str, Any] = {}
    for customer, events in bench.unique_customers:
        bench.log(
            f"unique_count over {events:,} events from {sizes.unique_distinct:,} users ({customer}), "
            f"{sizes.repeats}+ runs each …"
        )
        result = measure_unique(bench, customer)
        bench.log(
            f"  unique_count (maintained set): median {result['unique_count_s'] * 1000:,.1f} ms, "
            f"{_cpu_text(result, 'unique_count')}"
        )
        bench.log(
            f"  COUNT(DISTINCT) over events:   median {result['count_distinct_s'] * 1000:,.1f} ms "
            f"{result['count_distinct_runs_s']}, {_cpu_text(result, 'count_distinct')}"
        )
        bench.log(
            f"  events_count (daily counts): {result['events_count_s'] * 1000:,.1f} ms; "
            f"COUNT(*) of the window's events: {result['events_scan_s'] * 1000:,.1f} ms"
        )
        points.append(
            {
                "events": events,
                "distinct": sizes.unique_distinct,
                "s": round(result["unique_count_s"], 4),
                "cpu_ms": result.get("unique_count_cpu_ms"),
                "count_distinct_s": round(result["count_distinct_s"], 4),
                "count_distinct_cpu_ms": result.get("count_distinct_cpu_ms"),
                "parallel_workers": result["unique_count_parallel_workers"],
            }
        )
    r = bench.results
    # The figure is the largest customer's (the last measured).
    r["unique_count_s"] = round(result["unique_count_s"], 4)
    r["count_distinct_s"] = round(result["count_distinct_s"], 4)
    r["unique_vs_count_distinct_ratio"] = round(result["unique_count_s"] / result["count_distinct_s"], 4)
    r["events_count_s"] = round(result["events_count_s"], 4)
    r["events_scan_s"] = round(result["events_scan_s"], 4)
    for key in ("unique_count_cpu_ms", "unique_count_app_cpu_ms", "unique_count_db_cpu_ms", "count_distinct_cpu_ms"):
        if key in result:
            r[key] = result[key]
    r["unique_detail"] = result
    r.setdefault("growth", {})["unique_count"] = curve(points, size="events", time="s", cpu="cpu_ms")

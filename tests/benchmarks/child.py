"""Measurements that need Django, run as their own process against the bench database:
`python -m tests.benchmarks.child TASK JSON-ARGS` with DATABASE_URL of the bench database.

Tasks print one JSON object:
- `setup`: load the shipped catalog and create an API key (billing's own services).
- `unique`: time metering.selectors.unique_count (the maintained set) and a plain
  COUNT(DISTINCT properties->>'user_id') over the raw events for the same window, each a few
  times, with their CPU (this process's and its backend's) and the query plans for the record;
  and events_count (the daily counts) beside a COUNT(*) of the window's events.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from customers.models import Customer  # noqa: E402
from customers.services import api_key_create  # noqa: E402
from metering.models import BillableMetric  # noqa: E402
from metering.selectors import aggregate, events_count, unique_count, window_events  # noqa: E402
from tests.benchmarks.cpu import process_cpu  # noqa: E402

RAW_COUNT_DISTINCT = (
    "SELECT COUNT(DISTINCT properties ->> %s) FROM metering_event "
    "WHERE customer_id = %s AND metric_id = %s AND timestamp >= %s AND timestamp < %s"
)


def setup(args: dict[str, Any]) -> dict[str, Any]:
    call_command("load_catalog", stdout=io.StringIO())
    _, raw_key = api_key_create(name="benchmark")
    return {"api_key": raw_key}


@dataclass
class Timer:
    """Wall time of each call, and the CPU of all calls: this process's (the application's) and
    its database backend's (read from /proc: same host only, else None). A plan with parallel
    workers spends CPU in them too, which this does not see (the plan says so)."""

    backend_pid: int
    runs: list[float] = field(default_factory=list)
    app_cpu_s: float = 0.0
    db_cpu_s: float | None = 0.0

    def __call__(self, fn: Callable[[], Any], repeats: int, *, min_seconds: float = 1.0) -> Any:
        """Call fn `repeats` times, and more until `min_seconds` have passed: /proc counts CPU in
        ticks of 10 ms, coarse beside a query of a few milliseconds."""
        result = None
        app, db = time.process_time(), process_cpu(self.backend_pid)
        until = time.perf_counter() + min_seconds
        while len(self.runs) < repeats or time.perf_counter() < until:
            started = time.perf_counter()
            result = fn()
            self.runs.append(time.perf_counter() - started)
        self.app_cpu_s += time.process_time() - app
        db_after = process_cpu(self.backend_pid)
        if db is None or db_after is None or self.db_cpu_s is None:
            self.db_cpu_s = None
        else:
            self.db_cpu_s += db_after - db
        return result

    def figures(self, name: str) -> dict[str, Any]:
        calls = len(self.runs)
        figures: dict[str, Any] = {
            f"{name}_runs_s": [round(r, 4) for r in self.runs[:20]],
            f"{name}_calls": calls,
            f"{name}_s": statistics.median(self.runs),
            f"{name}_app_cpu_ms": round(self.app_cpu_s / calls * 1000, 3),
        }
        if self.db_cpu_s is not None:
            figures[f"{name}_db_cpu_ms"] = round(self.db_cpu_s / calls * 1000, 3)
            figures[f"{name}_cpu_ms"] = round((self.app_cpu_s + self.db_cpu_s) / calls * 1000, 3)
        return figures


def explain(sql: str, params: Any) -> list[str]:
    """EXPLAIN ANALYZE; with params None, `sql` is a query Django logged with its values inlined."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return [row[0] for row in cursor.fetchall()]


def unique(args: dict[str, Any]) -> dict[str, Any]:
    customer = Customer.objects.get(external_id=args["customer"])
    metric = BillableMetric.objects.get(code=args["metric"])
    start, end = datetime.fromisoformat(args["start"]), datetime.fromisoformat(args["end"])
    repeats = args["repeats"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])

    maintained = Timer(backend)
    unique = maintained(lambda: unique_count(customer=customer, metric=metric, start=start, end=end), repeats)
    with CaptureQueriesContext(connection) as queries:
        unique_count(customer=customer, metric=metric, start=start, end=end)
    selector_sql = queries.captured_queries[-1]["sql"]

    params = (metric.field, customer.pk, metric.pk, start, end)

    def raw() -> int:
        with connection.cursor() as cursor:
            cursor.execute(RAW_COUNT_DISTINCT, params)
            return int(cursor.fetchone()[0])

    raw_timer = Timer(backend)
    raw_count = raw_timer(raw, repeats)
    events = window_events(customer=customer, metric=metric, start=start, end=end)
    scan_timer, count_timer, aggregate_timer = Timer(backend), Timer(backend), Timer(backend)
    scanned = scan_timer(events.count, repeats)
    counted = count_timer(lambda: events_count(customer=customer, metric=metric, start=start, end=end), repeats)
    if counted != scanned:
        raise RuntimeError(f"daily event counts say {counted}, the events table {scanned}")
    aggregate_timer(
        lambda: aggregate(customer=customer, metric=metric, start=start, end=end, count_events=True), repeats
    )
    plan = explain(selector_sql, None)
    return {
        "customer": customer.external_id,
        "unique_count": unique,
        "count_distinct": raw_count,
        "events": counted,
        **maintained.figures("unique_count"),
        **raw_timer.figures("count_distinct"),
        **count_timer.figures("events_count"),
        **scan_timer.figures("events_scan"),
        **aggregate_timer.figures("aggregate_with_events_count"),
        "unique_count_parallel_workers": any("Workers Launched" in line for line in plan),
        "unique_count_sql": selector_sql,
        "unique_count_plan": plan,
        "count_distinct_plan": explain(RAW_COUNT_DISTINCT, params),
    }


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"setup": setup, "unique": unique}


def main(argv: list[str]) -> None:
    task = TASKS[argv[0]]
    args = json.loads(argv[1]) if len(argv) > 1 else {}
    json.dump(task(args), sys.stdout, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])

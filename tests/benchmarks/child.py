"""Measurements that need Django, run as their own process against the bench database:
`python -m tests.benchmarks.child TASK JSON-ARGS` with DATABASE_URL of the bench database.

Tasks print one JSON object:
- `setup`: load the shipped catalog and create an API key (billing's own services).
- `unique`: time metering.selectors.unique_count (the maintained set) and a plain
  COUNT(DISTINCT properties->>'user_id') over the raw events for the same window, each a few
  times, with the query plans for the record; and events_count (the daily counts) beside a
  COUNT(*) of the window's events.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
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

RAW_COUNT_DISTINCT = (
    "SELECT COUNT(DISTINCT properties ->> %s) FROM metering_event "
    "WHERE customer_id = %s AND metric_id = %s AND timestamp >= %s AND timestamp < %s"
)


def setup(args: dict[str, Any]) -> dict[str, Any]:
    call_command("load_catalog", stdout=io.StringIO())
    _, raw_key = api_key_create(name="benchmark")
    return {"api_key": raw_key}


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    result, runs = None, []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - started)
    return result, runs


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
    connection.ensure_connection()

    maintained, maintained_runs = timed(
        lambda: unique_count(customer=customer, metric=metric, start=start, end=end), repeats
    )
    with CaptureQueriesContext(connection) as queries:
        unique_count(customer=customer, metric=metric, start=start, end=end)
    selector_sql = queries.captured_queries[-1]["sql"]

    params = (metric.field, customer.pk, metric.pk, start, end)

    def raw() -> int:
        with connection.cursor() as cursor:
            cursor.execute(RAW_COUNT_DISTINCT, params)
            return int(cursor.fetchone()[0])

    raw_count, raw_runs = timed(raw, repeats)
    events = window_events(customer=customer, metric=metric, start=start, end=end)
    scanned, scan_runs = timed(events.count, repeats)
    counted, count_runs = timed(lambda: events_count(customer=customer, metric=metric, start=start, end=end), repeats)
    if counted != scanned:
        raise RuntimeError(f"daily event counts say {counted}, the events table {scanned}")
    _, aggregate_runs = timed(
        lambda: aggregate(customer=customer, metric=metric, start=start, end=end, count_events=True), repeats
    )
    return {
        "unique_count": maintained,
        "count_distinct": raw_count,
        "events": counted,
        "unique_count_runs_s": [round(r, 4) for r in maintained_runs],
        "count_distinct_runs_s": [round(r, 4) for r in raw_runs],
        "events_count_runs_s": [round(r, 4) for r in count_runs],
        "events_scan_runs_s": [round(r, 4) for r in scan_runs],
        "aggregate_with_events_count_runs_s": [round(r, 4) for r in aggregate_runs],
        "unique_count_s": statistics.median(maintained_runs),
        "count_distinct_s": statistics.median(raw_runs),
        "events_count_s": statistics.median(count_runs),
        "events_scan_s": statistics.median(scan_runs),
        "aggregate_with_events_count_s": statistics.median(aggregate_runs),
        "unique_count_sql": selector_sql,
        "unique_count_plan": explain(selector_sql, None),
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

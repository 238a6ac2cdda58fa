"""Section `usage`: current_usage latency over HTTP, idle and while batch ingestion runs for
another customer, for the usage customer (the figure) and at each size of the growth curve (the
unique_count customers: 1M, 5M and 20M events this period in full mode).

Idle runs are metered (CPU per request: the server's and the database's); runs under load are
not (the ingestion's CPU would be counted with them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from tests.benchmarks.context import INGEST_CUSTOMER, USAGE_CUSTOMER, Bench
from tests.benchmarks.database import BenchmarkError
from tests.benchmarks.growth import curve
from tests.benchmarks.loads import LoadRun, describe, load
from tests.benchmarks.server import Server

logging.getLogger("httpx").setLevel(logging.WARNING)  # no log line per request of this process

BACKGROUND_BATCH = 100
BACKGROUND_THREADS = 2
FIVE_MILLION = 5_000_000  # the growth point that keeps today's current_usage_5m_* keys


def check_usage(bench: Bench, server: Server, customer: str, expected_units: int) -> None:
    response = httpx.get(
        f"{server.url}/api/v1/customers/{customer}/current_usage",
        headers={"Authorization": f"Bearer {bench.api_key}"},
        timeout=120,
    )
    if response.status_code != 200:
        raise BenchmarkError(f"current_usage for {customer}: HTTP {response.status_code} {response.text[:300]}")
    units = response.json()["customer_usage"]["charges_usage"][0]["units"]
    if int(units) != expected_units:
        raise BenchmarkError(f"current_usage for {customer}: {units} units, expected {expected_units}")


def idle(bench: Bench, server: Server, customer: str, requests: int) -> dict[str, Any]:
    """current_usage one request at a time on an otherwise idle server, metered."""
    return load(
        bench, server, mode="usage", customer=customer, threads=1, duration=120, max_requests=requests, warmup=0.5
    )


def under_load(bench: Bench, server: Server, customer: str, requests: int) -> dict[str, Any]:
    """current_usage one request at a time while batches of another customer are ingested."""
    background = LoadRun(
        bench,
        server,
        mode="batch",
        batch=BACKGROUND_BATCH,
        customer=INGEST_CUSTOMER,
        threads=BACKGROUND_THREADS,
        duration=600,
        warmup=0.5,
    )
    time.sleep(1.5)
    measured = load(
        bench,
        server,
        mode="usage",
        customer=customer,
        threads=1,
        duration=600,
        max_requests=requests,
        warmup=0.5,
        meter=False,
    )
    measured["background"] = background.result(stop=True)
    return measured


def _cpu_ms(result: dict[str, Any]) -> float | None:
    cpu = result.get("cpu") or {}
    if "app_cpu_ms_per_request" not in cpu:
        return None
    return round(float(cpu["app_cpu_ms_per_request"] + cpu["db_cpu_ms_per_request"]), 3)


def usage_latency(bench: Bench, server: Server) -> None:
    sizes = bench.sizes
    r = bench.results
    check_usage(bench, server, USAGE_CUSTOMER, sizes.usage_distinct)
    quiet = idle(bench, server, USAGE_CUSTOMER, min(200, max(50, sizes.usage_requests // 4)))
    bench.log(f"  idle server: {describe(quiet)}")
    measured = under_load(bench, server, USAGE_CUSTOMER, sizes.usage_requests)
    bench.log(
        f"  {USAGE_CUSTOMER} ({sizes.usage_events:,} events) under load: {describe(measured)}; "
        f"background ingestion {measured['background']['events_per_s']:,.0f} events/s"
    )
    r["current_usage_p50_ms"] = measured["latency_ms"]["p50"]
    r["current_usage_p99_ms"] = measured["latency_ms"]["p99"]
    r["current_usage_run"] = {**measured, "events_in_period": sizes.usage_events}
    r["current_usage_idle_p50_ms"] = quiet["latency_ms"]["p50"]
    r["current_usage_idle_p99_ms"] = quiet["latency_ms"]["p99"]
    cpu = _cpu_ms(quiet)
    if cpu is not None:
        r["current_usage_cpu_ms_per_request"] = cpu
    r["current_usage_background"] = f"batches of {BACKGROUND_BATCH} from {BACKGROUND_THREADS} threads"

    points = []
    for customer, events in bench.unique_customers:
        check_usage(bench, server, customer, sizes.unique_distinct)
        quiet = idle(bench, server, customer, max(20, sizes.growth_usage_requests // 5))
        measured = under_load(bench, server, customer, sizes.growth_usage_requests)
        bench.log(
            f"  {customer} ({events:,} events): idle {describe(quiet)}\n             under load: {describe(measured)}"
        )
        points.append(
            {
                "events": events,
                "distinct": sizes.unique_distinct,
                "p50_ms": measured["latency_ms"]["p50"],
                "p99_ms": measured["latency_ms"]["p99"],
                "idle_p50_ms": quiet["latency_ms"]["p50"],
                "cpu_ms_per_request": _cpu_ms(quiet),
                "requests": measured["requests"],
            }
        )
        if events == FIVE_MILLION:
            r["current_usage_5m_p50_ms"] = measured["latency_ms"]["p50"]
            r["current_usage_5m_p99_ms"] = measured["latency_ms"]["p99"]
            r["current_usage_5m_run"] = {**measured, "events_in_period": events}
    # The curve's time is the idle median: under load (and at the p99 of a few hundred requests)
    # the background ingestion's noise would hide the growth.
    r.setdefault("growth", {})["current_usage"] = curve(
        points, size="events", time="idle_p50_ms", cpu="cpu_ms_per_request"
    )

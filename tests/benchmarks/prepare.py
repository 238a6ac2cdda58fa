"""Section 0: the bench database, its catalog, an API key, customers and their bulk data."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.benchmarks import data
from tests.benchmarks.context import CLOSE_PREFIX, INGEST_CUSTOMER, UNIQUE_PREFIX, USAGE_CUSTOMER, Bench
from tests.benchmarks.database import manage, python_module, recreate


def database(bench: Bench, *, fallback: str) -> None:
    bench.log(f"creating database {bench.db.name} (throw-away) and migrating it …")
    recreate(bench.db, fallback=fallback)
    manage(bench.db, "migrate", "--noinput", "-v", "0")
    out = python_module(bench.db, "tests.benchmarks.child", "setup")
    bench.api_key = json.loads(out.strip().splitlines()[-1])["api_key"]
    bench.log("catalog loaded (load_catalog), API key created (api_key_create)")


def customers(bench: Bench, sections: set[str]) -> None:
    """The ingestion, usage and unique_count customers subscribe this month (nothing to close);
    the period-close customers subscribed last month (the first run's count only)."""
    with bench.db.connect() as conn:
        catalog = data.catalog_ids(conn)
        for ext in (INGEST_CUSTOMER, USAGE_CUSTOMER):
            prefix = ext[:-6]
            data.create_customers(conn, prefix=prefix, first=1, last=1)
            data.subscribe(conn, catalog, prefix=prefix, first=1, last=1, at=bench.this_month)
        growth = len(bench.unique_customers)  # one customer per size of the unique_count curve
        data.create_customers(conn, prefix=UNIQUE_PREFIX, first=1, last=growth)
        data.subscribe(conn, catalog, prefix=UNIQUE_PREFIX, first=1, last=growth, at=bench.this_month)
        if "close" in sections:
            top = max(bench.sizes.close_customers)
            data.create_customers(conn, prefix=CLOSE_PREFIX, first=1, last=top)
            data.subscribe(
                conn, catalog, prefix=CLOSE_PREFIX, first=1, last=bench.sizes.close_customers[0], at=bench.last_month
            )
        conn.commit()


def bulk_data(bench: Bench, sections: set[str]) -> None:
    sizes = bench.sizes
    build: dict[str, Any] = {}
    with bench.db.connect() as conn:
        catalog = data.catalog_ids(conn)
        ids = data.customer_ids(conn, [USAGE_CUSTOMER, *(ext for ext, _ in bench.unique_customers)])
        loads: list[tuple[str, int, int]] = []
        if sections & {"unique", "usage"}:
            # The growth curves of unique_count and current_usage: a customer per size, each with
            # its own events (built at once with the indexes dropped, cheaper than adding
            # events to an indexed table between measurements).
            loads.extend((ext, events, sizes.unique_distinct) for ext, events in bench.unique_customers)
        if "usage" in sections:
            loads.append((USAGE_CUSTOMER, sizes.usage_events, sizes.usage_distinct))
        with data.bulk_load(conn):
            started = time.monotonic()
            for ext, events, distinct in loads:
                bench.log(f"  {events:,} events from {distinct:,} users for {ext} (this month) …")
                data.add_events_one(
                    conn,
                    customer_id=ids[ext],
                    metric_id=catalog.metric_id,
                    events=events,
                    distinct=distinct,
                    start=bench.this_month,
                    end=bench.events_end,
                )
                conn.commit()
            if "close" in sections:
                top = max(sizes.close_customers)
                bench.log(f"  events for {top:,} period-close customers (last month) …")
                n = data.add_events_close(
                    conn,
                    metric_id=catalog.metric_id,
                    prefix=CLOSE_PREFIX,
                    first=1,
                    last=top,
                    start=bench.last_month,
                    end=bench.this_month,
                )
                build["close_events"] = n
                conn.commit()
            build["events_s"] = round(time.monotonic() - started, 1)
            seeded = "SELECT id FROM customers_customer WHERE external_id LIKE 'bench-%%'"
            started = time.monotonic()
            bench.log("  EventKey rows (idempotency keys) …")
            build["event_keys"] = data.add_event_keys(conn, customer_ids_sql=seeded, params={})
            conn.commit()
            build["event_keys_s"] = round(time.monotonic() - started, 1)
            started = time.monotonic()
            bench.log("  DistinctValue rows (INSERT … SELECT … GROUP BY, bit_or of day bits) …")
            build["distinct_values"] = data.add_distinct_values(conn, customer_ids_sql=seeded, params={})
            conn.commit()
            build["distinct_values_s"] = round(time.monotonic() - started, 1)
            started = time.monotonic()
            bench.log("  EventCount rows (events per customer, metric and local day) …")
            build["event_counts"] = data.add_event_counts(conn, customer_ids_sql=seeded, params={})
            conn.commit()
            build["event_counts_s"] = round(time.monotonic() - started, 1)
            bench.log("  rebuilding indexes and constraints …")
            started = time.monotonic()
        build["indexes_s"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    bench.log("  VACUUM (ANALYZE) …")
    data.vacuum_analyze(bench.db.connect)
    build["vacuum_s"] = round(time.monotonic() - started, 1)
    with bench.db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM metering_event").fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        build["events_total"] = row[0]
    bench.results["build"] = build
    bench.log(f"data ready: {build['events_total']:,} events, {build['distinct_values']:,} distinct-value rows")

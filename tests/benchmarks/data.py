"""Bulk data for the benchmark, written with SQL straight into the bench database.

Events are made with INSERT … SELECT generate_series (millions of rows in seconds), their
idempotency keys (EventKey) with one INSERT … SELECT, and their DistinctValue rows with one
INSERT … SELECT … GROUP BY (the sets' sizes, DistinctCount, with another): the end state
ingestion maintains (one row per customer, metric, local month and value; bit d-1 of `days` set
for each local day d the value was seen).
Customers and subscriptions are rows like the services write.

While a load runs, `bulk_load` drops the indexes and constraints of the big tables and builds
them again afterwards: PostgreSQL fills an unindexed table three to four times faster.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

BIG_TABLES = ("metering_event", "metering_eventkey", "metering_distinctvalue")
# The events' key (id, "timestamp") grows at the end: cheap to keep while loading. On PostgreSQL
# metering_event is partitioned by month: dropping or creating an index or constraint on the
# parent does it on every partition.
KEEP_PRIMARY_KEY = {"metering_event"}


@dataclass(frozen=True)
class Catalog:
    metric_id: int
    plan_id: int
    promotion_id: int | None


def catalog_ids(conn: psycopg.Connection[Any], *, metric: str = "mtu", plan: str = "team") -> Catalog:
    metric_row = conn.execute("SELECT id FROM metering_billablemetric WHERE code = %s", (metric,)).fetchone()
    plan_row = conn.execute(
        "SELECT id, promotion_id FROM billing_plan WHERE code = %s AND is_current", (plan,)
    ).fetchone()
    if metric_row is None or plan_row is None:
        raise LookupError(f"catalog not loaded: metric {metric!r} or plan {plan!r} missing")
    return Catalog(metric_id=metric_row[0], plan_id=plan_row[0], promotion_id=plan_row[1])


def customer_ids(conn: psycopg.Connection[Any], external_ids: list[str]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT external_id, id FROM customers_customer WHERE external_id = ANY(%s)", (external_ids,)
    ).fetchall()
    return dict(rows)


def numbered(prefix: str, k: int) -> str:
    """External ids that sort in numeric order: bench-close-000042."""
    return f"{prefix}{k:06d}"


def create_customers(conn: psycopg.Connection[Any], *, prefix: str, first: int, last: int, tz: str = "UTC") -> int:
    """Customers prefix000001 … (first..last), each billed in USD in zone `tz`."""
    cursor = conn.execute(
        """
        INSERT INTO customers_customer (external_id, name, email, currency, timezone, legal_name,
            tax_identification_number, address_line1, address_line2, city, zipcode, state, country,
            created_at, updated_at, customer_type, document_locale, firstname, lastname, legal_number,
            logo_url, metadata, phone, shipping_address, url)
        SELECT %(prefix)s || lpad(k::text, 6, '0'), 'Bench customer ' || k, 'billing' || k || '@example.com',
               'USD', %(tz)s, 'Bench ' || k || ' Inc.', '', k || ' Market Street', '', 'San Francisco',
               '94103', 'CA', 'US', now(), now(), 'company', 'en', '', '', '', '', '[]'::jsonb, '',
               '{}'::jsonb, ''
        FROM generate_series(%(first)s::int, %(last)s::int) AS k
        """,
        {"prefix": prefix, "first": first, "last": last, "tz": tz},
    )
    return cursor.rowcount


def subscribe(
    conn: psycopg.Connection[Any], catalog: Catalog, *, prefix: str, first: int, last: int, at: datetime
) -> int:
    """Active calendar subscriptions on the plan from `at`, with the plan's promotion, as
    billing.services.subscriptions.subscription_create makes them (external id sub-<customer>)."""
    cursor = conn.execute(
        """
        INSERT INTO billing_subscription (external_id, subscription_at, billing_time, status, terminated_at,
            created_at, updated_at, customer_id, plan_id, promotion_id, previous_id, promotion_start, name,
            historical_usage_amount_cents, next_name, on_termination_credit_note, on_termination_invoice)
        SELECT 'sub-' || c.external_id, %(at)s, 'calendar', 'active', NULL, now(), now(), c.id, %(plan)s,
               %(promotion)s, NULL, CASE WHEN %(promotion)s::bigint IS NULL THEN NULL ELSE %(at)s END, '',
               0, '', '', 'generate'
        FROM customers_customer c
        WHERE c.external_id BETWEEN %(lo)s AND %(hi)s
        ORDER BY c.id
        """,
        {
            "at": at,
            "plan": catalog.plan_id,
            "promotion": catalog.promotion_id,
            "lo": numbered(prefix, first),
            "hi": numbered(prefix, last),
        },
    )
    return cursor.rowcount


# How many distinct users and events each period-close customer has, by its number k: most
# are small, every 500th is a large account whose usage reaches the 0.011 tier.
CLOSE_DISTINCT_SQL = "CASE WHEN k %% 500 = 0 THEN 40000 ELSE 10 + (k * 37) %% 190 END"
CLOSE_EVENTS_PER_USER = 2


def close_customer_volume(k: int) -> tuple[int, int]:
    """(distinct users, events) of close customer k, as CLOSE_DISTINCT_SQL computes them."""
    distinct = 40000 if k % 500 == 0 else 10 + (k * 37) % 190
    return distinct, distinct * CLOSE_EVENTS_PER_USER


def add_events_one(
    conn: psycopg.Connection[Any],
    *,
    customer_id: int,
    metric_id: int,
    events: int,
    distinct: int,
    start: datetime,
    end: datetime,
) -> int:
    """`events` mtu events for one customer spread evenly over [start, end), user u<g mod distinct>:
    each user is seen on several days, every user at least once (events >= distinct)."""
    cursor = conn.execute(
        """
        INSERT INTO metering_event (transaction_id, timestamp, properties, value, external_subscription_id,
            payload_hash, received_at, is_late, customer_id, metric_id)
        SELECT 'seed-' || g, ts, jsonb_build_object('user_id', 'u' || ((g - 1) %% %(d)s)), NULL, '',
               md5(g::text) || md5(%(customer)s::text || g), ts, false, %(customer)s, %(metric)s
        FROM (SELECT g, %(start)s::timestamptz + ((g - 1)::float8 / %(n)s) * (%(end)s::timestamptz
                                                                            - %(start)s::timestamptz) AS ts
              FROM generate_series(1, %(n)s::int) AS g) AS s
        """,
        {"customer": customer_id, "metric": metric_id, "n": events, "d": distinct, "start": start, "end": end},
    )
    return cursor.rowcount


def add_events_close(
    conn: psycopg.Connection[Any], *, metric_id: int, prefix: str, first: int, last: int, start: datetime, end: datetime
) -> int:
    """Events of the period-close customers first..last, volumes by CLOSE_DISTINCT_SQL."""
    cursor = conn.execute(
        f"""
        INSERT INTO metering_event (transaction_id, timestamp, properties, value, external_subscription_id,
            payload_hash, received_at, is_late, customer_id, metric_id)
        SELECT 'seed-' || g, ts, jsonb_build_object('user_id', 'u' || ((g - 1) %% d)), NULL, '',
               md5(g::text) || md5(c_id::text || g), ts, false, c_id, %(metric)s
        FROM (SELECT c.id AS c_id, v.d, g,
                     %(start)s::timestamptz + ((g - 1)::float8 / (v.d * {CLOSE_EVENTS_PER_USER}))
                         * (%(end)s::timestamptz - %(start)s::timestamptz) AS ts
              FROM customers_customer c
              CROSS JOIN LATERAL (SELECT right(c.external_id, 6)::int AS k) AS kk
              CROSS JOIN LATERAL (SELECT {CLOSE_DISTINCT_SQL} AS d) AS v
              CROSS JOIN LATERAL generate_series(1, v.d * {CLOSE_EVENTS_PER_USER}) AS g
              WHERE c.external_id BETWEEN %(lo)s AND %(hi)s) AS s
        """,
        {"metric": metric_id, "start": start, "end": end, "lo": numbered(prefix, first), "hi": numbered(prefix, last)},
    )
    return cursor.rowcount


def add_distinct_values(conn: psycopg.Connection[Any], *, customer_ids_sql: str, params: dict[str, Any]) -> int:
    """The DistinctValue rows of these customers' unique_count events, from their events, and
    the sets' sizes (DistinctCount).

    Local month and day in each customer's time zone; one row per value and month, with the
    OR of the day bits, exactly as metering.ingest._add_distinct_values maintains them.
    """
    conn.execute("SET LOCAL work_mem = '512MB'")  # one in-memory hash aggregate
    # Hash joins: the events have no index while loading, a nested loop would rescan them.
    conn.execute("SET LOCAL enable_nestloop = off")
    conn.execute("ANALYZE metering_event")
    cursor = conn.execute(
        f"""
        INSERT INTO metering_distinctvalue (customer_id, metric_id, month, value, days)
        SELECT customer_id, metric_id, (extract(year FROM local) * 100 + extract(month FROM local))::int,
               value, bit_or(1 << (extract(day FROM local)::int - 1))
        FROM (SELECT e.customer_id, e.metric_id, e.timestamp AT TIME ZONE c.timezone AS local,
                     e.properties ->> m.field AS value
              FROM metering_event e
              JOIN customers_customer c ON c.id = e.customer_id
              JOIN metering_billablemetric m ON m.id = e.metric_id AND m.aggregation = 'unique_count'
              WHERE e.customer_id IN ({customer_ids_sql})) AS s
        WHERE value IS NOT NULL
        GROUP BY 1, 2, 3, 4
        """,
        params,
    )
    rows = cursor.rowcount
    # The sets' sizes (DistinctCount), as ingestion maintains them beside the rows.
    conn.execute(
        f"""
        INSERT INTO metering_distinctcount (customer_id, metric_id, month, count)
        SELECT customer_id, metric_id, month, count(*) FROM metering_distinctvalue
        WHERE customer_id IN ({customer_ids_sql})
        GROUP BY 1, 2, 3
        ON CONFLICT (customer_id, metric_id, month) DO UPDATE SET count = excluded.count
        """,
        params,
    )
    return rows


def add_event_counts(conn: psycopg.Connection[Any], *, customer_ids_sql: str, params: dict[str, Any]) -> int:
    """The daily EventCount rows of these customers' events, by local day, as ingestion keeps them."""
    cursor = conn.execute(
        f"""
        INSERT INTO metering_eventcount (customer_id, metric_id, day, count)
        SELECT e.customer_id, e.metric_id, (e."timestamp" AT TIME ZONE c.timezone)::date, count(*)
        FROM metering_event e JOIN customers_customer c ON c.id = e.customer_id
        WHERE e.customer_id IN ({customer_ids_sql})
        GROUP BY e.customer_id, e.metric_id, 3
        """,
        params,
    )
    return cursor.rowcount


def add_event_keys(conn: psycopg.Connection[Any], *, customer_ids_sql: str, params: dict[str, Any]) -> int:
    """The idempotency keys (EventKey) of these customers' events, as ingestion writes them."""
    cursor = conn.execute(
        f"""
        INSERT INTO metering_eventkey (customer_id, transaction_id, payload_hash, metric_id, "timestamp")
        SELECT customer_id, transaction_id, payload_hash, metric_id, "timestamp" FROM metering_event
        WHERE customer_id IN ({customer_ids_sql})
        """,
        params,
    )
    return cursor.rowcount


@contextmanager
def bulk_load(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Drop the big tables' indexes and constraints (but the events' identity key), yield, and
    build them again under their own names and definitions."""
    saved: list[tuple[str, str, str, str]] = []  # (table, kind, name, definition)
    for table in BIG_TABLES:
        for name, kind, definition in conn.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f')",
            (table,),
        ).fetchall():
            if not (kind == "p" and table in KEEP_PRIMARY_KEY):
                saved.append((table, kind, name, definition))
        for name, definition in conn.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)",
            (table,),
        ).fetchall():
            # A partitioned parent's index reads "ON ONLY parent": made so, it would cover no
            # partition and stay invalid. Without ONLY it is built on every partition.
            saved.append((table, "i", name, definition.replace(" ON ONLY ", " ON ", 1)))
    order = {"f": 0, "u": 1, "p": 2, "i": 3}
    for table, kind, name, _ in sorted(saved, key=lambda s: order[s[1]]):
        if kind == "i":
            conn.execute(f'DROP INDEX "{name}"')
        else:
            conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        conn.execute("SET maintenance_work_mem = '512MB'")
        rebuild = {"p": 0, "u": 1, "i": 2, "f": 3}
        for table, kind, name, definition in sorted(saved, key=lambda s: rebuild[s[1]]):
            if kind == "i":
                conn.execute(definition)
            else:
                conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
            conn.commit()
        invalid = conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid AND indrelid IN "
            "(SELECT oid FROM pg_class WHERE relname = ANY(%s) UNION SELECT inhrelid FROM pg_inherits "
            "WHERE inhparent IN (SELECT oid FROM pg_class WHERE relname = ANY(%s)))",
            (list(BIG_TABLES), list(BIG_TABLES)),
        ).fetchall()
        if invalid:
            raise RuntimeError(f"indexes left invalid after the bulk load: {[row[0] for row in invalid]}")


def vacuum_analyze(db_connect: Any) -> None:
    """VACUUM (ANALYZE) the big tables, as autovacuum would after a large insert: statistics for
    the planner and a visibility map for index-only scans."""
    with db_connect(autocommit=True) as conn:
        for table in BIG_TABLES:
            conn.execute(f'VACUUM (ANALYZE) "{table}"')

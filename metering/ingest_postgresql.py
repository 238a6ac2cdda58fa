"""PostgreSQL's storing statement (metering.ingest): one customer's new events, with their keys,
unique_count sets and daily counts, in one statement.

One statement per customer, the customer written into its text rather than into each row, so
that the SQL as sent names the one customer it touches: Citus, which distributes the four
metering tables by customer_id, routes it to one shard (README, "Past one machine";
tests/test_citus_ready.py checks it). A batch is nearly always one customer's, so this is still
one statement per batch; a single event is one statement, atomic by itself.

With prepared statements on (DATABASES OPTIONS prepare_threshold, DATABASE_PREPARED_STATEMENTS)
the statement runs through a server-side binding cursor, which psycopg prepares after a few runs
on a connection: planning this statement cost about 0.25 ms of database CPU each time, a third
of a single event's storing, and the document travels as a parameter instead of an escaped
literal. Its text holds the customer (an integer, never client text), so a connection keeps one
prepared statement per customer it has stored for often (psycopg keeps at most prepared_max,
100 by default, least recently used first out).

The rows travel as one JSON document: orjson writes it in well under 0.1 µs an event, where
binding the columns as arrays cost 0.5–3 µs an event for each column (psycopg adapts every
element in Python; a timestamp is the dearest). The customer's fields, the reception time and
the defaults (not late, no subscription, no value) are left out of the rows; the local day, its
month and its bit come computed (metering.days, the zone rules the selectors use), which spares
the database three numeric extract() calls an event.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import orjson

from config.db import prepared_cursor
from metering.days import local_date, month_key
from metering.validation import ValidEvent

# Each data-modifying CTE runs once; the events, sets and counts are written only for the keys
# the first one inserted (ON CONFLICT DO NOTHING RETURNING). Sorted inserts: concurrent
# batches lock keys, set rows and count rows in one order.
STORE_SQL = """
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS b(
        transaction_id text, payload_hash text, metric_id bigint, ts timestamptz, properties jsonb,
        value numeric, subscription text, is_late boolean, local_day date, month int, day_bit int,
        distinct_value text)
), keys AS (
    INSERT INTO metering_eventkey (customer_id, transaction_id, payload_hash, metric_id, "timestamp")
    SELECT {customer}, transaction_id, payload_hash, metric_id, ts FROM batch ORDER BY transaction_id
    ON CONFLICT (customer_id, transaction_id) DO NOTHING
    RETURNING customer_id, transaction_id
), new AS MATERIALIZED (
    -- The filter is what every keys row satisfies; it names the customer in the SQL for Citus.
    SELECT batch.* FROM batch JOIN keys USING (transaction_id) WHERE keys.customer_id = {customer}
), stored AS (
    INSERT INTO metering_event (customer_id, metric_id, transaction_id, "timestamp", properties, value,
                                external_subscription_id, payload_hash, received_at, is_late)
    SELECT {customer}, metric_id, transaction_id, ts, properties, value, coalesce(subscription, ''),
           payload_hash, %(received_at)s, coalesce(is_late, false)
    FROM new
    RETURNING id, transaction_id
), sets AS (
    INSERT INTO metering_distinctvalue AS d (customer_id, metric_id, month, value, days)
    SELECT {customer}, metric_id, month, distinct_value, bit_or(day_bit)
    FROM new WHERE distinct_value IS NOT NULL
    GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    -- The WHERE skips rows whose bits are already set: no new row version, no dead tuple (the
    -- row is still locked until commit, as ON CONFLICT DO UPDATE locks what it compares).
    ON CONFLICT (customer_id, metric_id, month, value) DO UPDATE SET days = d.days | excluded.days
    WHERE (d.days | excluded.days) <> d.days
), counts AS (
    INSERT INTO metering_eventcount AS n (customer_id, metric_id, day, count)
    SELECT {customer}, metric_id, local_day, count(*) FROM new GROUP BY 2, 3 ORDER BY 2, 3
    ON CONFLICT (customer_id, metric_id, day) DO UPDATE SET count = n.count + excluded.count
)
SELECT id, transaction_id FROM stored
"""

# The stored events of keys that were already taken (a retry, or a reused id), with the keys'
# payload hashes: through the key's metric and timestamp, the events' window index (and their
# partition) finds each row.
STORED_SQL = """
SELECT k.transaction_id, k.payload_hash, e.id, m.code, e."timestamp", e.properties, e.external_subscription_id,
       e.received_at, e.is_late
FROM metering_eventkey k
JOIN metering_event e ON e.customer_id = k.customer_id AND e.metric_id = k.metric_id
                     AND e."timestamp" = k."timestamp" AND e.transaction_id = k.transaction_id
JOIN metering_billablemetric m ON m.id = k.metric_id
WHERE k.customer_id = %s AND k.transaction_id = ANY(%s)
"""


def insert_customer_events(
    customer_id: int, timezone: str, events: list[ValidEvent], received_at: datetime
) -> dict[str, int]:
    """Insert one customer's events (sorted by transaction id) whose keys are new, with their
    sets and counts; return {transaction_id: event id} of those stored."""
    days: dict[datetime, tuple[date, int, int]] = {}  # a batch's events often share their timestamp
    rows: list[dict[str, Any]] = []
    for ev in events:
        day = days.get(ev.timestamp)
        if day is None:
            local = local_date(ev.timestamp, timezone)
            day = days[ev.timestamp] = (local, month_key(local), 1 << (local.day - 1))
        row: dict[str, Any] = {
            "transaction_id": ev.transaction_id,
            "payload_hash": ev.payload_hash,
            "metric_id": ev.metric.id,
            "ts": ev.timestamp,
            "properties": ev.properties,
            "local_day": day[0],
            "month": day[1],
            "day_bit": day[2],
        }
        if ev.value is not None:
            row["value"] = str(ev.value)  # a string: exact, as numeric reads it
        if ev.distinct is not None:
            row["distinct_value"] = ev.distinct
        if ev.owner.external_subscription_id:
            row["subscription"] = ev.owner.external_subscription_id
        if ev.is_late:
            row["is_late"] = True
        rows.append(row)
    try:
        document = orjson.dumps(rows)
    except orjson.JSONEncodeError:  # e.g. an integer property beyond 64 bits: the standard library takes it
        document = json.dumps(rows, default=_json_default).encode()
    sql = STORE_SQL.format(customer=int(customer_id))
    params: dict[str, Any] = {"rows": document.decode(), "received_at": received_at}
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return {transaction_id: pk for pk, transaction_id in cursor.fetchall()}


def _json_default(value: Any) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)

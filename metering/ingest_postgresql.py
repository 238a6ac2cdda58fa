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
# batches lock keys, set rows and count rows in one order. The keys are sorted byte-wise
# (COLLATE "C"): every writer goes through this statement, so one order is all that deadlock
# avoidance needs, and it is the order the rows arrive in (Python sorts by code point, which
# for UTF-8 is byte order), so the sort finds them in order, comparing with memcmp rather than
# through the database's collation (strcoll).
#
# The documents are read by json_to_recordset (the text is walked once, and only `p` is built
# as jsonb) rather than jsonb_to_recordset (which first builds the whole document as jsonb),
# and their keys are one letter each: the two together cost about 1 µs of database CPU an
# event less (measured on 1,000-event documents: 4.9 → 3.9 µs a row to read). What events of
# one metric and moment share (the metric, the timestamp, its local day, month and bit) comes
# once, in `groups`, which each row names by its index `k`, when that pays (GROUPED_MIN_EVENTS):
# a batch's events mostly share a few moments, and reading those fields for each row cost about
# 1.2 µs of database CPU an event (3.4 → 2.2 µs a row, hash join included). Otherwise (a single
# event, a small batch, events with moments of their own) each row carries its fields: the
# join's fixed cost, about 14 µs, would add 6 % to a single event's storing. A customer stored
# for in both forms keeps two prepared statements on a connection.
#
# The keys' customer and metric are checked, and locked against deletion (FOR KEY SHARE, what
# a foreign-key check takes), once for the statement in `owner` and `metrics`, instead of by two
# foreign keys on metering_eventkey, which the database checked once for each row (migration
# 0008; measured on 1,000-event statements: 35 -> 25 µs of database CPU an event, and 40 -> 30
# with four concurrent writers of one customer). The locks hold until the commit, as the
# checks' did, but from the statement's start rather than from the commit's checks.
# metric_destroy and customer_destroy lock the row FOR UPDATE first, so a deletion either
# waits for the events' commit (then metric_destroy finds them and refuses; a customer's soft
# delete goes ahead, after them) or commits first, and the events find nothing: nothing
# is stored and they are refused (OwnersGone).
#
# The sets' pre-check (below) costs a value seen for the first time in its month one more
# index probe (measured: +1.5 µs an event when every value was new) and saves about 1 µs an
# event when the values' bits were already set, where concurrent batches also stop waiting on
# each other's locks of rows neither changes; a metric's values recur within a month (a user
# sends many events), so the second case is the common one.
STORE_SQL = """
WITH batch AS ({batch}
), owner AS MATERIALIZED (
    -- The customer and the metrics, locked as a foreign-key check locks them, once (see above).
    -- A customer deleted since validation (soft or not) or a deleted metric is not found here:
    -- no key is inserted, so nothing is, and the statement's last row, (NULL, NULL), says so.
    SELECT id FROM customers_customer WHERE id = {customer} AND deleted_at IS NULL FOR KEY SHARE
), metrics AS MATERIALIZED (
    SELECT id FROM metering_billablemetric WHERE id = ANY(%(metrics)s::bigint[]) FOR KEY SHARE
), keys AS (
    INSERT INTO metering_eventkey (customer_id, transaction_id, payload_hash, metric_id, "timestamp")
    SELECT {customer}, transaction_id, payload_hash, metric_id, ts FROM batch
    WHERE EXISTS (SELECT FROM owner) AND metric_id IN (SELECT id FROM metrics)
    ORDER BY transaction_id COLLATE "C"
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
    -- Values whose row already holds the batch's day bits are left out before the upsert: it
    -- would lock each such row (a WAL record) only to find nothing to change. A plain index
    -- read of the row is cheaper, and bits are only ever set, never cleared, so what the
    -- snapshot shows set stays set. (A scalar subquery with LIMIT: one index probe a value,
    -- never a join that could scan the customer's whole set.)
    INSERT INTO metering_distinctvalue AS d (customer_id, metric_id, month, value, days)
    SELECT {customer}, g.metric_id, g.month, g.distinct_value, g.days
    FROM (SELECT metric_id, month, distinct_value, bit_or(day_bit) AS days
          FROM new WHERE distinct_value IS NOT NULL GROUP BY 1, 2, 3) g
    WHERE coalesce((SELECT e.days FROM metering_distinctvalue e
                    WHERE e.customer_id = {customer} AND e.metric_id = g.metric_id AND e.month = g.month
                      AND e.value = g.distinct_value LIMIT 1), 0) & g.days <> g.days
    ORDER BY 2, 3, 4
    -- This WHERE skips rows whose bits a concurrent batch set since the snapshot: no new row
    -- version, no dead tuple (the row is still locked until commit, as ON CONFLICT DO UPDATE
    -- locks what it compares).
    ON CONFLICT (customer_id, metric_id, month, value) DO UPDATE SET days = d.days | excluded.days
    WHERE (d.days | excluded.days) <> d.days
    -- A row this statement inserted has no xmax; one it updated carries the lock ON CONFLICT took
    -- on it. Of two batches inserting the same new value at once, the second waits for the
    -- first, then updates (or skips) the row: the value is counted once, by its inserter.
    RETURNING d.xmax = 0 AS inserted, d.metric_id, d.month
), set_sizes AS (
    -- The sets' sizes (DistinctCount) grow by the rows inserted, sorted as the other writes.
    INSERT INTO metering_distinctcount AS z (customer_id, metric_id, month, count)
    SELECT {customer}, metric_id, month, count(*) FROM sets WHERE inserted GROUP BY 2, 3 ORDER BY 2, 3
    ON CONFLICT (customer_id, metric_id, month) DO UPDATE SET count = z.count + excluded.count
), counts AS (
    INSERT INTO metering_eventcount AS n (customer_id, metric_id, day, count)
    SELECT {customer}, metric_id, local_day, count(*) FROM new GROUP BY 2, 3 ORDER BY 2, 3
    ON CONFLICT (customer_id, metric_id, day) DO UPDATE SET count = n.count + excluded.count
)
SELECT id, transaction_id FROM stored
UNION ALL
SELECT NULL, NULL
WHERE NOT EXISTS (SELECT FROM owner) OR (SELECT count(*) FROM metrics) < cardinality(%(metrics)s::bigint[])
"""

# The batch's rows, each with every field (a single event, a small batch, or one whose events
# mostly have moments of their own).
_ROWS = """
    SELECT t AS transaction_id, h AS payload_hash, m AS metric_id, s AS ts, p AS properties, v AS value,
           u AS subscription, l AS is_late, d AS local_day, o AS month, b AS day_bit, x AS distinct_value
    FROM json_to_recordset(%(rows)s::json) AS r(
        t text, h text, m bigint, s timestamptz, p jsonb, v numeric, u text, l boolean, d date, o int, b int,
        x text)"""
# The batch's rows naming their group (metric and moment) by its index k.
_GROUPED_ROWS = """
    SELECT r.t AS transaction_id, r.h AS payload_hash, g.m AS metric_id, g.s AS ts, r.p AS properties,
           r.v AS value, r.u AS subscription, r.l AS is_late, g.d AS local_day, g.o AS month, g.b AS day_bit,
           r.x AS distinct_value
    FROM json_to_recordset(%(rows)s::json) AS r(t text, h text, k int, p jsonb, v numeric, u text, l boolean, x text)
    JOIN json_to_recordset(%(groups)s::json) AS g(k int, m bigint, s timestamptz, d date, o int, b int) USING (k)"""
STORE_ROWS_SQL = STORE_SQL.replace("{batch}", _ROWS)
STORE_GROUPED_SQL = STORE_SQL.replace("{batch}", _GROUPED_ROWS)
# Groups pay from this many events on (the join costs about 14 µs a statement, and saves about
# 1.2 µs an event), and when there are at most half as many groups as events.
GROUPED_MIN_EVENTS = 16

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


class OwnersGone(Exception):
    """The customer or a metric of the events was deleted after they were validated; nothing was
    stored (a batch's transaction is to be rolled back by whoever raised it)."""

    def __init__(self, customer_id: int, metric_ids: list[int]) -> None:
        self.customer_id = customer_id
        self.metric_ids = metric_ids
        super().__init__(f"customer {customer_id} or one of metrics {metric_ids} is gone")


def insert_customer_events(
    customer_id: int, timezone: str, events: list[ValidEvent], received_at: datetime
) -> dict[str, int]:
    """Insert one customer's events (sorted by transaction id) whose keys are new, with their
    sets and counts; return {transaction_id: event id} of those stored. OwnersGone (nothing
    stored) if the customer or a metric was deleted since the events were validated."""
    index: dict[tuple[int, datetime], int] = {}  # (metric, timestamp) → its group's k
    groups: list[dict[str, Any]] = []
    ks: list[int] = []
    for ev in events:
        group = (ev.metric.id, ev.timestamp)
        k = index.get(group)
        if k is None:
            k = index[group] = len(groups)
            groups.append(_group(ev.metric.id, ev.timestamp, timezone))
        ks.append(k)
    grouped = len(events) >= GROUPED_MIN_EVENTS and 2 * len(groups) <= len(events)
    rows: list[dict[str, Any]] = []
    for ev, k in zip(events, ks, strict=True):
        # One-letter keys: t transaction id, h payload hash, p properties, k group (or the
        # group's fields, _group); v value, x distinct value, u subscription, l late (absent:
        # none, none, none, not late).
        row: dict[str, Any] = {"t": ev.transaction_id, "h": ev.payload_hash, "p": ev.properties}
        if grouped:
            row["k"] = k
        else:
            row.update(groups[k])
        if ev.value is not None:
            row["v"] = str(ev.value)  # a string: exact, as numeric reads it
        if ev.distinct is not None:
            row["x"] = ev.distinct
        if ev.owner.external_subscription_id:
            row["u"] = ev.owner.external_subscription_id
        if ev.is_late:
            row["l"] = True
        rows.append(row)
    metrics = sorted({group["m"] for group in groups})
    params: dict[str, Any] = {"rows": _json(rows), "received_at": received_at, "metrics": metrics}
    if grouped:
        params["groups"] = _json([{"k": k, **fields} for k, fields in enumerate(groups)])
    sql = (STORE_GROUPED_SQL if grouped else STORE_ROWS_SQL).format(customer=int(customer_id))
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        stored = {transaction_id: pk for pk, transaction_id in cursor.fetchall()}
    if None in stored:  # the last row, (NULL, NULL): the customer or a metric was deleted
        raise OwnersGone(customer_id, metrics)
    return stored


def _group(metric_id: int, timestamp: datetime, timezone: str) -> dict[str, Any]:
    """What events of one metric and moment share: m metric, s timestamp, d local day, o its
    month (yyyymm), b its bit in the month."""
    local = local_date(timestamp, timezone)
    return {"m": metric_id, "s": timestamp, "d": local, "o": month_key(local), "b": 1 << (local.day - 1)}


def _json(rows: list[dict[str, Any]]) -> str:
    try:
        return orjson.dumps(rows).decode()
    except orjson.JSONEncodeError:  # e.g. an integer property beyond 64 bits: the standard library takes it
        return json.dumps(rows, default=_json_default)


def _json_default(value: Any) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)

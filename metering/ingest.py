"""Storage of validated usage events: a batch whole or not at all, once per (customer,
transaction_id) (DESIGN §4, §5).

Idempotency is enforced by a unique constraint on the events' keys; the maintained
unique_count sets and daily event counts are updated in the same statement or transaction, for
the events that were really stored. Validation is metering.validation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from django.db import connection, transaction

from metering.days import local_date, month_key
from metering.models import DistinctValue, Event, EventCount, EventKey
from metering.validation import ValidEvent


class EventConflict(Exception):
    """Some transaction ids were already used for different events; nothing was stored."""

    def __init__(self, indexes: list[int], transaction_ids: list[str]) -> None:
        self.indexes = indexes
        self.transaction_ids = transaction_ids
        super().__init__(", ".join(transaction_ids))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: what the API echoes back, without building a model instance per row."""

    pk: int
    customer_id: int
    transaction_id: str
    metric_code: str
    timestamp: datetime
    properties: dict[str, Any]
    external_subscription_id: str
    received_at: datetime
    is_late: bool

    @classmethod
    def of(cls, event: Event) -> StoredEvent:
        return cls(
            pk=event.pk,
            customer_id=event.customer_id,
            transaction_id=event.transaction_id,
            metric_code=event.metric.code,
            timestamp=event.timestamp,
            properties=event.properties,
            external_subscription_id=event.external_subscription_id,
            received_at=event.received_at,
            is_late=event.is_late,
        )


def store_events(events: list[ValidEvent], *, received_at: datetime) -> list[StoredEvent]:
    """Store a batch whole, once per (customer, transaction_id); return the stored rows in order.

    Raises EventConflict (and stores nothing) if a transaction id was already used, in the
    database or earlier in the batch, for a different event.

    The idempotency key goes in first (EventKey, INSERT … ON CONFLICT DO NOTHING RETURNING):
    only events whose key was new are stored, and only they are added to the unique_count sets
    and the daily counts. A concurrent writer of the same key waits on the key's unique index
    until the first commits, then finds it taken; so each event is stored once however many
    clients send it at the same time.

    On PostgreSQL a batch of one distinct event is a single statement, atomic by itself: it
    stores everything or nothing, so it needs no transaction of its own (two round trips fewer
    for the commonest request). Anything else runs in one transaction, so that a conflict found
    after the insert takes the whole batch back.
    """
    single = connection.vendor == "postgresql" and len({(e.owner.customer_id, e.transaction_id) for e in events}) == 1
    with nullcontext() if single else transaction.atomic():
        first: dict[tuple[int, str], int] = {}
        conflicts: list[int] = []
        for i, ev in enumerate(events):
            key = (ev.owner.customer_id, ev.transaction_id)
            if key in first and events[first[key]].payload_hash != ev.payload_hash:
                conflicts.append(i)
            first.setdefault(key, i)
        if conflicts:
            raise EventConflict(conflicts, [events[i].transaction_id for i in conflicts])

        # Sorted, so concurrent batches take their row locks in one order (no deadlocks).
        unique = sorted((events[i] for i in first.values()), key=lambda e: (e.owner.customer_id, e.transaction_id))
        if connection.vendor == "postgresql":
            ids = _insert_postgresql(unique, received_at)
        else:
            ids = _insert_portable(unique, received_at)
        seen = [ev for ev in unique if (ev.owner.customer_id, ev.transaction_id) not in ids]
        stored: dict[tuple[int, str], StoredEvent] = {}
        if seen:
            stored_keys = _fetch_keys(seen)
            conflicts = [
                i
                for i, ev in enumerate(events)
                if (ev.owner.customer_id, ev.transaction_id) in stored_keys
                and stored_keys[(ev.owner.customer_id, ev.transaction_id)].payload_hash != ev.payload_hash
            ]
            if conflicts:
                raise EventConflict(conflicts, [events[i].transaction_id for i in conflicts])
            stored.update(_fetch_events(stored_keys.values()))
        for ev in unique:
            key = (ev.owner.customer_id, ev.transaction_id)
            if key in ids:
                stored[key] = StoredEvent(
                    pk=ids[key],
                    customer_id=ev.owner.customer_id,
                    transaction_id=ev.transaction_id,
                    metric_code=ev.metric.code,
                    timestamp=ev.timestamp,
                    properties=ev.properties,
                    external_subscription_id=ev.owner.external_subscription_id,
                    received_at=received_at,
                    is_late=ev.is_late,
                )
        return [stored[(ev.owner.customer_id, ev.transaction_id)] for ev in events]


# PostgreSQL: the whole batch in one statement. The rows arrive as one JSON document (cheap to
# build and to bind); each data-modifying CTE runs once, and the events, sets and counts are
# written only for the keys the first one inserted.
STORE_SQL = """
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS b(
        customer_id bigint, transaction_id text, payload_hash text, metric_id bigint, ts timestamptz,
        properties jsonb, value numeric, subscription text, is_late boolean, local_day date, distinct_value text)
), keys AS (
    INSERT INTO metering_eventkey (customer_id, transaction_id, payload_hash, metric_id, "timestamp")
    SELECT customer_id, transaction_id, payload_hash, metric_id, ts FROM batch ORDER BY customer_id, transaction_id
    ON CONFLICT (customer_id, transaction_id) DO NOTHING
    RETURNING customer_id, transaction_id
), new AS MATERIALIZED (
    SELECT batch.* FROM batch JOIN keys USING (customer_id, transaction_id)
), stored AS (
    INSERT INTO metering_event (customer_id, metric_id, transaction_id, "timestamp", properties, value,
                                external_subscription_id, payload_hash, received_at, is_late)
    SELECT customer_id, metric_id, transaction_id, ts, properties, value, subscription, payload_hash,
           %(received_at)s, is_late
    FROM new
    RETURNING id, customer_id, transaction_id
), sets AS (
    INSERT INTO metering_distinctvalue AS d (customer_id, metric_id, month, value, days)
    SELECT customer_id, metric_id, (extract(year FROM local_day) * 100 + extract(month FROM local_day))::int,
           distinct_value, bit_or(1 << (extract(day FROM local_day)::int - 1))
    FROM new WHERE distinct_value IS NOT NULL
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    -- The WHERE skips rows whose bits are already set: no write, no dead tuple, no lock wait.
    ON CONFLICT (customer_id, metric_id, month, value) DO UPDATE SET days = d.days | excluded.days
    WHERE (d.days | excluded.days) <> d.days
), counts AS (
    INSERT INTO metering_eventcount AS n (customer_id, metric_id, day, count)
    SELECT customer_id, metric_id, local_day, count(*) FROM new GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (customer_id, metric_id, day) DO UPDATE SET count = n.count + excluded.count
)
SELECT id, customer_id, transaction_id FROM stored
"""


def _insert_postgresql(events: list[ValidEvent], received_at: datetime) -> dict[tuple[int, str], int]:
    """Insert the batch's new events with their keys, sets and counts; return {key: event id}."""
    rows = [
        {
            "customer_id": ev.owner.customer_id,
            "transaction_id": ev.transaction_id,
            "payload_hash": ev.payload_hash,
            "metric_id": ev.metric.pk,
            "ts": ev.timestamp,
            "properties": ev.properties,
            "value": None if ev.value is None else str(ev.value),  # a string: exact, as numeric reads it
            "subscription": ev.owner.external_subscription_id,
            "is_late": ev.is_late,
            "local_day": local_date(ev.timestamp, ev.owner.timezone),
            "distinct_value": ev.distinct,
        }
        for ev in events
    ]
    try:
        document = orjson.dumps(rows)
    except orjson.JSONEncodeError:  # e.g. an integer property beyond 64 bits: the standard library takes it
        document = json.dumps(rows, default=_json_default).encode()
    with connection.cursor() as cursor:
        cursor.execute(STORE_SQL, {"rows": document.decode(), "received_at": received_at})
        return {(customer_id, transaction_id): pk for pk, customer_id, transaction_id in cursor.fetchall()}


def _json_default(value: Any) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _insert_portable(events: list[ValidEvent], received_at: datetime) -> dict[tuple[int, str], int]:
    """The same as _insert_postgresql in several statements, for SQLite."""
    inserted = _insert_keys(events)
    new = [ev for ev in events if (ev.owner.customer_id, ev.transaction_id) in inserted]
    rows = Event.objects.bulk_create(
        [
            Event(
                customer_id=ev.owner.customer_id,
                metric_id=ev.metric.pk,
                transaction_id=ev.transaction_id,
                timestamp=ev.timestamp,
                properties=ev.properties,
                value=ev.value,
                external_subscription_id=ev.owner.external_subscription_id,
                payload_hash=ev.payload_hash,
                received_at=received_at,
                is_late=ev.is_late,
            )
            for ev in new
        ],
        batch_size=1000,
    )
    _add_distinct_values(
        (ev.owner.customer_id, ev.owner.timezone, ev.metric.pk, ev.timestamp, ev.distinct)
        for ev in new
        if ev.distinct is not None
    )
    _add_event_counts(new)
    return {(ev.owner.customer_id, ev.transaction_id): row.pk for ev, row in zip(new, rows, strict=True)}


def _insert_keys(events: list[ValidEvent]) -> set[tuple[int, str]]:
    """Insert the events' idempotency keys; return the keys that were new."""
    table = EventKey._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    inserted: set[tuple[int, str]] = set()
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]
        params: list[Any] = []
        for ev in chunk:
            params.extend((ev.owner.customer_id, ev.transaction_id, ev.payload_hash, ev.metric.pk, adapt(ev.timestamp)))
        placeholders = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
        sql = (
            f'INSERT INTO {table} (customer_id, transaction_id, payload_hash, metric_id, "timestamp") '
            f"VALUES {placeholders} ON CONFLICT (customer_id, transaction_id) DO NOTHING "
            "RETURNING customer_id, transaction_id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            inserted.update((int(c), t) for c, t in cursor.fetchall())
    return inserted


def _fetch_keys(events: list[ValidEvent]) -> dict[tuple[int, str], EventKey]:
    by_customer: dict[int, list[str]] = {}
    for ev in events:
        by_customer.setdefault(ev.owner.customer_id, []).append(ev.transaction_id)
    found: dict[tuple[int, str], EventKey] = {}
    for customer_id, transaction_ids in by_customer.items():
        for start in range(0, len(transaction_ids), 1000):
            chunk = transaction_ids[start : start + 1000]
            for key in EventKey.objects.filter(customer_id=customer_id, transaction_id__in=chunk):
                found[(customer_id, key.transaction_id)] = key
    return found


def _fetch_events(keys: Iterable[EventKey]) -> dict[tuple[int, str], StoredEvent]:
    """The stored events of these keys, read through the window index (customer, metric, timestamp)."""
    groups: dict[tuple[int, int], list[EventKey]] = {}
    for key in keys:
        groups.setdefault((key.customer_id, key.metric_id), []).append(key)
    found: dict[tuple[int, str], StoredEvent] = {}
    for (customer_id, metric_id), group in groups.items():
        for start in range(0, len(group), 500):
            chunk = group[start : start + 500]
            wanted = {k.transaction_id for k in chunk}
            rows = Event.objects.filter(
                customer_id=customer_id,
                metric_id=metric_id,
                timestamp__in={k.timestamp for k in chunk},
                transaction_id__in=wanted,
            ).select_related("metric")
            for event in rows:
                found[(customer_id, event.transaction_id)] = StoredEvent.of(event)
    return found


def _add_distinct_values(items: Iterable[tuple[int, str, int, datetime, str]]) -> None:
    """OR each value's day bit into its (customer, metric, local month) row, creating it if new."""
    merged: dict[tuple[int, int, int, str], int] = {}
    for customer_id, tz, metric_id, timestamp, value in items:
        day = local_date(timestamp, tz)
        key = (customer_id, metric_id, month_key(day), value)
        merged[key] = merged.get(key, 0) | (1 << (day.day - 1))
    if not merged:
        return
    table = DistinctValue._meta.db_table
    rows = sorted(merged.items())
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        placeholders = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
        params: list[Any] = []
        for (customer_id, metric_id, month, value), days in chunk:
            params.extend((customer_id, metric_id, month, value, days))
        # The WHERE skips rows whose bits are already set: no write, no dead tuple, no lock wait.
        sql = (
            f"INSERT INTO {table} (customer_id, metric_id, month, value, days) VALUES {placeholders} "
            f"ON CONFLICT (customer_id, metric_id, month, value) DO UPDATE SET days = {table}.days | excluded.days "
            f"WHERE ({table}.days | excluded.days) <> {table}.days"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _add_event_counts(events: list[ValidEvent]) -> None:
    """Add the newly stored events to their (customer, metric, local day) counts."""
    counts: dict[tuple[int, int, date], int] = {}
    for ev in events:
        key = (ev.owner.customer_id, ev.metric.pk, local_date(ev.timestamp, ev.owner.timezone))
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return
    table = EventCount._meta.db_table
    adapt = connection.ops.adapt_datefield_value
    rows = sorted(counts.items())  # one lock order for concurrent writers of the same days
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        params: list[Any] = []
        for (customer_id, metric_id, day), n in chunk:
            params.extend((customer_id, metric_id, adapt(day), n))
        placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
        sql = (
            f"INSERT INTO {table} (customer_id, metric_id, day, count) VALUES {placeholders} "
            f"ON CONFLICT (customer_id, metric_id, day) DO UPDATE SET count = {table}.count + excluded.count"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

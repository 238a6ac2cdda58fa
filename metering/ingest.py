"""Ingestion of usage events: validation of one event, and storage of a batch (DESIGN §4).

Validation works on plain dicts (no DRF: a batch of 1,000 events is validated in a loop that
costs microseconds per event) and reports errors per field with messages from the constants
below. Resolving who an event belongs to (customer, or subscription → customer) is the caller's
job: metering knows customers, never subscriptions or prices.

Storage is idempotent by (customer, transaction_id), enforced by a unique constraint. A batch is
stored whole or not at all; the maintained unique_count sets and daily event counts are
updated in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

import orjson
from django.db import connection, transaction

from metering.days import local_date, month_key
from metering.models import Aggregation, BillableMetric, DistinctValue, Event, EventCount, EventKey

MAX_FUTURE = timedelta(minutes=5)
MAX_DISTINCT_LENGTH = 255
# Event.value is numeric(30, 10): 20 integer digits, 10 decimal places.
VALUE_QUANTUM = Decimal("1e-10")
VALUE_LIMIT = Decimal("1e20")

REQUIRED = "is required"
NOT_A_STRING = "must be a string"
TOO_LONG = "must be at most {n} characters"
CUSTOMER_OR_SUBSCRIPTION = "external_customer_id or external_subscription_id is required"
UNKNOWN_METRIC = "unknown billable metric code {code!r}"
BAD_TIMESTAMP = "must be Unix seconds (integer, decimal or string) or an ISO 8601 date-time, got {value!r}"
IN_FUTURE = "is more than 5 minutes in the future"
TOO_OLD = "is older than {days} days (BILLING_EVENT_MAX_AGE_DAYS)"
NOT_AN_OBJECT = "must be an object"
PROPERTY_REQUIRED = "is required by metric {code!r}"
PROPERTY_NOT_NUMERIC = "must be a number (metric {code!r} aggregates it), got {value!r}"
PROPERTY_NOT_DISTINCT = "must be a string or an integer (metric {code!r} counts its distinct values)"
DUPLICATE_CONFLICT = "transaction_id {transaction_id!r} was already used for a different event"


@dataclass(frozen=True)
class Owner:
    """Who an event belongs to, as resolved at the API edge."""

    customer_id: int
    timezone: str
    external_customer_id: str
    external_subscription_id: str = ""


@dataclass(frozen=True)
class ValidEvent:
    owner: Owner
    metric: BillableMetric
    transaction_id: str
    timestamp: datetime
    properties: dict[str, Any]
    value: Decimal | None
    distinct: str | None
    payload_hash: str
    is_late: bool = False


class EventConflict(Exception):
    """Some transaction ids were already used for different events; nothing was stored."""

    def __init__(self, indexes: list[int], transaction_ids: list[str]) -> None:
        self.indexes = indexes
        self.transaction_ids = transaction_ids
        super().__init__(", ".join(transaction_ids))


def parse_timestamp(value: Any) -> datetime:
    """Unix seconds (int, float, numeric string) or ISO 8601 (no offset = UTC) → aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError(BAD_TIMESTAMP.format(value=value))
    if type(value) is int:  # the common case, without the Decimal detour
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(BAD_TIMESTAMP.format(value=value)) from None
    if isinstance(value, (int, float, Decimal)):
        seconds = Decimal(str(value))
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            seconds = Decimal(text)
        except InvalidOperation:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
            except ValueError:
                raise ValueError(BAD_TIMESTAMP.format(value=value)) from None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    else:
        raise ValueError(BAD_TIMESTAMP.format(value=value))
    if not seconds.is_finite():
        raise ValueError(BAD_TIMESTAMP.format(value=value))
    try:
        whole = int(seconds)
        micros = int(((seconds - whole) * 1_000_000).to_integral_value())
        return datetime.fromtimestamp(whole, tz=UTC) + timedelta(microseconds=micros)
    except (OverflowError, OSError, ValueError):
        raise ValueError(BAD_TIMESTAMP.format(value=value)) from None


def numeric_property(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, str, Decimal)):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        if not number.is_finite() or number.adjusted() >= 20:
            return None
        # 99999999999999999999.99999999999 has 20 integer digits but rounds to 21 in the column:
        # bound the value as stored, or PostgreSQL fails the whole batch with "numeric field overflow".
        with localcontext(prec=40):
            stored = number.quantize(VALUE_QUANTUM, rounding=ROUND_HALF_UP)  # as PostgreSQL rounds
        return number if stored.copy_abs() < VALUE_LIMIT else None  # copy_abs: no rounding to 28 digits
    return None


def distinct_property(value: Any) -> str | None:
    """The exact string a unique_count compares: strings as they are, integers in decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def payload_hash(code: str, timestamp: Any, properties: Mapping[str, Any]) -> str:
    """What the client sent, canonically; a retry without a timestamp matches itself."""
    return _hash(code, None if timestamp is None else parse_timestamp(timestamp), properties)


_FLAT = {str, int, bool, type(None)}


def _hash(code: str, timestamp: datetime | None, properties: Mapping[str, Any]) -> str:
    """SHA-256 of json.dumps([code, stamp, properties], sort_keys=True, separators=(",", ":")).

    That text is the stored contract (a retry must hash the same forever). orjson writes the
    very same bytes, several times faster, when the properties are flat strings, integers,
    booleans and nulls and the output is plain printable ASCII; anything else (nested objects,
    floats, non-ASCII or control characters, integers beyond 64 bits) takes the reference path.
    """
    stamp = None if timestamp is None else timestamp.isoformat()
    canonical = None
    if all(type(v) in _FLAT for v in properties.values()):
        try:
            fast = orjson.dumps([code, stamp, properties], option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            fast = b""
        if fast and fast.isascii() and b"\\u" not in fast and b"\x7f" not in fast:
            canonical = fast
    if canonical is None:
        text = json.dumps([code, stamp, properties], sort_keys=True, separators=(",", ":"), default=str)
        canonical = text.encode()
    return hashlib.sha256(canonical).hexdigest()


def validate_event(
    payload: Any,
    *,
    resolve_owner: Callable[[str | None, str | None], tuple[Owner | None, dict[str, str]]],
    metrics: Mapping[str, BillableMetric],
    now: datetime,
    max_age_days: int,
) -> tuple[ValidEvent | None, dict[str, list[str]]]:
    """Check one event payload. Returns the event, or None and the errors by field."""
    errors: dict[str, list[str]] = {}

    def err(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not isinstance(payload, dict):
        return None, {"event": [NOT_AN_OBJECT]}

    def text(field: str, required: bool) -> str | None:
        value = payload.get(field)
        if value is None or value == "":
            if required:
                err(field, REQUIRED)
            return None
        if not isinstance(value, str):
            err(field, NOT_A_STRING)
            return None
        if len(value) > 255:
            err(field, TOO_LONG.format(n=255))
            return None
        return value

    transaction_id = text("transaction_id", True)
    code = text("code", True)
    customer_ref = text("external_customer_id", False)
    subscription_ref = text("external_subscription_id", False)

    owner = None
    if customer_ref is None and subscription_ref is None:
        if "external_customer_id" not in errors and "external_subscription_id" not in errors:
            err("external_customer_id", CUSTOMER_OR_SUBSCRIPTION)
    elif "external_customer_id" not in errors and "external_subscription_id" not in errors:
        owner, owner_errors = resolve_owner(customer_ref, subscription_ref)
        for field, message in owner_errors.items():
            err(field, message)

    metric = None
    if code is not None:
        metric = metrics.get(code)
        if metric is None:
            err("code", UNKNOWN_METRIC.format(code=code))

    raw_timestamp = payload.get("timestamp")
    timestamp = now
    if raw_timestamp is not None and raw_timestamp != "":
        try:
            timestamp = parse_timestamp(raw_timestamp)
        except ValueError as exc:
            err("timestamp", str(exc))
        else:
            if timestamp > now + MAX_FUTURE:
                err("timestamp", IN_FUTURE)
            elif timestamp < now - timedelta(days=max_age_days):
                err("timestamp", TOO_OLD.format(days=max_age_days))
    else:
        raw_timestamp = None

    properties = payload.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        err("properties", NOT_AN_OBJECT)
        properties = {}

    value: Decimal | None = None
    distinct: str | None = None
    if metric is not None and metric.field:
        path = f"properties.{metric.field}"
        raw = properties.get(metric.field)
        if raw is None:
            err(path, PROPERTY_REQUIRED.format(code=metric.code))
        elif metric.aggregation == Aggregation.UNIQUE_COUNT:
            distinct = distinct_property(raw)
            if distinct is None:
                err(path, PROPERTY_NOT_DISTINCT.format(code=metric.code))
            elif len(distinct) > MAX_DISTINCT_LENGTH:
                err(path, TOO_LONG.format(n=MAX_DISTINCT_LENGTH))
        else:
            value = numeric_property(raw)
            if value is None:
                err(path, PROPERTY_NOT_NUMERIC.format(code=metric.code, value=raw))

    if errors or owner is None or metric is None or transaction_id is None or code is None:
        return None, errors
    return (
        ValidEvent(
            owner=owner,
            metric=metric,
            transaction_id=transaction_id,
            timestamp=timestamp,
            properties=properties,
            value=value,
            distinct=distinct,
            payload_hash=_hash(code, None if raw_timestamp is None else timestamp, properties),
        ),
        {},
    )


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

"""Who usage events belong to, read for a whole batch at once (the ingestion path's lookups).

An event names its customer (`external_customer_id`) or its subscription
(`external_subscription_id`); metering knows customers only, so billing resolves subscriptions
here, before metering validates and stores. Each customer comes with what the response and the
late flag need: its newest active subscription, and the end of its last closed period.

The lookups are raw SQL: they run on every request, and compiling the ORM queries cost more than
running them. `key_and_event_refs` reads the caller's API key, the events' owners and their
metrics in one statement, so that a single event costs two round trips (this read, and the
one that stores it) instead of four; nothing is cached, so a revoked key, a new customer or a
changed metric counts from the next request on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connection

from billing.models import Invoice, InvoiceKind, InvoiceStatus, Subscription, SubscriptionStatus
from config.db import prepared_cursor, raw_timestamp
from customers.authentication import ACTIVE_KEY_FIELDS, ACTIVE_KEY_TABLE, active_key_condition
from customers.models import Customer
from metering.models import BillableMetric
from metering.validation import Owner

UNKNOWN_CUSTOMER = "unknown customer {ref!r}"
UNKNOWN_SUBSCRIPTION = "unknown subscription {ref!r}"
SUBSCRIPTION_OF_OTHER_CUSTOMER = "subscription {sub!r} belongs to customer {owner!r}, not {ref!r}"

_CUSTOMER = Customer._meta.db_table
_SUBSCRIPTION = Subscription._meta.db_table
_INVOICE = Invoice._meta.db_table
# Per customer c: its newest active subscription's external id, and the end of its last closed period.
_ACTIVE_SUBSCRIPTION = (
    f"(SELECT s.external_id FROM {_SUBSCRIPTION} s WHERE s.customer_id = c.id AND s.status = "
    f"'{SubscriptionStatus.ACTIVE}' ORDER BY s.subscription_at DESC, s.id DESC LIMIT 1)"
)
_CLOSED_UNTIL = (
    f"(SELECT max(i.period_end) FROM {_INVOICE} i WHERE i.customer_id = c.id "
    f"AND i.kind = '{InvoiceKind.PERIOD}' AND i.status <> '{InvoiceStatus.DRAFT}')"
)
_CUSTOMER_EXTRAS = f"{_ACTIVE_SUBSCRIPTION}, {_CLOSED_UNTIL}"
# A deleted customer owns no new events: its external_id is unknown (and may be a new customer's).
CUSTOMERS_SQL = (
    f"SELECT c.id, c.external_id, c.timezone, {_CUSTOMER_EXTRAS} FROM {_CUSTOMER} c "
    "WHERE c.deleted_at IS NULL AND c.external_id IN "
)
# Oldest first, so after a plan change the live subscription (the newest) wins.
SUBSCRIPTIONS_SQL = (
    f"SELECT sub.external_id, c.id, c.external_id, c.timezone, {_CUSTOMER_EXTRAS} "
    f"FROM {_SUBSCRIPTION} sub JOIN {_CUSTOMER} c ON c.id = sub.customer_id AND c.deleted_at IS NULL "
    "WHERE sub.external_id IN "
)
METRICS_SQL = f"SELECT id, code, name, aggregation, field FROM {BillableMetric._meta.db_table} WHERE code IN "

Resolve = Callable[[str | None, str | None], tuple[Owner | None, dict[str, str]]]


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def _prepared_rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """_rows through config.db.prepared_cursor: planned once per connection on PostgreSQL."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def _placeholders(values: Iterable[Any]) -> str:
    return ", ".join(["%s"] * len(list(values)))


@dataclass(frozen=True)
class Owners:
    """The owners of a batch's events, and per customer what the response and late flag need."""

    resolve: Resolve
    active_subscription: dict[int, str]  # customer id → newest active subscription's external id
    closed_until: dict[int, datetime]  # customer id → end of the last non-draft period invoice


def _refs_named(payloads: Iterable[Any]) -> tuple[set[str], set[str], set[str]]:
    """The metric codes, customer and subscription external ids a batch's events name."""
    codes: set[str] = set()
    customer_refs: set[str] = set()
    subscription_refs: set[str] = set()
    for p in payloads:
        if isinstance(p, dict):
            if isinstance(p.get("code"), str):
                codes.add(p["code"])
            if isinstance(p.get("external_customer_id"), str):
                customer_refs.add(p["external_customer_id"])
            if isinstance(p.get("external_subscription_id"), str):
                subscription_refs.add(p["external_subscription_id"])
    return codes, customer_refs, subscription_refs


def event_owners(payloads: Iterable[Any]) -> Owners:
    """Resolve the owners of a whole batch with at most two queries."""
    _, customer_refs, subscription_refs = _refs_named(payloads)
    customer_rows: list[tuple[Any, ...]] = []
    subscription_rows: list[tuple[Any, ...]] = []
    if customer_refs:
        customer_rows = _rows(f"{CUSTOMERS_SQL} ({_placeholders(customer_refs)})", list(customer_refs))
    if subscription_refs:
        subscription_rows = _rows(
            f"{SUBSCRIPTIONS_SQL} ({_placeholders(subscription_refs)}) ORDER BY sub.subscription_at, sub.id",
            list(subscription_refs),
        )
    return _owners(customer_rows, subscription_rows)


def _owners(customer_rows: Iterable[tuple[Any, ...]], subscription_rows: Iterable[tuple[Any, ...]]) -> Owners:
    """Owners from CUSTOMERS_SQL's rows and SUBSCRIPTIONS_SQL's (oldest subscription first)."""
    customers: dict[str, Owner] = {}
    subscriptions: dict[str, Owner] = {}
    active: dict[int, str] = {}
    closed: dict[int, datetime] = {}
    for pk, external_id, tz, active_sub, closed_end in customer_rows:
        customers[external_id] = Owner(pk, tz, external_id)
        if active_sub is not None:
            active[pk] = active_sub
        if closed_end is not None:
            closed[pk] = raw_timestamp(closed_end)
    for sub_id, pk, external_id, tz, active_sub, closed_end in subscription_rows:
        subscriptions[sub_id] = Owner(pk, tz, external_id, sub_id)
        if active_sub is not None:
            active[pk] = active_sub
        if closed_end is not None:
            closed[pk] = raw_timestamp(closed_end)

    def resolve(customer_ref: str | None, subscription_ref: str | None) -> tuple[Owner | None, dict[str, str]]:
        if subscription_ref is not None:
            owner = subscriptions.get(subscription_ref)
            if owner is None:
                return None, {"external_subscription_id": UNKNOWN_SUBSCRIPTION.format(ref=subscription_ref)}
            if customer_ref is not None and owner.external_customer_id != customer_ref:
                message = SUBSCRIPTION_OF_OTHER_CUSTOMER.format(
                    sub=subscription_ref, owner=owner.external_customer_id, ref=customer_ref
                )
                return None, {"external_subscription_id": message}
            return owner, {}
        assert customer_ref is not None
        owner = customers.get(customer_ref)
        if owner is None:
            return None, {"external_customer_id": UNKNOWN_CUSTOMER.format(ref=customer_ref)}
        return owner, {}

    return Owners(resolve, active, closed)


def metrics_by_code(payloads: list[Any]) -> dict[str, BillableMetric]:
    """The metrics a batch's events name, by code (one query)."""
    codes, _, _ = _refs_named(payloads)
    if not codes:
        return {}
    return {
        code: BillableMetric(id=pk, code=code, name=name, aggregation=aggregation, field=field)
        for pk, code, name, aggregation, field in _rows(f"{METRICS_SQL} ({_placeholders(codes)})", list(codes))
    }


@dataclass(frozen=True)
class EventRefs:
    """What a batch's events name, read: their owners and their metrics (by code)."""

    owners: Owners
    metrics: dict[str, BillableMetric]


def event_refs(payloads: list[Any]) -> EventRefs:
    return EventRefs(event_owners(payloads), metrics_by_code(payloads))


# One statement for the API key and what the events name: the key's row, left-joined with one
# row per metric ('m'), customer ('c') and subscription ('s') found, each kind in its own columns
# (typed, as UNION ALL needs on PostgreSQL, even where a kind leaves them empty).
_REF_TYPES = {
    "kind": "text",
    "m_id": "bigint",
    "m_code": "text",
    "m_name": "text",
    "m_aggregation": "text",
    "m_field": "text",
    "sub_id": "text",
    "sub_at": "timestamptz",
    "sub_pk": "bigint",
    "c_id": "bigint",
    "c_ext": "text",
    "c_tz": "text",
    "c_active": "text",
    "c_closed": "timestamptz",
}
_REF_COLUMNS = ", ".join(_REF_TYPES)


def _branch(source: str, **columns: str) -> str:
    """One UNION ALL branch: `columns` by name, NULL (typed) for the others."""
    values = [f"{columns.get(name, f'CAST(NULL AS {kind})')} AS {name}" for name, kind in _REF_TYPES.items()]
    return f"SELECT {', '.join(values)} FROM {source} WHERE "


_OWNER = {
    "c_id": "c.id",
    "c_ext": "c.external_id",
    "c_tz": "c.timezone",
    "c_active": _ACTIVE_SUBSCRIPTION,
    "c_closed": _CLOSED_UNTIL,
}
_METRIC_BRANCH = _branch(
    f"{BillableMetric._meta.db_table} m",
    kind="'m'",
    m_id="m.id",
    m_code="m.code",
    m_name="m.name",
    m_aggregation="m.aggregation",
    m_field="m.field",
)
_CUSTOMER_BRANCH = _branch(f"{_CUSTOMER} c", kind="'c'", **_OWNER) + "c.deleted_at IS NULL AND "
_SUBSCRIPTION_BRANCH = _branch(
    f"{_SUBSCRIPTION} sub JOIN {_CUSTOMER} c ON c.id = sub.customer_id AND c.deleted_at IS NULL",
    kind="'s'",
    sub_id="sub.external_id",
    sub_at="sub.subscription_at",
    sub_pk="sub.id",
    **_OWNER,
)
_KEY_COLUMNS = ", ".join(f"k.{name}" for name in ACTIVE_KEY_FIELDS)


@lru_cache(maxsize=256)
def _key_and_refs_sql(codes: int, customers: int, subscriptions: int) -> str:
    """key_and_event_refs's statement for so many metric codes, customer and subscription ids,
    their parameters in that order, then the key's hash. Built once per shape: a single event
    always has the same one, and building it cost a third of the selector's own CPU."""
    branches = [
        f"{branch}{column} IN ({', '.join(['%s'] * count)})"
        for branch, column, count in (
            (_METRIC_BRANCH, "m.code", codes),
            (_CUSTOMER_BRANCH, "c.external_id", customers),
            (_SUBSCRIPTION_BRANCH, "sub.external_id", subscriptions),
        )
        if count
    ]
    refs_sql = ""
    if branches:
        refs_sql = f" LEFT JOIN ({' UNION ALL '.join(branches)}) o ON 1 = 1"
    columns = _KEY_COLUMNS + (f", {_REF_COLUMNS}" if branches else "")
    return f"SELECT {columns} FROM {ACTIVE_KEY_TABLE} k{refs_sql} WHERE {active_key_condition('k')}"


def key_and_event_refs(*, key_hash: str, payloads: list[Any]) -> tuple[tuple[Any, ...] | None, EventRefs]:
    """The active API key with this hash (customers.authentication's row, or None) and what the
    payloads name, in one statement: the read that POST /api/v1/events needs before storing.

    The same answers as find_active_key and event_refs give, in one round trip instead of up
    to four; with no key, nothing the payloads name is returned.
    """
    codes, customer_refs, subscription_refs = _refs_named(payloads)
    rows = _prepared_rows(
        _key_and_refs_sql(len(codes), len(customer_refs), len(subscription_refs)),
        [*codes, *customer_refs, *subscription_refs, key_hash],
    )
    if not rows:
        return None, EventRefs(_owners((), ()), {})
    width = len(ACTIVE_KEY_FIELDS)
    metrics: dict[str, BillableMetric] = {}
    customer_rows: list[tuple[Any, ...]] = []
    subscription_rows: list[tuple[Any, ...]] = []
    for row in rows if codes or customer_refs or subscription_refs else ():
        kind, m_id, code, name, aggregation, field, sub_id, sub_at, sub_pk, *customer = row[width:]
        if kind == "m":
            metrics[code] = BillableMetric(id=m_id, code=code, name=name, aggregation=aggregation, field=field)
        elif kind == "c":
            customer_rows.append(tuple(customer))
        elif kind == "s":
            subscription_rows.append((sub_at, sub_pk, sub_id, *customer))
    # Oldest subscription first, as SUBSCRIPTIONS_SQL orders them: after a plan change the newest wins.
    subscription_rows.sort(key=lambda r: (r[0], r[1]))
    owners = _owners(customer_rows, (r[2:] for r in subscription_rows))
    return rows[0][:width], EventRefs(owners, metrics)


def active_subscription_ids(customer_ids: set[int]) -> dict[int, str]:
    """For events sent by customer: the subscription Lago's response names (its newest active one)."""
    found: dict[int, str] = {}
    rows = (
        Subscription.objects.filter(customer_id__in=customer_ids, status=SubscriptionStatus.ACTIVE)
        .order_by("customer_id", "-subscription_at", "-id")
        .values_list("customer_id", "external_id")
    )
    for customer_id, external_id in rows:
        found.setdefault(customer_id, external_id)
    return found


def closed_periods(customer_ids: set[int], since: datetime) -> dict[int, list[tuple[datetime, datetime]]]:
    """Per customer, the [start, end) of its finalized period invoices that end after `since`."""
    closed: dict[int, list[tuple[datetime, datetime]]] = {}
    rows = (
        Invoice.objects.filter(customer_id__in=customer_ids, kind=InvoiceKind.PERIOD, period_end__gt=since)
        .exclude(status=InvoiceStatus.DRAFT)
        .values_list("customer_id", "period_start", "period_end")
    )
    for customer_id, start, end in rows:
        closed.setdefault(customer_id, []).append((start, end))
    return closed

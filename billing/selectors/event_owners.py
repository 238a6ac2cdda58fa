"""Who usage events belong to, read for a whole batch at once (the ingestion path's lookups).

An event names its customer (`external_customer_id`) or its subscription
(`external_subscription_id`); metering knows customers only, so billing resolves subscriptions
here, before metering validates and stores. Each customer comes with what the response and the
late flag need: its newest active subscription, and the end of its last closed period.

The lookups are raw SQL: they run on every request, and compiling the ORM queries cost more than
running them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from billing.models import Invoice, InvoiceKind, InvoiceStatus, Subscription, SubscriptionStatus
from customers.models import Customer
from metering.models import BillableMetric
from metering.validation import Owner

UNKNOWN_CUSTOMER = "unknown customer {ref!r}"
UNKNOWN_SUBSCRIPTION = "unknown subscription {ref!r}"
SUBSCRIPTION_OF_OTHER_CUSTOMER = "subscription {sub!r} belongs to customer {owner!r}, not {ref!r}"

_CUSTOMER = Customer._meta.db_table
_SUBSCRIPTION = Subscription._meta.db_table
_INVOICE = Invoice._meta.db_table
_CUSTOMER_EXTRAS = f"""
    (SELECT s.external_id FROM {_SUBSCRIPTION} s WHERE s.customer_id = c.id AND s.status = '{SubscriptionStatus.ACTIVE}'
     ORDER BY s.subscription_at DESC, s.id DESC LIMIT 1),
    (SELECT max(i.period_end) FROM {_INVOICE} i WHERE i.customer_id = c.id
     AND i.kind = '{InvoiceKind.PERIOD}' AND i.status <> '{InvoiceStatus.DRAFT}')
"""
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


def _placeholders(values: Iterable[Any]) -> str:
    return ", ".join(["%s"] * len(list(values)))


def _aware(value: datetime | str) -> datetime:
    """SQLite returns the subquery's max(period_end) as text."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Owners:
    """The owners of a batch's events, and per customer what the response and late flag need."""

    resolve: Resolve
    active_subscription: dict[int, str]  # customer id → newest active subscription's external id
    closed_until: dict[int, datetime]  # customer id → end of the last non-draft period invoice


def event_owners(payloads: Iterable[Any]) -> Owners:
    """Resolve the owners of a whole batch with at most two queries."""
    customer_refs: set[str] = set()
    subscription_refs: set[str] = set()
    for p in payloads:
        if isinstance(p, dict):
            if isinstance(p.get("external_customer_id"), str):
                customer_refs.add(p["external_customer_id"])
            if isinstance(p.get("external_subscription_id"), str):
                subscription_refs.add(p["external_subscription_id"])
    customers: dict[str, Owner] = {}
    subscriptions: dict[str, Owner] = {}
    active: dict[int, str] = {}
    closed: dict[int, datetime] = {}
    if customer_refs:
        for pk, external_id, tz, active_sub, closed_end in _rows(
            f"{CUSTOMERS_SQL} ({_placeholders(customer_refs)})", list(customer_refs)
        ):
            customers[external_id] = Owner(pk, tz, external_id)
            if active_sub is not None:
                active[pk] = active_sub
            if closed_end is not None:
                closed[pk] = _aware(closed_end)
    if subscription_refs:
        for sub_id, pk, external_id, tz, active_sub, closed_end in _rows(
            f"{SUBSCRIPTIONS_SQL} ({_placeholders(subscription_refs)}) ORDER BY sub.subscription_at, sub.id",
            list(subscription_refs),
        ):
            subscriptions[sub_id] = Owner(pk, tz, external_id, sub_id)
            if active_sub is not None:
                active[pk] = active_sub
            if closed_end is not None:
                closed[pk] = _aware(closed_end)

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
    codes = {p["code"] for p in payloads if isinstance(p, dict) and isinstance(p.get("code"), str)}
    if not codes:
        return {}
    return {
        code: BillableMetric(id=pk, code=code, name=name, aggregation=aggregation, field=field)
        for pk, code, name, aggregation, field in _rows(f"{METRICS_SQL} ({_placeholders(codes)})", list(codes))
    }


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

"""The dashboard's figures: what finance looks at first, each a fixed number of queries
(billing.admin.dashboard shows them; see its docstring for what each figure is and costs)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from django.db import connections
from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth

from billing.engine.money import ZERO
from billing.engine.periods import add_months, month_start
from billing.models import (
    Charge,
    Commitment,
    CommitmentStatus,
    CreditNote,
    DeliveryStatus,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    WebhookDelivery,
)
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import current_usage
from customers.models import Customer
from metering.days import local_date, month_key
from metering.models import BillableMetric, DistinctCount

# Active subscriptions whose open period is previewed (see the module docstring for the cost).
PREVIEWED_SUBSCRIPTIONS = 50
TOP_CUSTOMERS = 10
# Over-limit customers looked at, and listed (the page says when there are more).
UPGRADE_CANDIDATES = 500
UPGRADE_LISTED = 50
EXPIRING_DAYS = 30
EXPIRING_LISTED = 50
REVENUE_MONTHS = 12

REVENUE_STATUSES = (InvoiceStatus.FINALIZED,)  # voided invoices are not revenue


# --- Helpers ------------------------------------------------------------------------------------


def grouped_sums(
    queryset: QuerySet[Any], keys: Iterable[str], field: str
) -> dict[tuple[Any, ...], tuple[int, Decimal]]:
    """(row count, exact SUM of `field`) per distinct value of `keys`, in one query.

    As config.db.exact_sum: PostgreSQL sums numeric exactly; SQLite's SUM returns a float, so
    there the rows are read and added in Python (each one converted exactly to Decimal).
    """
    keys = list(keys)
    queryset = queryset.order_by()
    if connections[queryset.db].vendor != "sqlite":
        rows = queryset.values(*keys).annotate(_rows=Count("pk"), _total=Sum(field))
        return {tuple(row[k] for k in keys): (row["_rows"], row["_total"] or ZERO) for row in rows}
    sums: dict[tuple[Any, ...], tuple[int, Decimal]] = {}
    for *key, value in queryset.values_list(*keys, field).iterator(chunk_size=10_000):
        count, total = sums.get(tuple(key), (0, ZERO))
        sums[tuple(key)] = (count + 1, total + (value or ZERO))
    return sums


def month_condition(now: datetime) -> Q:
    """The maintained sets' rows of the month containing `now`, in each customer's own time zone.

    Customers' zones are few; when they all are in the same month (all but a few hours a
    month) the condition is a plain `month = yyyymm`, without a join to customers.
    """
    zones = Customer.all_objects.order_by().values_list("timezone", flat=True).distinct()
    by_month: dict[int, list[str]] = defaultdict(list)
    for tz in zones:
        by_month[month_key(local_date(now, tz))].append(tz)
    if len(by_month) <= 1:
        return Q(month=next(iter(by_month), month_key(now.date())))
    condition = Q(month__in=[])
    for key, tzs in by_month.items():
        condition |= Q(month=key, customer__timezone__in=tzs)
    return condition


# --- Figures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revenue:
    months: list[date]  # oldest first, this month last
    by_currency: dict[str, dict[date, Decimal]]

    def month_totals(self, month: date) -> dict[str, Decimal]:
        return {cur: by_month[month] for cur, by_month in self.by_currency.items() if by_month.get(month)}


def revenue_by_month(today: date, months: int = REVENUE_MONTHS) -> Revenue:
    """Finalized and paid totals by issue month and currency, for the `months` up to today's."""
    this_month = month_start(today)
    first = add_months(this_month, -(months - 1))
    invoices = Invoice.objects.filter(
        status__in=REVENUE_STATUSES, issued_on__gte=first, issued_on__lt=add_months(this_month, 1)
    ).annotate(issue_month=TruncMonth("issued_on"))
    by_currency: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for (currency, month), (_count, total) in grouped_sums(invoices, ("currency", "issue_month"), "total").items():
        by_currency[currency][month] = total
    return Revenue(months=[add_months(first, i) for i in range(months)], by_currency=dict(by_currency))


@dataclass(frozen=True)
class OpenInvoices:
    drafts: int
    draft_totals: dict[str, Decimal]
    unpaid: int
    unpaid_totals: dict[str, Decimal]


def open_invoices() -> OpenInvoices:
    """Drafts waiting for finalization, and finalized invoices not settled yet with what is
    still due on them (total − payments − credit-note offsets): three grouped queries."""
    drafts = grouped_sums(Invoice.objects.filter(status=InvoiceStatus.DRAFT), ("currency",), "total")
    unsettled = Invoice.objects.filter(status=InvoiceStatus.FINALIZED).exclude(payment_status=PaymentStatus.SUCCEEDED)
    owed = grouped_sums(unsettled, ("currency",), "total")
    paid = grouped_sums(Payment.objects.filter(invoice__in=unsettled), ("currency",), "amount")
    offset = grouped_sums(CreditNote.objects.filter(invoice__in=unsettled), ("currency",), "offset_amount")
    due = {
        currency: total - paid.get((currency,), (0, ZERO))[1] - offset.get((currency,), (0, ZERO))[1]
        for (currency,), (_count, total) in owed.items()
    }
    return OpenInvoices(
        drafts=sum(count for count, _ in drafts.values()),
        draft_totals={currency: total for (currency,), (_count, total) in drafts.items()},
        unpaid=sum(count for count, _ in owed.values()),
        unpaid_totals=due,
    )


def failed_webhook_deliveries() -> int:
    """Webhook deliveries that gave up (every attempt failed): one COUNT, on the (status,
    next_attempt_at) index."""
    return WebhookDelivery.objects.filter(status=DeliveryStatus.FAILED).count()


MonthCounts = dict[tuple[int, int], int]  # (customer id, metric id) → distinct values this month


def month_counts(condition: Q, metric_ids: Iterable[int]) -> MonthCounts:
    """Distinct values this month per customer and unique_count metric: one query.

    Read from the sets' maintained sizes (DistinctCount: one row per customer, metric and local
    month, kept equal to the set's row count by ingestion), which the open-period ranking, the top
    customers and the upgrade list share; its cost grows with the customers, not their values.
    """
    rows = DistinctCount.objects.filter(condition, metric_id__in=list(metric_ids)).values_list(
        "customer_id", "metric_id", "count"
    )
    return {(customer_id, metric_id): count for customer_id, metric_id, count in rows if count}


@dataclass(frozen=True)
class OpenPeriod:
    totals: dict[str, Decimal]
    previewed: int
    active: int
    errors: list[str]


def _preview_subscriptions(counts: MonthCounts, limit: int) -> tuple[list[Subscription], int]:
    """The active subscriptions to preview, and how many are active."""
    active = Subscription.objects.filter(status=SubscriptionStatus.ACTIVE)
    with_plans = active.select_related("customer", "promotion").prefetch_related(
        Prefetch("plan", queryset=plans_with_charges())
    )
    candidates = list(active.order_by().values_list("pk", "customer_id", "plan__base_fee"))
    if len(candidates) <= limit:
        return list(with_plans.order_by("id")), len(candidates)
    per_customer: dict[int, int] = defaultdict(int)
    for (customer_id, _metric_id), values in counts.items():
        per_customer[customer_id] += values
    # The busiest customers first; without usage this month, the largest base fees.
    candidates.sort(key=lambda row: (-per_customer.get(row[1], 0), -row[2], row[0]))
    chosen = [pk for pk, _customer_id, _fee in candidates[:limit]]
    rank = {pk: i for i, pk in enumerate(chosen)}
    return sorted(with_plans.filter(pk__in=chosen), key=lambda s: rank[s.pk]), len(candidates)


def open_period_revenue(now: datetime, counts: MonthCounts, limit: int | None = None) -> OpenPeriod:
    """The invoice previews of the open periods so far, summed per currency (bounded: see the docstring)."""
    subscriptions, active = _preview_subscriptions(counts, limit or PREVIEWED_SUBSCRIPTIONS)
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    errors = []
    for subscription in subscriptions:
        try:
            usage = current_usage(subscription=subscription, at=now, count_events=False, adjustments=False)
        except ValueError:  # a stored charge the engine cannot price; the customer page says why
            errors.append(subscription.external_id)
            continue
        totals[usage.currency] += usage.total
    return OpenPeriod(totals=dict(totals), previewed=len(subscriptions), active=active, errors=errors)


@dataclass(frozen=True)
class CustomerCount:
    customer: Customer
    metric: BillableMetric
    count: int
    plan: str = ""
    limit: Decimal | None = None


def top_customers(
    counts: MonthCounts, metrics: dict[int, BillableMetric], limit: int = TOP_CUSTOMERS
) -> list[CustomerCount]:
    """The customers with the most distinct values this month, per unique_count metric."""
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    customers = Customer.all_objects.in_bulk([customer_id for (customer_id, _), _ in top])
    return [CustomerCount(customers[customer_id], metrics[metric_id], n) for (customer_id, metric_id), n in top]


@dataclass(frozen=True)
class UpgradeList:
    rows: list[CustomerCount]
    total: int
    more: bool  # more candidates than were looked at


def over_limit(counts: MonthCounts, metrics: dict[int, BillableMetric]) -> UpgradeList:
    """Active subscriptions whose customer's distinct values this month pass their plan's usage limit."""
    limits: dict[tuple[int, int], Decimal] = {}
    for plan_id, metric_id, usage_limit in (
        Charge.objects.filter(
            usage_limit__isnull=False,
            metric_id__in=list(metrics),
            plan__subscriptions__status=SubscriptionStatus.ACTIVE,
        )
        .order_by()
        .values_list("plan_id", "metric_id", "usage_limit")
        .distinct()
    ):
        limits[(plan_id, metric_id)] = cast(Decimal, usage_limit)  # usage_limit__isnull=False
    if not limits:
        return UpgradeList(rows=[], total=0, more=False)
    lowest = min(limits.values())
    limited_metrics = {metric_id for _, metric_id in limits}
    over = sorted(
        (item for item in counts.items() if item[0][1] in limited_metrics and item[1] > lowest),
        key=lambda item: (-item[1], item[0]),
    )
    candidates = over[:UPGRADE_CANDIDATES]
    subscriptions = Subscription.objects.filter(
        status=SubscriptionStatus.ACTIVE,
        plan_id__in={plan_id for plan_id, _ in limits},
        customer_id__in={customer_id for (customer_id, _), _ in candidates},
    ).select_related("customer", "plan")
    rows = []
    for subscription in subscriptions.order_by("id"):
        for (plan_id, metric_id), usage_limit in limits.items():
            count = counts.get((subscription.customer_id, metric_id))
            if plan_id == subscription.plan_id and count is not None and count > usage_limit:
                rows.append(
                    CustomerCount(subscription.customer, metrics[metric_id], count, str(subscription.plan), usage_limit)
                )
    rows.sort(key=lambda row: (-row.count, row.customer.external_id))
    return UpgradeList(rows=rows[:UPGRADE_LISTED], total=len(rows), more=len(over) > UPGRADE_CANDIDATES)


@dataclass(frozen=True)
class Expiring:
    commitment: Commitment
    balance: Decimal


def expiring_commitments(now: datetime, days: int = EXPIRING_DAYS) -> list[Expiring]:
    """Active commitments whose term ends in the next `days` days with a balance left (two queries)."""
    commitments = list(
        Commitment.objects.filter(
            status=CommitmentStatus.ACTIVE, term_end__gt=now, term_end__lte=now + timedelta(days=days)
        )
        .select_related("subscription__customer")
        .order_by("term_end", "id")
    )
    balances: dict[int, Decimal] = defaultdict(lambda: ZERO)
    # The balance is the sum of the ledger (billing.selectors.commitments.balance), added exactly in Python.
    entries = LedgerEntry.objects.filter(commitment__in=commitments).values_list("commitment_id", "amount")
    for commitment_id, amount in entries:
        balances[commitment_id] += amount
    return [Expiring(c, balances[c.pk]) for c in commitments if balances[c.pk] > 0][:EXPIRING_LISTED]

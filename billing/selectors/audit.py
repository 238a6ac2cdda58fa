"""Reads for the MTU audit: the distinct values a usage line or an open period counted, and the
values seen per day (billing.admin.audit shows them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import islice

from django.db.models import Case, Count, Exists, F, IntegerField, OuterRef, Q, Value, When
from django.db.models.lookups import Exact, GreaterThan

from billing.models import InvoiceLine, InvoiceStatus, LineKind
from customers.models import Customer
from metering.days import month_key
from metering.models import Aggregation, BillableMetric, DistinctValue
from metering.selectors import distinct_values, month_masks, unique_count

AUDITED_KINDS = frozenset({LineKind.USAGE, LineKind.LATE_USAGE})


class WindowValues:
    """The distinct values of a window, as a Paginator reads them: count() and slices."""

    def __init__(self, *, customer: Customer, metric: BillableMetric, start: datetime, end: datetime) -> None:
        self.customer = customer
        self.metric = metric
        self.start = start
        self.end = end
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            self._count = unique_count(customer=self.customer, metric=self.metric, start=self.start, end=self.end)
        return self._count

    def __iter__(self) -> Iterator[str]:
        return distinct_values(customer=self.customer, metric=self.metric, start=self.start, end=self.end)

    def __getitem__(self, index: slice) -> list[str]:
        if not isinstance(index, slice):
            raise TypeError("WindowValues is read by slices")
        return list(islice(iter(self), index.start, index.stop))


def is_auditable(line: InvoiceLine) -> bool:
    metric = line.metric
    return line.kind in AUDITED_KINDS and metric is not None and metric.aggregation == Aggregation.UNIQUE_COUNT


def billed_count(line: InvoiceLine) -> Decimal:
    """The count the line billed: its quantity, or for late usage the count it was computed from."""
    if line.kind == LineKind.LATE_USAGE:
        try:
            return Decimal(str(line.details.get("quantity", "0")))
        except InvalidOperation:
            return Decimal(0)
    return line.quantity


def later_late_lines(line: InvoiceLine) -> list[InvoiceLine]:
    """The late_usage lines billed after `line` for the same customer, metric and period."""
    return list(
        InvoiceLine.objects.filter(
            kind=LineKind.LATE_USAGE,
            metric_id=line.metric_id,
            period_start=line.period_start,
            invoice__customer_id=line.invoice.customer_id,
            invoice__created_at__gt=line.invoice.created_at,
        )
        .exclude(invoice__status=InvoiceStatus.VOIDED)
        .select_related("invoice")
        .order_by("invoice__created_at", "id")
    )


# --- Distinct values per day (the customer page's charts) -------------------------------------


def _mask(days: Iterable[date]) -> int:
    mask = 0
    for day in days:
        mask |= 1 << (day.day - 1)
    return mask


def daily_distinct(
    *, customer: Customer, metric: BillableMetric, first: date, stop: date
) -> list[tuple[date, int, int]]:
    """(day, values seen that day, values seen so far) for each local day in [first, stop), one query.

    From the maintained sets (one row per value and month, a bit per day): a value counts "so
    far" from the first window day its bits show, and, in a later month of the window, only if
    the earlier month's window days did not already show it.
    """
    days = [first + timedelta(days=i) for i in range((stop - first).days)]
    if not days:
        return []
    window = dict(month_masks(first, stop))
    rows = DistinctValue.objects.filter(customer=customer, metric=metric, month__in=list(window))
    if len(window) > 1:
        hit = Case(
            *[When(month=m, then=F("days").bitand(mask)) for m, mask in window.items()],
            default=Value(0),
            output_field=IntegerField(),
        )
        earlier = (
            DistinctValue.objects.filter(
                customer=customer,
                metric=metric,
                month__in=list(window),
                month__lt=OuterRef("month"),
                value=OuterRef("value"),
            )
            .annotate(hit=hit)
            .exclude(hit=0)
        )
        rows = rows.annotate(seen_earlier=Exists(earlier))
    aggregates = {}
    for i, day in enumerate(days):
        month = month_key(day)
        bit = 1 << (day.day - 1)
        before = _mask(d for d in days if month_key(d) == month and d < day)
        aggregates[f"seen_{i}"] = Count("value", filter=Q(month=month) & Q(GreaterThan(F("days").bitand(bit), 0)))
        new = Q(month=month) & Q(GreaterThan(F("days").bitand(bit), 0)) & Q(Exact(F("days").bitand(before), 0))
        if len(window) > 1:
            new &= Q(seen_earlier=False)
        aggregates[f"new_{i}"] = Count("value", filter=new)
    counts = rows.aggregate(**aggregates)
    result = []
    so_far = 0
    for i, day in enumerate(days):
        so_far += counts[f"new_{i}"]
        result.append((day, counts[f"seen_{i}"], so_far))
    return result

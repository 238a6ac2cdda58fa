"""Aggregation of a billable metric over a customer's events in a half-open window [start, end).

- count, sum, max, latest read the events table through its (customer, metric, timestamp) index.
- unique_count reads the maintained DistinctValue sets, and event counts (Lago's events_count,
  and the quantity of count metrics) read the maintained daily EventCount rows, when the window
  is made of whole days in the customer's time zone (billing periods and promotion windows
  always are); any other window is counted exactly from the raw events.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TypedDict

from django.db import connections
from django.db.models import Case, Count, F, IntegerField, Max, QuerySet, Value, When
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Collate

from config.db import exact_sum
from customers.models import Customer
from metering.days import is_day_start, local_date, month_key
from metering.models import Aggregation, BillableMetric, DistinctCount, DistinctValue, Event, EventCount
from metering.validation import distinct_property

ZERO = Decimal(0)


@dataclass(frozen=True)
class Usage:
    quantity: Decimal
    events_count: int


Window = tuple[datetime, datetime]


class _WindowArgs(TypedDict):
    """The keyword arguments that name a window of a customer's events of a metric."""

    customer: Customer
    metric: BillableMetric
    start: datetime
    end: datetime
    exclude: Window | None


def window_events(
    *, customer: Customer, metric: BillableMetric, start: datetime, end: datetime, exclude: Window | None = None
) -> QuerySet[Event]:
    """The customer's events of the metric in [start, end), minus those in `exclude` if given."""
    events = Event.objects.filter(customer=customer, metric=metric, timestamp__gte=start, timestamp__lt=end)
    if exclude is not None:
        events = events.exclude(timestamp__gte=exclude[0], timestamp__lt=exclude[1])
    return events


def month_masks(first: date, stop: date, skip: tuple[date, date] | None = None) -> list[tuple[int, int]]:
    """(yyyymm, day-bit mask) for each month that the local days [first, stop) touch, minus `skip`."""
    masks: dict[int, int] = {}
    day = first
    while day < stop:
        if skip is None or not (skip[0] <= day < skip[1]):
            key = month_key(day)
            masks[key] = masks.get(key, 0) | (1 << (day.day - 1))
        day += timedelta(days=1)
    return sorted(masks.items())


def _full_month_mask(month: int) -> int:
    return (1 << calendar.monthrange(month // 100, month % 100)[1]) - 1


def _masks(customer: Customer, start: datetime, end: datetime, exclude: Window | None) -> list[tuple[int, int]]:
    tz = customer.timezone
    skip = None if exclude is None else (local_date(exclude[0], tz), local_date(exclude[1], tz))
    return month_masks(local_date(start, tz), local_date(end, tz), skip)


def _window_sets(
    customer: Customer, metric: BillableMetric, start: datetime, end: datetime, exclude: Window | None = None
) -> QuerySet[DistinctValue]:
    """Set rows with a value seen on some day of the window (which must be whole local days)."""
    masks = _masks(customer, start, end, exclude)
    rows = DistinctValue.objects.filter(customer=customer, metric=metric, month__in=[m for m, _ in masks])
    partial = [(m, mask) for m, mask in masks if mask != _full_month_mask(m)]
    if not partial:
        return rows  # whole months: every row counts, no bit test
    hit = Case(
        *[When(month=m, then=F("days").bitand(mask)) for m, mask in masks],
        default=Value(0),
        output_field=IntegerField(),
    )
    return rows.annotate(hit=hit).exclude(hit=0)


def _is_day_window(customer: Customer, *moments: datetime) -> bool:
    return all(is_day_start(moment, customer.timezone) for moment in moments)


Statement = tuple[str, list[int | date]]  # SQL and its parameters


def _unique_count_sql(
    customer: Customer, metric: BillableMetric, start: datetime, end: datetime, exclude: Window | None
) -> Statement | None:
    """The statement counting the distinct values of a window of whole local days (None when no
    day is left in it).

    Raw SQL: this runs for every subscription at every close, and building the ORM query (a CASE
    per month) cost more than running it. One row per value within a month, so a single month
    is a COUNT(*); several months count distinct values. A single whole month (a monthly billing
    period, so every current usage request) reads the set's maintained size instead: counting a
    set of 200,000 values cost about 10 ms of database CPU.
    """
    masks = _masks(customer, start, end, exclude)
    if not masks:
        return None
    if len(masks) == 1 and masks[0][1] == _full_month_mask(masks[0][0]):  # every row of the month counts
        return (
            f"SELECT count FROM {DistinctCount._meta.db_table} "
            "WHERE customer_id = %s AND metric_id = %s AND month = %s",
            [customer.pk, metric.pk, masks[0][0]],
        )
    what = "COUNT(*)" if len(masks) == 1 else "COUNT(DISTINCT value)"
    sql = (
        f"SELECT {what} FROM {DistinctValue._meta.db_table} WHERE customer_id = %s AND metric_id = %s "
        f"AND month IN ({', '.join(['%s'] * len(masks))})"
    )
    params: list[int | date] = [customer.pk, metric.pk, *(m for m, _ in masks)]
    partial = [(m, mask) for m, mask in masks if mask != _full_month_mask(m)]
    if partial:  # a value counts when it was seen on some day of the window: its bits meet the mask
        sql += f" AND (CASE month {' '.join(['WHEN %s THEN days & %s'] * len(masks))} ELSE 0 END) <> 0"
        for m, mask in masks:
            params.extend((m, mask))
    return sql, params


def _events_count_sql(
    customer: Customer, metric: BillableMetric, start: datetime, end: datetime, exclude: Window | None
) -> Statement:
    """The statement summing the daily event counts of a window of whole local days.

    Raw SQL, as unique_count's: current usage runs it on every request, and building the ORM
    aggregate cost more than running it.
    """
    tz = customer.timezone
    sql = (
        f"SELECT SUM(count) FROM {EventCount._meta.db_table} "
        "WHERE customer_id = %s AND metric_id = %s AND day >= %s AND day < %s"
    )
    params: list[int | date] = [customer.pk, metric.pk, local_date(start, tz), local_date(end, tz)]
    if exclude is not None:
        sql += " AND NOT (day >= %s AND day < %s)"
        params.extend((local_date(exclude[0], tz), local_date(exclude[1], tz)))
    return sql, params


def _scalars(*statements: Statement) -> list[int]:
    """The single values of statements, read in one round trip: SELECT (s1), (s2) (a NULL sum is
    0). The metering tables live in one database."""
    sql = "SELECT " + ", ".join(f"({text})" for text, _ in statements)
    params = [param for _, part in statements for param in part]
    with connections[EventCount.objects.db].cursor() as cursor:
        cursor.execute(sql, params)
        return [int(value or 0) for value in cursor.fetchone()]


def unique_count(
    *, customer: Customer, metric: BillableMetric, start: datetime, end: datetime, exclude: Window | None = None
) -> int:
    if start >= end:
        return 0
    if not _is_day_window(customer, start, end, *(exclude or ())):
        return len(_raw_distinct(customer, metric, start, end, exclude))
    statement = _unique_count_sql(customer, metric, start, end, exclude)
    return 0 if statement is None else _scalars(statement)[0]


def events_count(
    *, customer: Customer, metric: BillableMetric, start: datetime, end: datetime, exclude: Window | None = None
) -> int:
    """How many events of the metric the customer sent in the window (minus `exclude`)."""
    if start >= end:
        return 0
    if not _is_day_window(customer, start, end, *(exclude or ())):
        return window_events(customer=customer, metric=metric, start=start, end=end, exclude=exclude).count()
    return _scalars(_events_count_sql(customer, metric, start, end, exclude))[0]


def _unique_count_and_events(window: _WindowArgs) -> Usage:
    """unique_count and events_count of one window; over whole local days (billing periods are) in
    one statement, as current usage asks for both on every request."""
    customer, start, end, exclude = window["customer"], window["start"], window["end"], window["exclude"]
    if start < end and _is_day_window(customer, start, end, *(exclude or ())):
        distinct = _unique_count_sql(customer, window["metric"], start, end, exclude)
        if distinct is not None:
            count, events = _scalars(distinct, _events_count_sql(customer, window["metric"], start, end, exclude))
            return Usage(Decimal(count), events)
    return Usage(Decimal(unique_count(**window)), events_count(**window))


def distinct_values(
    *, customer: Customer, metric: BillableMetric, start: datetime, end: datetime, exclude: Window | None = None
) -> Iterator[str]:
    """The distinct values a unique_count counts in the window, sorted (for audits)."""
    if start >= end:
        return
    if not _is_day_window(customer, start, end, *(exclude or ())):
        yield from sorted(_raw_distinct(customer, metric, start, end, exclude))
        return
    rows = _window_sets(customer, metric, start, end, exclude)
    # By code point, as sorted() orders the raw path: PostgreSQL would otherwise sort by the
    # database's locale (en_US puts "_bot" before "42" and "alice" before "Bob").
    order = Collate("value", "C") if connections[rows.db].vendor == "postgresql" else F("value")
    yield from rows.order_by(order).values_list("value", flat=True).distinct().iterator(chunk_size=10_000)


def _raw_distinct(
    customer: Customer, metric: BillableMetric, start: datetime, end: datetime, exclude: Window | None
) -> set[str]:
    values = set()
    raw_values = window_events(customer=customer, metric=metric, start=start, end=end, exclude=exclude).values_list(
        KeyTransform(metric.field, "properties"), flat=True
    )
    for raw in raw_values.iterator(chunk_size=10_000):
        value = distinct_property(raw)
        if value is not None:
            values.add(value)
    return values


def aggregate(
    *,
    customer: Customer,
    metric: BillableMetric,
    start: datetime,
    end: datetime,
    exclude: Window | None = None,
    count_events: bool = True,
) -> Usage:
    """The metric's quantity for the customer over [start, end) (minus `exclude`), and its event count.

    With count_events=False the count is 0 for sum, latest and unique_count (saving a query);
    count and max get it for free.
    """
    window: _WindowArgs = {"customer": customer, "metric": metric, "start": start, "end": end, "exclude": exclude}
    agg = metric.aggregation
    if agg == Aggregation.COUNT:
        count = events_count(**window)
        return Usage(Decimal(count), count)
    if agg == Aggregation.UNIQUE_COUNT:
        return _unique_count_and_events(window) if count_events else Usage(Decimal(unique_count(**window)), 0)
    events = window_events(**window)
    if agg == Aggregation.SUM:
        total = exact_sum(events, "value")
        return Usage(total if total is not None else ZERO, events_count(**window) if count_events else 0)
    if agg == Aggregation.MAX:
        row = events.aggregate(n=Count("id"), top=Max("value"))  # MAX returns a stored value: exact
        return Usage(row["top"] if row["top"] is not None else ZERO, row["n"])
    if agg == Aggregation.LATEST:
        latest = events.order_by("-timestamp", "-id").values_list("value", flat=True).first()
        return Usage(latest if latest is not None else ZERO, events_count(**window) if count_events else 0)
    raise ValueError(f"unknown aggregation {agg!r}")


WindowKey = tuple[int, int, datetime, datetime, Window | None]  # customer, metric, start, end, exclude
Request = tuple[Customer, BillableMetric, datetime, datetime, Window | None]


def window_key(
    customer: Customer, metric: BillableMetric, start: datetime, end: datetime, exclude: Window | None
) -> WindowKey:
    """How quantities_of names a window: by ids, so any copy of the customer or metric finds it."""
    return (customer.pk, metric.pk, start, end, exclude)


def quantities_of(requests: list[Request]) -> dict[WindowKey, Decimal]:
    """The quantities of several windows (several customers' usage, a period close's group) in one
    round trip, for those one scalar statement answers: unique_count and count over whole local
    days (billing periods and promotion windows are); the others are left out (aggregate reads
    them). Each window's statement names its customer (customer_id = …), as aggregate's does.

    A group closed 25 to a transaction read each one's usage in a statement of its own: the round
    trips, not the index reads, were most of that cost."""
    found: dict[WindowKey, Decimal] = {}
    statements: dict[WindowKey, Statement] = {}  # to read, in order
    for customer, metric, start, end, exclude in requests:
        key = window_key(customer, metric, start, end, exclude)
        if key in found or key in statements:
            continue
        if start >= end:
            found[key] = ZERO
            continue
        if not _is_day_window(customer, start, end, *(exclude or ())):
            continue
        if metric.aggregation == Aggregation.UNIQUE_COUNT:
            statement = _unique_count_sql(customer, metric, start, end, exclude)
            if statement is None:
                found[key] = ZERO
                continue
        elif metric.aggregation == Aggregation.COUNT:
            statement = _events_count_sql(customer, metric, start, end, exclude)
        else:
            continue
        statements[key] = statement
    if statements:
        found.update(zip(statements, (Decimal(value) for value in _scalars(*statements.values())), strict=True))
    return found

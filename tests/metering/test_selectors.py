"""Aggregation of a metric over half-open windows, and the maintained unique_count sets (DESIGN §3, §5)."""

from __future__ import annotations

import importlib
import itertools
import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.fields.json import KeyTextTransform

from customers.models import Customer
from metering.days import day_start
from metering.ingest import store_events
from metering.models import Aggregation, BillableMetric, DistinctValue, Event, EventCount
from metering.selectors import aggregate, distinct_values, events_count, month_masks, unique_count
from metering.validation import Owner, ValidEvent, distinct_property, numeric_property, payload_hash
from tests.conftest import using_postgres
from tests.factories import BillableMetricFactory, CustomerFactory

pytestmark = pytest.mark.django_db

D = Decimal


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def metric(aggregation: str, field: str = "value") -> BillableMetric:
    if aggregation == Aggregation.UNIQUE_COUNT:
        return BillableMetricFactory()  # mtu: unique_count of user_id
    return BillableMetricFactory(
        code=f"m-{aggregation}",
        name=aggregation,
        aggregation=aggregation,
        field="" if aggregation == "count" else field,
    )


_transaction_ids = itertools.count()


def ingest(customer: Customer, m: BillableMetric, rows: Iterable[tuple[datetime, dict[str, Any]]]) -> None:
    """Store events the way the API does (bypassing its clock checks), keeping the sets up to date."""
    owner = Owner(customer.pk, customer.timezone, customer.external_id)
    events = []
    for timestamp, properties in rows:
        raw = properties.get(m.field) if m.field else None
        events.append(
            ValidEvent(
                owner=owner,
                metric=m,
                transaction_id=f"tx-{next(_transaction_ids)}",
                timestamp=timestamp,
                properties=properties,
                value=numeric_property(raw) if m.needs_numeric_field else None,
                distinct=distinct_property(raw) if m.aggregation == Aggregation.UNIQUE_COUNT else None,
                payload_hash=payload_hash(m.code, timestamp.isoformat(), properties),
            )
        )
    store_events(events, received_at=utc(2026, 10, 1))


def users(customer: Customer, m: BillableMetric, rows: Iterable[tuple[datetime, Any]]) -> None:
    ingest(customer, m, ((ts, {"user_id": user}) for ts, user in rows))


def raw_distinct(customer: Customer, m: BillableMetric, start: datetime, end: datetime, exclude: Any = None) -> int:
    """COUNT(DISTINCT properties->>field) straight from the events table: the reference answer."""
    events = Event.objects.filter(customer=customer, metric=m, timestamp__gte=start, timestamp__lt=end)
    if exclude is not None:
        events = events.exclude(timestamp__gte=exclude[0], timestamp__lt=exclude[1])
    row = events.annotate(v=KeyTextTransform(m.field, "properties")).aggregate(n=Count("v", distinct=True))
    return int(row["n"])


# --- count, sum, max, latest over half-open windows ----------------------------------------------

START, END = utc(2026, 9, 1), utc(2026, 10, 1)


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        (Aggregation.COUNT, D(3)),
        (Aggregation.SUM, D("13.5")),
        (Aggregation.MAX, D("7.5")),
        (Aggregation.LATEST, D("4")),
    ],
)
def test_aggregation_includes_the_start_instant_and_excludes_the_end_instant(aggregation: str, expected: D) -> None:
    customer = CustomerFactory()
    m = metric(aggregation)
    ingest(
        customer,
        m,
        [
            (START - timedelta(microseconds=1), {"value": 100}),  # before: ignored
            (START, {"value": "2"}),  # first instant: counted
            (utc(2026, 9, 15), {"value": 7.5}),
            (END - timedelta(microseconds=1), {"value": 4}),  # last instant: counted, the latest
            (END, {"value": 1000}),  # the next period's
        ],
    )
    usage = aggregate(customer=customer, metric=m, start=START, end=END)
    assert usage.quantity == expected
    assert usage.events_count == 3


@pytest.mark.parametrize("aggregation", [Aggregation.COUNT, Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST])
def test_empty_window_aggregates_to_zero(aggregation: str) -> None:
    customer = CustomerFactory()
    m = metric(aggregation)
    ingest(customer, m, [(END, {"value": 5})])
    usage = aggregate(customer=customer, metric=m, start=START, end=END)
    assert (usage.quantity, usage.events_count) == (D(0), 0)


def test_latest_takes_the_newest_event_by_timestamp_not_by_arrival() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.LATEST)
    ingest(customer, m, [(utc(2026, 9, 20), {"value": 9})])
    ingest(customer, m, [(utc(2026, 9, 10), {"value": 3})])  # arrives later, happened earlier
    assert aggregate(customer=customer, metric=m, start=START, end=END).quantity == D(9)


def test_sum_keeps_decimals_exact() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.SUM)
    ingest(customer, m, [(utc(2026, 9, d), {"value": "0.1"}) for d in (2, 3, 4)])
    assert aggregate(customer=customer, metric=m, start=START, end=END).quantity == D("0.3")


def test_aggregation_ignores_other_customers_and_other_metrics() -> None:
    customer, other = CustomerFactory(), CustomerFactory()
    m, unrelated = metric(Aggregation.COUNT), BillableMetricFactory(code="api-calls", aggregation="count", field="")
    ingest(customer, m, [(utc(2026, 9, 5), {})])
    ingest(other, m, [(utc(2026, 9, 5), {}), (utc(2026, 9, 6), {})])
    ingest(customer, unrelated, [(utc(2026, 9, 5), {})])
    assert aggregate(customer=customer, metric=m, start=START, end=END).quantity == 1


def test_exclude_removes_the_events_of_a_sub_window() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.SUM)
    ingest(customer, m, [(utc(2026, 9, d), {"value": d}) for d in (1, 5, 14, 15, 20)])
    usage = aggregate(customer=customer, metric=m, start=START, end=END, exclude=(utc(2026, 9, 1), utc(2026, 9, 15)))
    assert usage.quantity == D(35)  # 15 + 20
    assert usage.events_count == 2


# --- unique_count --------------------------------------------------------------------------------


def test_unique_users_counted_once_per_period_however_many_events() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    users(customer, m, [(utc(2026, 9, d, h), f"user-{u}") for d in (1, 7, 30) for h in (0, 12) for u in range(5)])
    usage = aggregate(customer=customer, metric=m, start=START, end=END)
    assert usage.quantity == 5
    assert usage.events_count == 30


def test_unique_count_window_bounds_are_half_open() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    users(
        customer,
        m,
        [
            (START, "first"),
            (END - timedelta(microseconds=1), "last"),
            (END, "next"),
            (START - timedelta(seconds=1), "prev"),
        ],
    )
    assert unique_count(customer=customer, metric=m, start=START, end=END) == 2
    assert list(distinct_values(customer=customer, metric=m, start=START, end=END)) == ["first", "last"]


def test_integer_and_string_user_ids_are_the_same_value() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    users(customer, m, [(utc(2026, 9, 2), 42), (utc(2026, 9, 3), "42"), (utc(2026, 9, 4), "042")])
    assert unique_count(customer=customer, metric=m, start=START, end=END) == 2
    assert list(distinct_values(customer=customer, metric=m, start=START, end=END)) == ["042", "42"]
    # Not day-aligned: counted from the raw events, with the same rule.
    assert unique_count(customer=customer, metric=m, start=utc(2026, 9, 1, 12), end=END) == 2


def test_values_are_compared_as_exact_strings() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    users(customer, m, [(utc(2026, 9, 2), "Alice"), (utc(2026, 9, 3), "alice"), (utc(2026, 9, 4), "alice ")])
    assert unique_count(customer=customer, metric=m, start=START, end=END) == 3


def test_distinct_values_lists_the_values_sorted() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    users(
        customer,
        m,
        [(utc(2026, 9, 20), "zed"), (utc(2026, 9, 2), "amy"), (utc(2026, 10, 2), "bob"), (utc(2026, 9, 9), "amy")],
    )
    assert list(distinct_values(customer=customer, metric=m, start=START, end=END)) == ["amy", "zed"]
    assert list(distinct_values(customer=customer, metric=m, start=START, end=utc(2026, 11, 1))) == [
        "amy",
        "bob",
        "zed",
    ]
    assert list(distinct_values(customer=customer, metric=m, start=utc(2026, 9, 9, 1), end=END)) == ["zed"]


@pytest.mark.skipif(not using_postgres(), reason="column collations are PostgreSQL's")
def test_distinct_values_are_sorted_by_code_point_whatever_the_database_collation() -> None:
    """Both paths (maintained sets, raw events) list values in the same order as Python's sorted()."""
    table = DistinctValue._meta.db_table
    with connection.cursor() as cursor:  # a database created with an en_US locale; rolled back with the test
        cursor.execute(f'ALTER TABLE {table} ALTER COLUMN value TYPE varchar(255) COLLATE "en-US-x-icu"')
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    names = ["bob", "Bob", "alice", "Zoe", "_bot", "42", "Alice"]
    users(customer, m, [(utc(2026, 9, 2), name) for name in names])
    by_sets = list(distinct_values(customer=customer, metric=m, start=START, end=END))
    by_events = list(distinct_values(customer=customer, metric=m, start=utc(2026, 9, 1, 12), end=END))
    assert by_sets == by_events == sorted(names)


def test_an_empty_or_inverted_window_counts_nothing() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    users(customer, m, [(utc(2026, 9, 2), "u")])
    assert unique_count(customer=customer, metric=m, start=END, end=START) == 0
    assert unique_count(customer=customer, metric=m, start=START, end=START) == 0
    assert list(distinct_values(customer=customer, metric=m, start=END, end=START)) == []


def test_sending_the_same_value_again_adds_no_set_row() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    users(customer, m, [(utc(2026, 9, 2), "u"), (utc(2026, 9, 2, 5), "u")])
    users(customer, m, [(utc(2026, 9, 3), "u")])
    row = DistinctValue.objects.get(customer=customer, metric=m)
    assert (row.month, row.value, row.days) == (202609, "u", 0b110)


def test_month_masks_cover_the_local_days_of_the_window() -> None:
    assert month_masks(date(2026, 9, 29), date(2026, 10, 3)) == [(202609, 0b11 << 28), (202610, 0b11)]
    assert month_masks(date(2026, 2, 1), date(2026, 3, 1)) == [(202602, (1 << 28) - 1)]
    skipped = month_masks(date(2026, 9, 1), date(2026, 9, 5), skip=(date(2026, 9, 2), date(2026, 9, 4)))
    assert skipped == [(202609, 0b1001)]


def _random_events(customer: Customer, m: BillableMetric, seed: int, n: int, start: datetime, days: int) -> None:
    rng = random.Random(seed)
    span = days * 86_400
    users(
        customer, m, [(start + timedelta(seconds=rng.randrange(span)), f"u{rng.randrange(n // 3)}") for _ in range(n)]
    )


def _day(d: date, tz: str = "UTC") -> datetime:
    return day_start(d, tz)


WINDOWS: list[tuple[str, tuple[datetime, datetime], tuple[datetime, datetime] | None]] = [
    ("whole month", (utc(2026, 9, 1), utc(2026, 10, 1)), None),
    ("next whole month", (utc(2026, 10, 1), utc(2026, 11, 1)), None),
    ("partial month", (utc(2026, 9, 10), utc(2026, 10, 1)), None),
    ("a few days", (utc(2026, 9, 13), utc(2026, 9, 16)), None),
    ("one day", (utc(2026, 9, 30), utc(2026, 10, 1)), None),
    ("last day of a 31-day month", (utc(2026, 10, 31), utc(2026, 11, 1)), None),
    ("spanning two months", (utc(2026, 9, 20), utc(2026, 10, 12)), None),
    ("spanning three months", (utc(2026, 8, 25), utc(2026, 11, 1)), None),
    ("two whole months", (utc(2026, 9, 1), utc(2026, 11, 1)), None),
    ("month minus a trial", (utc(2026, 9, 1), utc(2026, 10, 1)), (utc(2026, 9, 1), utc(2026, 9, 15))),
    ("month minus a mid window", (utc(2026, 10, 1), utc(2026, 11, 1)), (utc(2026, 10, 5), utc(2026, 10, 9))),
    ("exclude spanning a month end", (utc(2026, 9, 1), utc(2026, 11, 1)), (utc(2026, 9, 24), utc(2026, 10, 8))),
    ("exclude beyond the window", (utc(2026, 9, 10), utc(2026, 10, 1)), (utc(2026, 8, 27), utc(2026, 9, 12))),
    ("not day-aligned", (utc(2026, 9, 10, 6), utc(2026, 10, 3, 18, 30)), None),
    ("not day-aligned exclude", (utc(2026, 9, 1), utc(2026, 10, 1)), (utc(2026, 9, 1), utc(2026, 9, 14, 12))),
    ("sub-second bounds", (utc(2026, 9, 1, 0, 0, 0) + timedelta(microseconds=1), utc(2026, 9, 30)), None),
]


@pytest.mark.parametrize(("window", "exclude"), [(w, x) for _, w, x in WINDOWS], ids=[name for name, _, _ in WINDOWS])
def test_unique_count_from_maintained_sets_equals_raw_count_distinct(
    window: tuple[datetime, datetime], exclude: tuple[datetime, datetime] | None
) -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    _random_events(customer, m, seed=7, n=1_500, start=utc(2026, 8, 20), days=80)
    expected = raw_distinct(customer, m, *window, exclude=exclude)
    assert expected > 0
    assert unique_count(customer=customer, metric=m, start=window[0], end=window[1], exclude=exclude) == expected
    values = list(distinct_values(customer=customer, metric=m, start=window[0], end=window[1], exclude=exclude))
    assert len(values) == expected
    assert values == sorted(values)


def test_unique_count_by_local_days_in_a_non_utc_zone() -> None:
    tz = "America/New_York"
    customer = CustomerFactory(timezone=tz)
    m = metric(Aggregation.UNIQUE_COUNT)
    users(
        customer,
        m,
        [
            (utc(2026, 3, 1, 3), "feb-late"),  # 22:00 on Feb 28th in New York
            (utc(2026, 3, 1, 5), "march-first"),  # local midnight
            (utc(2026, 4, 1, 3, 59), "march-last"),  # 23:59 on March 31st (EDT)
            (utc(2026, 4, 1, 4), "april"),  # local midnight of April 1st
        ],
    )
    assert set(DistinctValue.objects.filter(customer=customer).values_list("value", "month")) == {
        ("feb-late", 202602),
        ("march-first", 202603),
        ("march-last", 202603),
        ("april", 202604),
    }
    march = (_day(date(2026, 3, 1), tz), _day(date(2026, 4, 1), tz))
    assert list(distinct_values(customer=customer, metric=m, start=march[0], end=march[1])) == [
        "march-first",
        "march-last",
    ]
    assert unique_count(customer=customer, metric=m, start=march[0], end=march[1]) == 2
    # The UTC month is not made of New York days: counted from the raw events, still exact.
    utc_march = (utc(2026, 3, 1), utc(2026, 4, 1))
    assert list(distinct_values(customer=customer, metric=m, start=utc_march[0], end=utc_march[1])) == [
        "feb-late",
        "march-first",
    ]
    assert unique_count(customer=customer, metric=m, start=utc_march[0], end=utc_march[1]) == 2


def test_unique_count_in_a_non_utc_zone_matches_raw_count_across_dst_switches() -> None:
    tz = "Europe/Paris"
    customer = CustomerFactory(timezone=tz)
    m = metric(Aggregation.UNIQUE_COUNT)
    _random_events(customer, m, seed=11, n=2_000, start=utc(2026, 3, 20), days=230)  # March and October DST
    zone = ZoneInfo(tz)
    windows = [
        (date(2026, 3, 1), date(2026, 4, 1), None),
        (date(2026, 3, 25), date(2026, 4, 3), None),
        (date(2026, 10, 1), date(2026, 11, 1), (date(2026, 10, 20), date(2026, 10, 27))),
        (date(2026, 10, 24), date(2026, 10, 27), None),
    ]
    for first, stop, skip in windows:
        start, end = _day(first, tz), _day(stop, tz)
        assert start.astimezone(zone).hour == 0
        exclude = None if skip is None else (_day(skip[0], tz), _day(skip[1], tz))
        expected = raw_distinct(customer, m, start, end, exclude=exclude)
        assert unique_count(customer=customer, metric=m, start=start, end=end, exclude=exclude) == expected, first


def test_exclude_covering_the_whole_window_counts_nothing() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    users(customer, m, [(utc(2026, 9, 2), "a"), (utc(2026, 9, 20), "b")])
    everything = (utc(2026, 8, 1), utc(2026, 11, 1))
    assert unique_count(customer=customer, metric=m, start=START, end=END, exclude=everything) == 0
    assert list(distinct_values(customer=customer, metric=m, start=START, end=END, exclude=everything)) == []


def test_unique_count_aggregate_reports_the_events_in_the_window() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    users(customer, m, [(utc(2026, 9, 2), "a"), (utc(2026, 9, 3), "a"), (utc(2026, 9, 20), "b")])
    usage = aggregate(customer=customer, metric=m, start=START, end=END, exclude=(utc(2026, 9, 1), utc(2026, 9, 15)))
    assert (usage.quantity, usage.events_count) == (D(1), 1)


def raw_count(customer: Customer, m: BillableMetric, start: datetime, end: datetime, exclude: Any = None) -> int:
    events = Event.objects.filter(customer=customer, metric=m, timestamp__gte=start, timestamp__lt=end)
    if exclude is not None:
        events = events.exclude(timestamp__gte=exclude[0], timestamp__lt=exclude[1])
    return events.count()


@pytest.mark.parametrize(("window", "exclude"), [(w, x) for _, w, x in WINDOWS], ids=[name for name, _, _ in WINDOWS])
def test_events_count_from_daily_counts_equals_raw_count(
    window: tuple[datetime, datetime], exclude: tuple[datetime, datetime] | None
) -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    counted = metric(Aggregation.COUNT)
    _random_events(customer, m, seed=5, n=1_200, start=utc(2026, 8, 20), days=80)
    rng = random.Random(6)
    stamps = [utc(2026, 8, 20) + timedelta(seconds=rng.randrange(80 * 86_400)) for _ in range(700)]
    ingest(customer, counted, [(ts, {}) for ts in stamps])
    for each in (m, counted):
        expected = raw_count(customer, each, *window, exclude=exclude)
        assert expected > 0
        assert events_count(customer=customer, metric=each, start=window[0], end=window[1], exclude=exclude) == expected
        usage = aggregate(customer=customer, metric=each, start=window[0], end=window[1], exclude=exclude)
        assert usage.events_count == expected
    usage = aggregate(customer=customer, metric=counted, start=window[0], end=window[1], exclude=exclude)
    assert usage.quantity == D(raw_count(customer, counted, *window, exclude=exclude))


def test_daily_counts_follow_local_days_across_dst_switches() -> None:
    tz = "Europe/Paris"
    customer = CustomerFactory(timezone=tz)
    m = metric(Aggregation.UNIQUE_COUNT)
    _random_events(customer, m, seed=12, n=1_500, start=utc(2026, 3, 20), days=230)
    assert EventCount.objects.filter(customer=customer).aggregate(n=Sum("count"))["n"] == 1_500
    for first, stop in [(date(2026, 3, 1), date(2026, 4, 1)), (date(2026, 10, 24), date(2026, 10, 27))]:
        start, end = _day(first, tz), _day(stop, tz)
        expected = raw_count(customer, m, start, end)
        assert events_count(customer=customer, metric=m, start=start, end=end) == expected, first


def test_resent_and_late_events_are_counted_once() -> None:
    customer = CustomerFactory()
    m = metric(Aggregation.COUNT)
    rows = [(utc(2026, 9, 2, 10), {}), (utc(2026, 9, 2, 11), {}), (utc(2026, 9, 3), {})]
    owner = Owner(customer.pk, customer.timezone, customer.external_id)
    events = [
        ValidEvent(owner, m, f"again-{i}", ts, props, None, None, payload_hash(m.code, ts.isoformat(), props))
        for i, (ts, props) in enumerate(rows)
    ]
    store_events(events, received_at=utc(2026, 10, 1))
    store_events(events[1:] + events[:1], received_at=utc(2026, 10, 2))  # a retry: nothing new
    store_events([events[0], events[0]], received_at=utc(2026, 10, 3))  # the same event twice in a batch
    assert dict(EventCount.objects.filter(customer=customer).values_list("day", "count")) == {
        date(2026, 9, 2): 2,
        date(2026, 9, 3): 1,
    }
    assert aggregate(customer=customer, metric=m, start=START, end=END).quantity == D(3)


def test_migration_counts_the_events_stored_before_it() -> None:
    backfill = importlib.import_module("metering.migrations.0005_event_counts").backfill
    paris, utc_customer = CustomerFactory(timezone="Europe/Paris"), CustomerFactory()
    m = metric(Aggregation.UNIQUE_COUNT)
    for customer in (paris, utc_customer):
        _random_events(customer, m, seed=3, n=600, start=utc(2026, 9, 25), days=40)
    maintained = sorted(EventCount.objects.values_list("customer_id", "metric_id", "day", "count"))
    EventCount.objects.all().delete()
    backfill(django_apps, SimpleNamespace(connection=connection))
    assert sorted(EventCount.objects.values_list("customer_id", "metric_id", "day", "count")) == maintained

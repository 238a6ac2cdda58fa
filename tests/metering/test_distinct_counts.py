"""The maintained sizes of the unique_count sets (DistinctCount): always COUNT(*) of the set's
rows, whatever the batches (retries, repeated values, several months and time zones, single
events and grouped batches) and however many writers race (PostgreSQL); read by unique_count
for a window of one whole local month, and only then."""

from __future__ import annotations

import importlib
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from customers.models import Customer
from metering.ingest import store_events
from metering.models import BillableMetric, DistinctCount, DistinctValue
from metering.selectors import unique_count
from metering.validation import Owner, ValidEvent
from tests.conftest import using_postgres
from tests.factories import BillableMetricFactory, CustomerFactory
from tests.helpers import run_concurrently

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 10, 2, tzinfo=UTC)
SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


def owner_of(customer: Customer) -> Owner:
    return Owner(customer.pk, customer.timezone, customer.external_id)


def event(owner: Owner, metric: BillableMetric, txid: str, user: str, when: datetime) -> ValidEvent:
    return ValidEvent(
        owner=owner,
        metric=metric,
        transaction_id=txid,
        timestamp=when,
        properties={"user_id": user},
        value=None,
        distinct=user,
        payload_hash=f"{txid}-{user}-{when.isoformat()}",
    )


def counts() -> dict[tuple[int, int, int], int]:
    return {
        (c, m, month): n
        for c, m, month, n in DistinctCount.objects.values_list("customer_id", "metric_id", "month", "count")
    }


def set_sizes() -> dict[tuple[int, int, int], int]:
    rows = DistinctValue.objects.values_list("customer_id", "metric_id", "month").annotate(n=Count("*")).order_by()
    return {(c, m, month): n for c, m, month, n in rows}


def test_the_counts_equal_the_sets_after_random_batches() -> None:
    rng = random.Random(20_261_201)
    metrics = [BillableMetricFactory(code="mtu"), BillableMetricFactory(code="seats")]
    # Around the turn of September to October: the same instant is in another month in Tokyo
    # than in New York, so one batch adds to several months of several customers.
    owners = [
        owner_of(CustomerFactory(external_id=name, timezone=tz))
        for name, tz in (("utc", "UTC"), ("tokyo", "Asia/Tokyo"), ("nyc", "America/New_York"))
    ]
    moments = [SEPTEMBER + timedelta(days=29, hours=h) for h in range(0, 48, 5)] + [SEPTEMBER + timedelta(days=3)]
    sent: list[ValidEvent] = []
    for n in range(40):
        size = rng.choice([1, 1, 3, 20, 60])  # single events, small batches, grouped ones (≥ 16, shared moments)
        batch = []
        for i in range(size):
            if sent and rng.random() < 0.2:  # a retry of an event stored before
                batch.append(rng.choice(sent))
                continue
            owner, metric = rng.choice(owners), rng.choice(metrics)
            ev = event(owner, metric, f"b{n}-{i}", f"user-{rng.randrange(30)}", rng.choice(moments))
            batch.append(ev)
        if rng.random() < 0.3:
            batch.append(batch[0])  # the same event twice in one batch
        store_events(batch, received_at=NOW)
        sent.extend(batch)

        assert counts() == set_sizes()
    assert len(counts()) > 6  # several customers, metrics and months were counted


def test_a_value_seen_again_on_another_day_is_not_counted_again() -> None:
    metric = BillableMetricFactory(code="mtu")
    acme = owner_of(CustomerFactory(external_id="acme", timezone="UTC"))
    store_events([event(acme, metric, "t-1", "u1", SEPTEMBER)], received_at=NOW)
    store_events([event(acme, metric, "t-2", "u1", SEPTEMBER + timedelta(days=1))], received_at=NOW)
    store_events([event(acme, metric, "t-3", "u2", SEPTEMBER + timedelta(days=1))], received_at=NOW)
    store_events([event(acme, metric, "t-3", "u2", SEPTEMBER + timedelta(days=1))], received_at=NOW)  # a retry

    assert counts() == {(acme.customer_id, metric.pk, 202609): 2}
    assert DistinctValue.objects.get(value="u1").days == 0b11


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not using_postgres(), reason="concurrent writers need PostgreSQL (SQLite has one writer)")
def test_concurrent_batches_of_the_same_new_values_count_each_once() -> None:
    metric = BillableMetricFactory(code="mtu")
    customer = CustomerFactory(external_id="acme", timezone="UTC")
    acme = owner_of(customer)
    writers = 6
    for attempt in range(5):
        # Every writer sends new values, most of them also sent by the others at the same time
        # (each with transaction ids of its own, so every event is stored): single events and
        # batches, so both forms of the statement race.
        rng = random.Random(attempt)
        values = [f"user-{attempt}-{i}" for i in range(300)]

        def writer(w: int, values: list[str] = values, attempt: int = attempt, rng: random.Random = rng) -> None:
            mine = rng.sample(values, 200)
            when = SEPTEMBER + timedelta(days=w % 3)
            if w % 3 == 0:
                for i, user in enumerate(mine[:30]):
                    store_events([event(acme, metric, f"a{attempt}-w{w}-{i}", user, when)], received_at=NOW)
            else:
                batch = [event(acme, metric, f"a{attempt}-w{w}-{i}", user, when) for i, user in enumerate(mine)]
                store_events(batch, received_at=NOW)

        run_concurrently([lambda w=w: writer(w) for w in range(writers)])

        assert counts() == set_sizes()
    assert counts()[(customer.pk, metric.pk, 202609)] == DistinctValue.objects.count()


def test_unique_count_of_a_whole_month_reads_the_count_and_other_windows_count_rows() -> None:
    metric = BillableMetricFactory(code="mtu", aggregation="unique_count", field="user_id")
    customer = CustomerFactory(external_id="acme", timezone="UTC")
    acme = owner_of(customer)
    store_events(
        [
            event(acme, metric, "t-1", "u1", SEPTEMBER),
            event(acme, metric, "t-2", "u2", SEPTEMBER + timedelta(days=10)),
            event(acme, metric, "t-3", "u3", OCTOBER),
        ],
        received_at=NOW,
    )

    def counted(start: datetime, end: datetime, exclude: tuple[datetime, datetime] | None = None) -> tuple[int, bool]:
        with CaptureQueriesContext(connection) as captured:
            n = unique_count(customer=customer, metric=metric, start=start, end=end, exclude=exclude)
        return n, any("metering_distinctcount" in q["sql"] for q in captured.captured_queries)

    assert counted(SEPTEMBER, OCTOBER) == (2, True)
    assert counted(SEPTEMBER, OCTOBER + timedelta(days=31)) == (3, False)  # two months: distinct values
    assert counted(SEPTEMBER + timedelta(days=1), OCTOBER) == (1, False)  # part of a month: its days
    assert counted(SEPTEMBER, OCTOBER, exclude=(SEPTEMBER, SEPTEMBER + timedelta(days=1))) == (1, False)
    assert counted(OCTOBER + timedelta(days=31), OCTOBER + timedelta(days=61)) == (0, True)  # no set yet


def test_the_migration_counts_the_sets_that_exist() -> None:
    migration = importlib.import_module("metering.migrations.0007_distinct_counts")
    metric = BillableMetricFactory(code="mtu")
    acme = owner_of(CustomerFactory(external_id="acme", timezone="UTC"))
    store_events(
        [event(acme, metric, f"t-{i}", f"u{i % 7}", SEPTEMBER + timedelta(days=i % 40)) for i in range(50)],
        received_at=NOW,
    )
    expected = counts()
    DistinctCount.objects.all().delete()

    with connection.cursor() as cursor:
        cursor.execute(migration.BACKFILL)

    assert counts() == expected == set_sizes()
    assert Counter(expected.values()) == Counter({7: 2})

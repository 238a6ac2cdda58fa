"""A batch spanning several customers (metering.ingest): on PostgreSQL it is one statement per
customer, so a conflict in one customer's part must still take back every other customer's.
Runs on both databases: SQLite's portable path keeps the same promises."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from customers.models import Customer
from metering.ingest import EventConflict, store_events
from metering.models import BillableMetric, DistinctValue, Event, EventCount, EventKey
from metering.validation import Owner, ValidEvent
from tests.factories import BillableMetricFactory, CustomerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 9, 20, 12, tzinfo=UTC)


def owner_of(customer: Customer, subscription: str = "") -> Owner:
    return Owner(customer.pk, customer.timezone, customer.external_id, subscription)


def event(owner: Owner, metric: BillableMetric, txid: str, user: str, *, when: datetime = NOW) -> ValidEvent:
    return ValidEvent(
        owner=owner,
        metric=metric,
        transaction_id=txid,
        timestamp=when,
        properties={"user_id": user},
        value=None,
        distinct=user,
        payload_hash=f"{txid}-{user}",
    )


def test_a_batch_of_several_customers_is_stored_for_each_in_order() -> None:
    metric = BillableMetricFactory(code="mtu")
    acme = owner_of(CustomerFactory(external_id="acme", timezone="UTC"), "acme-sub")
    # 23:30 UTC on the 20th is the 21st in Tokyo: each customer's day is its own.
    globex = owner_of(CustomerFactory(external_id="globex", timezone="Asia/Tokyo"))
    late = datetime(2026, 9, 20, 23, 30, tzinfo=UTC)
    batch = [
        event(globex, metric, "t-1", "u1", when=late),
        event(acme, metric, "t-1", "u1", when=late),
        event(acme, metric, "t-2", "u2"),
        event(globex, metric, "t-2", "u1", when=late),
    ]

    stored = store_events(batch, received_at=NOW)

    assert [(s.customer_id, s.transaction_id) for s in stored] == [
        (globex.customer_id, "t-1"),
        (acme.customer_id, "t-1"),
        (acme.customer_id, "t-2"),
        (globex.customer_id, "t-2"),
    ]
    assert [s.external_subscription_id for s in stored] == ["", "acme-sub", "acme-sub", ""]
    assert len({s.pk for s in stored}) == 4
    assert Event.objects.count() == 4
    counts = set(EventCount.objects.values_list("customer_id", "day", "count"))
    assert counts == {(acme.customer_id, date(2026, 9, 20), 2), (globex.customer_id, date(2026, 9, 21), 2)}
    sets = set(DistinctValue.objects.values_list("customer_id", "month", "value", "days"))
    assert sets == {
        (acme.customer_id, 202609, "u1", 1 << 19),
        (acme.customer_id, 202609, "u2", 1 << 19),
        (globex.customer_id, 202609, "u1", 1 << 20),
    }

    # Sent again: the same rows, nothing added.
    again = store_events(batch, received_at=NOW)
    assert [s.pk for s in again] == [s.pk for s in stored]
    assert Event.objects.count() == 4
    assert sum(EventCount.objects.values_list("count", flat=True)) == 4


def test_a_conflict_in_one_customers_part_stores_nothing_for_any_customer() -> None:
    metric = BillableMetricFactory(code="mtu")
    acme = owner_of(CustomerFactory(external_id="acme"))
    globex = owner_of(CustomerFactory(external_id="globex"))
    store_events([event(globex, metric, "used", "u1")], received_at=NOW)

    batch = [
        event(acme, metric, "a-1", "u7"),
        event(acme, metric, "a-2", "u8"),
        event(globex, metric, "g-1", "u9"),
        event(globex, metric, "used", "someone else"),  # the id globex already used, another payload
    ]
    with pytest.raises(EventConflict) as raised:
        store_events(batch, received_at=NOW)

    assert raised.value.indexes == [3]
    assert raised.value.transaction_ids == ["used"]
    assert set(EventKey.objects.values_list("customer_id", "transaction_id")) == {(globex.customer_id, "used")}
    assert list(Event.objects.values_list("transaction_id", flat=True)) == ["used"]
    assert set(DistinctValue.objects.values_list("value", flat=True)) == {"u1"}
    assert list(EventCount.objects.values_list("customer_id", "count")) == [(globex.customer_id, 1)]


def test_values_late_flags_and_subscriptions_are_stored_as_sent() -> None:
    """The rows leave out their defaults (no value, not late, no subscription): each read back as sent."""
    metric = BillableMetricFactory(code="gb", aggregation="sum", field="gb")
    acme = CustomerFactory(external_id="acme")
    plain = ValidEvent(
        owner=owner_of(acme),
        metric=metric,
        transaction_id="plain",
        timestamp=NOW,
        properties={"gb": 2},
        value=Decimal("2"),
        distinct=None,
        payload_hash="plain",
    )
    flagged = ValidEvent(
        owner=owner_of(acme, "acme-sub"),
        metric=metric,
        transaction_id="flagged",
        timestamp=NOW,
        properties={"gb": "0.0000000001", "huge": 2**70},
        value=Decimal("0.0000000001"),
        distinct=None,
        payload_hash="flagged",
        is_late=True,
    )

    store_events([plain, flagged], received_at=NOW)

    rows = {e.transaction_id: e for e in Event.objects.all()}
    assert (rows["plain"].value, rows["plain"].is_late, rows["plain"].external_subscription_id) == (
        Decimal("2"),
        False,
        "",
    )
    assert (rows["flagged"].value, rows["flagged"].is_late, rows["flagged"].external_subscription_id) == (
        Decimal("0.0000000001"),
        True,
        "acme-sub",
    )
    assert rows["flagged"].properties == {"gb": "0.0000000001", "huge": 2**70}
    assert not DistinctValue.objects.exists()

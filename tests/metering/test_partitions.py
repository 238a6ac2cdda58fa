"""Events are partitioned by month on PostgreSQL; idempotency holds across partitions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.utils import timezone

from metering.ingest import EventConflict, store_events
from metering.models import Event
from metering.partitions import ensure_event_partitions, existing_partitions, is_partitioned, partition_name
from metering.validation import Owner, ValidEvent
from tests.conftest import using_postgres
from tests.factories import BillableMetricFactory, CustomerFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not using_postgres(), reason="declarative partitioning exists on PostgreSQL only"),
]


def event(owner: Owner, metric: object, txid: str, when: datetime, user: str = "u1") -> ValidEvent:
    return ValidEvent(
        owner=owner,
        metric=metric,
        transaction_id=txid,
        timestamp=when,  # type: ignore[arg-type]
        properties={"user_id": user},
        value=None,
        distinct=user,
        payload_hash=f"{txid}-{when}-{user}",
    )


def partition_of(event_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM metering_event WHERE id = %s", [event_id])
        return cursor.fetchone()[0]


def test_events_land_in_their_months_partition() -> None:
    assert is_partitioned()
    customer = CustomerFactory()
    owner = Owner(customer.pk, "UTC", customer.external_id)
    metric = BillableMetricFactory()
    now = timezone.now()
    this_month = date(now.year, now.month, 1)
    [row] = store_events([event(owner, metric, "a", now)], received_at=now)
    assert partition_of(row.pk) == partition_name(this_month)
    [old] = store_events([event(owner, metric, "b", datetime(2001, 1, 5, tzinfo=UTC))], received_at=now)
    assert partition_of(old.pk) == "metering_event_default"


def test_creating_a_month_moves_its_rows_out_of_the_default_partition() -> None:
    customer = CustomerFactory()
    owner = Owner(customer.pk, "UTC", customer.external_id)
    metric = BillableMetricFactory()
    [row] = store_events([event(owner, metric, "x", datetime(2001, 3, 9, tzinfo=UTC))], received_at=timezone.now())
    created = ensure_event_partitions(around=date(2001, 3, 1), months_before=0, months_after=0)
    assert created == ["metering_event_y2001m03"]
    assert "metering_event_y2001m03" in existing_partitions()
    assert partition_of(row.pk) == "metering_event_y2001m03"
    assert ensure_event_partitions(around=date(2001, 3, 1), months_before=0, months_after=0) == []


def test_a_transaction_id_is_stored_once_across_partitions() -> None:
    customer = CustomerFactory()
    owner = Owner(customer.pk, "UTC", customer.external_id)
    metric = BillableMetricFactory()
    now = timezone.now()
    first = event(owner, metric, "same", now)
    store_events([first], received_at=now)
    store_events([first], received_at=now)  # a retry: nothing new
    assert Event.objects.filter(transaction_id="same").count() == 1
    with pytest.raises(EventConflict):  # the same id in another month's partition is a different event
        store_events([event(owner, metric, "same", datetime(2001, 1, 1, tzinfo=UTC))], received_at=now)
    assert Event.objects.filter(transaction_id="same").count() == 1

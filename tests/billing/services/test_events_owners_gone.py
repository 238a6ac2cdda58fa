"""A customer or metric deleted while its events are being stored (metering.ingest_postgresql).

The storing statement checks the events' customer and metrics, and locks them against deletion
until the commit, once for the whole statement (foreign-key constraints on the keys used to,
once for each row). Deleted between validation and storage, the events are refused with
validation's own messages and nothing is stored; a deletion that comes while they are being
stored waits for them, then finds them (metric_destroy refuses a metric with events).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, connections, transaction

from billing.selectors.event_owners import event_refs
from billing.services.catalog import CatalogError, metric_destroy
from billing.services.events import EventsInvalid, events_ingest
from customers.models import Customer
from metering.models import BillableMetric, DistinctCount, DistinctValue, Event, EventCount, EventKey
from tests.conftest import using_postgres
from tests.factories import BillableMetricFactory, CustomerFactory

NOW = datetime(2026, 10, 15, 12, tzinfo=UTC)


def payload(tx: str, code: str = "mtu", customer: str = "acme") -> dict[str, Any]:
    return {"transaction_id": tx, "external_customer_id": customer, "code": code, "properties": {"user_id": tx}}


def nothing_stored() -> bool:
    return not any(m.objects.exists() for m in (Event, EventKey, EventCount, DistinctValue, DistinctCount))


@pytest.fixture
def world() -> None:
    CustomerFactory(external_id="acme")
    BillableMetricFactory(code="mtu", aggregation="unique_count", field="user_id")
    BillableMetricFactory(code="api_calls", aggregation="count", field="")


@pytest.mark.django_db
@pytest.mark.parametrize("size", [1, 3])
def test_a_metric_deleted_after_validation_refuses_its_events_and_stores_nothing(world: None, size: int) -> None:
    payloads = [payload(f"t-{i}") for i in range(size)]
    refs = event_refs(payloads)  # read before the deletion, as the API reads them with the key
    metric_destroy(metric=BillableMetric.objects.get(code="mtu"))
    with pytest.raises(EventsInvalid) as refused:
        events_ingest(payloads=payloads, now=NOW, refs=refs)
    assert refused.value.errors == {str(i): {"code": ["unknown billable metric code 'mtu'"]} for i in range(size)}
    assert nothing_stored()


@pytest.mark.django_db
def test_a_batch_with_one_deleted_metric_is_refused_whole(world: None) -> None:
    payloads = [payload("t-0", "api_calls"), payload("t-1"), payload("t-2", "api_calls")]
    refs = event_refs(payloads)
    metric_destroy(metric=BillableMetric.objects.get(code="mtu"))
    with pytest.raises(EventsInvalid) as refused:
        events_ingest(payloads=payloads, now=NOW, refs=refs)
    assert refused.value.errors == {"1": {"code": ["unknown billable metric code 'mtu'"]}}
    assert nothing_stored()  # the api_calls events too: a batch is stored whole or not at all


@pytest.mark.django_db
@pytest.mark.parametrize("size", [1, 2])
def test_a_customer_deleted_after_validation_refuses_its_events(world: None, size: int) -> None:
    payloads = [payload(f"t-{i}") for i in range(size)]
    refs = event_refs(payloads)
    Customer.objects.filter(external_id="acme").update(deleted_at=NOW)  # customer_destroy's soft delete
    with pytest.raises(EventsInvalid) as refused:
        events_ingest(payloads=payloads, now=NOW, refs=refs)
    assert refused.value.errors == {str(i): {"external_customer_id": ["unknown customer 'acme'"]} for i in range(size)}
    assert nothing_stored()


# --- at the same time, on PostgreSQL -------------------------------------------------------------

on_postgresql = pytest.mark.skipif(not using_postgres(), reason="row locks are tested on PostgreSQL (DESIGN §5)")


def waiting_for_a_lock(thread: threading.Thread) -> bool:
    """Whether another backend of this database waits for a lock (the thread's), within 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and thread.is_alive():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            if row and row[0]:
                return True
        time.sleep(0.02)
    return False


def in_thread(task: Callable[[], Any], outcome: dict[str, Any]) -> threading.Thread:
    """Run task in a thread of its own (its own connection); its result or error into outcome."""

    def run() -> None:
        try:
            outcome["result"] = task()
        except Exception as exc:  # reported to the test through outcome
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def race(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """first() in a transaction kept open (its locks held) while second() starts and must wait
    for a lock; then first commits. Their outcomes (result or error), in that order."""
    held, release = threading.Event(), threading.Event()

    def holding() -> Any:
        with transaction.atomic():
            result = first()
            held.set()
            assert release.wait(30)
            return result

    one: dict[str, Any] = {}
    two: dict[str, Any] = {}
    first_thread = in_thread(holding, one)
    assert held.wait(30)
    second_thread = in_thread(second, two)
    waited = waiting_for_a_lock(second_thread)
    release.set()
    first_thread.join(30)
    second_thread.join(30)
    assert waited, "the second did not wait for the first's locks"
    return one, two


def destroy_mtu() -> None:
    metric_destroy(metric=BillableMetric.objects.get(code="mtu"))


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [1, 3])
def test_events_stored_while_their_metric_is_being_deleted_wait_then_are_refused(world: None, size: int) -> None:
    payloads = [payload(f"t-{i}") for i in range(size)]
    refs = event_refs(payloads)
    deletion, ingestion = race(destroy_mtu, lambda: events_ingest(payloads=payloads, now=datetime.now(UTC), refs=refs))
    assert "error" not in deletion
    assert isinstance(ingestion.get("error"), EventsInvalid)
    assert ingestion["error"].errors["0"] == {"code": ["unknown billable metric code 'mtu'"]}
    assert nothing_stored()
    assert not BillableMetric.objects.filter(code="mtu").exists()


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [1, 3])
def test_a_metric_deleted_while_its_first_events_are_stored_waits_then_is_refused(world: None, size: int) -> None:
    payloads = [payload(f"t-{i}") for i in range(size)]
    ingestion, deletion = race(lambda: events_ingest(payloads=payloads, now=datetime.now(UTC)), destroy_mtu)
    assert "error" not in ingestion
    assert isinstance(deletion.get("error"), CatalogError)
    assert EventKey.objects.count() == Event.objects.count() == size
    assert BillableMetric.objects.filter(code="mtu").exists()

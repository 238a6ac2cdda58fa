"""POST /api/v1/events reads the API key, the event's owner and its metric in one statement
(billing.selectors.event_owners.key_and_event_refs), prepared on PostgreSQL; nothing it reads
is cached, so a revoked key, a new or changed metric and a new customer count from the next
request on. POST /api/v1/events/batch reads the key with every owner and metric its events name
the same way (one round trip instead of three). The endpoints' behaviour itself is
tests/billing/api/test_events.py's; here, that the shorter path reads what it must, and refuses
what it must.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from billing.api.events import BATCH_TOO_LARGE
from billing.selectors.event_owners import UNKNOWN_CUSTOMER, event_refs, key_and_event_refs
from customers.authentication import INVALID_KEY, find_active_key
from customers.models import ApiKey, Customer, hash_api_key
from customers.services import api_key_create, api_key_revoke
from metering.models import BillableMetric, Event
from metering.validation import PROPERTY_REQUIRED, UNKNOWN_METRIC
from tests.conftest import using_postgres
from tests.factories import BillableMetricFactory, CustomerFactory, SubscriptionFactory, team_plan
from tests.helpers import errors

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
READ_TABLES = ("customers_apikey", "customers_customer", "metering_billablemetric", "billing_subscription")

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def customer() -> Customer:
    BillableMetricFactory()  # mtu: unique_count of user_id
    BillableMetricFactory(code="storage", name="Storage", aggregation="sum", field="gb")
    return CustomerFactory(external_id="acme")


@pytest.fixture
def keyed() -> tuple[APIClient, ApiKey]:
    key, raw = api_key_create(name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client, key


def event(tx: str, **overrides: Any) -> dict[str, Any]:
    return {
        "transaction_id": tx,
        "external_customer_id": "acme",
        "code": "storage",
        "timestamp": NOW_TS - 60,
        "properties": {"gb": 3},
        **overrides,
    }


def lookups(captured: CaptureQueriesContext) -> list[str]:
    """The statements that read the key, owners or metrics before the events are stored: storage
    checks the customer and metrics again, under lock, as it writes (metering.ingest), and reads
    nothing else the request needs."""
    sql = [q["sql"] for q in captured.captured_queries]
    storing = next((i for i, text in enumerate(sql) if "INSERT INTO metering_eventkey" in text), len(sql))
    return [text for text in sql[:storing] if any(t in text for t in READ_TABLES)]


def post_event(api: APIClient, body: dict[str, Any]) -> Any:
    return api.post("/api/v1/events", {"event": body}, format="json")


def test_one_statement_reads_the_key_the_owner_and_the_metric(
    keyed: tuple[APIClient, ApiKey], customer: Customer
) -> None:
    api, key = keyed
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())  # no last-used write this minute
    with CaptureQueriesContext(connection) as captured:
        assert post_event(api, event("tx-1")).status_code == 200
    reads = lookups(captured)
    assert len(reads) == 1, reads
    assert all(table in reads[0] for table in ("customers_apikey", "customers_customer", "metering_billablemetric"))


def test_the_read_gives_what_separate_reads_give(customer: Customer) -> None:
    SubscriptionFactory(
        customer=customer, plan=team_plan(), external_id="acme-team", subscription_at=NOW - timedelta(days=60)
    )
    CustomerFactory(external_id="globex")
    _, raw = api_key_create(name="tests")
    payloads: list[Any] = [
        event("a"),
        event("b", external_customer_id=None, external_subscription_id="acme-team", code="mtu"),
        event("c", external_customer_id="globex", code="nope"),
        event("d", external_customer_id="initech"),
        "not an event",
    ]
    key, refs = key_and_event_refs(key_hash=hash_api_key(raw), payloads=payloads)
    separate = event_refs(payloads)
    assert key == find_active_key(hash_api_key(raw))
    assert refs.metrics.keys() == separate.metrics.keys() == {"storage", "mtu"}
    for code, metric in refs.metrics.items():
        other = separate.metrics[code]
        assert (metric.pk, metric.aggregation, metric.field) == (other.pk, other.aggregation, other.field)
    for customer_ref, subscription_ref in [
        ("acme", None),
        (None, "acme-team"),
        ("globex", "acme-team"),
        ("initech", None),
    ]:
        assert refs.owners.resolve(customer_ref, subscription_ref) == separate.owners.resolve(
            customer_ref, subscription_ref
        )
    assert refs.owners.active_subscription == separate.owners.active_subscription == {customer.pk: "acme-team"}
    assert refs.owners.closed_until == separate.owners.closed_until


def test_without_a_valid_key_nothing_is_returned(customer: Customer) -> None:
    key, refs = key_and_event_refs(key_hash=hash_api_key("not-a-key"), payloads=[event("a")])
    assert key is None
    assert refs.metrics == {}
    assert refs.owners.resolve("acme", None)[0] is None


def test_a_key_revoked_after_use_is_refused_at_once(keyed: tuple[APIClient, ApiKey], customer: Customer) -> None:
    api, key = keyed
    assert post_event(api, event("tx-1")).status_code == 200
    api_key_revoke(key=key)
    response = post_event(api, event("tx-2"))
    assert response.status_code == 401
    assert response.json()["message"] == INVALID_KEY


def test_a_new_metric_is_accepted_at_once(api: APIClient, customer: Customer) -> None:
    response = post_event(api, event("tx-1", code="calls", properties={}))
    assert errors(response)["code"][0] == UNKNOWN_METRIC.format(code="calls")
    BillableMetricFactory(code="calls", name="Calls", aggregation="count", field="")
    assert post_event(api, event("tx-1", code="calls", properties={})).status_code == 200


def test_a_changed_metric_counts_from_the_next_event(api: APIClient, customer: Customer) -> None:
    assert post_event(api, event("tx-1")).status_code == 200
    BillableMetric.objects.filter(code="storage").update(field="size")
    response = post_event(api, event("tx-2"))
    assert errors(response)["properties.size"][0] == PROPERTY_REQUIRED.format(code="storage")


def test_a_new_customer_is_known_at_once(api: APIClient, customer: Customer) -> None:
    response = post_event(api, event("tx-1", external_customer_id="globex"))
    assert errors(response)["external_customer_id"][0] == UNKNOWN_CUSTOMER.format(ref="globex")
    CustomerFactory(external_id="globex")
    assert post_event(api, event("tx-1", external_customer_id="globex")).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b'{"event": {"transaction_id": "a\\u0000b"}}', 422)],
    ids=["unparsable", "nul"],
)
def test_a_bad_body_is_refused_after_the_key_is_checked(customer: Customer, body: bytes, status: int) -> None:
    """The body is parsed while authenticating (to read the owner with the key): without a
    valid key the answer is still 401, with one it is the body's error, as on other endpoints."""
    anonymous = APIClient()
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-key")
    assert anonymous.post("/api/v1/events", body, content_type="application/json").status_code == 401
    _, raw = api_key_create(name="tests")
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    on_events = anonymous.post("/api/v1/events", body, content_type="application/json")
    on_batch = anonymous.post("/api/v1/events/batch", body, content_type="application/json")
    assert on_events.status_code == on_batch.status_code == status
    assert on_events.json()["code"] == on_batch.json()["code"]


@pytest.mark.skipif(not using_postgres(), reason="prepared statements are PostgreSQL's")
def test_the_read_is_prepared_once_per_connection_on_postgresql(api: APIClient, customer: Customer) -> None:
    for i in range(7):  # psycopg prepares a statement on its fifth run (prepare_threshold)
        assert post_event(api, event(f"tx-{i}")).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements "
            "WHERE statement LIKE '%%customers_apikey%%' AND statement LIKE '%%metering_billablemetric%%'"
        )
        row = cursor.fetchone()
    assert row is not None and row[0] >= 1  # earlier tests on this connection may have prepared other shapes


def post_batch(api: APIClient, events: Any) -> Any:
    return api.post("/api/v1/events/batch", {"events": events}, format="json")


def test_one_statement_reads_the_key_and_every_owner_and_metric(
    keyed: tuple[APIClient, ApiKey], customer: Customer
) -> None:
    api, key = keyed
    CustomerFactory(external_id="globex")
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())  # no last-used write this minute
    events = [
        event("tx-1"),
        event("tx-2", code="mtu", properties={"user_id": "u1"}),
        event("tx-3", external_customer_id="globex"),
    ]
    with CaptureQueriesContext(connection) as captured:
        response = post_batch(api, events)
    assert response.status_code == 200, response.json()
    reads = lookups(captured)
    assert len(reads) == 1, reads
    assert all(table in reads[0] for table in ("customers_apikey", "customers_customer", "metering_billablemetric"))
    assert [e["external_customer_id"] for e in response.json()["events"]] == ["acme", "acme", "globex"]
    assert Event.objects.count() == 3


def test_unknown_owners_and_metrics_are_still_refused_by_index(
    keyed: tuple[APIClient, ApiKey], customer: Customer
) -> None:
    api, _ = keyed
    response = post_batch(api, [event("tx-1"), event("tx-2", external_customer_id="initech", code="calls")])
    assert response.status_code == 422
    details = response.json()["error_details"]
    assert list(details) == ["1"]
    assert details["1"]["external_customer_id"][0] == UNKNOWN_CUSTOMER.format(ref="initech")
    assert details["1"]["code"][0] == UNKNOWN_METRIC.format(code="calls")
    assert not Event.objects.exists()


def test_a_revoked_key_is_refused_on_the_next_batch(keyed: tuple[APIClient, ApiKey], customer: Customer) -> None:
    api, key = keyed
    assert post_batch(api, [event("tx-1")]).status_code == 200
    api_key_revoke(key=key)
    response = post_batch(api, [event("tx-2")])
    assert response.status_code == 401
    assert response.json()["message"] == INVALID_KEY
    assert Event.objects.count() == 1


@override_settings(BILLING_EVENTS_BATCH_MAX=2)
def test_a_batch_over_the_limit_is_refused_without_reading_its_refs(
    keyed: tuple[APIClient, ApiKey], customer: Customer
) -> None:
    api, key = keyed
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    with CaptureQueriesContext(connection) as captured:
        response = post_batch(api, [event("tx-1"), event("tx-2"), event("tx-3")])
    assert response.status_code == 422
    assert response.json()["error_details"]["events"][0] == BATCH_TOO_LARGE.format(n=2)
    reads = lookups(captured)
    assert len(reads) == 1 and "metering_billablemetric" not in reads[0], reads


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b'{"events": [{"transaction_id": "a\\u0000b"}]}', 422), (b'{"events": {}}', 422)],
    ids=["unparsable", "nul", "not-a-list"],
)
def test_without_a_valid_key_any_batch_is_refused_with_401(customer: Customer, body: bytes, status: int) -> None:
    anonymous = APIClient()
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-key")
    response = anonymous.post("/api/v1/events/batch", body, content_type="application/json")
    assert response.status_code == 401
    _, raw = api_key_create(name="tests")
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anonymous.post("/api/v1/events/batch", body, content_type="application/json").status_code == status

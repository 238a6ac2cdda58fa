"""POST /api/v1/events/batch reads the API key with every owner and metric its events name in one
statement (billing.selectors.event_owners.key_and_event_refs), as POST /api/v1/events does: one
round trip instead of three before storing. What the endpoint answers is tests/billing/api/
test_events.py's; here, that the shorter path reads what it must, and refuses what it must.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from billing.api.events import BATCH_TOO_LARGE
from billing.selectors.event_owners import UNKNOWN_CUSTOMER
from customers.authentication import INVALID_KEY
from customers.models import ApiKey, Customer
from customers.services import api_key_create, api_key_revoke
from metering.models import Event
from metering.validation import UNKNOWN_METRIC
from tests.factories import BillableMetricFactory, CustomerFactory

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
    reads = [q["sql"] for q in captured.captured_queries if any(t in q["sql"] for t in READ_TABLES)]
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
    reads = [q["sql"] for q in captured.captured_queries if any(t in q["sql"] for t in READ_TABLES)]
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

"""POST/GET /api/v1/customers in Lago's envelopes (DESIGN §4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from billing.services.customers import TIMEZONE_LOCKED
from customers.models import Customer
from customers.validators import INVALID_CURRENCY, INVALID_TIMEZONE
from tests.factories import BillableMetricFactory, CustomerFactory
from tests.helpers import errors, post_customer

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]

# Fields lago-python-client 1.55's CustomerResponse requires.
LAGO_CUSTOMER_FIELDS = {"lago_id", "external_id", "applicable_timezone", "created_at"}


def test_post_customer_creates_it_with_lago_field_names(api: APIClient) -> None:
    response = post_customer(
        api, external_id="acme", name="Acme", email="billing@acme.example", currency="EUR", timezone="Europe/Paris"
    )
    assert response.status_code == 200, response.content
    body = response.json()["customer"]
    customer = Customer.objects.get()
    assert set(body) >= LAGO_CUSTOMER_FIELDS
    assert body["lago_id"] == str(customer.pk)
    assert (body["external_id"], body["name"], body["email"]) == ("acme", "Acme", "billing@acme.example")
    assert (body["currency"], body["timezone"], body["applicable_timezone"]) == ("EUR", "Europe/Paris", "Europe/Paris")
    assert body["created_at"] == "2026-10-20T12:00:00Z"
    assert (customer.currency, customer.timezone) == ("EUR", "Europe/Paris")


def test_post_customer_defaults_to_usd_and_utc(api: APIClient) -> None:
    body = post_customer(api, external_id="acme").json()["customer"]
    assert (body["currency"], body["applicable_timezone"]) == ("USD", "UTC")


def test_post_customer_again_updates_the_one_with_that_external_id(api: APIClient) -> None:
    created = post_customer(api, external_id="acme", name="Acme", email="a@acme.example").json()["customer"]
    response = post_customer(api, external_id="acme", name="Acme Corp", timezone="America/New_York")
    assert response.status_code == 200
    updated = response.json()["customer"]
    assert updated["lago_id"] == created["lago_id"]
    assert (updated["name"], updated["applicable_timezone"]) == ("Acme Corp", "America/New_York")
    assert updated["email"] == "a@acme.example"  # absent fields are left as they are
    assert Customer.objects.count() == 1


def test_null_optional_customer_fields_are_left_unchanged(api: APIClient) -> None:
    post_customer(api, external_id="acme", name="Acme", currency="EUR", timezone="Europe/Paris")
    response = post_customer(
        api, external_id="acme", name=None, email=None, currency=None, timezone=None, legal_name=None, country=None
    )
    assert response.status_code == 200, response.content
    body = response.json()["customer"]
    assert (body["name"], body["currency"], body["timezone"]) == ("Acme", "EUR", "Europe/Paris")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("currency", "XYZ", INVALID_CURRENCY.format(value="XYZ")),
        ("timezone", "Mars/Olympus", INVALID_TIMEZONE.format(value="Mars/Olympus")),
        ("email", "not-an-email", None),
    ],
)
def test_invalid_customer_field_is_rejected_naming_the_field(
    api: APIClient, field: str, value: str, message: str | None
) -> None:
    details = errors(post_customer(api, external_id="acme", **{field: value}))
    assert list(details) == [field]
    if message is not None:
        assert details[field] == [message]
    assert not Customer.objects.exists()


def test_customer_without_external_id_is_rejected(api: APIClient) -> None:
    assert "external_id" in errors(post_customer(api, name="Acme"))


def test_timezone_change_is_refused_once_the_customer_has_events(api: APIClient) -> None:
    post_customer(api, external_id="acme", timezone="Europe/Paris")
    BillableMetricFactory()
    event = {"transaction_id": "tx-1", "external_customer_id": "acme", "code": "mtu", "properties": {"user_id": "u"}}
    assert api.post("/api/v1/events", {"event": event}, format="json").status_code == 200
    details = errors(post_customer(api, external_id="acme", timezone="America/New_York"))
    assert details == {"timezone": [TIMEZONE_LOCKED]}
    assert Customer.objects.get().timezone == "Europe/Paris"
    # Sending the same zone again is not a change.
    assert post_customer(api, external_id="acme", timezone="Europe/Paris", name="Acme").status_code == 200


def test_list_customers_is_paginated_like_lago(api: APIClient) -> None:
    for i in range(3):
        CustomerFactory(external_id=f"c{i}")
    body = api.get("/api/v1/customers", {"per_page": 2}).json()
    assert [c["external_id"] for c in body["customers"]] == ["c0", "c1"]
    assert body["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 2,
        "total_count": 3,
    }
    page2 = api.get("/api/v1/customers", {"per_page": 2, "page": 2}).json()
    assert [c["external_id"] for c in page2["customers"]] == ["c2"]


def test_get_customer_by_external_id(api: APIClient) -> None:
    customer = CustomerFactory(external_id="acme", timezone="Europe/Paris")
    response = api.get("/api/v1/customers/acme")
    assert response.status_code == 200
    body = response.json()["customer"]
    assert (body["lago_id"], body["applicable_timezone"]) == (str(customer.pk), "Europe/Paris")
    missing = api.get("/api/v1/customers/nobody")
    assert missing.status_code == 404
    assert missing.json()["code"] == "customer_not_found"


def test_customers_api_requires_a_key() -> None:
    assert APIClient().get("/api/v1/customers").status_code == 401
    assert APIClient().post("/api/v1/customers", {"customer": {"external_id": "x"}}, format="json").status_code == 401

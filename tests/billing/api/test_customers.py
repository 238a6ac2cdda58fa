"""POST/GET /api/v1/customers, POST/GET/DELETE /api/v1/subscriptions in Lago's envelopes (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from billing.api.subscriptions import UNKNOWN_CUSTOMER, UNKNOWN_PLAN
from billing.models import Plan, Subscription, SubscriptionStatus
from billing.services.customers import TIMEZONE_LOCKED
from billing.services.subscriptions import CURRENCY_MISMATCH
from customers.models import Customer
from customers.validators import INVALID_CURRENCY, INVALID_TIMEZONE
from tests.factories import ApiKeyFactory, BillableMetricFactory, CustomerFactory, PromotionFactory, team_plan

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)

# Fields lago-python-client 1.55's CustomerResponse requires.
LAGO_CUSTOMER_FIELDS = {"lago_id", "external_id", "applicable_timezone", "created_at"}


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def client() -> APIClient:
    _, key = ApiKeyFactory.create_with_key()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api


@pytest.fixture
def plan() -> Plan:
    return team_plan(promotion=PromotionFactory(code="trial-14d-base", name="14-day free trial"))


def post_customer(client: APIClient, **fields: Any) -> Any:
    return client.post("/api/v1/customers", {"customer": fields}, format="json")


def post_subscription(client: APIClient, **fields: Any) -> Any:
    return client.post("/api/v1/subscriptions", {"subscription": fields}, format="json")


def errors(response: Any) -> Any:
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "validation_errors"
    return response.json()["error_details"]


# --- customers -----------------------------------------------------------------------------------


def test_post_customer_creates_it_with_lago_field_names(client: APIClient) -> None:
    response = post_customer(
        client, external_id="acme", name="Acme", email="billing@acme.example", currency="EUR", timezone="Europe/Paris"
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


def test_post_customer_defaults_to_usd_and_utc(client: APIClient) -> None:
    body = post_customer(client, external_id="acme").json()["customer"]
    assert (body["currency"], body["applicable_timezone"]) == ("USD", "UTC")


def test_post_customer_again_updates_the_one_with_that_external_id(client: APIClient) -> None:
    created = post_customer(client, external_id="acme", name="Acme", email="a@acme.example").json()["customer"]
    response = post_customer(client, external_id="acme", name="Acme Corp", timezone="America/New_York")
    assert response.status_code == 200
    updated = response.json()["customer"]
    assert updated["lago_id"] == created["lago_id"]
    assert (updated["name"], updated["applicable_timezone"]) == ("Acme Corp", "America/New_York")
    assert updated["email"] == "a@acme.example"  # absent fields are left as they are
    assert Customer.objects.count() == 1


def test_null_optional_customer_fields_are_left_unchanged(client: APIClient) -> None:
    post_customer(client, external_id="acme", name="Acme", currency="EUR", timezone="Europe/Paris")
    response = post_customer(
        client, external_id="acme", name=None, email=None, currency=None, timezone=None, legal_name=None, country=None
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
    client: APIClient, field: str, value: str, message: str | None
) -> None:
    details = errors(post_customer(client, external_id="acme", **{field: value}))
    assert list(details) == [field]
    if message is not None:
        assert details[field] == [message]
    assert not Customer.objects.exists()


def test_customer_without_external_id_is_rejected(client: APIClient) -> None:
    assert "external_id" in errors(post_customer(client, name="Acme"))


def test_timezone_change_is_refused_once_the_customer_has_events(client: APIClient) -> None:
    post_customer(client, external_id="acme", timezone="Europe/Paris")
    BillableMetricFactory()
    event = {"transaction_id": "tx-1", "external_customer_id": "acme", "code": "mtu", "properties": {"user_id": "u"}}
    assert client.post("/api/v1/events", {"event": event}, format="json").status_code == 200
    details = errors(post_customer(client, external_id="acme", timezone="America/New_York"))
    assert details == {"timezone": [TIMEZONE_LOCKED]}
    assert Customer.objects.get().timezone == "Europe/Paris"
    # Sending the same zone again is not a change.
    assert post_customer(client, external_id="acme", timezone="Europe/Paris", name="Acme").status_code == 200


def test_list_customers_is_paginated_like_lago(client: APIClient) -> None:
    for i in range(3):
        CustomerFactory(external_id=f"c{i}")
    body = client.get("/api/v1/customers", {"per_page": 2}).json()
    assert [c["external_id"] for c in body["customers"]] == ["c0", "c1"]
    assert body["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 2,
        "total_count": 3,
    }
    page2 = client.get("/api/v1/customers", {"per_page": 2, "page": 2}).json()
    assert [c["external_id"] for c in page2["customers"]] == ["c2"]


def test_get_customer_by_external_id(client: APIClient) -> None:
    customer = CustomerFactory(external_id="acme", timezone="Europe/Paris")
    response = client.get("/api/v1/customers/acme")
    assert response.status_code == 200
    body = response.json()["customer"]
    assert (body["lago_id"], body["applicable_timezone"]) == (str(customer.pk), "Europe/Paris")
    missing = client.get("/api/v1/customers/nobody")
    assert missing.status_code == 404
    assert missing.json()["code"] == "customer_not_found"


def test_customers_api_requires_a_key() -> None:
    assert APIClient().get("/api/v1/customers").status_code == 401
    assert APIClient().post("/api/v1/customers", {"customer": {"external_id": "x"}}, format="json").status_code == 401


# --- subscriptions -------------------------------------------------------------------------------


def test_post_subscription_attaches_the_plan_promotion(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    response = post_subscription(
        client,
        external_customer_id="acme",
        plan_code="team",
        external_id="acme-team",
        subscription_at="2026-10-01T00:00:00Z",
        billing_time="calendar",
    )
    assert response.status_code == 200, response.content
    body = response.json()["subscription"]
    subscription = Subscription.objects.get()
    assert subscription.promotion == plan.promotion
    assert body["lago_id"] == str(subscription.pk)
    assert (body["external_id"], body["external_customer_id"], body["plan_code"]) == ("acme-team", "acme", "team")
    assert (body["status"], body["billing_time"]) == ("active", "calendar")
    assert body["subscription_at"] == "2026-10-01T00:00:00Z"
    assert body["promotion"] == "trial-14d-base"
    assert body["trial_ended_at"] == "2026-10-15T00:00:00Z"
    assert body["current_billing_period_started_at"] == "2026-10-01T00:00:00Z"
    assert body["current_billing_period_ending_at"] == "2026-11-01T00:00:00Z"
    assert body["terminated_at"] is None


def test_post_subscription_defaults_to_now_and_calendar_billing(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    body = post_subscription(
        client, external_customer_id="acme", plan_code="team", external_id="s1", subscription_at=None, billing_time=None
    ).json()["subscription"]
    assert (body["subscription_at"], body["billing_time"], body["status"]) == (
        "2026-10-20T12:00:00Z",
        "calendar",
        "active",
    )


def test_subscription_in_the_future_is_pending(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    body = post_subscription(
        client, external_customer_id="acme", plan_code="team", external_id="s1", subscription_at="2026-11-01T00:00:00Z"
    ).json()["subscription"]
    assert body["status"] == "pending"
    assert body["started_at"] is None


def test_post_subscription_is_idempotent_for_the_same_external_id_and_plan(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    fields = {"external_customer_id": "acme", "plan_code": "team", "external_id": "acme-team"}
    first = post_subscription(client, **fields)
    second = post_subscription(client, **fields, subscription_at="2026-10-05T00:00:00Z")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["subscription"]["lago_id"] == second.json()["subscription"]["lago_id"]
    assert second.json()["subscription"]["subscription_at"] == "2026-10-20T12:00:00Z"  # unchanged
    assert Subscription.objects.count() == 1


def test_external_id_of_another_customer_subscription_is_rejected(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    CustomerFactory(external_id="globex")
    post_subscription(client, external_customer_id="acme", plan_code="team", external_id="sub-1")
    details = errors(post_subscription(client, external_customer_id="globex", plan_code="team", external_id="sub-1"))
    assert list(details) == ["external_id"]
    assert Subscription.objects.count() == 1


def test_subscription_to_an_unknown_plan_or_customer_is_rejected(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    assert errors(post_subscription(client, external_customer_id="acme", plan_code="gold", external_id="s")) == {
        "plan_code": [UNKNOWN_PLAN.format(ref="gold")]
    }
    assert errors(post_subscription(client, external_customer_id="nobody", plan_code="team", external_id="s")) == {
        "external_customer_id": [UNKNOWN_CUSTOMER.format(ref="nobody")]
    }
    assert not Subscription.objects.exists()


def test_subscription_with_missing_fields_is_rejected_per_field(client: APIClient, plan: Plan) -> None:
    details = errors(post_subscription(client, external_customer_id="acme"))
    assert {"plan_code", "external_id"} <= set(details)


def test_subscription_in_another_currency_than_the_customer_is_rejected(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme", currency="EUR")
    details = errors(post_subscription(client, external_customer_id="acme", plan_code="team", external_id="s"))
    assert details == {
        "plan_code": [CURRENCY_MISMATCH.format(plan="team", plan_currency="USD", customer="acme", currency="EUR")]
    }
    assert not Subscription.objects.exists()


def test_customer_currency_cannot_change_once_subscribed(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    post_subscription(client, external_customer_id="acme", plan_code="team", external_id="s")
    assert list(errors(post_customer(client, external_id="acme", currency="EUR"))) == ["currency"]


def test_subscription_gets_the_current_plan_version(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    Plan.objects.filter(pk=plan.pk).update(is_current=False)
    newer = team_plan(version=2)
    post_subscription(client, external_customer_id="acme", plan_code="team", external_id="s")
    assert Subscription.objects.get().plan == newer


def test_delete_subscription_terminates_it(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    post_subscription(
        client, external_customer_id="acme", plan_code="team", external_id="s", subscription_at="2026-09-01T00:00:00Z"
    )
    response = client.delete("/api/v1/subscriptions/s")
    assert response.status_code == 200
    body = response.json()["subscription"]
    assert (body["status"], body["terminated_at"]) == ("terminated", "2026-10-20T12:00:00Z")
    subscription = Subscription.objects.get()
    assert (subscription.status, subscription.terminated_at) == (SubscriptionStatus.TERMINATED, NOW)


def test_delete_subscription_again_changes_nothing(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    post_subscription(
        client, external_customer_id="acme", plan_code="team", external_id="s", subscription_at="2026-09-01T00:00:00Z"
    )
    client.delete("/api/v1/subscriptions/s")
    with time_machine.travel(NOW + timedelta(days=2), tick=False):
        again = client.delete("/api/v1/subscriptions/s")
    assert again.status_code == 200
    assert again.json()["subscription"]["terminated_at"] == "2026-10-20T12:00:00Z"
    assert Subscription.objects.get().terminated_at == NOW


def test_delete_unknown_subscription_is_not_found(client: APIClient) -> None:
    response = client.delete("/api/v1/subscriptions/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "subscription_not_found"


def test_get_and_list_subscriptions(client: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    CustomerFactory(external_id="globex")
    post_subscription(client, external_customer_id="acme", plan_code="team", external_id="a")
    post_subscription(client, external_customer_id="globex", plan_code="team", external_id="g")
    client.delete("/api/v1/subscriptions/g")
    assert client.get("/api/v1/subscriptions/a").json()["subscription"]["external_customer_id"] == "acme"
    listed = client.get("/api/v1/subscriptions").json()["subscriptions"]
    assert [s["external_id"] for s in listed] == ["a", "g"]
    by_customer = client.get("/api/v1/subscriptions", {"external_customer_id": "globex"}).json()["subscriptions"]
    assert [s["external_id"] for s in by_customer] == ["g"]
    active = client.get("/api/v1/subscriptions", {"status": "active"}).json()["subscriptions"]
    assert [s["external_id"] for s in active] == ["a"]

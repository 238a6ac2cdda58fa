"""POST/GET/DELETE /api/v1/subscriptions in Lago's envelopes (DESIGN §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from billing.api.subscriptions import UNKNOWN_CUSTOMER, UNKNOWN_PLAN
from billing.models import Plan, Subscription, SubscriptionStatus
from billing.services.subscriptions import CURRENCY_MISMATCH
from tests.factories import CustomerFactory, PromotionFactory, team_plan
from tests.helpers import errors, post_customer, post_subscription

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def plan() -> Plan:
    return team_plan(promotion=PromotionFactory(code="trial-14d-base", name="14-day free trial"))


def test_post_subscription_attaches_the_plan_promotion(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    response = post_subscription(
        api,
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


def test_post_subscription_defaults_to_now_and_calendar_billing(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    body = post_subscription(
        api, external_customer_id="acme", plan_code="team", external_id="s1", subscription_at=None, billing_time=None
    ).json()["subscription"]
    assert (body["subscription_at"], body["billing_time"], body["status"]) == (
        "2026-10-20T12:00:00Z",
        "calendar",
        "active",
    )


def test_subscription_in_the_future_is_pending(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    body = post_subscription(
        api, external_customer_id="acme", plan_code="team", external_id="s1", subscription_at="2026-11-01T00:00:00Z"
    ).json()["subscription"]
    assert body["status"] == "pending"
    assert body["started_at"] is None


def test_post_subscription_is_idempotent_for_the_same_external_id_and_plan(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    fields = {"external_customer_id": "acme", "plan_code": "team", "external_id": "acme-team"}
    first = post_subscription(api, **fields)
    second = post_subscription(api, **fields, subscription_at="2026-10-05T00:00:00Z")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["subscription"]["lago_id"] == second.json()["subscription"]["lago_id"]
    assert second.json()["subscription"]["subscription_at"] == "2026-10-20T12:00:00Z"  # unchanged
    assert Subscription.objects.count() == 1


def test_external_id_of_another_customer_subscription_is_rejected(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    CustomerFactory(external_id="globex")
    post_subscription(api, external_customer_id="acme", plan_code="team", external_id="sub-1")
    details = errors(post_subscription(api, external_customer_id="globex", plan_code="team", external_id="sub-1"))
    assert list(details) == ["external_id"]
    assert Subscription.objects.count() == 1


def test_subscription_to_an_unknown_plan_or_customer_is_rejected(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    assert errors(post_subscription(api, external_customer_id="acme", plan_code="gold", external_id="s")) == {
        "plan_code": [UNKNOWN_PLAN.format(ref="gold")]
    }
    assert errors(post_subscription(api, external_customer_id="nobody", plan_code="team", external_id="s")) == {
        "external_customer_id": [UNKNOWN_CUSTOMER.format(ref="nobody")]
    }
    assert not Subscription.objects.exists()


def test_subscription_with_missing_fields_is_rejected_per_field(api: APIClient, plan: Plan) -> None:
    details = errors(post_subscription(api, external_customer_id="acme"))
    assert {"plan_code", "external_id"} <= set(details)


def test_subscription_in_another_currency_than_the_customer_is_rejected(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme", currency="EUR")
    details = errors(post_subscription(api, external_customer_id="acme", plan_code="team", external_id="s"))
    assert details == {
        "plan_code": [CURRENCY_MISMATCH.format(plan="team", plan_currency="USD", customer="acme", currency="EUR")]
    }
    assert not Subscription.objects.exists()


def test_customer_currency_cannot_change_once_subscribed(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    post_subscription(api, external_customer_id="acme", plan_code="team", external_id="s")
    assert list(errors(post_customer(api, external_id="acme", currency="EUR"))) == ["currency"]


def test_subscription_gets_the_current_plan_version(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    Plan.objects.filter(pk=plan.pk).update(is_current=False)
    newer = team_plan(version=2)
    post_subscription(api, external_customer_id="acme", plan_code="team", external_id="s")
    assert Subscription.objects.get().plan == newer


def test_delete_subscription_terminates_it(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    post_subscription(
        api, external_customer_id="acme", plan_code="team", external_id="s", subscription_at="2026-09-01T00:00:00Z"
    )
    response = api.delete("/api/v1/subscriptions/s")
    assert response.status_code == 200
    body = response.json()["subscription"]
    assert (body["status"], body["terminated_at"]) == ("terminated", "2026-10-20T12:00:00Z")
    subscription = Subscription.objects.get()
    assert (subscription.status, subscription.terminated_at) == (SubscriptionStatus.TERMINATED, NOW)


def test_delete_subscription_again_changes_nothing(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    post_subscription(
        api, external_customer_id="acme", plan_code="team", external_id="s", subscription_at="2026-09-01T00:00:00Z"
    )
    api.delete("/api/v1/subscriptions/s")
    with time_machine.travel(NOW + timedelta(days=2), tick=False):
        again = api.delete("/api/v1/subscriptions/s")
    assert again.status_code == 200
    assert again.json()["subscription"]["terminated_at"] == "2026-10-20T12:00:00Z"
    assert Subscription.objects.get().terminated_at == NOW


def test_delete_unknown_subscription_is_not_found(api: APIClient) -> None:
    response = api.delete("/api/v1/subscriptions/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "subscription_not_found"


def test_get_and_list_subscriptions(api: APIClient, plan: Plan) -> None:
    CustomerFactory(external_id="acme")
    CustomerFactory(external_id="globex")
    post_subscription(api, external_customer_id="acme", plan_code="team", external_id="a")
    post_subscription(api, external_customer_id="globex", plan_code="team", external_id="g")
    api.delete("/api/v1/subscriptions/g")
    assert api.get("/api/v1/subscriptions/a").json()["subscription"]["external_customer_id"] == "acme"
    listed = api.get("/api/v1/subscriptions", {"status[]": ["active", "terminated"]}).json()["subscriptions"]
    assert [s["external_id"] for s in listed] == ["a", "g"]
    by_customer = api.get("/api/v1/subscriptions", {"external_customer_id": "globex", "status[]": "terminated"}).json()[
        "subscriptions"
    ]
    assert [s["external_id"] for s in by_customer] == ["g"]
    active = api.get("/api/v1/subscriptions", {"status": "active"}).json()["subscriptions"]
    assert [s["external_id"] for s in active] == ["a"]

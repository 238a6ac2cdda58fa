"""The subscription admin (billing.admin.subscriptions): the list and its filters, adding a
subscription (its promotion, currency and external id checked), terminating, read-only terms."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from billing.admin.subscriptions import EXTERNAL_ID_LIVE
from billing.models import Subscription, SubscriptionStatus
from billing.services.subscriptions import CURRENCY_MISMATCH
from tests.factories import CustomerFactory, PromotionFactory, SubscriptionFactory, free_plan, team_plan

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)
JUNE_1 = datetime(2025, 6, 1, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


def test_subscription_list_renders_in_a_bounded_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    trial = PromotionFactory(code="trial-14d-base", name="14-day free trial")
    team = team_plan(promotion=trial)
    free = free_plan()
    for i in range(300):
        SubscriptionFactory(plan=team if i % 3 else free, subscription_at=JUNE_1)

    # Session, user, two counts, the page (customer, plan and promotion joined), the plan codes.
    with django_assert_max_num_queries(6):
        response = admin_client.get(reverse("admin:billing_subscription_changelist"))

    assert response.status_code == 200
    content = response.content.decode()
    assert "team v1" in content and "free v1" in content
    assert "14-day free trial (trial-14d-base)" in content


def test_subscriptions_are_filtered_by_plan_code_and_status_and_searched_by_customer(admin_client: Client) -> None:
    team = team_plan()
    free = free_plan()
    acme = CustomerFactory(external_id="acme")
    SubscriptionFactory(customer=acme, plan=team, external_id="acme-team", subscription_at=JUNE_1)
    SubscriptionFactory(plan=free, external_id="hooli-free", subscription_at=JUNE_1)
    SubscriptionFactory(
        plan=free,
        external_id="old-free",
        subscription_at=JUNE_1,
        status=SubscriptionStatus.TERMINATED,
        terminated_at=NOW,
    )
    url = reverse("admin:billing_subscription_changelist")

    def listed(**params: str) -> set[str]:
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return {s.external_id for s in response.context["cl"].result_list}

    assert listed(plan_code="free") == {"hooli-free", "old-free"}
    assert listed(plan_code="free", status__exact="active") == {"hooli-free"}
    assert listed(q="acme") == {"acme-team"}
    assert listed(q="hooli-free") == {"hooli-free"}
    # The plan list links here by plan id.
    assert listed(plan__id__exact=str(team.pk)) == {"acme-team"}


def _add_subscription(client: Client, **fields: str) -> Any:
    data = {
        "external_id": "acme-team",
        "subscription_at_0": "2025-06-01",
        "subscription_at_1": "00:00:00",
        "billing_time": "calendar",
        "promotion": "",
        "_save": "Save",
        **fields,
    }
    return client.post(reverse("admin:billing_subscription_add"), data)


def test_adding_a_subscription_attaches_the_plan_promotion_when_none_is_chosen(admin_client: Client) -> None:
    trial = PromotionFactory(code="trial-14d-base")
    plan = team_plan(promotion=trial)
    customer = CustomerFactory(external_id="acme")
    # The customer page's "Add subscription" link preselects the customer.
    form = admin_client.get(reverse("admin:billing_subscription_add"), {"customer": str(customer.pk)})
    assert form.status_code == 200
    assert form.context["adminform"].form.initial["customer"] == str(customer.pk)

    response = _add_subscription(admin_client, customer=str(customer.pk), plan=str(plan.pk))

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    subscription = Subscription.objects.get(external_id="acme-team")
    assert subscription.customer == customer
    assert subscription.plan == plan
    assert subscription.promotion == trial
    assert subscription.promotion_start == JUNE_1
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert subscription.subscription_at == JUNE_1


def test_a_promotion_chosen_when_adding_replaces_the_plan_one(admin_client: Client) -> None:
    plan = team_plan(promotion=PromotionFactory(code="trial-14d-base"))
    other = PromotionFactory(code="launch-50", percent_off=Decimal("50"))
    customer = CustomerFactory()

    chosen = _add_subscription(
        admin_client, customer=str(customer.pk), plan=str(plan.pk), external_id="chosen", promotion=str(other.pk)
    )
    without = _add_subscription(
        admin_client, customer=str(customer.pk), plan=str(plan.pk), external_id="without", no_promotion="on"
    )

    assert chosen.status_code == 302 and without.status_code == 302
    assert Subscription.objects.get(external_id="chosen").promotion == other
    assert Subscription.objects.get(external_id="without").promotion is None


def test_a_subscription_in_the_future_is_added_pending(admin_client: Client) -> None:
    plan = team_plan()
    customer = CustomerFactory()

    response = _add_subscription(
        admin_client, customer=str(customer.pk), plan=str(plan.pk), subscription_at_0="2025-07-01"
    )

    assert response.status_code == 302
    assert Subscription.objects.get(external_id="acme-team").status == SubscriptionStatus.PENDING


def test_adding_a_subscription_rejects_another_currency_and_a_live_external_id(admin_client: Client) -> None:
    plan = team_plan()
    euro_customer = CustomerFactory(external_id="euro", currency="EUR")
    SubscriptionFactory(plan=plan, external_id="taken", customer=CustomerFactory(external_id="acme"))

    wrong_currency = _add_subscription(
        admin_client, customer=str(euro_customer.pk), plan=str(plan.pk), external_id="new"
    )
    taken = _add_subscription(admin_client, customer=str(CustomerFactory().pk), plan=str(plan.pk), external_id="taken")

    assert wrong_currency.status_code == 200
    assert (
        escape(CURRENCY_MISMATCH.format(plan="team", plan_currency="USD", customer="euro", currency="EUR"))
        in wrong_currency.content.decode()
    )
    assert taken.status_code == 200
    assert escape(EXTERNAL_ID_LIVE.format(customer="acme", plan="team")) in taken.content.decode()
    assert Subscription.objects.count() == 1


def test_terminate_action_ends_live_subscriptions_and_reports_the_count(admin_client: Client) -> None:
    plan = team_plan()
    live = [SubscriptionFactory(plan=plan, subscription_at=JUNE_1) for _ in range(2)]
    ended = SubscriptionFactory(
        plan=plan, subscription_at=JUNE_1, status=SubscriptionStatus.TERMINATED, terminated_at=JUNE_1
    )

    response = admin_client.post(
        reverse("admin:billing_subscription_changelist"),
        {"action": "terminate_selected", ACTION_CHECKBOX_NAME: [str(s.pk) for s in [*live, ended]]},
        follow=True,
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "2 subscriptions were terminated." in content
    assert "1 selected subscription was already terminated." in content
    for subscription in live:
        subscription.refresh_from_db()
        assert subscription.status == SubscriptionStatus.TERMINATED
        assert subscription.terminated_at == NOW
    ended.refresh_from_db()
    assert ended.terminated_at == JUNE_1


def test_subscription_terms_are_read_only_and_subscriptions_cannot_be_deleted(admin_client: Client) -> None:
    subscription = SubscriptionFactory(plan=team_plan(), subscription_at=JUNE_1)

    response = admin_client.get(reverse("admin:billing_subscription_change", args=[subscription.pk]))
    delete = admin_client.get(reverse("admin:billing_subscription_delete", args=[subscription.pk]))

    assert response.status_code == 200
    content = response.content.decode()
    for field in ("plan", "customer", "subscription_at_0", "promotion", "status"):
        assert f'name="{field}"' not in content
    assert delete.status_code == 403

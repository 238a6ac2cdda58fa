"""The customer-facing admin: customers (with their subscriptions and current usage), subscriptions
and API keys.

The customer and subscription admins are billing's (billing/admin_customers.py, registered over
customers.admin's customer admin); they are tested here, beside the API key admin, because they
are the pages finance staff open about one customer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from billing.admin.customers import CUSTOMER_LOCKED_NOTE, BilledCustomerAdmin
from billing.admin.subscriptions import EXTERNAL_ID_LIVE, SubscriptionAdmin
from billing.models import ChargeModel, Plan, Subscription, SubscriptionStatus
from billing.services.subscriptions import CURRENCY_MISMATCH
from customers.admin import KEY_SHOWN_ONCE, ApiKeyAdmin
from customers.models import ApiKey, Customer, hash_api_key
from metering.ingest import store_events
from metering.validation import Owner, ValidEvent, payload_hash
from tests.factories import (
    ApiKeyFactory,
    BillableMetricFactory,
    ChargeFactory,
    CustomerFactory,
    PlanFactory,
    PromotionFactory,
    SubscriptionFactory,
    add_tiers,
    team_plan,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)
JUNE_1 = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def send_mtu(customer: Customer, users: Iterable[str], *, at: datetime, prefix: str = "evt") -> None:
    """Store one `mtu` event per user at `at`, through the service the events API uses."""
    metric = BillableMetricFactory()
    owner = Owner(customer.pk, customer.timezone, customer.external_id)
    events = [
        ValidEvent(
            owner=owner,
            metric=metric,
            transaction_id=f"{prefix}-{i}",
            timestamp=at,
            properties={"user_id": user},
            value=None,
            distinct=user,
            payload_hash=payload_hash(metric.code, at.isoformat(), {"user_id": user}),
        )
        for i, user in enumerate(users)
    ]
    for start in range(0, len(events), 1000):
        store_events(events[start : start + 1000], received_at=at)


def free_plan(limit: int = 1000) -> Plan:
    """The catalog's free plan: one unbounded free tier and a usage limit."""
    plan = PlanFactory(code="free", name="Free")
    charge = ChargeFactory(
        plan=plan, metric=BillableMetricFactory(), model=ChargeModel.GRADUATED, usage_limit=Decimal(limit)
    )
    add_tiers(charge, [(None, "0")])
    return plan


def customer_url(customer: Customer) -> str:
    return reverse("admin:customers_customer_change", args=[customer.pk])


def test_billing_replaces_the_customer_admin_with_its_own() -> None:
    assert isinstance(admin.site._registry[Customer], BilledCustomerAdmin)
    assert isinstance(admin.site._registry[Subscription], SubscriptionAdmin)
    assert isinstance(admin.site._registry[ApiKey], ApiKeyAdmin)


# --- Customer list ------------------------------------------------------------------------------


def test_customer_list_counts_active_subscriptions_in_a_bounded_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    customers = CustomerFactory.create_batch(300)
    plan = team_plan()
    first = customers[0]
    SubscriptionFactory(customer=first, plan=plan, subscription_at=JUNE_1)
    SubscriptionFactory(customer=first, plan=plan, subscription_at=JUNE_1)
    SubscriptionFactory(
        customer=first,
        plan=plan,
        subscription_at=JUNE_1,
        status=SubscriptionStatus.TERMINATED,
        terminated_at=NOW,
    )
    SubscriptionFactory(customer=customers[1], plan=plan, subscription_at=JUNE_1)

    # Session, user, two counts, the page (with the counts), the currency and time zone filter choices.
    with django_assert_max_num_queries(7):
        response = admin_client.get(reverse("admin:customers_customer_changelist"))

    assert response.status_code == 200
    rows = {c.external_id: c for c in response.context["cl"].result_list}
    assert len(rows) == 100  # one page
    assert rows[first.external_id].active_subscription_count == 2
    assert rows[customers[1].external_id].active_subscription_count == 1
    assert rows[customers[2].external_id].active_subscription_count == 0
    assert first.email in response.content.decode()


def test_customers_are_searched_by_external_id_name_and_email_and_filtered_by_currency(admin_client: Client) -> None:
    CustomerFactory(external_id="acme", name="Acme Analytics", email="finance@acme.example")
    CustomerFactory(external_id="hooli", name="Hooli", email="billing@hooli.example", timezone="America/Los_Angeles")
    CustomerFactory(external_id="initech", name="Initech", email="ap@initech.example", currency="EUR")
    url = reverse("admin:customers_customer_changelist")

    def listed(**params: str) -> set[str]:
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return {c.external_id for c in response.context["cl"].result_list}

    assert listed(q="acme") == {"acme"}
    assert listed(q="Hooli") == {"hooli"}
    assert listed(q="ap@initech") == {"initech"}
    assert listed(currency="EUR") == {"initech"}
    assert listed(timezone="America/Los_Angeles") == {"hooli"}


# --- Customer page: subscriptions and current usage ---------------------------------------------


def test_customer_page_shows_current_usage_of_a_team_customer_priced_by_the_engine(admin_client: Client) -> None:
    trial = PromotionFactory(code="trial-14d-base", name="14-day free trial")  # 100 % off the base fee
    plan = team_plan(promotion=trial)
    customer = CustomerFactory(external_id="acme", name="Acme Analytics")
    SubscriptionFactory(customer=customer, plan=plan, external_id="acme-team", subscription_at=JUNE_1)
    send_mtu(customer, (f"user_{i}" for i in range(12_500)), at=datetime(2025, 6, 10, tzinfo=UTC))
    send_mtu(customer, ["user_1", "user_2"], at=datetime(2025, 6, 18, tzinfo=UTC), prefix="again")

    response = admin_client.get(customer_url(customer))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="current-usage"' in content
    # The subscription, inline, with its trial's end.
    assert "Team (team)" in content
    assert "14-day free trial: until 2025-06-15 00:00 UTC" in content
    # The open period.
    assert "1 Jun 2025 – 30 Jun 2025" in content
    # 12,500 MTUs: 2,500 × 0.012 in tier 2; 12,500 more to reach tier 3.
    panel = response.context["current_usage"][0]
    assert panel["subscription"].external_id == "acme-team"
    (charge,) = panel["charges"]
    assert charge["units"] == "12,500"
    assert charge["events_count"] == "12,502"
    assert charge["amount"] == "30.00"
    assert charge["tier"] == "Tier 2: 10,001 – 25,000"
    assert charge["to_next_tier"] == "12,500 more until tier 3 (25,001 – 100,000 at 0.011)"
    assert charge["usage_limit"] is None
    # The invoice preview: base fee, the trial's 14 of 30 days off it, usage.
    assert [(line["kind"], line["amount"]) for line in panel["lines"]] == [
        ("base_fee", "120.00"),
        ("promotion", "-56.00"),
        ("usage", "30.00"),
    ]
    assert panel["total"] == "94.00"
    for text in ("12,500", "30.00", "Tier 2: 10,001 – 25,000", "120.00", "-56.00", "94.00&nbsp;USD"):
        assert text in content


def test_customer_page_flags_usage_over_the_free_plan_limit(admin_client: Client) -> None:
    customer = CustomerFactory(external_id="hooli")
    SubscriptionFactory(customer=customer, plan=free_plan(limit=10), external_id="hooli-free", subscription_at=JUNE_1)
    send_mtu(customer, (f"user_{i}" for i in range(14)), at=datetime(2025, 6, 12, tzinfo=UTC))

    response = admin_client.get(customer_url(customer))

    assert response.status_code == 200
    (charge,) = response.context["current_usage"][0]["charges"]
    assert charge["units"] == "14"
    assert charge["amount"] == "0.00"
    assert charge["limit_exceeded"] is True
    assert charge["usage_limit"] == "Exceeded by 4 (limit 10; the excess is not billed)"
    assert charge["to_next_tier"] == "Top tier"
    assert 'class="limit-exceeded"' in response.content.decode()


def test_customer_page_without_active_subscription_says_so(admin_client: Client) -> None:
    customer = CustomerFactory()

    response = admin_client.get(customer_url(customer))

    assert response.status_code == 200
    assert response.context["current_usage"] == []
    assert "No active subscription." in response.content.decode()


def test_customer_page_renders_in_a_bounded_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    customer = CustomerFactory()
    plan = team_plan()
    for i in range(5):
        SubscriptionFactory(customer=customer, plan=plan, subscription_at=JUNE_1 + timedelta(days=i))
    send_mtu(customer, (f"user_{i}" for i in range(50)), at=datetime(2025, 6, 10, tzinfo=UTC))

    # The page, then two queries per active subscription for its usage (plans, charges and tiers
    # are prefetched once for all).
    # + 1 for the commitments panel (one query however many subscriptions).
    with django_assert_max_num_queries(10 + 2 * 5 + 1):
        response = admin_client.get(customer_url(customer))

    assert response.status_code == 200
    assert len(response.context["current_usage"]) == 5


def test_currency_and_timezone_are_read_only_once_the_customer_is_billed(admin_client: Client) -> None:
    fresh = CustomerFactory()
    billed = CustomerFactory()
    SubscriptionFactory(customer=billed, plan=team_plan(), subscription_at=JUNE_1)

    fresh_page = admin_client.get(customer_url(fresh)).content.decode()
    billed_page = admin_client.get(customer_url(billed)).content.decode()

    assert 'name="currency"' in fresh_page and 'name="timezone"' in fresh_page
    assert 'name="currency"' not in billed_page and 'name="timezone"' not in billed_page
    assert escape(CUSTOMER_LOCKED_NOTE) in billed_page


# --- Subscriptions ------------------------------------------------------------------------------


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


# --- API keys -----------------------------------------------------------------------------------


def test_api_key_list_renders_in_a_bounded_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    ApiKeyFactory.create_batch(300)

    # Session, user, two counts, the page.
    with django_assert_max_num_queries(5):
        response = admin_client.get(reverse("admin:customers_apikey_changelist"))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100


def test_adding_an_api_key_shows_it_once_and_stores_only_its_hash(admin_client: Client) -> None:
    form = admin_client.get(reverse("admin:customers_apikey_add")).content.decode()
    assert 'name="name"' in form and "key_hash" not in form

    response = admin_client.post(reverse("admin:customers_apikey_add"), {"name": "warehouse sync", "_save": "Save"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    content = response.content.decode()
    assert escape(KEY_SHOWN_ONCE) in content
    match = re.search(r'<code id="api-key-value">(bk_[A-Za-z0-9_\-]+)</code>', content)
    assert match is not None
    raw_key = match.group(1)
    key = ApiKey.objects.get(name="warehouse sync")
    assert key.key_hash == hash_api_key(raw_key)
    assert key.prefix == raw_key[:10]
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert raw_key not in [str(value) for value in stored.values()]
    # Never again: not on its page, not in the list.
    again = admin_client.get(reverse("admin:customers_apikey_change", args=[key.pk])).content.decode()
    listed = admin_client.get(reverse("admin:customers_apikey_changelist")).content.decode()
    assert raw_key not in again and raw_key not in listed
    assert key.key_hash in again  # shown, read-only


def test_an_api_key_hash_cannot_be_edited(admin_client: Client) -> None:
    key = ApiKeyFactory(name="old name")
    original_hash = key.key_hash
    url = reverse("admin:customers_apikey_change", args=[key.pk])

    page = admin_client.get(url).content.decode()
    response = admin_client.post(url, {"name": "new name", "key_hash": "0" * 64, "prefix": "bk_evil", "_save": "Save"})

    assert 'name="key_hash"' not in page and 'name="prefix"' not in page
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.name == "new name"
    assert key.key_hash == original_hash
    assert key.prefix != "bk_evil"


def test_revoke_action_revokes_active_keys_and_reports_the_count(admin_client: Client) -> None:
    active = ApiKeyFactory.create_batch(3)
    revoked_before = ApiKeyFactory(revoked_at=JUNE_1)
    untouched = ApiKeyFactory()

    response = admin_client.post(
        reverse("admin:customers_apikey_changelist"),
        {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [str(k.pk) for k in [*active, revoked_before]]},
        follow=True,
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "3 API keys were revoked." in content
    assert "1 selected key was already revoked." in content
    assert ApiKey.objects.active().get() == untouched
    revoked_before.refresh_from_db()
    assert revoked_before.revoked_at == JUNE_1
    active_list = admin_client.get(reverse("admin:customers_apikey_changelist"), {"status": "active"})
    assert [k.pk for k in active_list.context["cl"].result_list] == [untouched.pk]

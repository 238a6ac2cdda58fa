"""The customer admin (billing.admin.customers, registered over customers.admin's customer admin):
the customer list, and the customer page with its subscriptions and current usage."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from billing.admin.customers import CUSTOMER_LOCKED_NOTE, BilledCustomerAdmin
from billing.admin.subscriptions import SubscriptionAdmin
from billing.models import CreditNoteReason, Invoice, LineKind, Subscription, SubscriptionStatus
from billing.services.credit_notes import credit_note_create
from billing.services.payments import payment_create
from customers.admin import ApiKeyAdmin
from customers.models import ApiKey, Customer
from metering.ingest import store_events
from metering.validation import Owner, ValidEvent, payload_hash
from tests.factories import (
    BillableMetricFactory,
    CustomerFactory,
    PromotionFactory,
    SubscriptionFactory,
    free_plan,
    team_plan,
)

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)
JUNE_1 = datetime(2025, 6, 1, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


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
    assert "14-day free trial: through June 14, 2025" in content
    # The open period.
    assert "June 1, 2025 – June 30, 2025" in content
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
    # + 1 for the commitments panel (one query however many subscriptions), + 9 at most for the
    # account panel (billing.selectors.receivables.customer_account, however many invoices), + 6
    # for coupons, taxes and wallets: the preview's coupons and taxes read once for all panels (3),
    # the applied coupons and wallets panels (2) and the tax codes field (1); + 1 for the recent events.
    with django_assert_max_num_queries(10 + 2 * 5 + 1 + 9 + 6 + 1):
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


@pytest.mark.frozen_clock(datetime(2026, 12, 10, 12, tzinfo=UTC))
def test_customer_page_shows_the_account(admin_client: Client, discounted_invoice: Invoice) -> None:
    """Invoices with what is due (and since when overdue), payments, credit notes, available credit."""
    invoice = discounted_invoice
    now = datetime(2026, 12, 10, 12, tzinfo=UTC)
    payment_create(invoice=invoice, amount=Decimal(40), reference="WIRE-9", paid_at=now, now=now)
    credit_note_create(
        invoice=invoice,
        items=[(invoice.lines.get(kind=LineKind.USAGE).pk, Decimal(12))],
        reason=CreditNoteReason.OTHER,
        credit_amount=Decimal(9),
        refund_amount=Decimal(0),
        offset_amount=Decimal(0),
        now=now,
    )
    response = admin_client.get(customer_url(invoice.customer))
    assert response.status_code == 200
    account = response.context["account"]
    assert [
        (row["status"], row["payment_status"], row["total"], row["due"], row["overdue_days"])
        for row in account["invoices"]
    ] == [
        ("Finalized", "Pending", "$99.00", "$59.00", 7)  # due December 3
    ]
    assert [(p["amount"], p["reference"]) for p in account["payments"]] == [("$40.00", "WIRE-9")]
    assert [(n["total"], n["balance"], n["credit_status"]) for n in account["credit_notes"]] == [
        ("$9.00", "$9.00", "Available")
    ]
    assert account["available_credit"] == ["$9.00"]
    assert account["owed"] == [
        {"currency": "USD", "total": "$59.00", "overdue": "$59.00", "buckets": [("1–30 days", "$59.00")]}
    ]
    content = response.content.decode()
    assert 'id="customer-account"' in content and "7 days overdue" in content
    assert reverse("admin:billing_payment_changelist") + "?customer=acme" in content
    assert 'name="net_payment_term"' in content  # the payment term is edited with the billing fields


def test_the_customer_page_shows_its_recent_events_in_its_time_zone(admin_client: Client) -> None:
    customer = CustomerFactory(timezone="Europe/Paris")
    send_mtu(customer, ["user_1", "user_2"], at=datetime(2025, 6, 10, 22, 30, tzinfo=UTC))

    response = admin_client.get(customer_url(customer))

    rows = response.context["recent_events"]
    assert len(rows) == 2 and rows[0]["metric"] == "mtu"
    assert rows[0]["when"] == "June 11, 2025, 00:30"  # 22:30 UTC is past midnight in Paris
    content = response.content.decode()
    assert 'id="customer-recent-events"' in content and "When (Europe/Paris)" in content


def test_deleting_a_customer_in_the_admin_follows_the_apis_rules(admin_client: Client) -> None:
    """Delete is customer_destroy's soft delete: refused with the reasons while a subscription is
    live; once allowed, the row stays (deleted_at) and the list no longer shows it."""
    customer = CustomerFactory(external_id="acme")
    subscription = SubscriptionFactory(customer=customer, external_id="acme-sub", subscription_at=NOW)
    delete_url = reverse("admin:customers_customer_delete", args=[customer.pk])
    refused = admin_client.get(delete_url, follow=True)
    assert refused.redirect_chain[-1][0] == customer_url(customer)
    assert "cannot be deleted yet" in refused.content.decode() and "acme-sub" in refused.content.decode()
    Subscription.objects.filter(pk=subscription.pk).update(status=SubscriptionStatus.CANCELED, terminated_at=NOW)
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert Customer.all_objects.get(pk=customer.pk).deleted_at is not None
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert "delete_selected" not in admin_client.get(reverse("admin:customers_customer_changelist")).content.decode()

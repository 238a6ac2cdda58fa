"""The rest of Lago's customer resource: DELETE (a soft delete, refused while money is open),
past and projected usage, and the list's filters.

The clock stands at 2026-10-20 12:00 UTC. `acme` is on the scaled Team plan since August 1st
(its 14-day trial on the base fee), with 300 users in September (invoiced: $120 + $235 of usage)
and 200 so far in October.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Invoice, InvoiceStatus, Plan, Subscription, SubscriptionStatus
from billing.services.customers import HAS_UNBILLED_SUBSCRIPTIONS, customer_destroy
from billing.services.payments import invoice_mark_paid
from billing.services.period_close import close_periods
from billing.services.subscriptions import SubscriptionError, subscription_create
from customers.models import Customer
from tests.conftest import using_postgres
from tests.factories import CustomerFactory, PlanFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import delete, errors, get, post_customer, post_subscription, run_concurrently

NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def plan() -> Plan:
    return scaled_team_plan()


@pytest.fixture
def acme(plan: Plan) -> Customer:
    customer = CustomerFactory(external_id="acme", name="Acme")
    SubscriptionFactory(
        customer=customer, plan=plan, external_id="acme-team", subscription_at=datetime(2026, 8, 1, tzinfo=UTC)
    )
    store_users(customer, range(300), datetime(2026, 9, 20, tzinfo=UTC), "sep")
    store_users(customer, range(200), datetime(2026, 10, 5, tzinfo=UTC), "oct")
    close_periods(now=datetime(2026, 9, 2, 1, tzinfo=UTC))  # August
    close_periods(now=datetime(2026, 10, 2, 1, tzinfo=UTC))  # September
    return customer


# --- DELETE ----------------------------------------------------------------------------------


def test_delete_is_refused_while_subscriptions_live_or_invoices_unpaid(api: APIClient, acme: Customer) -> None:
    response = api.delete("/api/v1/customers/acme")
    details = errors(response)
    assert "acme-team" in details["subscriptions"][0]
    assert "invoices" in details  # August and September are not paid
    # Terminated today: October's days are not invoiced yet, so it still holds the customer.
    Subscription.objects.filter(customer=acme).update(status=SubscriptionStatus.TERMINATED, terminated_at=NOW)
    details = errors(api.delete("/api/v1/customers/acme"))
    assert details["subscriptions"] == [HAS_UNBILLED_SUBSCRIPTIONS.format(ids="acme-team")]
    # Terminated when September ended: every period of it is invoiced.
    Subscription.objects.filter(customer=acme).update(terminated_at=datetime(2026, 10, 1, tzinfo=UTC))
    details = errors(api.delete("/api/v1/customers/acme"))
    assert set(details) == {"invoices"}
    for invoice in Invoice.objects.filter(customer=acme, status=InvoiceStatus.FINALIZED):
        assert invoice.number in details["invoices"][0]
        invoice_mark_paid(invoice=invoice, now=NOW)

    body = delete(api, "/api/v1/customers/acme")["customer"]
    assert (body["external_id"], body["lago_id"]) == ("acme", str(acme.pk))
    assert Customer.all_objects.get(pk=acme.pk).deleted_at == NOW
    # Its invoices stay, and still name it.
    invoice = Invoice.objects.filter(customer_id=acme.pk).first()
    assert invoice is not None
    assert get(api, f"/api/v1/invoices/{invoice.pk}")["invoice"]["customer"]["external_id"] == "acme"


def test_a_deleted_customer_is_absent_and_its_external_id_free(api: APIClient, plan: Plan) -> None:
    gone = CustomerFactory(external_id="gone")
    delete(api, "/api/v1/customers/gone")
    assert get(api, "/api/v1/customers/gone", expect=404)["code"] == "customer_not_found"
    assert api.delete("/api/v1/customers/gone").status_code == 404
    assert get(api, "/api/v1/customers")["meta"]["total_count"] == 0
    event = {"transaction_id": "t1", "external_customer_id": "gone", "code": "mtu", "properties": {"user_id": "u"}}
    assert "unknown customer" in str(errors(api.post("/api/v1/events", {"event": event}, format="json")))
    sub = post_subscription(api, external_customer_id="gone", plan_code=plan.code, external_id="gone-sub")
    assert "external_customer_id" in errors(sub)
    with pytest.raises(SubscriptionError):  # a caller holding the old row is refused too
        subscription_create(
            customer=gone, plan=plan, external_id="x", subscription_at=NOW, billing_time="calendar", now=NOW
        )

    again = post_customer(api, external_id="gone", name="New")
    assert again.status_code == 200, again.content
    assert again.json()["customer"]["lago_id"] != str(gone.pk)
    assert get(api, "/api/v1/customers/gone")["customer"]["name"] == "New"


def test_a_reused_external_id_sees_only_the_new_customers_records(
    api: APIClient, acme: Customer, admin_client: Any
) -> None:
    Subscription.objects.filter(customer=acme).update(
        status=SubscriptionStatus.TERMINATED, terminated_at=datetime(2026, 10, 1, tzinfo=UTC)
    )
    for invoice in Invoice.objects.filter(customer=acme, status=InvoiceStatus.FINALIZED):
        invoice_mark_paid(invoice=invoice, now=NOW)
    delete(api, "/api/v1/customers/acme")
    assert post_customer(api, external_id="acme", name="Acme again").status_code == 200
    for path, key in (
        ("/api/v1/invoices", "invoices"),
        ("/api/v1/payments", "payments"),
        ("/api/v1/credit_notes", "credit_notes"),
        ("/api/v1/customers/acme/invoices", "invoices"),
    ):
        assert get(api, path, external_customer_id="acme")[key] == [], path
    # The deleted customer's usage this month still shows on the home page, under its old row.
    assert admin_client.get("/admin/").status_code == 200


@pytest.mark.skipif(not using_postgres(), reason="row locks are tested on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_subscription_created_while_deleting_never_outlives_the_customer() -> None:
    plan = PlanFactory(code="basic")
    now = timezone.now()
    for round_ in range(6):
        customer = CustomerFactory(external_id=f"race-{round_}")

        def destroy(customer: Customer = customer) -> str:
            try:
                customer_destroy(customer=customer, now=now)
            except Exception as exc:
                return type(exc).__name__
            return "deleted"

        def subscribe(customer: Customer = customer, round_: int = round_) -> str:
            try:
                subscription_create(
                    customer=customer,
                    plan=plan,
                    external_id=f"race-sub-{round_}",
                    subscription_at=now,
                    billing_time="calendar",
                    now=now,
                )
            except SubscriptionError:
                return "refused"
            return "subscribed"

        outcome = run_concurrently([destroy, subscribe])
        assert outcome in (["deleted", "refused"], ["CustomerError", "subscribed"]), outcome
        deleted = Customer.all_objects.get(pk=customer.pk).deleted_at is not None
        live = Subscription.objects.filter(customer_id=customer.pk, status=SubscriptionStatus.ACTIVE).exists()
        assert deleted != live


# --- past usage ------------------------------------------------------------------------------


def test_past_usage_is_each_period_as_invoiced_newest_first(api: APIClient, acme: Customer) -> None:
    body = get(api, "/api/v1/customers/acme/past_usage", external_subscription_id="acme-team")
    september, august = body["usage_periods"]
    assert body["meta"]["total_count"] == 2
    assert (september["from_datetime"], september["to_datetime"]) == ("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z")
    assert (september["amount_cents"], september["taxes_amount_cents"], september["total_amount_cents"]) == (
        35500,
        0,
        35500,
    )
    (mtu,) = september["charges_usage"]
    assert (mtu["units"], mtu["amount_cents"], mtu["events_count"]) == ("300", 23500, 300)
    assert mtu["billable_metric"]["aggregation_type"] == "unique_count_agg"
    assert august["amount_cents"] == 12000  # the base fee; its trial is a coupon, not a fee
    assert september["lago_invoice_id"] == str(Invoice.objects.get(customer=acme, period_start__month=9).pk)

    newest = get(
        api,
        "/api/v1/customers/acme/past_usage",
        external_subscription_id="acme-team",
        periods_count="1",
        billable_metric_code="mtu",
    )
    assert [p["from_datetime"] for p in newest["usage_periods"]] == ["2026-09-01T00:00:00Z"]
    assert newest["meta"]["total_count"] == 1


def test_past_usage_errors(api: APIClient, acme: Customer) -> None:
    assert set(errors(api.get("/api/v1/customers/acme/past_usage"))) == {"external_subscription_id"}
    bad = api.get("/api/v1/customers/acme/past_usage", {"external_subscription_id": "acme-team", "x": "1"})
    assert set(errors(bad)) == {"x"}
    missing = {"external_subscription_id": "acme-team", "billable_metric_code": "nope"}
    assert get(api, "/api/v1/customers/acme/past_usage", 404, **missing)["code"] == "billable_metric_not_found"
    assert get(api, "/api/v1/customers/nobody/past_usage", 404, external_subscription_id="s")["code"] == (
        "customer_not_found"
    )


# --- projected usage -------------------------------------------------------------------------


def test_projected_usage_extends_the_pace_so_far_to_the_period_end(api: APIClient, acme: Customer) -> None:
    body = get(api, "/api/v1/customers/acme/projected_usage", external_subscription_id="acme-team")
    usage = body["customer_projected_usage"]
    (mtu,) = usage["charges_usage"]
    # 20 of October's 31 days (today counts whole): 200 users → 310.00; 150 × $1.2 + 60 × $1.1.
    assert (mtu["units"], mtu["projected_units"]) == ("200", "310")
    assert (mtu["amount_cents"], mtu["projected_amount_cents"]) == (12000, 24600)
    assert (usage["amount_cents"], usage["projected_amount_cents"]) == (12000, 24600)
    assert (usage["from_datetime"], usage["to_datetime"]) == ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    # current_usage is unchanged by it
    current = get(api, "/api/v1/customers/acme/current_usage", external_subscription_id="acme-team")
    assert current["customer_usage"]["amount_cents"] == 12000
    assert "projected_amount_cents" not in current["customer_usage"]
    assert set(errors(api.get("/api/v1/customers/acme/projected_usage", {"apply_taxes": "maybe"}))) == {"apply_taxes"}


# --- the list's filters ----------------------------------------------------------------------


def external_ids(api: APIClient, **params: Any) -> list[str]:
    return [c["external_id"] for c in get(api, "/api/v1/customers", **params)["customers"]]


def test_list_filters(api: APIClient) -> None:
    CustomerFactory(
        external_id="a", name="Alpha Corp", currency="EUR", country="FR", zipcode="75001", customer_type="company"
    )
    CustomerFactory(
        external_id="b",
        name="Beta",
        country="US",
        state="CA",
        tax_identification_number="US123",
        metadata=[{"id": "1", "key": "tier", "value": "gold", "display_in_invoice": False}],
    )
    CustomerFactory(external_id="c", name="Gamma", email="ops@alpha.example")
    assert external_ids(api, search_term="ALPHA") == ["a", "c"]
    assert external_ids(api, **{"currencies[]": ["EUR"]}) == ["a"]
    assert external_ids(api, **{"countries[]": ["fr", "US"]}) == ["a", "b"]
    assert external_ids(api, **{"states[]": "CA"}) == ["b"]
    assert external_ids(api, **{"zipcodes[]": "75001"}) == ["a"]
    assert external_ids(api, customer_type="company") == ["a"]
    assert external_ids(api, has_customer_type="false") == ["b", "c"]
    assert external_ids(api, has_tax_identification_number="true") == ["b"]
    assert external_ids(api, **{"metadata[tier]": "gold"}) == ["b"]
    assert external_ids(api, **{"metadata[tier]": ""}) == ["a", "c"]
    assert external_ids(api, external_id="c", search_term="zzz") == ["c"]
    page = get(api, "/api/v1/customers", per_page=2, page=2)
    assert ([c["external_id"] for c in page["customers"]], page["meta"]["total_pages"]) == (["c"], 2)

    bad = api.get(
        "/api/v1/customers",
        {"sort": "name", "currencies[]": "XXX", "billing_entity_codes[]": "x", "customer_type": "robot"},
    )
    assert set(errors(bad)) == {"sort", "currencies", "billing_entity_codes", "customer_type"}

"""POST /api/v1/invoices/preview: the invoice a new subscription, or an existing one's open
period, would get; computed by the invoicing engine and never written.

The plan is the Team plan with its MTU tiers a hundred times smaller (tests.factories): $120 a
month, a 14-day trial on the base fee, 300 MTUs → $235.00 of usage. Read on 2026-10-20 at noon UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from lago_python_client.client import Client
from lago_python_client.models.coupon import Coupon as LagoCoupon
from lago_python_client.models.coupon import CouponsList
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.invoice import InvoicePreview
from lago_python_client.models.subscription import Subscriptions
from rest_framework.test import APIClient

from billing.models import Plan, Subscription, Tax
from billing.selectors.invoice_preview import PLAN_CHANGE_NOT_SUPPORTED, TERMINATED_IN_PAST
from customers.models import Customer
from tests.billing.api.test_missing_methods import lago  # noqa: F401  (the SDK fixture)
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import errors

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
PATH = "/api/v1/invoices/preview"

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def plan() -> Plan:
    return scaled_team_plan()


@pytest.fixture
def customer() -> Customer:
    return CustomerFactory(external_id="acme")


@pytest.fixture
def subscription(plan: Plan, customer: Customer) -> Subscription:
    """On Team since August (trial over), 300 MTUs so far in October."""
    sub = SubscriptionFactory(
        customer=customer, plan=plan, external_id="acme-team", subscription_at=datetime(2026, 8, 1, tzinfo=UTC)
    )
    store_users(customer, range(300), datetime(2026, 10, 5, tzinfo=UTC), "oct", metric=plan.charges.get().metric)
    return sub


@pytest.fixture
def vat() -> Tax:
    return Tax.objects.create(code="vat", name="VAT", rate=Decimal("20"), applied_to_organization=True)


def preview(api: APIClient, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
    response = api.post(PATH, body, format="json")
    assert response.status_code == expect, response.content
    return response.json()["invoice"] if expect == 200 else response.json()


def amounts(invoice: dict[str, Any]) -> tuple[int, ...]:
    return (
        invoice["fees_amount_cents"],
        invoice["coupons_amount_cents"],
        invoice["taxes_amount_cents"],
        invoice["total_amount_cents"],
    )


def test_new_subscription_in_its_trial_pays_no_prorated_base_fee(
    api: APIClient, plan: Plan, customer: Customer
) -> None:
    invoice = preview(api, {"customer": {"external_id": "acme"}, "plan_code": "team", "billing_time": "calendar"})
    # Oct 20 – Nov 1: 12 of 31 days of $120 = $46.45, all inside the 14-day trial.
    assert amounts(invoice) == (4645, 4645, 0, 0)
    assert [(f["item"]["type"], f["item"]["code"], f["amount_cents"]) for f in invoice["fees"]] == [
        ("subscription", "team", 4645)
    ]
    assert [(c["item"]["type"], c["amount_cents"], c["before_taxes"]) for c in invoice["credits"]] == [
        ("coupon", 4645, True)
    ]
    assert (invoice["lago_id"], invoice["number"], invoice["status"], invoice["payment_status"]) == (
        "",
        "",
        "finalized",
        "pending",
    )
    assert (invoice["issuing_date"], invoice["invoice_type"], invoice["currency"]) == (
        "2026-11-01",
        "subscription",
        "USD",
    )
    assert invoice["customer"]["external_id"] == "acme"
    assert invoice["subscriptions"][0]["plan_code"] == "team"
    assert Subscription.objects.count() == 0


def test_inline_customer_new_subscription_is_taxed_and_prorated_by_the_trial(
    api: APIClient, plan: Plan, vat: Tax
) -> None:
    invoice = preview(
        api,
        {
            "customer": {"name": "Prospect", "currency": "USD", "timezone": "UTC"},
            "plan_code": "team",
            "subscription_at": "2026-10-01T00:00:00Z",
        },
    )
    # The whole of October: $120, less 14 of 31 days of trial ($54.19); VAT 20 % of $65.81.
    assert amounts(invoice) == (12000, 5419, 1316, 7897)
    assert invoice["sub_total_excluding_taxes_amount_cents"] == 6581
    assert [(t["tax_code"], t["amount_cents"]) for t in invoice["applied_taxes"]] == [("vat", 1316)]
    assert invoice["fees"][0]["taxes_amount_cents"] == 1316
    assert (invoice["customer"]["lago_id"], invoice["customer"]["name"]) == ("", "Prospect")
    assert not Customer.objects.exists()


def test_existing_subscription_matches_current_usage_to_the_cent(
    api: APIClient, subscription: Subscription, vat: Tax
) -> None:
    invoice = preview(api, {"customer": {"external_id": "acme"}, "subscriptions": {"external_ids": ["acme-team"]}})
    usage = api.get("/api/v1/customers/acme/current_usage").json()["customer_usage"]
    # $120 + $235 of usage, 20 % VAT.
    assert amounts(invoice) == (35500, 0, 7100, 42600)
    assert invoice["total_amount_cents"] == usage["invoice_preview"]["total_cents"]
    assert [(f["item"]["type"], f["units"], f["amount_cents"]) for f in invoice["fees"]] == [
        ("subscription", "1", 12000),
        ("charge", "300", 23500),
    ]
    assert (invoice["period_start"], invoice["period_end"]) == ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")


def test_coupons_apply_to_the_preview_only_and_nothing_is_written(api: APIClient, subscription: Subscription) -> None:
    body = {
        "customer": {"external_id": "acme"},
        "subscriptions": {"external_ids": ["acme-team"]},
        "coupons": [{"code": "welcome", "name": "Welcome", "coupon_type": "percentage", "percentage_rate": 10}],
    }
    with CaptureQueriesContext(connection) as queries:
        invoice = preview(api, body)
    assert amounts(invoice) == (35500, 3550, 0, 31950)
    assert [(c["item"]["code"], c["amount_cents"]) for c in invoice["credits"]] == [("welcome", 3550)]
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")
        and "customers_apikey" not in q["sql"]  # the API key's last use, not the preview's
    ]
    assert writes == []


def test_termination_closes_the_period_then(api: APIClient, subscription: Subscription) -> None:
    body = {
        "customer": {"external_id": "acme"},
        "subscriptions": {"external_ids": ["acme-team"], "terminated_at": "2026-10-25T00:00:00Z"},
    }
    invoice = preview(api, body)
    # Oct 1 – 25: 24 of 31 days of $120 = $92.90, and the usage so far.
    assert amounts(invoice) == (9290 + 23500, 0, 0, 9290 + 23500)
    assert invoice["period_end"] == "2026-10-25T00:00:00Z"
    subscription.refresh_from_db()
    assert subscription.terminated_at is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"customer": {"external_id": "nobody"}, "plan_code": "team"}, "customer_not_found"),
        ({"customer": {"external_id": "acme"}, "plan_code": "enterprise"}, "plan_not_found"),
        ({"customer": {"external_id": "acme"}, "subscriptions": {"external_ids": ["other"]}}, "subscription_not_found"),
    ],
)
def test_unknown_customer_plan_or_subscription_is_404(
    api: APIClient, subscription: Subscription, body: dict[str, Any], code: str
) -> None:
    assert preview(api, body, expect=404)["code"] == code


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"plan_code": "team", "billing_time": "weekly"}, "billing_time", None),
        ({"plan_code": "team", "subscription_at": "soon"}, "subscription_at", None),
        ({"plan_code": "team", "billing_entity_code": "eu"}, "billing_entity_code", None),
        ({"plan_code": "team", "coupons": [{"coupon_type": "percentage"}]}, "coupons.0.percentage_rate", None),
        ({"plan_code": "team", "customer": {"currency": "XYZ"}}, "customer.currency", None),
        ({"plan_code": "team", "surprise": 1}, "surprise", None),
        ({"subscriptions": {"external_ids": ["acme-team"]}}, "customer", None),
        (
            {
                "customer": {"external_id": "acme"},
                "subscriptions": {"external_ids": ["acme-team"], "plan_code": "free"},
            },
            "subscriptions.plan_code",
            PLAN_CHANGE_NOT_SUPPORTED,
        ),
        (
            {
                "customer": {"external_id": "acme"},
                "subscriptions": {"external_ids": ["acme-team"], "terminated_at": "2026-10-01T00:00:00Z"},
            },
            "subscriptions.terminated_at",
            TERMINATED_IN_PAST,
        ),
    ],
)
def test_bad_input_is_422_naming_the_field(
    api: APIClient, subscription: Subscription, body: dict[str, Any], field: str, message: str | None
) -> None:
    found = errors(api.post(PATH, body, format="json"))
    assert field in found, found
    if message is not None:
        assert message in found[field][0]


def test_sdk_preview_parses_as_invoice_response(lago: Client, subscription: Subscription) -> None:  # noqa: F811
    new = lago.invoices.preview(
        InvoicePreview(customer=LagoCustomer(external_id="acme"), plan_code="team", billing_time="anniversary")
    )
    # Anniversary: a whole month from today, $120 less its 14 days of trial ($54.19).
    assert (new.lago_id, new.number, new.fees_amount_cents, new.total_amount_cents) == ("", "", 12000, 6581)
    existing = lago.invoices.preview(
        InvoicePreview(
            customer=LagoCustomer(external_id="acme"),
            subscriptions=Subscriptions(external_ids=["acme-team"]),
            coupons=CouponsList(__root__=[LagoCoupon(code="ten", coupon_type="fixed_amount", amount_cents=1000)]),
        )
    )
    assert (existing.total_amount_cents, existing.coupons_amount_cents) == (34500, 1000)
    assert existing.fees is not None and len(existing.fees.__root__) == 2


def test_new_subscription_to_an_advance_plan_previews_its_advance_invoice(api: APIClient, customer: Customer) -> None:
    scaled_team_plan(code="team-advance", pay_in_advance=True, promotion=None)
    invoice = preview(
        api, {"customer": {"external_id": "acme", "timezone": "Europe/Paris"}, "plan_code": "team-advance"}
    )
    # Billed on its first day, Paris time: Oct 20 – Nov 1 (12 of 31 days of $120).
    assert (invoice["kind"], invoice["issuing_date"], invoice["total_amount_cents"]) == ("advance", "2026-10-20", 4645)
    assert invoice["fees"][0]["pay_in_advance"] is True
    assert Customer.objects.get().timezone == "UTC"  # the preview's timezone was never saved

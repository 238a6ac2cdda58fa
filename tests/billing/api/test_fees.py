"""GET /api/v1/fees and /api/v1/fees/<lago_id>: the invoices' fee lines in Lago's shape, filtered
as Lago's; and one run of Lago's Python SDK against the live server over the customer routes
this wave adds (destroy, past and projected usage) and the fees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from rest_framework.test import APIClient

from billing.models import Invoice, InvoiceLine, LineKind
from billing.services.payments import invoice_mark_paid
from billing.services.period_close import close_periods
from customers.services import api_key_create
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import errors, get

NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)


@pytest.fixture
def invoices() -> list[Invoice]:
    plan = scaled_team_plan()
    acme = CustomerFactory(external_id="acme")
    SubscriptionFactory(
        customer=acme, plan=plan, external_id="acme-team", subscription_at=datetime(2026, 8, 1, tzinfo=UTC)
    )
    store_users(acme, range(300), datetime(2026, 9, 20, tzinfo=UTC), "sep")
    globex = CustomerFactory(external_id="globex")
    SubscriptionFactory(
        customer=globex, plan=plan, external_id="globex-team", subscription_at=datetime(2026, 9, 1, tzinfo=UTC)
    )
    close_periods(now=datetime(2026, 9, 2, 1, tzinfo=UTC))
    close_periods(now=datetime(2026, 10, 2, 1, tzinfo=UTC))
    return list(Invoice.objects.order_by("id"))


def fee_ids(api: APIClient, **params: Any) -> list[str]:
    return [fee["lago_id"] for fee in get(api, "/api/v1/fees", **params)["fees"]]


@pytest.mark.django_db
@pytest.mark.frozen_clock(NOW)
def test_fees_list_filters_and_find(api: APIClient, invoices: list[Invoice]) -> None:
    lines = InvoiceLine.objects.filter(invoice__in=invoices)
    fees = lines.filter(kind__in=[LineKind.BASE_FEE, LineKind.USAGE]).order_by("id")
    assert fee_ids(api, per_page=100) == [str(line.pk) for line in fees]
    acme_usage = fees.filter(invoice__customer__external_id="acme", kind=LineKind.USAGE)
    charge = {"external_customer_id": "acme", "fee_type": "charge", "billable_metric_code": "mtu"}
    assert fee_ids(api, **charge) == [str(line.pk) for line in acme_usage]
    assert fee_ids(api, external_subscription_id="globex-team", fee_type="subscription") == [
        str(line.pk) for line in fees.filter(invoice__subscription__external_id="globex-team", kind=LineKind.BASE_FEE)
    ]
    assert fee_ids(api, currency="eur") == []
    assert fee_ids(api, event_transaction_id="t1") == []

    september = acme_usage.get(invoice__period_start__month=9)
    fee = get(api, f"/api/v1/fees/{september.pk}")["fee"]
    assert (fee["amount_cents"], fee["units"], fee["item"]["type"], fee["item"]["code"]) == (
        23500,
        "300",
        "charge",
        "mtu",
    )
    assert (fee["payment_status"], fee["succeeded_at"], fee["external_customer_id"]) == ("pending", None, "acme")
    # the same fee as the invoice shows it
    invoice = get(api, f"/api/v1/invoices/{september.invoice_id}")["invoice"]
    shown = next(f for f in invoice["fees"] if f["lago_id"] == str(september.pk))
    assert shown.items() <= fee.items()

    invoice_mark_paid(invoice=september.invoice, now=NOW)
    assert fee_ids(api, payment_status="succeeded", succeeded_at_from="2026-10-20") == [
        str(line.pk) for line in fees.filter(invoice=september.invoice)
    ]
    assert fee_ids(api, succeeded_at_to="2026-10-19T23:59:59Z") == []
    assert fee_ids(api, created_at_from="2030-01-01") == []

    promotion = lines.filter(kind=LineKind.PROMOTION).first()
    assert promotion is not None
    for missing in (str(promotion.pk), "0", "abc"):
        assert get(api, f"/api/v1/fees/{missing}", 404)["code"] == "fee_not_found"


@pytest.mark.django_db
def test_fees_list_refuses_what_it_cannot_filter(api: APIClient) -> None:
    bad = api.get(
        "/api/v1/fees",
        {
            "fee_type": "tip",
            "payment_status": "lost",
            "failed_at_from": "2026-01-01",
            "created_at_to": "soon",
            "x": "1",
        },
    )
    assert set(errors(bad)) == {"fee_type", "payment_status", "failed_at_from", "created_at_to", "x"}


# --- Lago's SDK, live -------------------------------------------------------------------------


def months_ago(moment: datetime, n: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 - n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_lago_sdk_destroy_usage_and_fees(live_server: Any) -> None:
    """The server runs on the real clock: the subscription started two months ago, last month's
    users are invoiced, this month's are the current usage."""
    now = timezone.now()
    plan = scaled_team_plan()
    acme = CustomerFactory(external_id="sdk-acme")
    SubscriptionFactory(customer=acme, plan=plan, external_id="sdk-team", subscription_at=months_ago(now, 2))
    store_users(acme, range(120), months_ago(now, 1) + timedelta(days=9), "last")
    store_users(acme, range(50), months_ago(now, 0), "this")
    close_periods(now=now)
    CustomerFactory(external_id="sdk-leaving")
    _, key = api_key_create(name="sdk")
    lago = Client(api_key=key, api_url=live_server.url)

    past = lago.customers.past_usage("sdk-acme", "sdk-team")
    newest, oldest = past["usage_periods"]
    assert newest.from_datetime > oldest.from_datetime
    assert (newest.charges_usage[0].units, newest.charges_usage[0].amount_cents) == ("120", 2400)

    projected = lago.customers.projected_usage("sdk-acme", "sdk-team")
    assert projected.amount_cents == 0  # 50 users: within the free tier
    assert projected.charges_usage[0].units == "50"
    assert projected.projected_amount_cents >= projected.amount_cents

    found = lago.fees.find_all({"external_customer_id": "sdk-acme", "fee_type": "charge"})
    assert {f.units for f in found["fees"]} >= {"120"}
    one = lago.fees.find(found["fees"][0].lago_id)
    assert one.lago_id == found["fees"][0].lago_id and one.item.type == "charge"

    with pytest.raises(LagoApiError) as refused:
        lago.customers.destroy("sdk-acme")
    assert refused.value.status_code == 422
    assert lago.customers.destroy("sdk-leaving").external_id == "sdk-leaving"
    with pytest.raises(LagoApiError) as gone:
        lago.customers.find("sdk-leaving")
    assert gone.value.status_code == 404

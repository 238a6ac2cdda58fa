"""One instant, two time zones: every page shows the customer's own day (issue 17).

A commitment subscribed at 2026-10-31 23:30 UTC starts on November 1 for a Paris customer
(00:30 there) and on October 31 for a Los Angeles one (16:30 there). The customer page, the
commitment's page, the prepayment invoice's page and its document must each show that local day
(rendering in the server's UTC would give October 31 to both)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from billing.documents.formats import format_day
from billing.engine.vocabulary import BillingTime
from billing.models import Commitment, Plan
from billing.services.subscriptions import subscription_create
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

INSTANT = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "local_day", "other_day"),
    [("Europe/Paris", date(2026, 11, 1), date(2026, 10, 31)), ("America/Los_Angeles", date(2026, 10, 31), None)],
)
def test_the_same_instant_shows_the_customers_local_day_on_every_page(
    admin_client: Client, tz: str, local_day: date, other_day: date | None
) -> None:
    call_command("load_catalog", stdout=StringIO())
    customer = CustomerFactory(timezone=tz, currency="USD")
    subscription, _ = subscription_create(
        customer=customer,
        plan=Plan.objects.current().get(code="team-annual"),
        external_id=f"annual-{tz}",
        subscription_at=INSTANT,
        billing_time=BillingTime.CALENDAR,
        now=INSTANT,
    )
    commitment = Commitment.objects.get(subscription=subscription)
    assert commitment.invoice is not None
    day = format_day(local_day)

    pages = {
        "customer": admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk])),
        "commitment": admin_client.get(reverse("admin:billing_commitment_change", args=[commitment.pk])),
        "invoice": admin_client.get(reverse("admin:billing_invoice_change", args=[commitment.invoice.pk])),
        "document": admin_client.get(reverse("admin:billing_invoice_document", args=[commitment.invoice.pk])),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        content = response.content.decode()
        assert f"{day} –" in content, f"the {name} page does not show the term from {day}"
        if other_day is not None:
            assert f"{format_day(other_day)} –" not in content, f"the {name} page shows the UTC day"

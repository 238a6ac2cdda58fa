"""The customer page shows each commitment's balance, what was drawn so far, and its ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from billing.models import Plan
from billing.services.subscriptions import subscription_create
from customers.models import Customer

pytestmark = pytest.mark.django_db


def test_customer_page_shows_commitment_balance_drawdown_and_ledger(admin_client: Client) -> None:
    call_command("load_catalog", stdout=StringIO())
    customer = Customer.objects.create(external_id="initech", name="Initech")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with time_machine.travel(datetime(2026, 3, 1, 0, 10, tzinfo=UTC), tick=False):
        subscription_create(
            customer=customer,
            plan=Plan.objects.get(code="team-annual", is_current=True),
            external_id="initech-annual",
            subscription_at=start,
            billing_time="calendar",
            now=start,
        )
    with time_machine.travel(datetime(2026, 4, 1, 0, 5, tzinfo=UTC), tick=False):
        call_command("close_period", stdout=StringIO())  # March: 120.00 − 54.19 trial = 65.81 drawn
        page = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Prepaid commitments" in html
    assert '<strong class="commitment-balance">$1,374.19</strong>' in html
    assert '<strong class="commitment-drawn">$65.81</strong>' in html
    assert "Purchase" in html and "Drawdown" in html and "-$65.81" in html

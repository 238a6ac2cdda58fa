"""Issue acceptance: the team plan invoiced through the API and close_period."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from rest_framework.test import APIClient

from billing.models import Invoice, InvoiceStatus
from tests.helpers import api_client, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    call_command("load_catalog", stdout=StringIO())
    return api_client()


def send_users(api: APIClient, customer: str, users: range, when: datetime, prefix: str) -> None:
    events = [
        {
            "transaction_id": f"{prefix}-{u}",
            "external_customer_id": customer,
            "code": "mtu",
            "timestamp": int(when.timestamp()),
            "properties": {"user_id": f"u{u}"},
        }
        for u in users
    ]
    for start in range(0, len(events), 1000):
        post(api, "/api/v1/events/batch", {"events": events[start : start + 1000]})


def lines(invoice: Invoice) -> list[tuple[str, str]]:
    return [(line.kind, str(line.amount.quantize(Decimal("0.01")))) for line in invoice.lines.order_by("position")]


def close(at: datetime) -> str:
    out = StringIO()
    with time_machine.travel(at, tick=False):
        call_command("close_period", stdout=out)
    return out.getvalue()


def subscribe(api: APIClient, start: str) -> None:
    post(api, "/api/v1/customers", {"customer": {"external_id": "acme", "name": "Acme", "currency": "USD"}})
    post(
        api,
        "/api/v1/subscriptions",
        {
            "subscription": {
                "external_customer_id": "acme",
                "plan_code": "team",
                "external_id": "acme-team",
                "subscription_at": start,
                "billing_time": "calendar",
            }
        },
    )


def test_team_plan_september_trial_then_october(api: APIClient) -> None:
    with time_machine.travel(datetime(2026, 9, 20, 12, tzinfo=UTC), tick=False):
        subscribe(api, "2026-09-01T00:00:00Z")
        send_users(api, "acme", range(12_000), datetime(2026, 9, 20, tzinfo=UTC), "sep")
    close(datetime(2026, 10, 1, 0, 5, tzinfo=UTC))
    september = Invoice.objects.get(period_start=datetime(2026, 9, 1, tzinfo=UTC))
    assert september.status == InvoiceStatus.FINALIZED
    assert lines(september) == [("base_fee", "120.00"), ("promotion", "-56.00"), ("usage", "24.00")]
    assert september.total == Decimal("88.00")
    assert september.number == "INV-2026-000001"

    with time_machine.travel(datetime(2026, 10, 20, 12, tzinfo=UTC), tick=False):
        send_users(api, "acme", range(30_000), datetime(2026, 10, 20, tzinfo=UTC), "oct")
    close(datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    october = Invoice.objects.get(period_start=datetime(2026, 10, 1, tzinfo=UTC))
    assert lines(october) == [("base_fee", "120.00"), ("usage", "235.00")]
    assert october.total == Decimal("355.00")
    assert october.number == "INV-2026-000002"

    # idempotent: closing again changes nothing
    before = list(Invoice.objects.values_list("id", "status", "total", "number"))
    close(datetime(2026, 11, 1, 1, 0, tzinfo=UTC))
    assert list(Invoice.objects.values_list("id", "status", "total", "number")) == before


def test_team_plan_started_mid_month_prorates_the_first_period(api: APIClient) -> None:
    with time_machine.travel(datetime(2026, 9, 20, tzinfo=UTC), tick=False):
        subscribe(api, "2026-09-10T00:00:00Z")
    close(datetime(2026, 10, 1, 0, 5, tzinfo=UTC))
    invoice = Invoice.objects.get()
    assert (invoice.period_start, invoice.period_end) == (
        datetime(2026, 9, 10, tzinfo=UTC),
        datetime(2026, 10, 1, tzinfo=UTC),
    )
    assert lines(invoice) == [("base_fee", "84.00"), ("promotion", "-56.00")]
    assert invoice.total == Decimal("28.00")

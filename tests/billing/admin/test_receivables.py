"""The receivables aging page and its CSV (billing.admin.receivables); the figures themselves are
tested with known values across time zones in tests/billing/selectors/test_receivables.py.

Invoices are written with the ORM with known due dates; the clock stands at 2026-05-01 02:00 UTC
(May 1 in Tokyo, still April 30 in Los Angeles).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.admin.receivables import CSV_HEADER
from billing.models import Invoice, InvoiceKind, InvoiceStatus, Payment, PaymentStatus, Subscription
from tests.factories import CustomerFactory, PlanFactory, SubscriptionFactory

NOW = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]

_n = iter(range(1, 100_000))


def subscribed(external_id: str, name: str, tz: str = "UTC", currency: str = "USD") -> Subscription:
    customer = CustomerFactory(external_id=external_id, name=name, timezone=tz, currency=currency)
    return SubscriptionFactory(customer=customer, plan=PlanFactory(currency=currency))


def invoice(subscription: Subscription, total: str, due: date, **fields: Any) -> Invoice:
    n = next(_n)
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n)
    return Invoice.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        kind=InvoiceKind.PERIOD,
        period_start=start,
        period_end=start + timedelta(days=1),
        status=InvoiceStatus.FINALIZED,
        number=f"INV-2026-{n:06d}",
        currency=subscription.customer.currency,
        total=Decimal(total),
        issued_on=due,
        payment_due_date=due,
        **fields,
    )


@pytest.fixture
def receivables() -> None:
    tokyo = subscribed("tokyo", "Tokyo KK", "Asia/Tokyo")
    la = subscribed("la", "LA Inc", "America/Los_Angeles")
    euro = subscribed("euro", "=Euro GmbH", "Europe/Berlin", "EUR")  # a name a spreadsheet would run
    invoice(tokyo, "100.00", date(2026, 4, 30))  # 1 day overdue in Tokyo
    invoice(la, "100.00", date(2026, 4, 30))  # due today in Los Angeles
    partly = invoice(la, "250.00", date(2026, 1, 1))  # 120 days late in Los Angeles
    Payment.objects.create(invoice=partly, amount=Decimal("49.99"), currency="USD", reference="w", paid_at=NOW)
    invoice(la, "75.00", date(2026, 1, 1), payment_status=PaymentStatus.SUCCEEDED)  # paid: not listed
    invoice(euro, "70.00", date(2026, 3, 1))  # 61 days in Berlin


def aging_url() -> str:
    return reverse("admin:billing_receivables")


def test_aging_page_shows_each_customer_and_a_total_per_currency(admin_client: Client, receivables: None) -> None:
    response = admin_client.get(aging_url())
    assert response.status_code == 200
    currencies = response.context["currencies"]
    assert [c["currency"] for c in currencies] == ["EUR", "USD"]
    eur, usd = currencies
    assert [(row["external_id"], row["amounts"], row["total"]) for row in usd["rows"]] == [
        ("la", ["100.00", "", "", "", "200.01"], "300.01"),
        ("tokyo", ["", "100.00", "", "", ""], "100.00"),
    ]
    assert (usd["amounts"], usd["total"], usd["overdue"], usd["invoices"]) == (
        ["100.00", "100.00", "0.00", "0.00", "200.01"],
        "400.01",
        "300.01",
        3,
    )
    assert [(row["external_id"], row["amounts"][3]) for row in eur["rows"]] == [("euro", "70.00")]
    content = response.content.decode()
    assert "USD: 400.01 due from 2 customers, 300.01 of it overdue" in content
    assert (
        reverse(
            "admin:customers_customer_change",
            args=[Invoice.objects.get(total=100, customer__external_id="la").customer_id],
        )
        in content
    )
    assert "?customer=la&amp;settlement=unpaid" in content  # the customer's invoices still due
    assert reverse("admin:billing_receivables_csv") in content
    for label in ("Not yet due", "1–30 days", "31–60 days", "61–90 days", "Over 90 days"):
        assert label in content


def test_aging_csv_is_the_same_table(admin_client: Client, receivables: None) -> None:
    response: Any = admin_client.get(reverse("admin:billing_receivables_csv"))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="receivables-aging-2026-05-01.csv"'
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows == [
        list(CSV_HEADER),
        ["EUR", "euro", "'=Euro GmbH", "1", "0.00", "0.00", "0.00", "70.00", "0.00", "70.00"],
        ["EUR", "", "Total", "1", "0.00", "0.00", "0.00", "70.00", "0.00", "70.00"],
        ["USD", "la", "LA Inc", "2", "100.00", "0.00", "0.00", "0.00", "200.01", "300.01"],
        ["USD", "tokyo", "Tokyo KK", "1", "0.00", "100.00", "0.00", "0.00", "0.00", "100.00"],
        ["USD", "", "Total", "3", "100.00", "100.00", "0.00", "0.00", "200.01", "400.01"],
    ]


def test_aging_page_with_nothing_due(admin_client: Client) -> None:
    response = admin_client.get(aging_url())
    assert response.status_code == 200
    assert "Nothing is due" in response.content.decode()


def test_aging_page_queries_do_not_grow_with_the_invoices(admin_client: Client, receivables: None) -> None:
    admin_client.get(aging_url())  # warm up the session
    with CaptureQueriesContext(connection) as before:
        admin_client.get(aging_url())
    for i in range(40):
        extra = subscribed(f"more-{i:02d}", f"More {i}", "Asia/Kolkata" if i % 3 else "UTC")
        paid = invoice(extra, "10.00", date(2026, 2, 1))
        Payment.objects.create(invoice=paid, amount=Decimal(1), currency="USD", reference="w", paid_at=NOW)
    with CaptureQueriesContext(connection) as after:
        response = admin_client.get(aging_url())
    assert len(after) == len(before) <= 8, [q["sql"] for q in after.captured_queries]
    assert len(response.context["currencies"][1]["rows"]) == 42
    with CaptureQueriesContext(connection) as csv_queries:
        download: Any = admin_client.get(reverse("admin:billing_receivables_csv"))
        b"".join(download.streaming_content)
    assert len(csv_queries) <= 8


def test_invoice_list_links_the_aging_page(admin_client: Client) -> None:
    assert aging_url() in admin_client.get(reverse("admin:billing_invoice_changelist")).content.decode()


# --- Who sees it --------------------------------------------------------------------------------


def staff_client(*codenames: str) -> Client:
    user = User.objects.create_user("clerk", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_staff_who_may_view_invoices_open_the_aging_page(receivables: None) -> None:
    client = staff_client("view_invoice")
    assert client.get(aging_url()).status_code == 200
    assert client.get(reverse("admin:billing_receivables_csv")).status_code == 200


def test_staff_without_invoice_permission_may_not(receivables: None) -> None:
    client = staff_client("view_customer")
    assert client.get(aging_url()).status_code == 403
    assert client.get(reverse("admin:billing_receivables_csv")).status_code == 403

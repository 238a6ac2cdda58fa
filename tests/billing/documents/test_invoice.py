"""The invoice document (billing.documents.invoice): a real invoice rendered to self-contained HTML.

The team-plan invoice is made the way production makes it: the Segment catalog, customers,
subscriptions and events through the API, then close_period with the clock frozen
(as tests/billing/services/test_invoicing_acceptance.py does).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from rest_framework.test import APIClient

from billing.documents.invoice import DRAFT_BANNER, NOT_ISSUED, VOID_BANNER, invoice_context, render_invoice_html
from billing.models import Invoice, InvoiceLine, InvoiceStatus, LineKind
from billing.services.invoices import invoice_finalize, invoice_void
from billing.services.payments import invoice_mark_paid
from billing.services.period_close import close_periods
from customers.models import Customer
from tests.factories import CustomerFactory, SubscriptionFactory, team_plan
from tests.helpers import api_client, post

pytestmark = pytest.mark.django_db

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)


# --- Building real invoices ---------------------------------------------------------------------


def send_users(api: APIClient, customer: str, count: int, when: datetime) -> None:
    events = [
        {
            "transaction_id": f"doc-{u}",
            "external_customer_id": customer,
            "code": "mtu",
            "timestamp": int(when.timestamp()),
            "properties": {"user_id": f"u{u}"},
        }
        for u in range(count)
    ]
    for start in range(0, len(events), 1000):
        post(api, "/api/v1/events/batch", {"events": events[start : start + 1000]})


@pytest.fixture
def team_october_invoice() -> Invoice:
    """The seeds' worked example: team plan, 30,000 MTUs in October → $355.00 (finalized)."""
    call_command("load_catalog", stdout=StringIO())
    api = api_client()
    with time_machine.travel(datetime(2026, 9, 2, 12, tzinfo=UTC), tick=False):
        post(
            api,
            "/api/v1/customers",
            {
                "customer": {
                    "external_id": "acme",
                    "name": "Acme",
                    "email": "billing@acme.example",
                    "currency": "USD",
                    "legal_name": "Acme Corporation Ltd",
                    "tax_identification_number": "FR40303265045",
                    "address_line1": "12 Rue de la Paix",
                    "city": "Paris",
                    "zipcode": "75002",
                    "country": "FR",
                }
            },
        )
        # Subscribed on September 1, so the 14-day trial on the base fee is over by October.
        post(
            api,
            "/api/v1/subscriptions",
            {
                "subscription": {
                    "external_customer_id": "acme",
                    "plan_code": "team",
                    "external_id": "acme-team",
                    "subscription_at": "2026-09-01T00:00:00Z",
                    "billing_time": "calendar",
                }
            },
        )
    with time_machine.travel(datetime(2026, 10, 20, 12, tzinfo=UTC), tick=False):
        send_users(api, "acme", 30_000, datetime(2026, 10, 20, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 11, 1, 0, 5, tzinfo=UTC), tick=False):
        call_command("close_period", stdout=StringIO())
    invoice = Invoice.objects.get(period_start=OCTOBER)
    assert invoice.status == InvoiceStatus.FINALIZED
    assert invoice.total == Decimal("355.00")
    return invoice


def closed_invoice(
    *, currency: str = "USD", base_fee: str = "120", grace_hours: int = 0, settings: Any, name: str = "Globex"
) -> Invoice:
    """The October invoice of a plan without usage, built by close_periods (a draft while in grace)."""
    settings.BILLING_GRACE_PERIOD_HOURS = grace_hours
    plan = team_plan(code=f"team-{currency.lower()}", currency=currency, base_fee=Decimal(base_fee))
    customer = CustomerFactory(name=name, currency=currency, legal_name="", city="Springfield", country="US")
    SubscriptionFactory(customer=customer, plan=plan, subscription_at=OCTOBER)
    report = close_periods(now=datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    assert not report.errors, report.errors
    return Invoice.objects.get(customer=customer, period_start=OCTOBER)


def text_of(html: str) -> str:
    """The visible text, whitespace collapsed, for assertions that span elements."""
    without_style = re.sub(r"<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without_style)).strip()


# --- The team plan invoice ----------------------------------------------------------------------


def test_finalized_team_invoice_shows_lines_tiers_parties_and_total(team_october_invoice: Invoice) -> None:
    invoice = team_october_invoice
    html = render_invoice_html(invoice)
    text = text_of(html)

    assert invoice.number in html
    assert "DRAFT" not in html
    assert DRAFT_BANNER not in html
    # seller and customer, from the snapshot taken at finalization
    assert "Segment Demo Inc." in text
    assert "Acme Corporation Ltd" in text
    assert "Acme" in text
    assert "12 Rue de la Paix" in text
    assert "75002 Paris" in text
    assert "France" in text
    assert "Tax ID: FR40303265045" in text
    assert "billing@acme.example" in text
    # dates and currency
    assert "Issue date November 1, 2026" in text
    assert "Billing period October 1, 2026 – October 31, 2026" in text
    assert "Currency USD" in text
    assert "Status Finalized" in text
    # lines: base fee, usage, total
    assert "Team base fee" in text
    assert "$120.00" in text
    assert "$235.00" in text
    assert re.search(r"Total \$355\.00", text)
    # the usage line is followed by its tiers: units, unit price, tier amount
    assert "Tier 1: Up to 10,000 10,000 $0.00 $0.00" in text
    assert "Tier 2: 10,001 – 25,000 15,000 $0.012 $180.00" in text
    assert "Tier 3: 25,001 – 100,000 5,000 $0.011 $55.00" in text
    # a tier that priced nothing is left out
    assert "100,001 and above" not in text
    assert "Tier 4" not in text
    # self-contained: no external stylesheet, script, font or image
    assert "<link" not in html
    assert "<script" not in html
    assert "http://" not in html and "https://" not in html


def test_finalized_invoice_keeps_its_snapshot_when_the_customer_changes(team_october_invoice: Invoice) -> None:
    Customer.objects.filter(external_id="acme").update(name="Renamed", legal_name="Renamed Holdings")
    text = text_of(render_invoice_html(Invoice.objects.get(pk=team_october_invoice.pk)))
    assert "Acme Corporation Ltd" in text
    assert "Renamed" not in text


# --- Drafts, void and paid invoices -------------------------------------------------------------


def test_draft_shows_the_draft_banner_and_the_live_customer(settings: Any) -> None:
    invoice = closed_invoice(grace_hours=48, settings=settings)
    assert invoice.status == InvoiceStatus.DRAFT
    Customer.objects.filter(pk=invoice.customer_id).update(name="Globex Live Name")

    html = render_invoice_html(Invoice.objects.get(pk=invoice.pk))
    text = text_of(html)
    assert 'id="draft-banner"' in html
    assert DRAFT_BANNER in text
    assert "Invoice DRAFT" in text
    assert f"Issue date {NOT_ISSUED}" in text
    assert "Globex Live Name" in text  # a draft shows the customer as it is now
    assert "Segment Demo Inc." in text  # and the configured seller
    assert re.search(r"Total \$120\.00", text)


def test_void_invoice_shows_the_void_banner_with_its_reason(settings: Any) -> None:
    invoice = closed_invoice(settings=settings)
    invoice_void(invoice=invoice, reason="Billed to the wrong entity", now=datetime(2026, 11, 3, tzinfo=UTC))
    html = render_invoice_html(Invoice.objects.get(pk=invoice.pk))
    text = text_of(html)
    assert 'id="void-banner"' in html
    assert VOID_BANNER in text
    assert "Reason: Billed to the wrong entity" in text
    assert DRAFT_BANNER not in text


def test_paid_invoice_states_when_it_was_paid(settings: Any) -> None:
    invoice = closed_invoice(settings=settings)
    invoice_mark_paid(invoice=invoice, now=datetime(2026, 11, 10, 9, tzinfo=UTC))
    text = text_of(render_invoice_html(Invoice.objects.get(pk=invoice.pk)))
    assert "Status Paid on November 10, 2026" in text
    assert "VOID" not in text


# --- Currencies ---------------------------------------------------------------------------------


def test_eur_invoice_is_formatted_in_euros(settings: Any) -> None:
    invoice = closed_invoice(currency="EUR", base_fee="1234.50", settings=settings)
    text = text_of(render_invoice_html(invoice))
    assert "Currency EUR" in text
    assert "€1,234.50" in text
    assert re.search(r"Total €1,234\.50", text)
    assert "$" not in text


def test_jpy_invoice_has_no_minor_unit_and_rounds_half_up(settings: Any) -> None:
    invoice = closed_invoice(currency="JPY", base_fee="1234.5", settings=settings)
    assert invoice.total == Decimal("1235")  # billing.engine.money rounds the line half up, once
    text = text_of(render_invoice_html(invoice))
    assert re.search(r"Total ¥1,235(?![\d.,])", text)
    assert "¥1,234.5" in text  # the unit price is shown exact
    assert "¥1,235.00" not in text


def test_lines_show_promotions_as_credits_and_skip_empty_tiers(settings: Any) -> None:
    """Line rendering over stored details: a credit, a flat tier fee, an exact tier amount, the limit note."""
    invoice = closed_invoice(settings=settings, grace_hours=48)
    InvoiceLine.objects.filter(invoice=invoice).delete()
    common = {
        "invoice": invoice,
        "currency": "USD",
        "period_start": invoice.period_start,
        "period_end": invoice.period_end,
    }
    InvoiceLine.objects.create(
        position=0,
        kind=LineKind.PROMOTION,
        description="14-day free trial: 100 % off the base fee for 14 of 31 days",
        quantity=Decimal(14),
        amount=Decimal("-54.19"),
        **common,
    )
    InvoiceLine.objects.create(
        position=1,
        kind=LineKind.USAGE,
        description="Monthly tracked users",
        quantity=Decimal(10_001),
        amount=Decimal("5.01"),
        details={
            "quantity": "10001",
            "billed_units": "10001",
            "limit_exceeded": True,
            "tiers": [
                {
                    "position": 1,
                    "from": "1",
                    "up_to": "10000",
                    "units": "10000",
                    "unit_amount": "0",
                    "flat_amount": "5",
                    "amount": "5",
                },
                {
                    "position": 2,
                    "from": "10001",
                    "up_to": None,
                    "units": "1",
                    "unit_amount": "0.012",
                    "flat_amount": "0",
                    "amount": "0.012",
                },
                {
                    "position": 3,
                    "from": "20001",
                    "up_to": None,
                    "units": "0",
                    "unit_amount": "0.5",
                    "flat_amount": "0",
                    "amount": "0",
                },
            ],
        },
        **common,
    )
    context = invoice_context(invoice)
    promotion, usage = context["lines"]
    assert promotion["is_credit"] and promotion["amount"] == "-$54.19"
    assert promotion["quantity"] == ""  # the description says "14 of 31 days"
    assert [tier["label"] for tier in usage["tiers"]] == ["Tier 1: Up to 10,000", "Tier 2: 10,001 and above"]
    assert usage["tiers"][0]["flat_amount"] == "$5.00"
    assert usage["tiers"][1]["amount"] == "$0.012"  # tiers are exact; the line is rounded once
    assert usage["amount"] == "$5.01"

    text = text_of(render_invoice_html(invoice))
    assert "-$54.19" in text
    assert "+ $5.00 flat fee" in text
    assert "Usage limit reached: 10,001 measured, 10,001 billed." in text
    assert "Tier 3" not in text


def test_finalizing_a_draft_switches_the_document_to_the_snapshot(settings: Any) -> None:
    invoice = closed_invoice(grace_hours=48, settings=settings)
    invoice_finalize(invoice=invoice, now=datetime(2026, 11, 3, 10, tzinfo=UTC))
    invoice.refresh_from_db()
    Customer.objects.filter(pk=invoice.customer_id).update(name="Changed later")
    text = text_of(render_invoice_html(invoice))
    assert f"Invoice {invoice.number}" in text
    assert "Issue date November 3, 2026" in text
    assert "Globex" in text and "Changed later" not in text

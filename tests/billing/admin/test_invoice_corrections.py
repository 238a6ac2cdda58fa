"""'Void and regenerate selected invoices' (billing.admin.invoice_corrections), which calls
billing.services.invoices.invoice_regenerate; "Void selected invoices" is tested with the other
invoice actions in test_invoices.py.

October invoices of the Team plan ($120 base fee) made by close_periods: one finalized
(INV-2026-000001), one paid (…02), one voided (…03), one draft; and a commitment prepayment
written with the ORM.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from billing.admin.invoice_corrections import (
    INVOICES_REGENERATED,
    NOTHING_TO_REGENERATE,
    REGENERATE_PERIOD_TAKEN,
    VOID_REASON_MISSING,
)
from billing.models import Invoice, InvoiceKind, InvoiceStatus, PaymentStatus
from billing.services.invoices import VOID_PAID, invoice_finalize, invoice_void
from billing.services.payments import invoice_mark_paid
from billing.services.period_close import close_periods
from tests.factories import CustomerFactory, SubscriptionFactory, team_plan

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
CLOSE_AT = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
FINALIZED_AT = datetime(2026, 11, 3, 9, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 10, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def october(settings: Any) -> dict[str, Invoice]:
    settings.BILLING_GRACE_PERIOD_HOURS = 48
    plan = team_plan()
    subscriptions = {
        name: SubscriptionFactory(
            customer=CustomerFactory(external_id=f"{name}-co", name=f"{name.title()} Co"),
            plan=plan,
            external_id=f"{name}-sub",
            subscription_at=OCTOBER,
        )
        for name in ("finalized", "paid", "void", "draft")
    }
    close_periods(now=CLOSE_AT)
    invoices = {name: Invoice.objects.get(subscription=sub) for name, sub in subscriptions.items()}
    for name in ("finalized", "paid", "void"):
        invoices[name] = invoice_finalize(invoice=invoices[name], now=FINALIZED_AT)
    invoice_mark_paid(invoice=invoices["paid"], now=FINALIZED_AT)
    invoice_void(invoice=invoices["void"], reason="duplicate", now=FINALIZED_AT)
    invoices["commitment"] = Invoice.objects.create(
        customer=invoices["finalized"].customer,
        subscription=invoices["finalized"].subscription,
        kind=InvoiceKind.COMMITMENT,
        period_start=OCTOBER,
        period_end=OCTOBER + timedelta(days=365),
        status=InvoiceStatus.FINALIZED,
        number="INV-2026-000099",
        currency="USD",
        total=Decimal(1440),
        issued_on=OCTOBER.date(),
    )
    for invoice in invoices.values():
        invoice.refresh_from_db()
    return invoices


def run(client: Client, invoices: list[Invoice], **extra: str) -> Any:
    data = {"action": "regenerate_selected", "_selected_action": [i.pk for i in invoices], "index": "0", **extra}
    return client.post(reverse("admin:billing_invoice_changelist"), data, follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_regenerate_asks_for_a_reason_listing_what_it_will_and_will_not_do(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    response = run(admin_client, list(october.values()))
    assert response.status_code == 200
    assert response.templates[0].name == "admin/billing/invoice/regenerate_confirmation.html"
    assert [row["invoice"] for row in response.context["regenerable"]] == [
        october["finalized"],
        october["paid"],
        october["void"],
    ]
    assert {row["invoice"].pk: row["why"] for row in response.context["refused"]} == {
        october["draft"].pk: "a draft: it is recomputed, not regenerated",
        october["commitment"].pk: ("a commitment prepayment invoice: only period and advance invoices are regenerated"),
    }
    # without a reason: the page again, nothing changed
    response = run(admin_client, [october["finalized"]], apply="yes", reason="  ")
    assert VOID_REASON_MISSING in response.content.decode()
    assert Invoice.objects.get(pk=october["finalized"].pk).status == InvoiceStatus.FINALIZED
    assert Invoice.objects.count() == 5


def test_regenerate_voids_and_makes_each_period_again_and_reports_the_new_numbers(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    finalized, paid, void = october["finalized"], october["paid"], october["void"]
    response = run(admin_client, [finalized, paid, void, october["draft"]], apply="yes", reason="Plan price fixed")
    numbers = "INV-2026-000001 → INV-2026-000004, INV-2026-000003 → INV-2026-000005"
    assert messages_of(response) == [
        INVOICES_REGENERATED[1] % {"count": 2, "numbers": numbers},
        VOID_PAID.format(invoice=paid),
    ]
    finalized.refresh_from_db()
    assert (finalized.status, finalized.void_reason) == (InvoiceStatus.VOIDED, "Plan price fixed")
    new = Invoice.objects.get(number="INV-2026-000004")
    assert (new.subscription_id, new.period_start, new.status, new.total) == (
        finalized.subscription_id,
        finalized.period_start,
        InvoiceStatus.FINALIZED,
        Decimal("120.00"),
    )
    assert Invoice.objects.get(number="INV-2026-000005").subscription_id == void.subscription_id
    # the paid one is left as it was
    paid.refresh_from_db()
    assert (paid.status, paid.payment_status) == (InvoiceStatus.FINALIZED, PaymentStatus.SUCCEEDED)


def test_a_voided_invoice_whose_period_has_a_live_invoice_is_not_regenerated(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    run(admin_client, [october["finalized"]], apply="yes", reason="once")
    response = run(admin_client, [october["finalized"]], apply="yes", reason="twice")
    assert messages_of(response) == [
        NOTHING_TO_REGENERATE,
        REGENERATE_PERIOD_TAKEN.format(invoice=october["finalized"], live="INV-2026-000004"),
    ]
    assert Invoice.objects.filter(subscription=october["finalized"].subscription, kind=InvoiceKind.PERIOD).count() == 2


def test_nothing_to_regenerate_says_so_without_a_confirmation_page(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    response = run(admin_client, [october["draft"], october["commitment"]])
    assert response.redirect_chain
    assert messages_of(response) == [NOTHING_TO_REGENERATE]

"""The invoice page's money (billing.admin.invoice_money): what was paid, offset and is still due,
since when it is overdue in the customer's time zone, its payments and credit notes.

The invoice is `discounted_invoice` (tests/billing/admin/conftest.py): total 99.00, finalized on
November 3 with a 30-day term, so due on December 3.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from billing.models import CreditNoteReason, Invoice, LineKind
from billing.services.credit_notes import credit_note_create
from billing.services.payments import payment_create

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


def page(client: Client, invoice: Invoice) -> str:
    return client.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()


def test_invoice_page_shows_payments_offsets_and_what_is_due(
    admin_client: Client, admin_user: User, discounted_invoice: Invoice
) -> None:
    invoice = discounted_invoice
    content = page(admin_client, invoice)
    assert "Still due" in content and "$99.00" in content and "overdue by" not in content
    payment_create(invoice=invoice, amount=Decimal(40), reference="WIRE-7", paid_at=NOW, now=NOW, user=admin_user)
    note = credit_note_create(
        invoice=invoice,
        items=[(invoice.lines.get(kind=LineKind.USAGE).pk, Decimal(12))],
        reason=CreditNoteReason.OTHER,
        credit_amount=Decimal(0),
        refund_amount=Decimal(0),
        offset_amount=Decimal(9),
        now=NOW,
    )
    content = page(admin_client, invoice)
    assert "$40.00, and $9.00 offset by credit notes" in content
    assert "$50.00" in content  # 99 − 40 − 9
    assert "WIRE-7" in content and "recorded by admin" in content
    assert reverse("admin:billing_creditnote_change", args=[note.pk]) in content
    assert "INV-2026-000001-CN1</a>: $9.00 (offset $9.00)" in content


def test_overdue_from_the_day_after_the_due_date(client: Client, admin_user: User, discounted_invoice: Invoice) -> None:
    with time_machine.travel(datetime(2026, 12, 3, 23, 59, tzinfo=UTC), tick=False):
        client.force_login(admin_user)
        assert "overdue by" not in page(client, discounted_invoice)
    with time_machine.travel(datetime(2026, 12, 5, 0, 0, tzinfo=UTC), tick=False):
        client.force_login(admin_user)
        assert "overdue by 2 days" in page(client, discounted_invoice)

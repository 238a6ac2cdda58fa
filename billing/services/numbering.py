"""Finalizing an invoice's identity: its gap-free number, issue date and billing snapshot."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from sequences import get_next_value

from billing.models import Invoice, InvoiceStatus
from billing.selectors.invoices import customer_snapshot
from metering.days import local_date


def assign_number(*, invoice: Invoice, now: datetime) -> Invoice:
    """Number a draft and make it final. Call inside a transaction holding the invoice's row lock.

    django-sequences keeps a row-locked counter per year inside this transaction, so numbers
    are gap-free (a rollback gives the number back) and two finalizers never share one.
    """
    # The number's year is the issue date's (the customer's day), so they never disagree.
    invoice.issued_on = local_date(now, invoice.customer.timezone)
    year = invoice.issued_on.year
    invoice.number = f"INV-{year}-{get_next_value(f'invoice-{year}'):06d}"
    invoice.status = InvoiceStatus.FINALIZED
    invoice.finalized_at = now
    invoice.customer_snapshot = customer_snapshot(invoice)
    invoice.seller_name = settings.BILLING_SELLER_NAME
    invoice.save()
    return invoice

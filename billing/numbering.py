"""Finalizing an invoice's identity: its gap-free number, issue date and billing snapshot."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from sequences import get_next_value

from billing.models import Invoice, InvoiceStatus
from metering.days import local_date


def customer_snapshot(invoice: Invoice) -> dict[str, str]:
    c = invoice.customer
    return {
        "external_id": c.external_id,
        "name": c.name,
        "legal_name": c.legal_name,
        "email": c.email,
        "tax_identification_number": c.tax_identification_number,
        "address_line1": c.address_line1,
        "address_line2": c.address_line2,
        "city": c.city,
        "zipcode": c.zipcode,
        "state": c.state,
        "country": c.country,
        "currency": c.currency,
        "timezone": c.timezone,
    }


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

"""Reads of invoices: with everything their JSON needs, their issuing date, billing details."""

from __future__ import annotations

from datetime import date

from django.db.models import Prefetch, QuerySet

from billing.models import Invoice, InvoiceKind, InvoiceLine
from metering.days import local_date


def customer_snapshot(invoice: Invoice) -> dict[str, str]:
    """The customer's billing details as they are now (frozen onto an invoice at finalization)."""
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


def issuing_date(invoice: Invoice) -> date:
    """The day it was issued (finalized), or for a draft the day it is due, in the customer's zone."""
    if invoice.issued_on is not None:
        return invoice.issued_on
    due = invoice.period_end if invoice.kind == InvoiceKind.PERIOD else invoice.period_start
    return local_date(due, invoice.customer.timezone)


def invoices_with_relations() -> QuerySet[Invoice]:
    """Everything the API's invoice JSON reads, in a fixed number of queries however many invoices."""
    return Invoice.objects.select_related(
        "customer", "subscription", "subscription__plan", "subscription__customer", "subscription__promotion"
    ).prefetch_related(
        Prefetch("lines", queryset=InvoiceLine.objects.select_related("metric").order_by("position", "id"))
    )

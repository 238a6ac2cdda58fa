"""Finalizing an invoice's identity: its gap-free number, issue date, payment terms and billing
snapshot."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import cast

from django.conf import settings
from sequences import get_next_value, get_next_values

from billing.models import Invoice, InvoiceStatus, PaymentStatus
from billing.selectors.invoices import customer_snapshot
from customers.models import Customer
from metering.days import local_date

# What finalizing a stored draft changes: one UPDATE of these, not a save of every column.
FINALIZED_FIELDS = [
    "number",
    "status",
    "issued_on",
    "finalized_at",
    "net_payment_term",
    "payment_due_date",
    "payment_status",
    "paid_at",
    "customer_snapshot",
    "seller_name",
    "updated_at",
]


def net_payment_term(customer: Customer) -> int:
    """The customer's payment term in days, or the default (BILLING_NET_PAYMENT_TERM_DAYS)."""
    term = customer.net_payment_term
    return term if term is not None else int(settings.BILLING_NET_PAYMENT_TERM_DAYS)


def assign_number(*, invoice: Invoice, now: datetime) -> Invoice:
    """Number a draft and make it final. Call inside a transaction holding the invoice's row lock
    (a stored draft), after everything that does not need the number.

    django-sequences keeps a row-locked counter per year inside this transaction, so numbers
    are gap-free (a rollback gives the number back) and two finalizers never share one. That
    lock is held from `get_next_value` until the commit, and every finalization in the database
    waits for it: so the number is taken last, after the rest is computed, and what follows it
    is one statement (the INSERT of a new invoice, or one UPDATE of a stored draft's finalized
    columns). The payment terms are the customer's now: due = issuing date + term; an invoice
    of 0.00 is settled at once (DESIGN §6).
    """
    finalized_identity(invoice, now)
    year = cast(date, invoice.issued_on).year
    invoice.number = f"INV-{year}-{get_next_value(f'invoice-{year}'):06d}"
    if invoice._state.adding:
        invoice.save(force_insert=True)  # a new invoice (its id reserved, maybe): the INSERT
    else:
        invoice.save(update_fields=FINALIZED_FIELDS)
    return invoice


def finalized_identity(invoice: Invoice, now: datetime) -> None:
    """Everything finalizing sets but the number: the issue date (the customer's day, whose year
    the number takes), status, payment terms (due = issuing date + term; an invoice of 0.00 is
    settled at once, DESIGN §6) and the billing snapshot."""
    # The number's year is the issue date's (the customer's day), so they never disagree.
    invoice.issued_on = local_date(now, invoice.customer.timezone)
    invoice.status = InvoiceStatus.FINALIZED
    invoice.finalized_at = now
    invoice.net_payment_term = net_payment_term(invoice.customer)
    invoice.payment_due_date = invoice.issued_on + timedelta(days=invoice.net_payment_term)
    if invoice.total <= 0:
        invoice.payment_status = PaymentStatus.SUCCEEDED
        invoice.paid_at = now
    invoice.customer_snapshot = customer_snapshot(invoice)
    invoice.seller_name = settings.BILLING_SELLER_NAME


def number_all(invoices: list[Invoice]) -> None:
    """Number several invoices made final in this transaction (finalized_identity done), in their
    order: one counter statement per year instead of one per invoice. As in assign_number, the
    counter's row stays locked until the commit and a rollback gives the numbers back, so they
    stay gap-free; the caller takes them last."""
    by_year: dict[int, list[Invoice]] = {}
    for invoice in invoices:
        by_year.setdefault(cast(date, invoice.issued_on).year, []).append(invoice)
    for year, those in sorted(by_year.items()):
        for invoice, value in zip(those, get_next_values(len(those), f"invoice-{year}"), strict=True):
            invoice.number = f"INV-{year}-{value:06d}"

"""Payments against invoices (DESIGN §6 "Payment terms and payments").

A payment is recorded on a finalized invoice under its row lock, whole or in part, never more
than is due: total − payments − credit-note offsets. When payments and offsets settle the total
the invoice's `payment_status` is `succeeded` (and `paid_at` says when). Lago accepts an
over-payment and answers 403; we refuse it with 422 on purpose: money received beyond an
invoice is a credit to record deliberately (a credit note), not a side effect.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction

from billing.engine.money import ZERO, quantize_money
from billing.engine.vocabulary import InvoiceKind, InvoiceStatus, PaymentStatus, WebhookType
from billing.models import Invoice, Payment
from billing.services.errors import FieldErrors
from billing.services.invoice_events import invoice_announce
from billing.services.wallets import wallet_purchase_settle
from config.db import exact_sum

NOT_FINALIZED = "invoice {invoice} is {status}: only a finalized invoice can be paid"
AMOUNT_NOT_POSITIVE = "must be greater than 0"
OVERPAID = "is more than is due on invoice {invoice} ({due} {currency})"
NOTHING_DUE = "nothing is due on invoice {invoice}"
PRECISION = "{currency} amounts have no more than the currency's minor unit"
BAD_PAYMENT_STATUS = "must be one of: {choices}"
REFERENCE_REQUIRED = "is required"
PAID_IN_FUTURE = "must not be in the future"
CLOCK_SKEW = timedelta(minutes=5)  # as events: a client's clock may run a little ahead
MARKED_PAID = "Marked paid"


class PaymentError(FieldErrors):
    """The payment is refused; `errors` are messages by field, as the API returns them."""


def amount_due(invoice: Invoice) -> Decimal:
    """What is still due: total − payments − credit-note offsets (read under the invoice's lock
    when it decides a write)."""
    paid = exact_sum(invoice.payments.all(), "amount") or ZERO
    offset = exact_sum(invoice.credit_notes.all(), "offset_amount") or ZERO
    return invoice.total - paid - offset


def settle(*, invoice: Invoice, now: datetime) -> Invoice:
    """Mark the (locked, finalized) invoice succeeded once nothing is due any more. A paid wallet
    purchase (a `credit` invoice) settles its credits into the wallet then, in this transaction."""
    if invoice.payment_status != PaymentStatus.SUCCEEDED and amount_due(invoice) <= 0:
        invoice.payment_status = PaymentStatus.SUCCEEDED
        invoice.paid_at = now
        invoice.save(update_fields=["payment_status", "paid_at", "updated_at"])
        if invoice.kind == InvoiceKind.CREDIT:
            wallet_purchase_settle(invoice=invoice, now=now)
        invoice_announce(invoice=invoice, webhook_type=WebhookType.INVOICE_PAYMENT_STATUS_UPDATED)
    return invoice


def _lock_finalized(invoice: Invoice, field: str) -> Invoice:
    locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if locked.status != InvoiceStatus.FINALIZED:
        raise PaymentError({field: [NOT_FINALIZED.format(invoice=locked, status=locked.status)]})
    return locked


@transaction.atomic
def payment_create(
    *,
    invoice: Invoice,
    amount: Decimal,
    reference: str,
    paid_at: datetime,
    now: datetime,
    user: User | None = None,
) -> Payment:
    """Record money received for an invoice, partial or whole."""
    invoice = _lock_finalized(invoice, "invoice_id")
    if not reference.strip():
        raise PaymentError({"reference": [REFERENCE_REQUIRED]})
    if paid_at > now + CLOCK_SKEW:
        raise PaymentError({"paid_at": [PAID_IN_FUTURE]})
    if amount <= 0:
        raise PaymentError({"amount_cents": [AMOUNT_NOT_POSITIVE]})
    if amount != quantize_money(amount, invoice.currency):
        raise PaymentError({"amount_cents": [PRECISION.format(currency=invoice.currency)]})
    due = amount_due(invoice)
    if amount > due:
        raise PaymentError(
            {
                "amount_cents": [
                    OVERPAID.format(
                        invoice=invoice, due=quantize_money(max(due, ZERO), invoice.currency), currency=invoice.currency
                    )
                ]
            }
        )
    payment = Payment.objects.create(
        invoice=invoice,
        amount=amount,
        currency=invoice.currency,
        reference=reference.strip(),
        paid_at=paid_at,
        created_by=user,
    )
    settle(invoice=invoice, now=now)
    return payment


@transaction.atomic
def invoice_payment_status_set(
    *, invoice: Invoice, payment_status: str, now: datetime, user: User | None = None
) -> Invoice:
    """Lago's `PUT /invoices/<id>` with `payment_status`: `succeeded` pays what is left (a payment
    row, "Marked paid"); `failed` and `pending` say how collecting it goes while something is due."""
    if payment_status not in PaymentStatus.values:
        raise PaymentError({"payment_status": [BAD_PAYMENT_STATUS.format(choices=", ".join(PaymentStatus.values))]})
    invoice = _lock_finalized(invoice, "payment_status")
    due = amount_due(invoice)
    if payment_status == PaymentStatus.SUCCEEDED:
        if due > 0:
            Payment.objects.create(
                invoice=invoice,
                amount=due,
                currency=invoice.currency,
                reference=MARKED_PAID,
                paid_at=now,
                created_by=user,
            )
        return settle(invoice=invoice, now=now)
    if due <= 0:
        raise PaymentError({"payment_status": [NOTHING_DUE.format(invoice=invoice)]})
    if invoice.payment_status != payment_status:
        invoice.payment_status = payment_status
        invoice.save(update_fields=["payment_status", "updated_at"])
        invoice_announce(invoice=invoice, webhook_type=WebhookType.INVOICE_PAYMENT_STATUS_UPDATED)
    return invoice


def invoice_mark_paid(*, invoice: Invoice, now: datetime, user: User | None = None) -> Invoice:
    """Finance's "mark paid": a payment of what is left ("Marked paid"); the invoice is settled."""
    return invoice_payment_status_set(invoice=invoice, payment_status=PaymentStatus.SUCCEEDED, now=now, user=user)

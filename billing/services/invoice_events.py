"""What follows an invoice's finalization, in its transaction: the webhook and the email.

Every path that finalizes an invoice (period close, finalize, regenerate, a commitment's
prepayment) calls `invoice_finalized`, so each finalized invoice is announced once and mailed
once, with the change it announces.
"""

from __future__ import annotations

from billing.engine.vocabulary import InvoiceKind, WebhookType
from billing.models import Invoice
from billing.services.invoice_emails import invoice_email_queue
from billing.services.webhooks import announce

CREATED_WEBHOOK = {
    InvoiceKind.PERIOD: WebhookType.INVOICE_CREATED,
    InvoiceKind.ADVANCE: WebhookType.INVOICE_CREATED,
    InvoiceKind.COMMITMENT: WebhookType.INVOICE_CREATED,
    InvoiceKind.ONE_OFF: WebhookType.INVOICE_ONE_OFF_CREATED,
    InvoiceKind.CREDIT: WebhookType.INVOICE_PAID_CREDIT_ADDED,
}


def invoice_finalized(*, invoice: Invoice) -> None:
    announce(
        webhook_type=CREATED_WEBHOOK[InvoiceKind(invoice.kind)],
        object_type="invoice",
        obj=invoice,
        object_id=invoice.pk,
    )
    invoice_email_queue(invoice=invoice)


def invoice_announce(*, invoice: Invoice, webhook_type: WebhookType) -> None:
    """Announce another change of an invoice (voided, its payment status)."""
    announce(webhook_type=webhook_type, object_type="invoice", obj=invoice, object_id=invoice.pk)

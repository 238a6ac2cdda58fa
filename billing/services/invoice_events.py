"""What follows an invoice's finalization, in its transaction: the webhook and the email.

Every path that finalizes an invoice (period close, finalize, regenerate, a commitment's
prepayment) calls `invoice_finalized`, or its two halves around the number, so each finalized
invoice is announced once and mailed once, with the change it announces.

The halves exist for the period close: the invoice counter's lock is held from the number until
the commit (billing.services.numbering), so what does not need the number goes before it. The
email row does not (the message is rendered when it is sent); the webhook's body does.
"""

from __future__ import annotations

from billing.engine.vocabulary import InvoiceKind, WebhookType
from billing.models import Invoice
from billing.services.invoice_emails import invoice_email_queue, invoice_emails_queue
from billing.services.webhooks import announce, any_endpoint

CREATED_WEBHOOK = {
    InvoiceKind.PERIOD: WebhookType.INVOICE_CREATED,
    InvoiceKind.ADVANCE: WebhookType.INVOICE_CREATED,
    InvoiceKind.COMMITMENT: WebhookType.INVOICE_CREATED,
    InvoiceKind.ONE_OFF: WebhookType.INVOICE_ONE_OFF_CREATED,
    InvoiceKind.CREDIT: WebhookType.INVOICE_PAID_CREDIT_ADDED,
}


def invoice_finalized(*, invoice: Invoice) -> None:
    """Both halves, once the invoice is numbered."""
    invoice_finalizing(invoice=invoice)
    invoice_numbered(invoice=invoice)


def invoice_finalizing(*, invoice: Invoice) -> None:
    """Before the number, in the finalizing transaction: queue the invoice's email."""
    invoice_email_queue(invoice=invoice)


def invoice_numbered(*, invoice: Invoice) -> None:
    """After the number, in the same transaction: announce the invoice (its body shows the number)."""
    announce(
        webhook_type=CREATED_WEBHOOK[InvoiceKind(invoice.kind)],
        object_type="invoice",
        obj=invoice,
        object_id=invoice.pk,
    )


def invoices_finalizing(*, invoices: list[Invoice]) -> None:
    """invoice_finalizing for several invoices (a period close's group): their emails in one INSERT."""
    invoice_emails_queue(invoices=invoices)


def invoices_numbered(*, invoices: list[Invoice]) -> None:
    """invoice_numbered for several invoices, in the same transaction: whether any endpoint listens
    is read once for them all (announce reads it again for each when one does)."""
    if not invoices or not any_endpoint():
        return
    for invoice in invoices:
        invoice_numbered(invoice=invoice)


def invoice_announce(*, invoice: Invoice, webhook_type: WebhookType) -> None:
    """Announce another change of an invoice (voided, its payment status)."""
    announce(webhook_type=webhook_type, object_type="invoice", obj=invoice, object_id=invoice.pk)

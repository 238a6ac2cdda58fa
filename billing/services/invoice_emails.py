"""Invoice emails (DESIGN §6 "Invoice emails"): queued with the finalization, sent after it.

Queueing. `invoice_email_queue` runs inside the finalizing transaction: when the customer has an
email it writes the invoice's InvoiceEmail (once per invoice: a database constraint) and, after
the commit, asks django-q2 to send it (at most once a second per thread: the task sends
everything due). A rolled-back finalization sends nothing; a process that dies after the commit
leaves the row for the periodic task ("Send invoice emails", every minute) and
`manage.py send_invoice_emails`.

Sending (`send_due`) follows the webhooks' outbox (billing.services.webhooks): one due email at
a time is claimed under its row lock (`SKIP LOCKED` on PostgreSQL, so concurrent workers take
different rows), its attempt counted and a lease set (`claimed_until`), and that is committed;
then the message is rendered and sent through Django's email backend (EMAIL_URL) with no
transaction open, and the outcome is written under the row lock again. A worker that dies
mid-send leaves the email to be taken again when its lease ends. SMTP has no idempotency key, so
an email sent by a worker that died before writing so is sent again: at least once, never lost.

The message: subject "Invoice INV-2026-000001 from <seller>", a short text body with its HTML
alternative (templates/billing/emails/invoice.txt and .html: what the invoice is for, the amount
due and due date, a signed link to the PDF, billing.documents.links) and the PDF attached. When
this machine cannot make PDFs (PdfUnavailable) the email is sent without the attachment — the
link serves the PDF from the web servers, and waiting would not bring the libraries back — and
the sent row's `last_error` says so (PDF_NOT_ATTACHED), with a warning in the log.

Failures (the server answers 4xx, the connection fails or times out, anything the backend
raises) are logged and retried after RETRY_BASE_SECONDS × 2^(attempt − 1) — 1, 2, 4 … 64 minutes
— up to MAX_ATTEMPTS (8) attempts; then the email is `failed`. A recipient the server refuses for
good (5xx to RCPT, e.g. "550 no such user") fails at once: retrying would not change the answer.
An invoice voided before its email went out is not sent (the row is failed with INVOICE_VOIDED,
and reported as `canceled`, not as a failure).

Resending (`invoice_email_resend`, the admin's "Resend invoice email") writes another row,
marked `resend`, to the customer's current address; it is sent like the first.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from babel.dates import format_timedelta
from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing.documents.formats import LOCALE, format_money
from billing.documents.invoice import invoice_context
from billing.documents.links import INVOICE, document_url
from billing.documents.pdf import PdfUnavailable, invoice_pdf_filename, render_invoice_pdf
from billing.engine.vocabulary import EmailStatus, InvoiceKind, InvoiceStatus
from billing.models import Invoice, InvoiceEmail
from billing.selectors.invoices import invoices_with_relations
from billing.selectors.receivables import settlements
from billing.services.outbox import (
    backoff,
    claim_due,
    insert_row,
    insert_rows,
    locked_if_current,
    queue_after_commit,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
RETRY_BASE_SECONDS = 60  # attempt n + 1 waits RETRY_BASE_SECONDS × 2^(n − 1) after attempt n failed
# How long a claimed email is left to its worker before another may take it: rendering the PDF
# plus an SMTP conversation whose every step may take EMAIL_TIMEOUT.
LEASE = timedelta(minutes=10)
ERROR_LENGTH = 500  # InvoiceEmail.last_error's max_length

# Messages are constants so tests can match them.
SUBJECT = "Invoice {number} from {seller}"
PDF_NOT_ATTACHED = "sent without the PDF attached (this machine cannot make PDFs: {error}); the email links to it"
INVOICE_VOIDED = "not sent: invoice {invoice} was voided before its email went out"
RESEND_DRAFT = "Invoice {invoice} is a draft: only a finalized invoice is emailed."
RESEND_VOIDED = "Invoice {invoice} is voided: a voided invoice is not emailed."
RESEND_NO_EMAIL = "Customer {customer} has no email address: add one to the customer, then resend invoice {invoice}."

# What the invoice is for, by kind (templates/billing/emails/invoice.*).
PURPOSE = {
    InvoiceKind.PERIOD: "{plan} subscription ({subscription}), billing period {first} – {last}",
    InvoiceKind.ADVANCE: "{plan} subscription ({subscription}), base fee in advance for {first} – {last}",
    InvoiceKind.COMMITMENT: "{plan} commitment ({subscription}), prepayment for the term {first} – {last}",
    InvoiceKind.ONE_OFF: "One-off invoice: {items}",
    InvoiceKind.CREDIT: "Wallet credit purchase",
}


class InvoiceEmailError(Exception):
    """The email is refused (e.g. a resend of a draft); the message says why."""


# --- Queueing (in the finalizing transaction) -----------------------------------------------


def invoice_email_queue(*, invoice: Invoice) -> bool:
    """Queue the finalized invoice's email to its customer (none without an email address);
    returns whether it did. One INSERT (insert_row): it runs in every finalization of a close."""
    to = invoice.customer.email
    if not to:
        return False
    insert_row(InvoiceEmail(invoice=invoice, to=to, next_attempt_at=timezone.now()))
    _queue_sending()
    return True


def invoice_emails_queue(*, invoices: list[Invoice]) -> int:
    """invoice_email_queue for several finalized invoices, in one INSERT (a period close's group);
    returns how many were queued."""
    now = timezone.now()
    rows = [
        InvoiceEmail(invoice=invoice, to=invoice.customer.email, next_attempt_at=now)
        for invoice in invoices
        if invoice.customer.email
    ]
    insert_rows(rows)
    if rows:
        _queue_sending()
    return len(rows)


@transaction.atomic
def invoice_email_resend(*, invoice: Invoice, user: User | None, now: datetime) -> InvoiceEmail:
    """Email a finalized invoice again (finance's resend), to the customer's current address."""
    # The invoice's row lock orders this after a void in progress, which it then refuses.
    locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if locked.status == InvoiceStatus.DRAFT:
        raise InvoiceEmailError(RESEND_DRAFT.format(invoice=locked))
    if locked.status == InvoiceStatus.VOIDED:
        raise InvoiceEmailError(RESEND_VOIDED.format(invoice=locked))
    customer = locked.customer
    if not customer.email:
        raise InvoiceEmailError(RESEND_NO_EMAIL.format(customer=customer, invoice=locked))
    email = InvoiceEmail.objects.create(
        invoice=locked, to=customer.email, resend=True, requested_by=user, next_attempt_at=now
    )
    _queue_sending()
    return email


def _queue_sending() -> None:
    queue_after_commit("billing.tasks.send_invoice_emails", name="send invoice emails", group="emails")


# --- The message ------------------------------------------------------------------------------


def email_context(invoice: Invoice) -> dict[str, Any]:
    """What the email says, as display strings (from the invoice document's own context)."""
    document = invoice_context(invoice)
    due = settlements(Invoice.objects.filter(pk=invoice.pk)).due(invoice.pk, invoice.total)
    purpose = PURPOSE[InvoiceKind(invoice.kind)].format(
        plan=document["plan_name"],
        subscription=document["subscription_external_id"],
        first=document["period_first_day"],
        last=document["period_last_day"],
        items=document["items"],
    )
    link_age = timedelta(seconds=settings.BILLING_DOCUMENT_LINK_MAX_AGE_SECONDS)
    return {
        "number": invoice.number,
        "seller_name": document["seller_name"],
        "customer_name": document["customer"]["display_name"],
        "purpose": purpose,
        "issue_date": document["issue_date"],
        "total": document["total"],
        "amount_due": format_money(due, invoice.currency) if due > 0 else "",
        "due_date": document["due_date"],
        "pdf_url": document_url(None, INVOICE, invoice.pk),
        "link_valid_for": format_timedelta(link_age, threshold=1.5, locale=LOCALE),
    }


def invoice_message(invoice: Invoice, to: str) -> tuple[EmailMultiAlternatives, str]:
    """The invoice's email, and a note when its PDF could not be attached ("" when it is)."""
    context = email_context(invoice)
    note = ""
    try:
        pdf = render_invoice_pdf(invoice)
    except PdfUnavailable as exc:
        pdf = None
        note = PDF_NOT_ATTACHED.format(error=exc)
    context["pdf_attached"] = pdf is not None
    message = EmailMultiAlternatives(
        subject=SUBJECT.format(number=invoice.number, seller=context["seller_name"]),
        body=render_to_string("billing/emails/invoice.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    )
    message.attach_alternative(render_to_string("billing/emails/invoice.html", context), "text/html")
    if pdf is not None:
        message.attach(invoice_pdf_filename(invoice), pdf, "application/pdf")
    return message, note


# --- Sending ----------------------------------------------------------------------------------


@dataclass
class EmailReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    canceled: list[int] = field(default_factory=list)  # the invoice was voided first

    @property
    def attempts(self) -> int:
        return len(self.sent) + len(self.retrying) + len(self.failed) + len(self.canceled)

    def __str__(self) -> str:
        return (
            f"{len(self.sent)} sent, {len(self.retrying)} to retry, {len(self.failed)} failed, "
            f"{len(self.canceled)} canceled"
        )


@dataclass(frozen=True)
class Outcome:
    sent: bool
    error: str = ""  # why it was not sent; on a sent email, a note (PDF_NOT_ATTACHED)
    final: bool = False  # not sent, and no retry would change that
    canceled: bool = False  # not sent because the invoice was voided first


def retry_delay(attempt: int) -> timedelta:
    """How long after failed attempt `attempt` (1, 2, …) the next one is due."""
    return backoff(RETRY_BASE_SECONDS, attempt)


def _refused_for_good(exc: Exception) -> bool:
    """Every recipient refused with a permanent (5xx) reply."""
    if not isinstance(exc, smtplib.SMTPRecipientsRefused) or not exc.recipients:
        return False
    return all(code >= 500 for code, _reply in exc.recipients.values())


def _send(email: InvoiceEmail) -> Outcome:
    """Render and send one claimed email through the configured backend."""
    invoice = invoices_with_relations().get(pk=email.invoice_id)
    if invoice.status == InvoiceStatus.VOIDED:
        logger.info("invoice email %s: invoice %s was voided before it was sent; not sent", email.pk, invoice)
        return Outcome(sent=False, error=INVOICE_VOIDED.format(invoice=invoice), final=True, canceled=True)
    try:
        message, note = invoice_message(invoice, email.to)
        message.send(fail_silently=False)
    except Exception as exc:  # the server, the network, or rendering: logged, retried
        error = f"{type(exc).__name__}: {exc}"
        # The address stays out of the log (the admin's log shows it to finance).
        logger.warning("invoice email %s (invoice %s), attempt %d failed: %s", email.pk, invoice, email.attempts, error)
        return Outcome(sent=False, error=error, final=_refused_for_good(exc))
    if note:
        logger.warning("invoice email %s (invoice %s): %s", email.pk, invoice, note)
    return Outcome(sent=True, error=note)


def _record(email: InvoiceEmail, outcome: Outcome) -> str:
    """Write the attempt's outcome and what comes next; returns the email's status."""
    now = timezone.now()
    with transaction.atomic():
        current = locked_if_current(InvoiceEmail, email)
        if current is None:  # a later attempt took over (this worker outlived its lease)
            return str(InvoiceEmail.objects.get(pk=email.pk).status)
        current.last_error = outcome.error[:ERROR_LENGTH]
        current.claimed_until = None
        if outcome.sent:
            current.status, current.next_attempt_at, current.sent_at = EmailStatus.SENT, None, now
        elif outcome.final or current.attempts >= MAX_ATTEMPTS:
            current.status, current.next_attempt_at = EmailStatus.FAILED, None
        else:
            current.next_attempt_at = now + retry_delay(current.attempts)
        current.save(update_fields=["status", "next_attempt_at", "sent_at", "last_error", "claimed_until"])
        return str(current.status)


def send_due(*, limit: int | None = None) -> EmailReport:
    """Send every email due now, each attempt once whatever other workers do; returns what
    happened. `limit`: at most this many attempts."""
    report = EmailReport()
    while limit is None or report.attempts < limit:
        email = claim_due(InvoiceEmail, now=timezone.now(), lease=LEASE)
        if email is None:
            break
        outcome = _send(email)
        status = _record(email, outcome)
        if status == EmailStatus.SENT:
            report.sent.append(email.pk)
        elif status == EmailStatus.PENDING:
            report.retrying.append(email.pk)
        elif outcome.canceled:
            report.canceled.append(email.pk)
        else:
            report.failed.append(email.pk)
    return report

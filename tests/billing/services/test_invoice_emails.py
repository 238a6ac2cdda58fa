"""Invoice emails (billing.services.invoice_emails) through a real SMTP server.

An aiosmtpd server runs in the test process on 127.0.0.1 (a free port) and Django's SMTP
backend talks to it, so what is checked is what a mail server receives: one message per
finalized invoice, to the customer, with text and HTML parts and the PDF attached. The server
can refuse (a 4xx to DATA, a 5xx to RCPT) or be gone (its port closed).

The invoice: acme (UTC) on the scaled-down Team plan without a trial since September 1, 300
users in September; the period close on October 2 finalizes it: $120.00 + $235.00 = $355.00,
due in 30 days.
"""

from __future__ import annotations

import email
import io
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from typing import Any
from unittest import mock

import pytest
from aiosmtpd.controller import Controller
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pypdf import PdfReader

from billing import tasks
from billing.documents import pdf
from billing.engine.vocabulary import EmailStatus
from billing.models import Invoice, InvoiceEmail, InvoiceStatus, Plan
from billing.services import invoice_emails, outbox
from billing.services.invoice_emails import (
    INVOICE_VOIDED,
    MAX_ATTEMPTS,
    PDF_NOT_ATTACHED,
    RESEND_DRAFT,
    RESEND_NO_EMAIL,
    RESEND_VOIDED,
    InvoiceEmailError,
    invoice_email_queue,
    invoice_email_resend,
    retry_delay,
    send_due,
)
from billing.services.invoices import invoice_finalize, invoice_void
from billing.services.outbox import claim_due
from billing.services.period_close import close_periods
from customers.models import Customer
from tests.conftest import using_postgres
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import at, run_concurrently, travel

CLOSE = at(2026, 10, 2, 9)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(CLOSE)]


# --- The SMTP server ----------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class Mailbox:
    """An aiosmtpd handler keeping what it accepts; set `refuse_data` or `refuse_rcpt` to a reply
    ("451 try later", "550 no such user") to refuse instead."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refuse_data = ""
        self.refuse_rcpt = ""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_data:
            return self.refuse_data
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def smtp_server(settings: Any) -> Iterator[Mailbox]:
    """A real SMTP server on 127.0.0.1, and Django's SMTP backend pointed at it."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    try:
        yield mailbox
    finally:
        controller.stop()


@pytest.fixture
def smtp(settings: Any) -> Iterator[Mailbox]:
    with smtp_server(settings) as mailbox:
        yield mailbox


def parts(message: EmailMessage) -> tuple[str, str, list[EmailMessage]]:
    """The text body, the HTML body and the attachments."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content(), list(message.iter_attachments())


# --- Data ---------------------------------------------------------------------------------------


def team() -> Plan:
    """The scaled-down Team plan without its trial (made once per test)."""
    return Plan.objects.filter(code="team").first() or scaled_team_plan(promotion=None)


def finalized_september(customer: Customer | None = None, *, external_id: str = "acme") -> Invoice:
    """September's $355.00 invoice of a customer on the Team plan, finalized by the period close."""
    customer = customer or CustomerFactory(external_id=external_id, name="Acme Inc.", net_payment_term=30)
    subscription = SubscriptionFactory(
        customer=customer,
        plan=team(),
        external_id=f"{customer.external_id}-team",
        subscription_at=at(2026, 9, 1),
    )
    store_users(customer, range(300), at(2026, 9, 20), f"sep-{customer.external_id}")
    report = close_periods(now=CLOSE)
    assert not report.errors
    invoice = Invoice.objects.get(subscription=subscription)
    assert (invoice.status, invoice.total) == (InvoiceStatus.FINALIZED, Decimal("355.00"))
    return invoice


# --- Sending ------------------------------------------------------------------------------------


def test_the_period_close_mails_the_invoice_to_the_customer_with_its_pdf(smtp: Mailbox, settings: Any) -> None:
    settings.BILLING_SELLER_NAME = "Segment Demo Inc."
    settings.DEFAULT_FROM_EMAIL = "billing@segment.test"
    settings.BILLING_PUBLIC_URL = "https://billing.example.com"
    invoice = finalized_september()
    row = InvoiceEmail.objects.get()
    assert (row.invoice, row.to, row.status, row.resend) == (invoice, "acme@example.com", EmailStatus.PENDING, False)

    report = send_due()

    assert (report.sent, report.retrying, report.failed) == ([row.pk], [], [])
    [received] = smtp.received
    assert received.rcpt_tos == ["acme@example.com"]
    assert received.mail_from == "billing@segment.test"
    message = received.message
    assert message["Subject"] == f"Invoice {invoice.number} from Segment Demo Inc."
    assert message["To"] == "acme@example.com"
    text, html, attachments = parts(message)
    for body in (text, html):
        assert invoice.number in body
        assert "Acme Inc." in body
        assert "Team subscription (acme-team), billing period September 1, 2026 – September 30, 2026" in body
        assert "$355.00" in body  # the amount due
        assert "November 1, 2026" in body  # the due date: October 2 + 30 days
        assert "https://billing.example.com/documents/" in body
    assert '<a href="https://billing.example.com/documents/' in html
    row.refresh_from_db()
    assert (row.status, row.attempts, row.sent_at, row.next_attempt_at, row.claimed_until) == (
        EmailStatus.SENT,
        1,
        CLOSE,
        None,
        None,
    )

    # The link in the email serves the PDF to whoever holds it.
    link = next(word for word in text.split() if word.startswith("https://billing.example.com/documents/"))
    response = Client().get(link.removeprefix("https://billing.example.com"))
    if row.last_error:  # pragma: no cover - a machine without WeasyPrint's libraries
        assert response.status_code == 503
        pytest.skip(row.last_error)
    assert response.status_code == 200

    assert row.last_error == ""
    [attachment] = attachments
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{invoice.number}.pdf"
    content = attachment.get_content()
    assert isinstance(content, bytes)
    pdf_text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    assert invoice.number in pdf_text and "355.00" in pdf_text


def test_sending_again_sends_nothing(smtp: Mailbox) -> None:
    finalized_september()
    assert len(send_due().sent) == 1
    assert str(send_due()) == "0 sent, 0 to retry, 0 failed, 0 canceled"
    call_command("send_invoice_emails", stdout=io.StringIO())
    assert tasks.send_invoice_emails() == "0 sent, 0 to retry, 0 failed, 0 canceled"
    assert len(smtp.received) == 1


def test_the_task_and_the_command_send_what_is_due(smtp: Mailbox) -> None:
    finalized_september()
    assert tasks.send_invoice_emails() == "1 sent, 0 to retry, 0 failed, 0 canceled"
    finalized_september(external_id="globex")
    out = io.StringIO()
    call_command("send_invoice_emails", stdout=out)
    assert out.getvalue().strip() == "Invoice emails: 1 sent, 0 to retry, 0 failed, 0 canceled"
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["acme@example.com", "globex@example.com"]


def test_a_server_that_refuses_leaves_the_email_pending_then_it_is_retried_and_sent(
    smtp: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    finalized_september()
    smtp.refuse_data = "451 try later"
    with caplog.at_level(logging.WARNING, logger="billing.services.invoice_emails"):
        report = send_due()
    row = InvoiceEmail.objects.get()
    assert (len(report.retrying), smtp.received) == (1, [])
    assert (row.status, row.attempts, row.next_attempt_at, row.claimed_until) == (
        EmailStatus.PENDING,
        1,
        CLOSE + timedelta(seconds=60),
        None,
    )
    assert "451" in row.last_error and "try later" in row.last_error
    assert any("attempt 1 failed" in r.getMessage() and "451" in r.getMessage() for r in caplog.records)

    smtp.refuse_data = ""
    assert send_due().attempts == 0  # not due before its retry time
    with travel(CLOSE + timedelta(seconds=60)):
        assert len(send_due().sent) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (EmailStatus.SENT, 2, "")
    assert len(smtp.received) == 1


def test_a_closed_port_is_retried_with_growing_delays_then_failed(settings: Any, smtp: Mailbox) -> None:
    finalized_september()
    settings.EMAIL_PORT = free_port()  # nothing listens there
    moment = CLOSE
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with travel(moment):
            report = send_due()
        row = InvoiceEmail.objects.get()
        assert row.attempts == attempt
        assert "ConnectionRefusedError" in row.last_error
        if attempt < MAX_ATTEMPTS:
            assert report.retrying == [row.pk]
            assert row.next_attempt_at == moment + retry_delay(attempt)
            moment = row.next_attempt_at
    assert [retry_delay(n).total_seconds() for n in range(1, MAX_ATTEMPTS)] == [60, 120, 240, 480, 960, 1920, 3840]
    assert (row.status, row.next_attempt_at, report.failed) == (EmailStatus.FAILED, None, [row.pk])
    with travel(moment + timedelta(days=1)):
        assert send_due().attempts == 0  # failed for good: not tried again


def test_the_command_exits_1_when_an_email_failed_for_good(settings: Any, smtp: Mailbox) -> None:
    finalized_september()
    InvoiceEmail.objects.update(attempts=MAX_ATTEMPTS - 1)
    settings.EMAIL_PORT = free_port()
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("send_invoice_emails", stdout=out)
    assert exited.value.code == 1
    assert "0 sent, 0 to retry, 1 failed" in out.getvalue()


def test_an_address_refused_for_good_fails_at_once(smtp: Mailbox) -> None:
    finalized_september()
    smtp.refuse_rcpt = "550 5.1.1 no such user"
    report = send_due()
    row = InvoiceEmail.objects.get()
    assert (report.failed, row.status, row.attempts) == ([row.pk], EmailStatus.FAILED, 1)
    assert "550" in row.last_error


def test_a_claimed_email_is_left_to_its_worker_until_its_lease_ends(smtp: Mailbox) -> None:
    finalized_september()
    InvoiceEmail.objects.update(attempts=1, claimed_until=CLOSE + timedelta(minutes=5))  # a worker is on it
    assert send_due().attempts == 0
    with travel(CLOSE + timedelta(minutes=5, seconds=1)):  # it died: the lease ended
        assert len(send_due().sent) == 1
    assert InvoiceEmail.objects.get().attempts == 2
    assert len(smtp.received) == 1


def test_a_worker_that_outlived_its_lease_does_not_overwrite_the_next_attempt(smtp: Mailbox) -> None:
    finalized_september()
    claimed = claim_due(InvoiceEmail, now=CLOSE, lease=invoice_emails.LEASE)
    assert claimed is not None
    InvoiceEmail.objects.filter(pk=claimed.pk).update(attempts=2)  # another worker took it over since
    status = invoice_emails._record(claimed, invoice_emails.Outcome(sent=False, error="timed out"))
    row = InvoiceEmail.objects.get()
    assert (status, row.attempts, row.last_error) == (EmailStatus.PENDING, 2, "")


def test_limit_caps_the_emails_sent(smtp: Mailbox) -> None:
    finalized_september()
    finalized_september(external_id="globex")
    assert len(send_due(limit=1).sent) == 1
    assert len(send_due(limit=1).sent) == 1
    assert send_due(limit=1).attempts == 0


def test_without_pdfs_the_email_goes_out_with_the_link_and_says_so(
    smtp: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pango(name: str) -> Any:
        raise OSError("cannot load library 'libpango-1.0-0'")

    monkeypatch.setattr(pdf, "import_module", no_pango)
    invoice = finalized_september()
    assert len(send_due().sent) == 1
    text, html, attachments = parts(smtp.received[0].message)
    assert attachments == []
    assert "/documents/" in text and "/documents/" in html
    assert "attached" not in text
    row = InvoiceEmail.objects.get(invoice=invoice)
    assert row.status == EmailStatus.SENT
    assert row.last_error.startswith(PDF_NOT_ATTACHED.split("{")[0])
    assert "libpango" in row.last_error


def test_an_invoice_voided_before_its_email_went_out_is_not_sent(smtp: Mailbox) -> None:
    invoice = finalized_september()
    invoice_void(invoice=invoice, reason="issued twice", now=CLOSE)
    report = send_due()
    row = InvoiceEmail.objects.get()
    assert (report.canceled, report.failed, smtp.received) == ([row.pk], [], [])
    assert (row.status, row.last_error) == (EmailStatus.FAILED, INVOICE_VOIDED.format(invoice=invoice))


def test_an_invoice_that_is_paid_says_nothing_is_due(smtp: Mailbox) -> None:
    from billing.services.payments import invoice_mark_paid

    invoice_mark_paid(invoice=finalized_september(), now=CLOSE)
    send_due()
    text, html, _attachments = parts(smtp.received[0].message)
    assert "Nothing is due on this invoice." in text and "Nothing is due on this invoice." in html
    assert "Amount due:" not in text


# --- Queueing -----------------------------------------------------------------------------------


def test_a_customer_without_email_gets_no_email(smtp: Mailbox) -> None:
    finalized_september(CustomerFactory(external_id="acme", email=""))
    assert not InvoiceEmail.objects.exists()
    assert send_due().attempts == 0
    assert smtp.received == []


def test_a_rolled_back_finalization_writes_and_sends_nothing(
    smtp: Mailbox, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 48  # September closes as a draft
    customer = CustomerFactory(external_id="acme")
    SubscriptionFactory(customer=customer, plan=team(), subscription_at=at(2026, 9, 1))
    close_periods(now=CLOSE)
    draft = Invoice.objects.get()
    assert draft.status == InvoiceStatus.DRAFT and not InvoiceEmail.objects.exists()

    with (
        mock.patch("django_q.tasks.async_task") as queued,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        invoice_finalize(invoice=draft, now=CLOSE)
        assert InvoiceEmail.objects.count() == 1  # written with the finalization …
        raise RuntimeError("the finalizing transaction fails after the email was queued")
    assert not InvoiceEmail.objects.exists()  # … and gone with it
    assert (callbacks, queued.call_count) == ([], 0)
    assert send_due().attempts == 0
    assert smtp.received == []


def test_a_committed_finalization_queues_the_sending_task(
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "_last_queued", {})  # what this process queued before
    with (
        mock.patch("django_q.tasks.async_task") as queued,
        django_capture_on_commit_callbacks(execute=True),
    ):
        finalized_september()
    queued.assert_called_once_with("billing.tasks.send_invoice_emails", task_name="send invoice emails", group="emails")


def test_queueing_an_email_is_one_statement(django_capture_on_commit_callbacks: Any) -> None:
    invoice = Invoice.objects.select_related("customer").get(pk=finalized_september().pk)
    InvoiceEmail.objects.all().delete()
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as callbacks:
        assert invoice_email_queue(invoice=invoice) is True
    assert len(queries.captured_queries) == 1  # the INSERT: it runs in every finalization of a close
    assert len(callbacks) == 1  # the sending task, queued after the commit
    email = InvoiceEmail.objects.get()
    assert (email.invoice, email.to, email.status, email.attempts, email.resend) == (
        invoice,
        invoice.customer.email,
        EmailStatus.PENDING,
        0,
        False,
    )
    assert email.next_attempt_at == CLOSE and email.created_at == CLOSE


def test_one_automatic_email_per_invoice() -> None:
    from django.db import IntegrityError

    invoice = finalized_september()
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceEmail.objects.create(invoice=invoice, to="x@example.com", next_attempt_at=CLOSE)


# --- Resending ----------------------------------------------------------------------------------


def test_resend_writes_a_second_email_to_the_current_address_and_sends_it(
    smtp: Mailbox, django_user_model: Any
) -> None:
    invoice = finalized_september()
    send_due()
    Customer.objects.filter(pk=invoice.customer_id).update(email="ap@acme.test")
    user = django_user_model.objects.create_user("fiona")
    resent = invoice_email_resend(invoice=invoice, user=user, now=CLOSE)
    assert (resent.resend, resent.requested_by, resent.to, resent.status) == (
        True,
        user,
        "ap@acme.test",
        EmailStatus.PENDING,
    )
    assert len(send_due().sent) == 1
    assert [r.rcpt_tos for r in smtp.received] == [["acme@example.com"], ["ap@acme.test"]]
    assert smtp.received[1].message["Subject"] == smtp.received[0].message["Subject"]


def test_resend_is_refused_for_drafts_voided_invoices_and_customers_without_email(settings: Any) -> None:
    invoice = finalized_september()
    customer = invoice.customer
    Customer.objects.filter(pk=customer.pk).update(email="")
    with pytest.raises(InvoiceEmailError) as refused:
        invoice_email_resend(invoice=invoice, user=None, now=CLOSE)
    assert str(refused.value) == RESEND_NO_EMAIL.format(customer=Customer.objects.get(pk=customer.pk), invoice=invoice)

    invoice_void(invoice=invoice, reason="issued twice", now=CLOSE)
    with pytest.raises(InvoiceEmailError) as refused:
        invoice_email_resend(invoice=invoice, user=None, now=CLOSE)
    assert str(refused.value) == RESEND_VOIDED.format(invoice=invoice)

    settings.BILLING_GRACE_PERIOD_HOURS = 48
    other = CustomerFactory(external_id="globex")
    SubscriptionFactory(customer=other, plan=team(), subscription_at=at(2026, 9, 1))
    close_periods(now=CLOSE)
    draft = Invoice.objects.get(customer=other)
    with pytest.raises(InvoiceEmailError) as refused:
        invoice_email_resend(invoice=draft, user=None, now=CLOSE)
    assert str(refused.value) == RESEND_DRAFT.format(invoice=draft)
    assert InvoiceEmail.objects.filter(resend=True).count() == 0


# --- Concurrency (PostgreSQL) -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not using_postgres(), reason="concurrent workers need PostgreSQL row locks (SQLite has one)")
def test_workers_sending_at_once_send_each_email_once(settings: Any) -> None:
    customers = [CustomerFactory(external_id=f"cust-{i}") for i in range(6)]
    plan = team()
    for customer in customers:
        SubscriptionFactory(customer=customer, plan=plan, subscription_at=at(2026, 9, 1))
    assert not close_periods(now=CLOSE).errors
    assert InvoiceEmail.objects.count() == 6

    with smtp_server(settings) as mailbox:
        reports = run_concurrently([send_due for _ in range(4)])

    assert sorted(pk for report in reports for pk in report.sent) == sorted(
        InvoiceEmail.objects.values_list("pk", flat=True)
    )
    assert sorted(r.rcpt_tos[0] for r in mailbox.received) == sorted(c.email for c in customers)
    assert set(InvoiceEmail.objects.values_list("status", "attempts")) == {(EmailStatus.SENT, 1)}

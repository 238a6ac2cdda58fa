"""Invoice emails in the admin (billing.admin.emails): the read-only log, and "Resend invoice
email" on the invoice list, which a real SMTP server then receives.

The invoices come from the period close on October 2 (tests/billing/services/test_invoice_emails.py
builds them): September's $355.00 for acme, finalized; globex's September as a draft when the
grace period is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from billing.admin.emails import EMAILS_QUEUED
from billing.engine.vocabulary import EmailStatus
from billing.models import Invoice, InvoiceEmail, InvoiceStatus
from billing.services.invoice_emails import RESEND_DRAFT, send_due
from billing.services.period_close import close_periods
from billing.services.roles import FINANCE, FINANCE_READ_ONLY, ensure_roles
from tests.billing.services.test_invoice_emails import CLOSE, Mailbox, finalized_september, smtp_server
from tests.factories import CustomerFactory, SubscriptionFactory
from tests.helpers import at, travel

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(CLOSE)]

CHANGELIST = reverse("admin:billing_invoice_changelist")
LOG = reverse("admin:billing_invoiceemail_changelist")
NOVEMBER_CLOSE = at(2026, 11, 2, 9)


@pytest.fixture
def smtp(settings: Any) -> Iterator[Mailbox]:
    with smtp_server(settings) as mailbox:
        yield mailbox


@pytest.fixture
def invoice() -> Invoice:
    return finalized_september()


def client_in(group: str, username: str) -> tuple[Client, User]:
    ensure_roles()
    user = User.objects.create_user(username, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client, user


def resend(client: Client, invoices: list[Invoice]) -> Any:
    data = {
        "action": "resend_invoice_email",
        helpers.ACTION_CHECKBOX_NAME: [i.pk for i in invoices],
        "index": "0",
    }
    return client.post(CHANGELIST, data, follow=True)


def texts(response: Any) -> list[tuple[int, str]]:
    return [(m.level, str(m)) for m in response.context["messages"]]


def test_finance_resends_an_invoice_email_and_the_customer_gets_a_second_message(
    smtp: Mailbox, invoice: Invoice
) -> None:
    send_due()
    client, fiona = client_in(FINANCE, "fiona")
    response = resend(client, [invoice])
    assert texts(response) == [(messages.SUCCESS, EMAILS_QUEUED[0] % {"count": 1})]
    resent = InvoiceEmail.objects.get(resend=True)
    assert (resent.invoice, resent.requested_by, resent.to, resent.status) == (
        invoice,
        fiona,
        "acme@example.com",
        EmailStatus.PENDING,
    )
    assert len(send_due().sent) == 1
    assert len(smtp.received) == 2
    assert all(r.message["Subject"] == f"Invoice {invoice.number} from Segment Demo Inc." for r in smtp.received)

    # The log shows both, newest first, with who asked for the resend.
    assert invoice.number is not None
    log = client.get(LOG).content.decode()
    assert log.count(invoice.number) == 2 and "fiona" in log


def test_resend_refuses_drafts_one_warning_each(settings: Any, invoice: Invoice) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 48  # October closes as drafts
    SubscriptionFactory(customer=CustomerFactory(external_id="globex"), plan=invoice.subscription.plan)
    with travel(NOVEMBER_CLOSE):
        close_periods(now=NOVEMBER_CLOSE)
    draft = Invoice.objects.get(status=InvoiceStatus.DRAFT, customer__external_id="globex")
    client, _user = client_in(FINANCE, "fiona")
    response = resend(client, [invoice, draft])
    assert texts(response) == [
        (messages.SUCCESS, EMAILS_QUEUED[0] % {"count": 1}),
        (messages.WARNING, RESEND_DRAFT.format(invoice=draft)),
    ]
    response = resend(client, [draft])
    assert texts(response)[0] == (messages.WARNING, EMAILS_QUEUED[1] % {"count": 0})
    assert InvoiceEmail.objects.filter(resend=True).count() == 1


def test_read_only_staff_see_the_log_but_cannot_resend(invoice: Invoice) -> None:
    client, _user = client_in(FINANCE_READ_ONLY, "rita")
    row = InvoiceEmail.objects.get()
    log = client.get(LOG)
    assert log.status_code == 200
    content = log.content.decode()
    assert invoice.number in content and "acme@example.com" in content and "Pending" in content
    page = client.get(reverse("admin:billing_invoiceemail_change", args=[row.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()

    listing = client.get(CHANGELIST)
    assert "resend_invoice_email" not in listing.content.decode()
    response = resend(client, [invoice])
    assert response.status_code == 200
    assert not InvoiceEmail.objects.filter(resend=True).exists()


def test_nobody_edits_or_deletes_the_log(admin_client: Client, invoice: Invoice) -> None:
    row = InvoiceEmail.objects.get()
    assert admin_client.get(reverse("admin:billing_invoiceemail_add")).status_code == 403
    assert admin_client.post(reverse("admin:billing_invoiceemail_change", args=[row.pk]), {}).status_code == 403
    assert (
        admin_client.post(reverse("admin:billing_invoiceemail_delete", args=[row.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert InvoiceEmail.objects.get() == row


def test_the_log_filters_by_status_and_searches_by_invoice_number(admin_client: Client, invoice: Invoice) -> None:
    assert invoice.number is not None
    response = admin_client.get(LOG, {"status__exact": "sent"})
    assert invoice.number not in response.content.decode()
    response = admin_client.get(LOG, {"status__exact": "pending", "q": invoice.number})
    assert invoice.number in response.content.decode()

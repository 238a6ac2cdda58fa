"""Void (with or without a credit note) and regenerate (DESIGN §6 "Void and regenerate")."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing.models import CreditNote, Invoice, InvoiceKind, InvoiceStatus, LineKind, Payment
from billing.services.invoices import (
    ALREADY_REGENERATED,
    LATE_USAGE_BILLED_ELSEWHERE,
    VOID_CREDIT_TOO_LARGE,
    VOID_PAID,
    VOID_REASON_REQUIRED,
    InvoiceError,
    invoice_regenerate,
    invoice_void,
)
from billing.services.payments import payment_create
from tests.billing.services.lifecycle import World, close_october, september_invoice
from tests.factories import store_users
from tests.helpers import at

pytestmark = pytest.mark.django_db

NOW = at(2026, 10, 20, 12)
D = Decimal


@pytest.fixture
def world() -> World:
    return september_invoice()


def refused(call: object, field: str) -> str:
    before = (Invoice.objects.filter(status=InvoiceStatus.VOIDED).count(), CreditNote.objects.count())
    with pytest.raises(InvoiceError) as caught:
        call()  # type: ignore[operator]
    assert (Invoice.objects.filter(status=InvoiceStatus.VOIDED).count(), CreditNote.objects.count()) == before
    assert caught.value.field == field
    return caught.value.message


def test_void_needs_a_reason_and_nothing_paid(world: World) -> None:
    assert refused(lambda: invoice_void(invoice=world.september, reason=" ", now=NOW), "reason") == (
        VOID_REASON_REQUIRED
    )
    payment_create(invoice=world.september, amount=D("100"), reference="wire", paid_at=NOW, now=NOW)
    assert refused(lambda: invoice_void(invoice=world.september, reason="wrong plan", now=NOW), "invoice") == (
        VOID_PAID.format(invoice=world.september.number)
    )


def test_void_with_a_credit_note_for_what_was_paid(world: World) -> None:
    payment_create(invoice=world.september, amount=D("355"), reference="wire", paid_at=NOW, now=NOW)
    voided = invoice_void(
        invoice=world.september,
        reason="billed to the wrong entity",
        now=NOW,
        generate_credit_note=True,
        credit_amount=D("100"),
        refund_amount=D("255"),
    )
    assert voided.status == InvoiceStatus.VOIDED
    made = CreditNote.objects.get()
    assert (made.total_amount, made.credit_amount, made.refund_amount) == (D("355.00"), D("100.00"), D("255.00"))
    # the items take the amount from the fees in proportion: all of both
    assert sorted(made.items.values_list("amount", flat=True)) == [D("120.00"), D("235.00")]
    assert Payment.objects.count() == 1  # payments stand; the refund is the note's


def test_void_with_a_credit_note_larger_than_the_invoice_is_refused(world: World) -> None:
    payment_create(invoice=world.september, amount=D("355"), reference="wire", paid_at=NOW, now=NOW)
    message = refused(
        lambda: invoice_void(
            invoice=world.september,
            reason="x",
            now=NOW,
            generate_credit_note=True,
            credit_amount=D("100"),
            refund_amount=D("255.01"),
        ),
        "credit_amount",
    )
    assert message == VOID_CREDIT_TOO_LARGE.format(left="355.00")
    assert Invoice.objects.get(pk=world.september.pk).status == InvoiceStatus.FINALIZED


def test_regenerate_voids_and_bills_the_period_again_from_the_data_stored_now(world: World) -> None:
    store_users(world.customer, range(300, 400), at(2026, 9, 25), "late")  # 100 more September users
    new = invoice_regenerate(invoice=world.september, reason="late import of September users", now=NOW)
    old = Invoice.objects.get(pk=world.september.pk)
    assert (old.status, old.void_reason) == (InvoiceStatus.VOIDED, "late import of September users")
    assert (new.status, new.kind, new.period_start, new.period_end) == (
        InvoiceStatus.FINALIZED,
        InvoiceKind.PERIOD,
        old.period_start,
        old.period_end,
    )
    assert new.number and new.number != old.number
    assert new.total == D("120") + 150 * D("1.2") + 150 * D("1.1")  # 400 users: $465.00
    # October then bills no late usage for September: the new invoice has it all
    october = close_october()
    assert not october.lines.filter(kind=LineKind.LATE_USAGE).exists()


def test_regenerate_is_refused_when_a_later_invoice_billed_the_periods_late_usage(world: World) -> None:
    store_users(world.customer, range(300, 400), at(2026, 9, 25), "late")
    october = close_october()
    assert october.lines.filter(kind=LineKind.LATE_USAGE).exists()
    message = refused(lambda: invoice_regenerate(invoice=world.september, reason="x", now=NOW), "invoice")
    assert message == LATE_USAGE_BILLED_ELSEWHERE.format(invoices=october.number)


def test_one_live_invoice_per_subscription_and_period_is_a_database_rule(world: World) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(
            customer=world.customer,
            subscription=world.subscription,
            kind=InvoiceKind.PERIOD,
            period_start=world.september.period_start,
            period_end=world.september.period_end,
            currency="USD",
            total=D("1"),
        )


def test_a_voided_invoice_whose_period_is_billed_again_cannot_be_regenerated_twice(world: World) -> None:
    new = invoice_regenerate(invoice=world.september, reason="x", now=NOW)
    message = refused(lambda: invoice_regenerate(invoice=world.september, reason="again", now=NOW), "invoice")
    assert message == ALREADY_REGENERATED.format(invoice=world.september.number, live=new.number)

"""Credit notes (DESIGN §6): items, parts, caps, numbering, consumption at step 6, void, refunds."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from billing.models import (
    CreditApplication,
    CreditNote,
    CreditNoteItem,
    CreditNoteReason,
    CreditStatus,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    PaymentStatus,
    RefundStatus,
)
from billing.services.credit_notes import (
    ALREADY_VOIDED,
    BAD_REASON,
    FEE_TWICE,
    ITEM_NOT_POSITIVE,
    ITEM_TOO_LARGE,
    NO_ITEMS,
    NOT_FINALIZED,
    NOT_REFUNDED,
    OFFSET_TOO_LARGE,
    PARTS_DO_NOT_ADD_UP,
    REFUND_TOO_LARGE,
    UNKNOWN_FEE,
    CreditNoteError,
    credit_note_create,
    credit_note_estimate,
    credit_note_update,
    credit_note_void,
)
from billing.services.invoices import invoice_finalize, invoice_void
from billing.services.payments import amount_due, payment_create
from tests.billing.services.lifecycle import OCTOBER_CLOSE, World, close_october, september_invoice
from tests.helpers import at

pytestmark = pytest.mark.django_db

NOW = at(2026, 10, 20, 12)
D = Decimal


@pytest.fixture
def world() -> World:
    return september_invoice()


def note(
    invoice: Invoice,
    items: list[tuple[InvoiceLine | int, str]],
    credit: str = "0",
    refund: str = "0",
    offset: str = "0",
    reason: str = CreditNoteReason.OTHER,
) -> CreditNote:
    return credit_note_create(
        invoice=invoice,
        items=[(fee if isinstance(fee, int) else fee.pk, D(amount)) for fee, amount in items],
        reason=reason,
        credit_amount=D(credit),
        refund_amount=D(refund),
        offset_amount=D(offset),
        now=NOW,
    )


def refused(call: Any) -> dict[str, list[str]]:
    """The call raises CreditNoteError and stores nothing; returns its errors by field."""
    counts = (CreditNote.objects.count(), CreditNoteItem.objects.count(), CreditApplication.objects.count())
    invoices = list(Invoice.objects.order_by("pk").values_list("pk", "status", "payment_status", "total"))
    with pytest.raises(CreditNoteError) as caught:
        call()
    assert (CreditNote.objects.count(), CreditNoteItem.objects.count(), CreditApplication.objects.count()) == counts
    assert list(Invoice.objects.order_by("pk").values_list("pk", "status", "payment_status", "total")) == invoices
    return caught.value.errors


def pay(invoice: Invoice, amount: str) -> None:
    payment_create(invoice=invoice, amount=D(amount), reference="wire", paid_at=NOW, now=NOW)


# --- issuing ------------------------------------------------------------------------------------


def test_a_credit_and_refund_note_on_the_usage_fee(world: World) -> None:
    invoice = world.september
    pay(invoice, "355.00")
    made = note(invoice, [(world.usage_fee, "50.00")], credit="30.00", refund="20.00")
    assert made.number == f"{invoice.number}-CN1" and made.sequence == 1
    assert (made.items_amount, made.coupons_adjustment_amount, made.sub_total_excluding_taxes_amount) == (
        D("50.00"),
        D("0.00"),
        D("50.00"),
    )
    assert (made.taxes_amount, made.total_amount) == (D("0.00"), D("50.00"))
    assert (made.credit_amount, made.refund_amount, made.offset_amount) == (D("30.00"), D("20.00"), D("0.00"))
    assert (made.balance_amount, made.credit_status, made.refund_status) == (
        D("30.00"),
        CreditStatus.AVAILABLE,
        RefundStatus.PENDING,
    )
    assert made.issued_on == NOW.date() and made.customer_id == world.customer.pk
    assert list(made.items.values_list("fee_id", "amount")) == [(world.usage_fee.pk, D("50.00"))]


def test_numbers_are_gap_free_per_invoice(world: World) -> None:
    numbers = [note(world.september, [(world.usage_fee, "10")], credit="10").number for _ in range(3)]
    assert numbers == [f"{world.september.number}-CN{n}" for n in (1, 2, 3)]


def test_an_item_is_at_most_what_is_left_of_its_fee(world: World) -> None:
    note(world.september, [(world.usage_fee, "200.00")], credit="200.00")
    errors = refused(lambda: note(world.september, [(world.usage_fee, "35.01")], credit="35.01"))
    assert errors == {"items.0.amount_cents": [ITEM_TOO_LARGE.format(fee=world.usage_fee.pk, left="35.00")]}
    last = note(world.september, [(world.usage_fee, "35.00")], credit="35.00")  # exactly what is left
    assert last.number.endswith("-CN2")
    # voided notes still count, as in Lago: their items were credited
    credit_note_void(credit_note=last, now=NOW)
    assert "items.0.amount_cents" in refused(lambda: note(world.september, [(world.usage_fee, "1")], credit="1"))


def test_bad_items_are_refused_by_item(world: World) -> None:
    other = september_invoice_of_another_customer()
    assert refused(lambda: note(world.september, [])) == {"items": [NO_ITEMS]}
    assert refused(lambda: note(world.september, [(other, "1")], credit="1")) == {
        "items.0.fee_id": [UNKNOWN_FEE.format(fee=other)]
    }
    assert refused(lambda: note(world.september, [(world.usage_fee, "1"), (world.usage_fee, "1")], credit="2")) == {
        "items.1.fee_id": [FEE_TWICE.format(fee=world.usage_fee.pk)]
    }
    assert refused(lambda: note(world.september, [(world.usage_fee, "0")])) == {
        "items.0.amount_cents": [ITEM_NOT_POSITIVE]
    }


def september_invoice_of_another_customer() -> int:
    """The id of a fee that is not on acme's invoice (a line of another invoice)."""
    line = InvoiceLine.objects.exclude(invoice__customer__external_id="acme").first()
    if line is None:  # acme's August invoice is another invoice too
        line = InvoiceLine.objects.filter(invoice__period_start=at(2026, 8, 1)).first()
    assert line is not None
    return line.pk


def test_the_parts_must_add_up_to_the_total(world: World) -> None:
    errors = refused(lambda: note(world.september, [(world.usage_fee, "50")], credit="40"))
    assert errors == {"credit_amount_cents": [PARTS_DO_NOT_ADD_UP.format(parts="40.00", total="50.00")]}


def test_refund_is_at_most_what_was_paid_and_not_refunded(world: World) -> None:
    errors = refused(lambda: note(world.september, [(world.usage_fee, "50")], refund="50"))
    assert errors == {"refund_amount_cents": [REFUND_TOO_LARGE.format(left="0.00")]}
    pay(world.september, "30.00")
    note(world.september, [(world.usage_fee, "20")], refund="20")
    errors = refused(lambda: note(world.september, [(world.usage_fee, "20")], refund="20"))
    assert errors == {"refund_amount_cents": [REFUND_TOO_LARGE.format(left="10.00")]}
    # Within what was paid but over the note's total: the parts do not add up, nothing on the refund.
    errors = refused(lambda: note(world.september, [(world.usage_fee, "5")], refund="8"))
    assert errors == {"credit_amount_cents": [PARTS_DO_NOT_ADD_UP.format(parts="8.00", total="5.00")]}


def test_offset_reduces_what_is_due_and_may_settle_the_invoice(world: World) -> None:
    pay(world.september, "305.00")
    errors = refused(lambda: note(world.september, [(world.usage_fee, "60")], offset="60"))
    assert errors == {"offset_amount_cents": [OFFSET_TOO_LARGE.format(left="50.00")]}
    note(world.september, [(world.usage_fee, "50")], offset="50")
    invoice = Invoice.objects.get(pk=world.september.pk)
    assert amount_due(invoice) == 0
    assert invoice.payment_status == PaymentStatus.SUCCEEDED


def test_a_note_credits_a_fee_net_of_its_discounts(world: World) -> None:
    """August's base fee is reduced by the 14-day trial: a note on the whole fee credits only
    what was charged (Lago's coupons adjustment)."""
    august = Invoice.objects.get(subscription=world.subscription, period_start=at(2026, 8, 1))
    fee = august.lines.get(kind=LineKind.BASE_FEE)
    discount = -august.lines.get(kind=LineKind.PROMOTION).amount
    assert fee.discount_amount == discount > 0
    made = note(august, [(fee, str(fee.amount))], credit=str(fee.amount - discount))
    assert made.coupons_adjustment_amount == discount
    assert made.total_amount == fee.amount - discount == august.total


def test_only_finalized_invoices_can_be_credited(world: World) -> None:
    invoice_void(invoice=world.september, reason="wrong plan", now=NOW)
    errors = refused(lambda: note(world.september, [(world.usage_fee, "1")], credit="1"))
    assert errors == {"invoice_id": [NOT_FINALIZED.format(invoice=world.september.number, status="voided")]}
    assert refused(lambda: note(world.september, [(world.usage_fee, "1")], credit="1", reason="oops")) == {
        "invoice_id": [NOT_FINALIZED.format(invoice=world.september.number, status="voided")]
    }


def test_the_reason_is_one_of_lagos(world: World) -> None:
    errors = refused(lambda: note(world.september, [(world.usage_fee, "1")], credit="1", reason="oops"))
    assert errors == {"reason": [BAD_REASON.format(choices=", ".join(CreditNoteReason.values))]}


def test_the_estimate_says_what_a_note_would_be_and_writes_nothing(world: World) -> None:
    pay(world.september, "100.00")
    amounts = credit_note_estimate(invoice=world.september, items=[(world.usage_fee.pk, D("50"))])
    assert (amounts.total, amounts.max_refund, amounts.max_offset) == (D("50.00"), D("50.00"), D("50.00"))
    assert not CreditNote.objects.exists()


# --- the database refuses what the service would never write ---------------------------------


def test_the_database_refuses_parts_that_do_not_add_up_and_a_fee_twice(world: World) -> None:
    made = note(world.september, [(world.usage_fee, "50")], credit="50")
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditNote.objects.filter(pk=made.pk).update(credit_amount=D("49"))
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditNoteItem.objects.create(credit_note=made, fee=world.usage_fee, amount=D("1"))
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditNote.objects.filter(pk=made.pk).update(balance_amount=D("51"))


# --- consumed by later invoices (step 6) -------------------------------------------------------


def test_the_credit_is_consumed_by_the_next_invoice(world: World) -> None:
    made = note(world.september, [(world.usage_fee, "30")], credit="30")
    october = close_october()
    assert october.status == InvoiceStatus.FINALIZED
    assert list(october.lines.order_by("position").values_list("kind", "amount")) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.CREDIT_NOTE, D("-30.00")),
    ]
    assert october.total == D("90.00")
    made.refresh_from_db()
    assert (made.balance_amount, made.credit_status) == (D("0.00"), CreditStatus.CONSUMED)
    assert list(CreditApplication.objects.values_list("credit_note", "invoice", "amount")) == [
        (made.pk, october.pk, D("30.00"))
    ]


def test_credit_larger_than_the_invoice_leaves_a_balance_and_a_zero_total(world: World) -> None:
    made = note(world.september, [(world.usage_fee, "150")], credit="150")
    october = close_october()
    assert (october.total, october.payment_status) == (D("0.00"), PaymentStatus.SUCCEEDED)
    made.refresh_from_db()
    assert (made.balance_amount, made.credit_status) == (D("30.00"), CreditStatus.AVAILABLE)


def test_oldest_credit_first(world: World) -> None:
    first = note(world.september, [(world.usage_fee, "100")], credit="100")
    second = note(world.september, [(world.base_fee, "50")], credit="50")
    october = close_october()
    assert [line.details["credit_note"] for line in october.lines.filter(kind=LineKind.CREDIT_NOTE)] == [
        first.pk,
        second.pk,
    ]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.balance_amount, second.balance_amount) == (D("0.00"), D("30.00"))


def test_a_draft_shows_the_credit_but_the_balance_moves_at_finalization(world: World, settings: Any) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 48
    made = note(world.september, [(world.usage_fee, "30")], credit="30")
    october = close_october()
    assert october.status == InvoiceStatus.DRAFT and october.total == D("90.00")
    made.refresh_from_db()
    assert made.balance_amount == D("30.00")
    invoice_finalize(invoice=october, now=OCTOBER_CLOSE + timedelta(hours=1))
    made.refresh_from_db()
    assert (made.balance_amount, made.credit_status) == (D("0.00"), CreditStatus.CONSUMED)


def test_voiding_the_invoice_that_consumed_credit_gives_it_back(world: World) -> None:
    made = note(world.september, [(world.usage_fee, "30")], credit="30")
    october = close_october()
    invoice_void(invoice=october, reason="issued twice", now=OCTOBER_CLOSE + timedelta(days=1))
    made.refresh_from_db()
    assert (made.balance_amount, made.credit_status) == (D("30.00"), CreditStatus.AVAILABLE)
    application = CreditApplication.objects.get()
    assert application.reversed_at is not None


# --- void and refunds --------------------------------------------------------------------------


def test_voiding_a_note_voids_what_is_left_of_its_credit(world: World) -> None:
    made = note(world.september, [(world.usage_fee, "30")], credit="30")
    credit_note_void(credit_note=made, now=NOW)
    made.refresh_from_db()
    assert (made.credit_status, made.balance_amount, made.voided_at) == (CreditStatus.VOIDED, D("0.00"), NOW)
    assert refused(lambda: credit_note_void(credit_note=made, now=NOW)) == {
        "credit_status": [ALREADY_VOIDED.format(note=made.number)]
    }
    october = close_october()
    assert october.total == D("120.00")  # nothing left to consume


def test_finance_marks_a_refund_done(world: World) -> None:
    pay(world.september, "355.00")
    made = note(world.september, [(world.usage_fee, "20")], refund="20")
    credit_note_update(credit_note=made, refund_status=RefundStatus.SUCCEEDED, now=NOW)
    made.refresh_from_db()
    assert (made.refund_status, made.refunded_at) == (RefundStatus.SUCCEEDED, NOW)
    credit_note_update(credit_note=made, refund_status=RefundStatus.SUCCEEDED, now=NOW + timedelta(days=1))
    made.refresh_from_db()
    assert made.refunded_at == NOW  # marking it done again changes nothing
    credit_only = note(world.september, [(world.usage_fee, "20")], credit="20")
    assert refused(
        lambda: credit_note_update(credit_note=credit_only, refund_status=RefundStatus.SUCCEEDED, now=NOW)
    ) == {"refund_status": [NOT_REFUNDED.format(note=credit_only.number)]}

"""Credit notes: issue, estimate, consume, void, and mark refunds (DESIGN §6 "Credit notes").

Issuing a note on a finalized invoice, under the invoice's row lock:
- items are amounts of fees before their discounts and tax, each at most what is left
  uncredited of its fee (every earlier note's items count, voided or not, as in Lago);
- `coupons_adjustment` = Σ item × (the fee's share of promotions, drawdown and coupons) / fee
  amount, rounded once: a note never credits more than was charged; sub-total = items −
  adjustment; tax = each tax's rate on the sub-total, rounded once per tax (no taxes yet);
- total = sub-total + tax = credit + refund + offset exactly (a database constraint too);
- refund ≤ paid and not yet refunded; offset ≤ still due (it settles part of the invoice);
- number `<invoice number>-CN<n>`, n = 1, 2, … per invoice, gap-free (n is taken under the
  invoice's lock and unique per invoice in the database).
The credit part is the customer's credit: later invoices consume it (step 6) when they are
finalized (`credit_applications_record`); voiding the note voids what is left of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from billing.engine.lines import Line
from billing.engine.money import ZERO, quantize_money
from billing.engine.vocabulary import (
    CreditNoteReason,
    CreditStatus,
    InvoiceKind,
    InvoiceStatus,
    LineKind,
    RefundStatus,
    WebhookType,
)
from billing.models import CreditApplication, CreditNote, CreditNoteItem, Invoice, InvoiceLine
from billing.selectors.credit_notes import Creditable, creditable
from billing.services.errors import FieldErrors
from billing.services.payments import settle
from billing.services.webhooks import announce
from metering.days import local_date

WALLET_PURCHASE = (
    "invoice {invoice} is a wallet purchase: it takes no credit note; void its credits on the wallet instead"
)
NOT_FINALIZED = "invoice {invoice} is {status}: only a finalized invoice can be credited"
NO_ITEMS = "at least one item is required"
UNKNOWN_FEE = "fee {fee} is not a fee of this invoice"
FEE_TWICE = "fee {fee} appears twice"
ITEM_NOT_POSITIVE = "must be greater than 0"
ITEM_TOO_LARGE = "is more than is left to credit on fee {fee} ({left})"
PARTS_DO_NOT_ADD_UP = "credit, refund and offset add up to {parts}, the note's total is {total}"
NEGATIVE_PART = "must not be negative"
REFUND_TOO_LARGE = "is more than was paid and not refunded yet ({left})"
OFFSET_TOO_LARGE = "is more than is still due on the invoice ({left})"
BAD_REASON = "must be one of: {choices}"
NOT_REFUNDED = "credit note {note} has no refund"
ALREADY_VOIDED = "credit note {note} is voided already"
NOTHING_TO_VOID = "credit note {note} has no credit left to void"
BAD_REFUND_STATUS = "must be one of: {choices}"


class CreditNoteError(FieldErrors):
    """The note is refused; `errors` are messages by field, as the API returns them."""


@dataclass(frozen=True)
class NoteAmounts:
    """What a note with these items amounts to, and the most it may credit, refund and offset."""

    items: list[tuple[InvoiceLine, Decimal]]
    items_amount: Decimal
    coupons_adjustment: Decimal
    sub_total: Decimal
    taxes: Decimal
    total: Decimal
    max_refund: Decimal
    max_offset: Decimal


def note_amounts(invoice: Invoice, items: list[tuple[int, Decimal]], left: Creditable) -> NoteAmounts:
    """The amounts of a note on `invoice` with these (fee id, amount) items, checked against what
    is left (raises CreditNoteError naming the item)."""
    errors: dict[str, list[str]] = {}
    if not items:
        raise CreditNoteError({"items": [NO_ITEMS]})
    fees = {line.pk: line for line in invoice.lines.all() if line.pk in left.fees}
    chosen: list[tuple[InvoiceLine, Decimal]] = []
    seen: set[int] = set()
    for i, (fee_id, amount) in enumerate(items):
        field = f"items.{i}"
        fee = fees.get(fee_id)
        if fee is None:
            errors[f"{field}.fee_id"] = [UNKNOWN_FEE.format(fee=fee_id)]
        elif fee_id in seen:
            errors[f"{field}.fee_id"] = [FEE_TWICE.format(fee=fee_id)]
        elif amount <= 0:
            errors[f"{field}.amount_cents"] = [ITEM_NOT_POSITIVE]
        elif amount > left.fees[fee_id]:
            errors[f"{field}.amount_cents"] = [
                ITEM_TOO_LARGE.format(fee=fee_id, left=quantize_money(left.fees[fee_id], invoice.currency))
            ]
        else:
            chosen.append((fee, amount))
        seen.add(fee_id)
    if errors:
        raise CreditNoteError(errors)
    items_amount = sum((amount for _, amount in chosen), ZERO)
    # Each item carries its fee's share of the discounts; the note's adjustment is rounded once.
    exact = sum((amount * fee.discount_amount / fee.amount for fee, amount in chosen if fee.amount), ZERO)
    adjustment = quantize_money(exact, invoice.currency)
    sub_total = items_amount - adjustment
    taxes = ZERO  # taxes are not part of this wave's invoices yet: each tax's rate on sub_total
    total = sub_total + taxes
    max_refund = max(ZERO, min(total, left.paid - left.refunded))
    max_offset = max(ZERO, min(total, left.due))
    return NoteAmounts(chosen, items_amount, adjustment, sub_total, taxes, total, max_refund, max_offset)


def _lock_finalized(invoice: Invoice) -> Invoice:
    locked = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
    if locked.status != InvoiceStatus.FINALIZED:
        raise CreditNoteError({"invoice_id": [NOT_FINALIZED.format(invoice=locked, status=locked.status)]})
    return locked


def credit_note_estimate(*, invoice: Invoice, items: list[tuple[int, Decimal]]) -> NoteAmounts:
    """What a note with these items would amount to (Lago's estimate); writes nothing."""
    with transaction.atomic():
        locked = _lock_finalized(invoice)
        return note_amounts(locked, items, creditable(locked))


@transaction.atomic
def credit_note_create(
    *,
    invoice: Invoice,
    items: list[tuple[int, Decimal]],
    reason: str,
    credit_amount: Decimal,
    refund_amount: Decimal,
    offset_amount: Decimal,
    description: str = "",
    metadata: dict[str, Any] | None = None,
    user: User | None = None,
    now: datetime,
) -> CreditNote:
    """Issue a credit note on a finalized invoice (see the module docstring for the rules)."""
    invoice = _lock_finalized(invoice)
    if invoice.kind == InvoiceKind.CREDIT:
        # Its credits are settled into the wallet by payment; a note's credit, refund or offset
        # would give credits nobody paid for (or pay back credits still in the wallet).
        raise CreditNoteError({"invoice_id": [WALLET_PURCHASE.format(invoice=invoice.number)]})
    if reason not in CreditNoteReason.values:
        raise CreditNoteError({"reason": [BAD_REASON.format(choices=", ".join(CreditNoteReason.values))]})
    left = creditable(invoice)
    amounts = note_amounts(invoice, items, left)
    errors: dict[str, list[str]] = {}
    for field, value in (
        ("credit_amount_cents", credit_amount),
        ("refund_amount_cents", refund_amount),
        ("offset_amount_cents", offset_amount),
    ):
        if value < 0:
            errors[field] = [NEGATIVE_PART]
    # Over what was paid: said here. Over the note's total only: the parts do not add up (below).
    refundable = max(ZERO, left.paid - left.refunded)
    if refund_amount > refundable:
        errors.setdefault("refund_amount_cents", []).append(
            REFUND_TOO_LARGE.format(left=quantize_money(refundable, invoice.currency))
        )
    if offset_amount > amounts.max_offset:
        errors.setdefault("offset_amount_cents", []).append(
            OFFSET_TOO_LARGE.format(left=quantize_money(max(ZERO, left.due), invoice.currency))
        )
    parts = credit_amount + refund_amount + offset_amount
    if parts != amounts.total:
        errors.setdefault("credit_amount_cents", []).append(
            PARTS_DO_NOT_ADD_UP.format(
                parts=quantize_money(parts, invoice.currency), total=quantize_money(amounts.total, invoice.currency)
            )
        )
    if errors:
        raise CreditNoteError(errors)
    sequence = CreditNote.objects.filter(invoice=invoice).count() + 1  # under the invoice's lock: gap-free
    note = CreditNote.objects.create(
        invoice=invoice,
        customer=invoice.customer,
        sequence=sequence,
        number=f"{invoice.number}-CN{sequence}",
        reason=reason,
        description=description,
        currency=invoice.currency,
        items_amount=amounts.items_amount,
        coupons_adjustment_amount=amounts.coupons_adjustment,
        sub_total_excluding_taxes_amount=amounts.sub_total,
        taxes_amount=amounts.taxes,
        total_amount=amounts.total,
        credit_amount=credit_amount,
        refund_amount=refund_amount,
        offset_amount=offset_amount,
        balance_amount=credit_amount,
        credit_status=CreditStatus.AVAILABLE,
        refund_status=RefundStatus.PENDING if refund_amount > 0 else "",
        issued_on=local_date(now, invoice.customer.timezone),
        metadata=metadata or {},
        created_by=user,
    )
    CreditNoteItem.objects.bulk_create(
        [CreditNoteItem(credit_note=note, fee=fee, amount=amount) for fee, amount in amounts.items]
    )
    if offset_amount > 0:
        settle(invoice=invoice, now=now)  # the offset may settle what was still due
    announce(webhook_type=WebhookType.CREDIT_NOTE_CREATED, object_type="credit_note", obj=note, object_id=note.pk)
    return note


@transaction.atomic
def credit_note_void(*, credit_note: CreditNote, now: datetime) -> CreditNote:
    """Void what is left of the note's credit (its refund and offset stand)."""
    note = CreditNote.objects.select_for_update().get(pk=credit_note.pk)
    if note.credit_status == CreditStatus.VOIDED:
        raise CreditNoteError({"credit_status": [ALREADY_VOIDED.format(note=note.number)]})
    if note.balance_amount <= 0:  # consumed, or a refund or offset only (Lago: not voidable)
        raise CreditNoteError({"balance_amount_cents": [NOTHING_TO_VOID.format(note=note.number)]})
    note.credit_status = CreditStatus.VOIDED
    note.balance_amount = ZERO
    note.voided_at = now
    note.save(update_fields=["credit_status", "balance_amount", "voided_at", "updated_at"])
    return note


@transaction.atomic
def credit_note_update(
    *,
    credit_note: CreditNote,
    refund_status: str | None = None,
    metadata: dict[str, Any] | None = None,
    now: datetime,
) -> CreditNote:
    """Lago's update: the refund's status (finance marks a refund done) and the metadata."""
    note = CreditNote.objects.select_for_update().get(pk=credit_note.pk)
    if refund_status is not None:
        if refund_status not in RefundStatus.values:
            raise CreditNoteError({"refund_status": [BAD_REFUND_STATUS.format(choices=", ".join(RefundStatus.values))]})
        if note.refund_amount == 0:
            raise CreditNoteError({"refund_status": [NOT_REFUNDED.format(note=note.number)]})
        if refund_status != note.refund_status:  # the same status again changes nothing
            note.refund_status = refund_status
            note.refunded_at = now if refund_status == RefundStatus.SUCCEEDED else None
    if metadata is not None:
        note.metadata = metadata
    note.save()
    return note


def credit_applications_record(*, invoice: Invoice, lines: list[Line] | None = None) -> None:
    """At finalization: consume the credit the invoice's credit_note lines draw (once per note and
    invoice). The notes were locked when the lines were computed, under the customer's lock."""
    drawn = lines if lines is not None else invoice.lines.filter(kind=LineKind.CREDIT_NOTE)
    for line in drawn:
        if line.kind != LineKind.CREDIT_NOTE:
            continue
        note = CreditNote.objects.select_for_update().get(pk=line.details["credit_note"])
        take = -line.amount
        CreditApplication.objects.create(credit_note=note, invoice=invoice, amount=take)
        note.balance_amount -= take  # the database refuses a balance below zero
        if note.balance_amount == 0:
            note.credit_status = CreditStatus.CONSUMED
        note.save(update_fields=["balance_amount", "credit_status", "updated_at"])


def credit_applications_reverse(*, invoice: Invoice, now: datetime) -> None:
    """A voided invoice gives back the credit it consumed (to notes not voided since)."""
    for application in CreditApplication.objects.select_for_update().filter(invoice=invoice, reversed_at=None):
        note = CreditNote.objects.select_for_update().get(pk=application.credit_note_id)
        application.reversed_at = now
        application.save(update_fields=["reversed_at"])
        if note.credit_status == CreditStatus.VOIDED:
            continue
        note.balance_amount += application.amount
        note.credit_status = CreditStatus.AVAILABLE
        note.save(update_fields=["balance_amount", "credit_status", "updated_at"])

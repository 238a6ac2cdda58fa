"""Reads of credit notes and of what is left to credit, refund and offset on an invoice."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch, QuerySet

from billing.engine.invoice import AvailableCredit
from billing.engine.money import ZERO
from billing.engine.vocabulary import FEE_KINDS, CreditStatus
from billing.models import CreditNote, CreditNoteItem, Invoice, InvoiceLine
from config.db import exact_sum


def available_credits(customer_id: int, *, currency: str, lock: bool = False) -> tuple[AvailableCredit, ...]:
    """The customer's credit not yet consumed, oldest note first (step 6 of an invoice).

    `lock`: take the notes' row locks (a finalization, which then consumes them).
    """
    notes = CreditNote.objects.filter(
        customer_id=customer_id, currency=currency, credit_status=CreditStatus.AVAILABLE, balance_amount__gt=0
    ).order_by("created_at", "id")
    if lock:
        notes = notes.select_for_update()
    return tuple(AvailableCredit(note.pk, note.number, note.balance_amount) for note in notes)


def credit_notes_with_relations() -> QuerySet[CreditNote]:
    """Everything a credit note's JSON and document read, in a fixed number of queries."""
    return CreditNote.objects.select_related("invoice", "customer").prefetch_related(
        Prefetch("items", queryset=CreditNoteItem.objects.select_related("fee__metric").order_by("id"))
    )


@dataclass(frozen=True)
class Creditable:
    """What a finalized invoice can still be credited, refunded and offset, per DESIGN §6."""

    fees: dict[int, Decimal]  # fee (line) id → amount not yet credited
    paid: Decimal  # payments received
    refunded: Decimal  # refunds of its credit notes
    offset: Decimal  # offsets of its credit notes
    due: Decimal  # total − paid − offsets


def fee_lines(invoice: Invoice) -> list[InvoiceLine]:
    return [line for line in invoice.lines.order_by("position", "id") if line.kind in FEE_KINDS]


def creditable(invoice: Invoice) -> Creditable:
    """Read under the invoice's lock when it decides a write (credit note, payment, void)."""
    credited: dict[int, Decimal] = {}
    for fee_id, amount in CreditNoteItem.objects.filter(fee__invoice=invoice).values_list("fee_id", "amount"):
        credited[fee_id] = credited.get(fee_id, ZERO) + amount  # exact, in Python (SQLite sums floats)
    fees = {line.pk: line.amount - credited.get(line.pk, ZERO) for line in fee_lines(invoice)}
    notes = CreditNote.objects.filter(invoice=invoice)
    refunded = exact_sum(notes, "refund_amount") or ZERO
    offset = exact_sum(notes, "offset_amount") or ZERO
    paid = exact_sum(invoice.payments.all(), "amount") or ZERO
    return Creditable(fees=fees, paid=paid, refunded=refunded, offset=offset, due=invoice.total - paid - offset)

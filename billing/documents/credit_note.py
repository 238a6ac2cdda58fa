"""The credit note document: one self-contained, printable HTML page per credit note.

`credit_note_context` turns a note into display strings; `render_credit_note_html` renders them
with templates/billing/credit_note.html, which shares its <style> with the invoice
(templates/billing/document_style.html) so the two documents read as one family.

Choices a finance reader would ask about:
- Billing details are the credited invoice's (its finalization snapshot, billing_details): a
  note corrects that invoice, so it names the customer exactly as the invoice did, whatever was
  edited since.
- Items are amounts of the invoice's fees before their discounts; the coupons adjustment takes
  back the credited fees' share of those discounts, so it is shown as a negative line and the
  note never credits more than was charged.
- Taxes are a line only when there are any (there are none yet: they would otherwise read as a
  promise of a tax computation that does not exist).
- The settlement table says where the total went: the customer's credit (what is left of it is
  the balance later invoices draw on), a refund (with its status), and an offset against the
  credited invoice. The three parts always add up to the total (a database constraint).
- A voided note keeps its refund and offset; only the credit left was voided, which its banner
  says. Nothing is struck through, unlike a void invoice, since the rest of the note stands.
- Days are the customer's: the note's `issued_on` is a day already, `voided_at` and `refunded_at`
  are shown as the local day in the customer's time zone.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from billing.documents.formats import format_day, format_money
from billing.documents.invoice import billing_details, customer_block
from billing.engine.money import ZERO
from billing.models import CreditNote, CreditNoteItem, CreditStatus, RefundStatus
from metering.days import local_date

TITLE = "Credit note {number}"
VOID_BANNER = "CREDIT VOIDED"
VOID_EXPLANATION = (
    "The credit left on this note, {amount}, was voided on {day}: later invoices can no longer use it."
    " Its refund and offset, if any, stand."
)
ADJUSTMENT_LABEL = "Coupons adjustment"
CREDIT_LABEL = "Credited to the customer's balance"
REFUND_LABEL = "Refunded"
REFUND_WITH_STATUS = "Refunded ({status})"
OFFSET_LABEL = "Offset against invoice {invoice}"
BALANCE_LABEL = "Credit left to use"
CREDIT_VOIDED_LABEL = "Credit voided"
CREDIT_STATUS_LABEL = "Credit status"
REFUND_STATUS_LABEL = "Refund status"
VOIDED_LABEL = "Voided on"
STATUS_ON = "{status} on {day}"
TEMPLATE = "billing/credit_note.html"


def _local_day(moment: datetime | None, tz: str) -> str:
    return format_day(local_date(moment, tz)) if moment is not None else ""


def item_row(item: CreditNoteItem, currency: str) -> dict[str, str]:
    """A credited fee as its invoice line called it, and the amount taken back from it."""
    fee = item.fee
    return {
        "kind_display": fee.get_kind_display(),
        "description": fee.description,
        "amount": format_money(item.amount, currency),
    }


def credit_voided(note: CreditNote) -> Decimal:
    """What was left of the credit when the note was voided. Its balance is 0 since, so this is
    the credit less what invoices still hold: an application reversed (its invoice voided) before
    the note was voided gave its amount back to the balance, one reversed after gave nothing back,
    and either way that amount was voided."""
    held = note.applications.filter(reversed_at=None).values_list("amount", flat=True)
    return note.credit_amount - sum(held, ZERO)  # summed in Python: exact (SQLite sums floats)


def status_rows(note: CreditNote, tz: str) -> list[tuple[str, str]]:
    """(label, value) lines for the details table: only the statuses this note has.

    A note with no credit part has no credit to be available or consumed, so its credit status
    is left out unless it was voided; the refund status exists only with a refund.
    """
    rows: list[tuple[str, str]] = []
    is_void = note.credit_status == CreditStatus.VOIDED
    if note.credit_amount > 0 or is_void:
        rows.append((CREDIT_STATUS_LABEL, note.get_credit_status_display()))
    if note.refund_status:  # empty when the note refunds nothing
        refund_status = note.get_refund_status_display()
        if note.refund_status == RefundStatus.SUCCEEDED and note.refunded_at is not None:
            refund_status = STATUS_ON.format(status=refund_status, day=_local_day(note.refunded_at, tz))
        rows.append((REFUND_STATUS_LABEL, refund_status))
    if is_void and note.voided_at is not None:
        rows.append((VOIDED_LABEL, _local_day(note.voided_at, tz)))
    return rows


def settlement_rows(note: CreditNote) -> list[dict[str, str]]:
    """Where the total went: credit, refund and offset (each shown, even at 0, so they visibly add
    up to the total), then, when the note has a credit part, the credit left to use or, once the
    note is voided, the credit voided."""
    currency = note.currency
    invoice_number = note.invoice.number or ""
    refund_label = (
        REFUND_WITH_STATUS.format(status=note.get_refund_status_display().lower())
        if note.refund_status
        else REFUND_LABEL
    )
    rows = [
        {"kind": "credit", "label": CREDIT_LABEL, "amount": format_money(note.credit_amount, currency)},
        {"kind": "refund", "label": refund_label, "amount": format_money(note.refund_amount, currency)},
        {
            "kind": "offset",
            "label": OFFSET_LABEL.format(invoice=invoice_number),
            "amount": format_money(note.offset_amount, currency),
        },
    ]
    if note.credit_amount > 0 and note.credit_status == CreditStatus.VOIDED:
        amount = format_money(credit_voided(note), currency)
        rows.append({"kind": "voided", "label": CREDIT_VOIDED_LABEL, "amount": amount})
    elif note.credit_amount > 0:
        rows.append({"kind": "balance", "label": BALANCE_LABEL, "amount": format_money(note.balance_amount, currency)})
    return rows


def credit_note_context(note: CreditNote) -> dict[str, Any]:
    """Everything the credit note template shows, as display strings."""
    invoice = note.invoice
    customer = customer_block(billing_details(invoice))
    tz = customer["timezone"]
    currency = note.currency
    is_void = note.credit_status == CreditStatus.VOIDED
    adjustment: Decimal = note.coupons_adjustment_amount
    return {
        "note": note,
        "title": TITLE.format(number=note.number),
        "number": note.number,
        "credit_status": note.credit_status,
        "is_void": is_void,
        "void_banner": VOID_BANNER if is_void else "",
        "void_explanation": (
            VOID_EXPLANATION.format(
                amount=format_money(credit_voided(note), currency), day=_local_day(note.voided_at, tz)
            )
            if is_void
            else ""
        ),
        "seller_name": invoice.seller_name or settings.BILLING_SELLER_NAME,
        "customer": customer,
        "invoice_number": invoice.number or "",
        "invoice_issue_date": format_day(invoice.issued_on),
        "issue_date": format_day(note.issued_on),
        "reason": note.get_reason_display(),
        "description": note.description,
        "status_rows": status_rows(note, tz),
        "currency": currency,
        "timezone": tz,
        # .all(): the items and their fees prefetched by credit_notes_with_relations() are used.
        "items": [item_row(item, currency) for item in note.items.all()],
        "adjustment_label": ADJUSTMENT_LABEL,
        "adjustment": format_money(-adjustment, currency) if adjustment else "",
        "sub_total": format_money(note.sub_total_excluding_taxes_amount, currency),
        "taxes": format_money(note.taxes_amount, currency) if note.taxes_amount else "",
        "total": format_money(note.total_amount, currency),
        "settlement": settlement_rows(note),
    }


def render_credit_note_html(note: CreditNote) -> str:
    return render_to_string(TEMPLATE, credit_note_context(note))

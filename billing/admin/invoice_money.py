"""What the invoice page shows of its money, and its money buttons (DESIGN §6).

billing.admin.invoices.InvoiceAdmin has these: the "Payment" fields of a finalized invoice (what
was paid, offset by credit notes and is still due, overdue since when in the customer's days, its
payments and credit notes), read from billing.selectors.receivables once per page; and the
"Record payment" (while something is due) and "Issue credit note" buttons, shown only to staff
who may use them (billing.admin.payments, billing.admin.credit_note_issue).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from billing.admin.credit_note_issue import may_issue_credit_notes
from billing.admin.payments import may_record_payments
from billing.admin.shared import admin_link, admin_url
from billing.documents.formats import format_day, format_money
from billing.engine.money import ZERO
from billing.models import CreditNote, Invoice, InvoiceStatus
from billing.selectors.receivables import days_overdue, settlements
from metering.days import local_date


def note_parts(note: CreditNote) -> str:
    """Where a credit note's total went: "credit $10.00, refund $5.00"."""
    parts = (("credit", note.credit_amount), ("refund", note.refund_amount), ("offset", note.offset_amount))
    return ", ".join(f"{label} {format_money(amount, note.currency)}" for label, amount in parts if amount)


class InvoiceMoney(admin.ModelAdmin[Invoice]):
    """The payment fields and money buttons of the invoice page."""

    def _settled(self, obj: Invoice) -> tuple[Decimal, Decimal, Decimal]:
        """(paid, offset by credit notes, due) of the invoice shown, read once per page."""
        cached: tuple[Decimal, Decimal, Decimal] | None = obj.__dict__.get("_settled")
        if cached is None:
            settled = settlements(Invoice.objects.filter(pk=obj.pk))
            paid, offset = settled.paid.get(obj.pk, ZERO), settled.offset.get(obj.pk, ZERO)
            due = obj.total - paid - offset if obj.status == InvoiceStatus.FINALIZED else ZERO
            cached = obj.__dict__["_settled"] = (paid, offset, due)
        return cached

    @admin.display(description="paid")
    def paid_display(self, obj: Invoice) -> str:
        paid, offset, _due = self._settled(obj)
        text = format_money(paid, obj.currency)
        if offset:
            text += f", and {format_money(offset, obj.currency)} offset by credit notes"
        return text

    @admin.display(description="still due")
    def due_display(self, obj: Invoice) -> str:
        if obj.status != InvoiceStatus.FINALIZED:
            return "—"
        _paid, _offset, due = self._settled(obj)
        text = format_money(due, obj.currency)
        late = days_overdue(obj.payment_due_date, local_date(timezone.now(), obj.customer.timezone))
        if due > 0 and late > 0:
            return format_html(
                '{} <strong class="overdue">overdue by {} day{}</strong>', text, late, "s" if late > 1 else ""
            )
        return text

    @admin.display(description="payments")
    def payments_display(self, obj: Invoice) -> str:
        payments = list(obj.payments.select_related("created_by").order_by("paid_at", "id"))
        if not payments:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            "{}: {} ({}{})",
            (
                (
                    format_day(timezone.localdate(p.paid_at)),
                    format_money(p.amount, p.currency),
                    p.reference,
                    f", recorded by {p.created_by}" if p.created_by else "",
                )
                for p in payments
            ),
        )

    @admin.display(description="credit notes")
    def credit_notes_display(self, obj: Invoice) -> str:
        notes = list(obj.credit_notes.order_by("sequence"))
        if not notes:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            "{}: {} ({})",
            (
                (
                    admin_link("billing_creditnote_change", note.pk, note.number),
                    format_money(note.total_amount, note.currency),
                    note_parts(note),
                )
                for note in notes
            ),
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Invoice | None = None,
    ) -> HttpResponse:
        # The money buttons, for a finalized invoice and staff who may use them (no one is shown
        # a button that refuses them).
        if obj is not None and obj.status == InvoiceStatus.FINALIZED:
            if may_record_payments(request) and self._settled(obj)[2] > 0:
                context["record_payment_url"] = admin_url("billing_invoice_record_payment", obj.pk)
            if may_issue_credit_notes(request):
                context["credit_note_url"] = admin_url("billing_invoice_credit_note", obj.pk)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

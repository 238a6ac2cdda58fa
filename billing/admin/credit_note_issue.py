""" "Issue credit note" on a finalized invoice: enter, preview, confirm (DESIGN §6 "Credit notes").

At …/invoice/<id>/credit-note/, for staff who may add credit notes:

1. Enter: the invoice's fees, each with what is left to credit of it and an amount to credit
   (blank: not credited); the reason (Lago's six), a description, and how the total is settled:
   credit (the customer's balance for later invoices), refund (money paid back) and offset
   (reduces what is still due on this invoice). Amounts are decimals in the invoice's currency.
2. "Preview" asks billing.services.credit_note_estimate what such a note amounts to: the items,
   the coupons adjustment (the credited fees' share of their discounts), the sub-total, taxes,
   total, and the most that may be refunded and offset. With the three parts left blank the
   whole total is proposed as credit. Nothing is stored.
3. "Confirm" issues it with credit_note_create, which checks everything again under the
   invoice's lock. It is accepted only for the inputs that were previewed: anything changed
   since is previewed again first, so what finance confirms is what they saw.

Every refusal of the services is shown next to the input it is about ("items.0.amount_cents" on
that fee's amount, "refund_amount_cents" on the refund); nothing is stored then. Every rule
about the amounts is the service's: this page computes nothing but the sum of the three parts
it shows beside the total.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path
from django.utils import timezone

from billing.admin.money_input import MoneyField, add_service_errors
from billing.admin.shared import admin_page, admin_url, may_view, viewable_object
from billing.documents.formats import format_money
from billing.engine.money import ZERO
from billing.models import CreditNote, CreditNoteReason, Invoice, InvoiceLine, InvoiceStatus
from billing.selectors.credit_notes import Creditable, creditable, fee_lines
from billing.services.credit_notes import CreditNoteError, NoteAmounts, credit_note_create, credit_note_estimate

# Messages are constants so tests can match them.
NOTE_ISSUED = "Credit note {number} was issued for {total}: {parts}."
CHANGED_SINCE_PREVIEW = "The inputs changed since the preview: check the amounts below, then confirm."
NOT_CREDITABLE = "Invoice {invoice} is {status}: only a finalized invoice can be credited."
PARTS_HELP = "Credit, refund and offset must add up to the note's total; left blank, the whole total is credit."

ADD_CREDIT_NOTE = "billing.add_creditnote"

_ITEM_ERROR = re.compile(r"^items\.(\d+)\.(amount_cents|fee_id)$")
PART_FIELDS = {"credit_amount_cents": "credit", "refund_amount_cents": "refund", "offset_amount_cents": "offset"}
PARTS = ("credit", "refund", "offset")


def may_issue_credit_notes(request: HttpRequest) -> bool:
    return request.user.has_perm(ADD_CREDIT_NOTE)


def fee_field(fee: InvoiceLine) -> str:
    return f"fee_{fee.pk}"


class CreditNoteForm(forms.Form):
    reason = forms.ChoiceField(choices=[("", "---------"), *CreditNoteReason.choices])
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Shown on the credit note.",
    )

    def __init__(self, *args: Any, invoice: Invoice, fees: list[InvoiceLine], left: Creditable, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        self.fees = fees
        self.left = left
        currency = invoice.currency
        for fee in fees:
            field = MoneyField(currency=currency, required=False, label="Amount")
            field.disabled = left.fees.get(fee.pk, ZERO) <= 0  # fully credited already
            self.fields[fee_field(fee)] = field
        for name in PARTS:
            self.fields[name] = MoneyField(currency=currency, required=False, label=name.capitalize())
        self.fields["credit"].help_text = "Goes to the customer's balance; later invoices use it."
        self.fields["refund"].help_text = "Money paid back to the customer (at most what was paid)."
        self.fields["offset"].help_text = "Reduces what is still due on this invoice."
        self._items: list[str] = []  # the fee field of each item sent to the service, in order

    # --- what the template shows ---

    def fee_rows(self) -> list[dict[str, Any]]:
        currency = self.invoice.currency
        rows = []
        for fee in self.fees:
            left = self.left.fees.get(fee.pk, ZERO)
            rows.append(
                {
                    "fee": fee,
                    "field": self[fee_field(fee)],
                    "amount": format_money(fee.amount, currency),
                    "discount": format_money(-fee.discount_amount, currency) if fee.discount_amount else "",
                    "credited": format_money(fee.amount - left, currency) if fee.amount != left else "",
                    "left": format_money(left, currency),
                    "exhausted": left <= 0,
                }
            )
        return rows

    def part_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in PARTS]

    # --- what the services are given ---

    def items(self) -> list[tuple[int, Decimal]]:
        """(fee id, amount) of each fee given an amount, in the invoice's order."""
        items, self._items = [], []
        for fee in self.fees:
            amount = self.cleaned_data.get(fee_field(fee))
            if amount is not None:
                items.append((fee.pk, amount))
                self._items.append(fee_field(fee))
        return items

    def parts(self) -> dict[str, Decimal]:
        return {name: self.cleaned_data.get(name) or ZERO for name in PARTS}

    def parts_blank(self) -> bool:
        return all(self.cleaned_data.get(name) is None for name in PARTS)

    def field_for(self, api_field: str) -> str | None:
        """The input a service error is about: "items.1.amount_cents" → the second item's fee."""
        match = _ITEM_ERROR.match(api_field)
        if match:
            index = int(match.group(1))
            return self._items[index] if index < len(self._items) else None
        return PART_FIELDS.get(api_field) or (api_field if api_field in ("reason", "description") else None)

    def fingerprint(self) -> str:
        """A digest of the inputs: the preview and its confirmation must be of the same note."""
        values = {name: str(value) if value is not None else "" for name, value in sorted(self.cleaned_data.items())}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def preview_context(amounts: NoteAmounts, form: CreditNoteForm) -> dict[str, Any]:
    """The previewed note, as display strings."""
    currency = form.invoice.currency
    parts = form.parts()
    entered = sum(parts.values(), ZERO)
    return {
        "items": [(fee.description, format_money(amount, currency)) for fee, amount in amounts.items],
        "items_amount": format_money(amounts.items_amount, currency),
        "adjustment": format_money(-amounts.coupons_adjustment, currency),
        "sub_total": format_money(amounts.sub_total, currency),
        "taxes": format_money(amounts.taxes, currency),
        "total": format_money(amounts.total, currency),
        "max_refund": format_money(amounts.max_refund, currency),
        "max_offset": format_money(amounts.max_offset, currency),
        "parts": [(name.capitalize(), format_money(value, currency)) for name, value in parts.items()],
        "entered": format_money(entered, currency),
        "adds_up": entered == amounts.total,
    }


def _with_credit(request: HttpRequest, form: CreditNoteForm, total: Decimal) -> CreditNoteForm:
    """The form again, the whole total proposed as credit (the three parts were left blank)."""
    data = request.POST.copy()
    data["credit"] = str(total)
    proposed = CreditNoteForm(data, invoice=form.invoice, fees=form.fees, left=form.left)
    proposed.is_valid()
    proposed.items()
    return proposed


def _after_issue_url(
    request: HttpRequest, model_admin: admin.ModelAdmin[Invoice], invoice: Invoice, note: CreditNote
) -> str:
    """The new note's page, or the invoice's for someone who may not view notes."""
    note_url = admin_url("billing_creditnote_change", note.pk)
    if note_url and may_view(request, model_admin, CreditNote):
        return note_url
    return admin_url("billing_invoice_change", invoice.pk) or "../"


def _issued_message(note: CreditNote) -> str:
    currency = note.currency
    parts = [
        f"{label} {format_money(amount, currency)}"
        for label, amount in (
            ("credit", note.credit_amount),
            ("refund", note.refund_amount),
            ("offset", note.offset_amount),
        )
        if amount
    ]
    return NOTE_ISSUED.format(
        number=note.number, total=format_money(note.total_amount, currency), parts=", ".join(parts)
    )


@dataclass
class Step:
    """Where a POST leaves the page: the form to show, the preview, and the digest a confirmation
    must match (empty: no confirmation offered); or the redirect once the note is issued."""

    form: CreditNoteForm
    preview: dict[str, Any] | None = None
    previewed: str = ""
    done: HttpResponse | None = None


def _post(request: HttpRequest, model_admin: admin.ModelAdmin[Invoice], form: CreditNoteForm) -> Step:
    """Preview the note, or issue it if these very inputs were previewed."""
    invoice = form.invoice
    if not form.is_valid():
        return Step(form)
    try:
        amounts = credit_note_estimate(invoice=invoice, items=form.items())
    except CreditNoteError as exc:
        add_service_errors(form, exc.errors, form.field_for)
        return Step(form)
    if "_confirm" in request.POST and request.POST.get("previewed") == form.fingerprint():
        parts = form.parts()
        try:
            note = credit_note_create(
                invoice=invoice,
                items=form.items(),
                reason=form.cleaned_data["reason"],
                description=form.cleaned_data["description"],
                credit_amount=parts["credit"],
                refund_amount=parts["refund"],
                offset_amount=parts["offset"],
                user=cast("User", request.user),
                now=timezone.now(),
            )
        except CreditNoteError as exc:  # e.g. a payment or another note changed the limits since
            add_service_errors(form, exc.errors, form.field_for)
            return Step(form, preview_context(amounts, form))
        model_admin.message_user(request, _issued_message(note), messages.SUCCESS)
        return Step(form, done=HttpResponseRedirect(_after_issue_url(request, model_admin, invoice, note)))
    if "_confirm" in request.POST:
        model_admin.message_user(request, CHANGED_SINCE_PREVIEW, messages.WARNING)
    if form.parts_blank():
        form = _with_credit(request, form, amounts.total)
    return Step(form, preview_context(amounts, form), form.fingerprint())


def issue_credit_note_view(
    request: HttpRequest, object_id: str, model_admin: admin.ModelAdmin[Invoice]
) -> HttpResponse:
    """Enter (GET), preview (POST `_preview`) and confirm (POST `_confirm`) a credit note."""
    if not may_issue_credit_notes(request):
        raise PermissionDenied
    invoice = viewable_object(model_admin, request, object_id)
    if isinstance(invoice, HttpResponse):
        return invoice
    fees = fee_lines(invoice)
    left = creditable(invoice)
    if request.method == "POST":
        step = _post(request, model_admin, CreditNoteForm(request.POST, invoice=invoice, fees=fees, left=left))
        if step.done is not None:
            return step.done
    else:
        step = Step(CreditNoteForm(invoice=invoice, fees=fees, left=left))
    refused = (
        ""
        if invoice.status == InvoiceStatus.FINALIZED
        else NOT_CREDITABLE.format(invoice=invoice, status=invoice.get_status_display().lower())
    )
    currency = invoice.currency
    return admin_page(
        model_admin,
        request,
        "admin/billing/invoice/credit_note_form.html",
        title=f"Issue a credit note on {invoice}",
        invoice=invoice,
        invoice_url=admin_url("billing_invoice_change", invoice.pk),
        customer=invoice.customer,
        total=format_money(invoice.total, currency),
        paid=format_money(left.paid, currency),
        refunded=format_money(left.refunded, currency),
        offset=format_money(left.offset, currency),
        due=format_money(max(left.due, ZERO), currency),
        form=step.form,
        fee_rows=step.form.fee_rows(),
        part_fields=step.form.part_fields(),
        parts_help=PARTS_HELP,
        preview=step.preview,
        previewed=step.previewed,
        note=refused,
    )


def credit_note_urls(model_admin: admin.ModelAdmin[Invoice]) -> list[URLPattern]:
    """The "Issue credit note" page, under the invoice admin."""
    return [
        path(
            "<path:object_id>/credit-note/",
            model_admin.admin_site.admin_view(issue_credit_note_view),
            {"model_admin": model_admin},
            name="billing_invoice_credit_note",
        )
    ]

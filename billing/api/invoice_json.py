"""An invoice as the API renders it: Lago's InvoiceResponse (lago-python-client 1.55) with our own
fields beside it (`total` as a decimal string, the period, our `kind`, and `lines` with their tier
breakdowns).

How an invoice maps onto Lago's amounts (all integers in the currency's minor unit; DESIGN §6):
- `fees_amount_cents`: the fees (base fee, usage, late usage, commitment prepayment);
- `coupons_amount_cents`: promotion and coupon lines, as a positive number;
- `progressive_billing_credit_amount_cents`: the commitment drawdown (already invoiced by the
  prepayment: Lago's pre-tax credit);
- `sub_total_excluding_taxes_amount_cents` = fees − coupons − progressive credit;
- `taxes_amount_cents`: the tax lines (one per tax, `applied_taxes[]`); each fee's share of them
  in `fees[].taxes_amount_cents`; `sub_total_including_taxes_amount_cents` = the two;
- `prepaid_credit_amount_cents`: the wallet credit used (step 7; one balance, granted and paid
  alike, so the granted/purchased split Lago reports is null);
- `credit_notes_amount_cents`: credit of earlier credit notes consumed (step 6);
- `total_amount_cents` = sub-total including taxes − credit notes − prepaid credit = `total`;
- `total_paid_amount_cents`: payments; `total_due_amount_cents` = total − paid − credit-note
  offsets (0 once voided); `payment_overdue`: due after the customer-local due date.
Each fee is in `fees[]` with its `lago_id` (the line's id, which credit-note items name), and its
Lago `item` (base fee → subscription / plan code; usage → charge / metric code; a prepayment →
commitment / plan code); FeeOutput describes that fee in the OpenAPI schema, wherever it is shown
(an invoice's `fees[]`, a credit note's items).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import serializers

from billing.api.customers import customer_json
from billing.api.subscriptions import subscription_json
from billing.documents.links import document_url
from billing.engine.money import (
    ZERO,
    currency_minor_digits,
    format_decimal,
    money_str,
    split_proportionally,
    to_cents,
)
from billing.engine.vocabulary import FEE_KINDS, InvoiceKind, InvoiceStatus, LineKind, PaymentStatus
from billing.models import CreditNote, Invoice, InvoiceLine, Payment
from billing.selectors.invoices import issuing_date
from config.api import iso_datetime
from metering.days import local_date

VERSION_NUMBER = 4  # Lago's invoice version with coupons before tax and credit notes


def invoices_for_json() -> QuerySet[Invoice]:
    """Everything invoice_json reads, in a fixed number of queries however many invoices."""
    return Invoice.objects.select_related(
        "customer", "subscription", "subscription__plan", "subscription__customer", "subscription__promotion"
    ).prefetch_related(
        Prefetch("lines", queryset=InvoiceLine.objects.select_related("metric").order_by("position", "id")),
        Prefetch("payments", queryset=Payment.objects.order_by("id")),
        Prefetch("credit_notes", queryset=CreditNote.objects.order_by("id")),
    )


def line_json(line: InvoiceLine, currency: str) -> dict[str, Any]:
    details = line.details or {}
    out: dict[str, Any] = {
        "lago_id": str(line.pk),
        "kind": line.kind,
        "description": line.description,
        "quantity": format_decimal(line.quantity),
        "unit_amount": None if line.unit_amount is None else format_decimal(line.unit_amount),
        "amount": money_str(line.amount, currency),
        "amount_cents": to_cents(line.amount, currency),
        "amount_currency": currency,
        "metric": line.metric.code if line.metric is not None else None,
        "period_start": iso_datetime(line.period_start),
        "period_end": iso_datetime(line.period_end),
        "tiers": details.get("tiers", []),
    }
    for key in ("billed_units", "limit_exceeded", "previously_billed_quantity"):
        if key in details:
            out[key] = details[key]
    return out


def _item(line: InvoiceLine, invoice: Invoice) -> dict[str, Any]:
    """Lago's fee item: what the fee is for."""
    details = line.details or {}
    if line.kind == LineKind.ADD_ON:
        kind, code = "add_on", str(details.get("add_on_code", ""))
        name, item_id = str(details.get("add_on_name", line.description)), str(details.get("add_on_id", ""))
    elif line.kind == LineKind.CREDIT_PURCHASE:
        kind, code, name, item_id = "credit", "credit", "credit", str(details.get("wallet", ""))
    elif line.kind in (LineKind.USAGE, LineKind.LATE_USAGE) and line.metric is not None:
        kind, code, name, item_id = "charge", line.metric.code, line.metric.name, str(line.metric_id)
    else:
        assert invoice.subscription is not None  # base fee and commitment lines are a subscription's
        plan = invoice.subscription.plan
        kind = "commitment" if line.kind == LineKind.COMMITMENT else "subscription"
        code, name, item_id = plan.code, plan.name, str(plan.pk)
    return {
        "type": kind,
        "code": code,
        "name": name,
        "invoice_display_name": line.description,
        "lago_item_id": item_id,
        "item_type": {
            "charge": "BillableMetric",
            "commitment": "Commitment",
            "add_on": "AddOn",
            "credit": "WalletTransaction",
        }.get(kind, "Subscription"),
    }


def fee_json(line: InvoiceLine, invoice: Invoice) -> dict[str, Any]:
    """One fee in Lago's FeeResponse shape (a fee line of the invoice)."""
    cur = invoice.currency
    subscription = invoice.subscription
    amount_cents = to_cents(line.amount, cur)
    return {
        "lago_id": str(line.pk),
        "lago_charge_id": None,
        "lago_invoice_id": str(invoice.pk),
        "external_subscription_id": subscription.external_id if subscription is not None else None,
        "lago_customer_id": str(invoice.customer_id),
        "external_customer_id": invoice.customer.external_id,
        "amount_cents": amount_cents,
        "amount_currency": cur,
        "precise_amount": format_decimal(line.amount),
        "taxes_amount_cents": to_cents(line.tax_amount, cur),
        "taxes_rate": _tax_rate(invoice),
        "total_amount_cents": amount_cents + to_cents(line.tax_amount, cur),
        "total_amount_currency": cur,
        "precise_coupons_amount_cents": format_decimal(line.discount_amount.scaleb(currency_minor_digits(cur))),
        "units": format_decimal(line.quantity),
        # A one-off fee's own description (Lago's fee `description`), else what names the line.
        "description": (line.details or {}).get("description") or line.description,
        "pay_in_advance": invoice.kind == InvoiceKind.ADVANCE,
        "invoiceable": True,
        "payment_status": invoice.payment_status,
        "from_date": iso_datetime(line.period_start),
        "to_date": iso_datetime(line.period_end),
        "created_at": iso_datetime(invoice.created_at),
        "item": _item(line, invoice),
        "applied_taxes": _fee_taxes(line, invoice),
    }


def _tax_lines(invoice: Invoice) -> list[InvoiceLine]:
    return [line for line in invoice.lines.all() if line.kind == LineKind.TAX]  # prefetched


def _tax_rate(invoice: Invoice) -> float:
    """The rate a fee is taxed at: the invoice's taxes together, in percent."""
    return float(sum((Decimal(line.details.get("rate", "0")) for line in _tax_lines(invoice)), ZERO))


def _fee_taxes(line: InvoiceLine, invoice: Invoice) -> list[dict[str, Any]]:
    """The fee's tax share per tax (its share split by the taxes' rates, largest remainder)."""
    taxes = _tax_lines(invoice)
    rates = [Decimal(tax.details.get("rate", "0")) for tax in taxes]
    parts = split_proportionally(line.tax_amount, rates, invoice.currency)
    return [
        {
            "lago_tax_id": str(tax.details.get("tax", "")),
            "tax_name": tax.details.get("tax_name", tax.description),
            "tax_code": tax.details.get("tax_code", ""),
            "tax_rate": float(rate),
            "amount_cents": to_cents(part, invoice.currency),
            "amount_currency": invoice.currency,
        }
        for tax, rate, part in zip(taxes, rates, parts, strict=True)
    ]


class FeeItemOutput(serializers.Serializer[Any]):
    type = serializers.CharField(help_text="subscription (base fee), charge (usage) or commitment (prepayment).")
    code = serializers.CharField(help_text="The plan's code, or the billable metric's (a charge).")
    name = serializers.CharField()
    invoice_display_name = serializers.CharField()
    lago_item_id = serializers.CharField()
    item_type = serializers.CharField(help_text="Subscription, BillableMetric or Commitment.")


class FeeOutput(serializers.Serializer[Any]):
    """A fee as Lago's FeeResponse shows it (billing.api.invoice_json.fee_json): an invoice's
    `fees[]`, and what a credit note's item credits."""

    lago_id = serializers.CharField(help_text="The fee line's id, which credit-note items name.")
    lago_charge_id = serializers.CharField(allow_null=True, help_text="Always null.")
    lago_invoice_id = serializers.CharField()
    external_subscription_id = serializers.CharField()
    lago_customer_id = serializers.CharField()
    external_customer_id = serializers.CharField()
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField()
    precise_amount = serializers.CharField(help_text="A decimal string.")
    taxes_amount_cents = serializers.IntegerField()
    taxes_rate = serializers.FloatField()
    total_amount_cents = serializers.IntegerField()
    total_amount_currency = serializers.CharField()
    precise_coupons_amount_cents = serializers.CharField(help_text="A decimal string.")
    units = serializers.CharField(help_text="A decimal string.")
    description = serializers.CharField()
    pay_in_advance = serializers.BooleanField()
    invoiceable = serializers.BooleanField()
    payment_status = serializers.ChoiceField(choices=PaymentStatus.choices, help_text="The invoice's.")
    from_date = serializers.DateTimeField()
    to_date = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    item = FeeItemOutput()
    applied_taxes = serializers.ListField(child=serializers.DictField(), help_text="The fee's share of each tax.")


def _credits(lines: list[InvoiceLine], invoice: Invoice) -> list[dict[str, Any]]:
    """Lago's credits[]: promotions (coupons, before taxes) and consumed credit notes."""
    out = []
    for line in lines:
        if line.kind == LineKind.PROMOTION:
            promotion = invoice.subscription.promotion if invoice.subscription is not None else None
            code = promotion.code if promotion is not None else ""
            item = {"type": "coupon", "code": code, "name": line.description, "lago_item_id": None}
        elif line.kind == LineKind.COUPON:
            item = {
                "type": "coupon",
                "code": str(line.details.get("coupon_code", "")),
                "name": line.description,
                "lago_item_id": str(line.details.get("applied_coupon", "")),
            }
        elif line.kind == LineKind.CREDIT_NOTE:
            item = {
                "type": "credit_note",
                "code": line.description.removeprefix("Credit note "),
                "name": line.description,
                "lago_item_id": str(line.details.get("credit_note", "")),
            }
        else:
            continue
        out.append(
            {
                "lago_id": str(line.pk),
                "amount_cents": to_cents(-line.amount, invoice.currency),
                "amount_currency": invoice.currency,
                "before_taxes": line.kind in (LineKind.PROMOTION, LineKind.COUPON),
                "item": item,
                "invoice": {"lago_id": str(invoice.pk), "payment_status": invoice.payment_status},
            }
        )
    return out


def applied_tax_json(line: InvoiceLine, invoice: Invoice, fees: Decimal) -> dict[str, Any]:
    """A tax line as Lago's invoice applied_tax."""
    details, cur = line.details or {}, invoice.currency
    return {
        "lago_id": str(line.pk),
        "lago_invoice_id": str(invoice.pk),
        "lago_tax_id": str(details.get("tax", "")),
        "tax_name": details.get("tax_name", line.description),
        "tax_code": details.get("tax_code", ""),
        "tax_rate": float(details.get("rate", "0")),
        "tax_description": None,
        "amount_cents": to_cents(line.amount, cur),
        "amount_currency": cur,
        "fees_amount_cents": to_cents(fees, cur),
        "created_at": iso_datetime(invoice.created_at),
    }


class _HasKindAndAmount(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...


def lines_sum(lines: Sequence[_HasKindAndAmount], *kinds: str) -> Decimal:
    """The sum of the lines of these kinds (stored invoice lines or the engine's)."""
    return sum((line.amount for line in lines if line.kind in kinds), ZERO)


def amounts_json(lines: Sequence[_HasKindAndAmount], cur: str) -> dict[str, Any]:
    """Lago's amount fields of an invoice (all but the totals), from its lines: one reading for a
    stored invoice and for a preview."""
    fees = lines_sum(lines, *FEE_KINDS)
    coupons = -lines_sum(lines, LineKind.PROMOTION, LineKind.COUPON)
    progressive = -lines_sum(lines, LineKind.COMMITMENT_DRAWDOWN)
    taxes = lines_sum(lines, LineKind.TAX)
    sub_total = fees - coupons - progressive
    return {
        "fees_amount_cents": to_cents(fees, cur),
        "coupons_amount_cents": to_cents(coupons, cur),
        "taxes_amount_cents": to_cents(taxes, cur),
        "credit_notes_amount_cents": to_cents(-lines_sum(lines, LineKind.CREDIT_NOTE), cur),
        "progressive_billing_credit_amount_cents": to_cents(progressive, cur),
        "sub_total_excluding_taxes_amount_cents": to_cents(sub_total, cur),
        "sub_total_including_taxes_amount_cents": to_cents(sub_total + taxes, cur),
        "prepaid_credit_amount_cents": to_cents(-lines_sum(lines, LineKind.PREPAID_CREDITS), cur),
        "prepaid_granted_credit_amount_cents": None,
        "prepaid_purchased_credit_amount_cents": None,
    }


def settlement(invoice: Invoice) -> tuple[Decimal, Decimal, Decimal]:
    """(paid, offset, due) from the prefetched payments and credit notes."""
    paid = sum((payment.amount for payment in invoice.payments.all()), ZERO)
    offset = sum((note.offset_amount for note in invoice.credit_notes.all()), ZERO)
    if invoice.status == InvoiceStatus.VOIDED:
        return paid, offset, ZERO
    return paid, offset, invoice.total - paid - offset


def is_overdue(invoice: Invoice, due: Decimal) -> bool:
    """Due after the due date: from the customer-local day after it (DESIGN §6; Lago flags it on
    the due date itself, in UTC: we leave the customer the whole due day)."""
    if invoice.status != InvoiceStatus.FINALIZED or due <= 0 or invoice.payment_due_date is None:
        return False
    return local_date(timezone.now(), invoice.customer.timezone) > invoice.payment_due_date


def invoice_json(invoice: Invoice, request: HttpRequest | None = None) -> dict[str, Any]:
    """One invoice; load it with invoices_for_json() (lines, payments, credit notes, customer,
    subscription). `request` makes file_url absolute."""
    cur = invoice.currency
    lines = list(invoice.lines.all())
    paid, offset, due = settlement(invoice)
    subscription = invoice.subscription
    has_document = invoice.status != InvoiceStatus.DRAFT
    return {
        "lago_id": str(invoice.pk),
        "sequential_id": None,
        "number": invoice.number or f"DRAFT-{invoice.pk}",
        "issuing_date": issuing_date(invoice).isoformat(),
        "payment_due_date": invoice.payment_due_date.isoformat() if invoice.payment_due_date else None,
        "payment_overdue": is_overdue(invoice, due),
        "net_payment_term": invoice.net_payment_term,
        "invoice_type": invoice.invoice_type,
        "version_number": VERSION_NUMBER,
        "status": invoice.status,
        "payment_status": invoice.payment_status,
        "currency": cur,
        **amounts_json(lines, cur),
        "total_amount_cents": to_cents(invoice.total, cur),
        "total_due_amount_cents": to_cents(due, cur),
        "total_paid_amount_cents": to_cents(paid, cur),
        "total_offsetted_credit_note_amount_cents": to_cents(offset, cur),
        "self_billed": False,
        "voided_at": iso_datetime(invoice.voided_at),
        "finalized_at": iso_datetime(invoice.finalized_at),
        "paid_at": iso_datetime(invoice.paid_at),
        "created_at": iso_datetime(invoice.created_at),
        "updated_at": iso_datetime(invoice.updated_at),
        "file_url": document_url(request, "invoice", invoice.pk) if has_document else None,
        "xml_url": None,
        "customer": customer_json(invoice.customer),
        "subscriptions": [subscription_json(subscription)] if subscription is not None else [],
        "billing_periods": [
            {
                "lago_subscription_id": str(subscription.pk),
                "external_subscription_id": subscription.external_id,
                "lago_plan_id": str(subscription.plan_id),
                "subscription_from_datetime": iso_datetime(invoice.period_start),
                "subscription_to_datetime": iso_datetime(invoice.period_end),
                "charges_from_datetime": iso_datetime(invoice.period_start),
                "charges_to_datetime": iso_datetime(invoice.period_end),
                "invoicing_reason": "subscription_periodic",
            }
        ]
        if subscription is not None
        else [],
        "fees": [fee_json(line, invoice) for line in lines if line.kind in FEE_KINDS],
        "credits": _credits(lines, invoice),
        "metadata": invoice.metadata,
        "applied_taxes": [
            applied_tax_json(line, invoice, lines_sum(lines, *FEE_KINDS)) for line in lines if line.kind == LineKind.TAX
        ],
        "error_details": [],
        # our own fields
        "kind": invoice.kind,
        "total": money_str(invoice.total, cur),
        "period_start": iso_datetime(invoice.period_start),
        "period_end": iso_datetime(invoice.period_end),
        "external_subscription_id": subscription.external_id if subscription is not None else None,
        "plan_code": subscription.plan.code if subscription is not None else None,
        "void_reason": invoice.void_reason or None,
        "lines": [line_json(line, cur) for line in lines],
    }

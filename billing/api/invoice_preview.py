"""POST /api/v1/invoices/preview: the invoice a new or existing subscription would get (Lago's).

The body is lago-python-client's InvoicePreview, not enveloped: `customer` (an existing one by
`external_id`, its other fields applied to this preview only; without `external_id`, a customer
described inline and never saved), then either `plan_code` (+ `subscription_at`, `billing_time`)
for a new subscription, or `subscriptions: {external_ids, terminated_at}` for the next invoice of
an existing one; `coupons` apply to the preview only (billing.selectors.invoice_preview).

The answer is Lago's InvoiceResponse of an invoice that does not exist: nothing is written, and,
as Lago's unsaved invoice, its `number` is "" , its `status` "finalized" and `payment_status`
"pending" (the defaults of Lago's invoice row). Lago answers `lago_id: null`; lago-python-client
requires a string, so ids of what was never saved are "" (the invoice's, an inline customer's, a
new subscription's) and null where the SDK allows it (fees and credits). As Lago's, it has no
`billing_periods` or `metadata`; our `lines`, `total` and `period_*` sit beside.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.coupons import AppliesToInput, CouponUpdateInput
from billing.api.customers import CustomerInput, changes_of, customer_json
from billing.api.invoice_json import VERSION_NUMBER, amounts_json, lines_sum
from billing.api.subscriptions import subscription_json
from billing.api.usage import line_json
from billing.engine.lines import Line
from billing.engine.money import ZERO, currency_minor_digits, format_decimal, money_str, split_proportionally, to_cents
from billing.engine.vocabulary import FEE_KINDS, BillingTime, InvoiceKind, LineKind, PaymentStatus
from billing.selectors.invoice_preview import (
    CouponInput,
    InvoicePreview,
    PreviewError,
    PreviewNotFound,
    PreviewRequest,
    invoice_preview,
)
from config.api import (
    ApiView,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    UnsupportedField,
    flat_errors,
    iso_datetime,
    moment_input,
    not_found,
    validation_error,
)

ONCE_AS_GIVEN = "a preview applies the coupon once, as given"
ONE_BILLING_ENTITY = "one billing entity only"


class PreviewCustomerInput(CustomerInput):
    """Lago's Customer: `external_id` names an existing customer; without it, the customer is
    described inline. Every other field applies to the preview only (never saved)."""

    external_id = StrictCharField(max_length=255, required=False, allow_null=True)


class PreviewCouponInput(CouponUpdateInput):
    """Lago's Coupon: an existing coupon by `code`, or one described by its terms."""

    # The coupon's life (expiry, reuse) does not change one invoice: refused rather than dropped.
    description = UnsupportedField(ONCE_AS_GIVEN)  # type: ignore[assignment]
    expiration = UnsupportedField(ONCE_AS_GIVEN)  # type: ignore[assignment]
    expiration_at = UnsupportedField(ONCE_AS_GIVEN)  # type: ignore[assignment]
    reusable = UnsupportedField(ONCE_AS_GIVEN)  # type: ignore[assignment]
    frequency_duration_remaining = StrictIntegerField(required=False, allow_null=True, min_value=0)
    applies_to = AppliesToInput(required=False, allow_null=True)


class PreviewSubscriptionsInput(StrictSerializer):
    external_ids = serializers.ListField(
        child=StrictCharField(max_length=255), required=False, allow_null=True, max_length=100
    )
    plan_code = StrictCharField(required=False, allow_null=True, help_text="A plan change: not supported (422).")
    terminated_at = StrictCharField(required=False, allow_null=True, help_text="ISO 8601, within the current period.")

    def validate_terminated_at(self, value: str | None) -> Any:
        return moment_input(value)


class InvoicePreviewInput(StrictSerializer):
    """lago-python-client's InvoicePreview (the body itself, not enveloped)."""

    customer = PreviewCustomerInput(required=False, allow_null=True)
    plan_code = StrictCharField(required=False, allow_null=True, help_text="A new subscription to this plan.")
    subscription_at = StrictCharField(required=False, allow_null=True, help_text="ISO 8601; default now.")
    billing_time = serializers.ChoiceField(choices=BillingTime.values, required=False, allow_null=True)
    subscriptions = PreviewSubscriptionsInput(required=False, allow_null=True)
    coupons = serializers.ListField(child=PreviewCouponInput(), required=False, allow_null=True, max_length=100)
    billing_entity_code = UnsupportedField(ONE_BILLING_ENTITY)

    def validate_subscription_at(self, value: str | None) -> Any:
        return moment_input(value)


def preview_request(data: dict[str, Any]) -> PreviewRequest:
    """The validated body as the selector's request."""
    customer = data.get("customer") or {}
    subscriptions = data.get("subscriptions") or {}
    return PreviewRequest(
        customer_external_id=customer.get("external_id") or None,
        customer_fields=changes_of(customer),
        tax_codes=tuple(customer["tax_codes"]) if customer.get("tax_codes") is not None else None,
        plan_code=data.get("plan_code") or None,
        subscription_at=data.get("subscription_at"),
        billing_time=data.get("billing_time"),
        external_ids=tuple(subscriptions.get("external_ids") or ()),
        target_plan_code=subscriptions.get("plan_code") or None,
        terminated_at=subscriptions.get("terminated_at"),
        coupons=tuple(_coupon(c) for c in data.get("coupons") or ()),
    )


def _coupon(data: dict[str, Any]) -> CouponInput:
    applies_to = data.get("applies_to") or {}
    remaining = data.get("frequency_duration_remaining")
    return CouponInput(
        code=data.get("code") or None,
        name=data.get("name") or None,
        coupon_type=data.get("coupon_type"),
        amount_cents=data.get("amount_cents"),
        amount_currency=data.get("amount_currency") or None,
        percentage_rate=data.get("percentage_rate"),
        frequency_duration=remaining if remaining is not None else data.get("frequency_duration"),
        plan_codes=tuple(applies_to.get("plan_codes") or ()),
        metric_codes=tuple(applies_to.get("billable_metric_codes") or ()),
    )


# --- output ----------------------------------------------------------------------------------


def _item(line: Line, preview: InvoicePreview) -> dict[str, Any]:
    """Lago's fee item, as billing.api.invoice_json's: base fee → subscription / plan code, usage
    → charge / metric code."""
    plan = preview.subscription.plan
    if line.kind in (LineKind.USAGE, LineKind.LATE_USAGE) and line.metric_code:
        charge = next((c for c in plan.charges.all() if c.metric.code == line.metric_code), None)
        name = charge.metric.name if charge is not None else line.metric_code
        item_id = str(charge.metric_id) if charge is not None else ""
        kind, code, item_type = "charge", line.metric_code, "BillableMetric"
    else:
        kind, code, name, item_id, item_type = "subscription", plan.code, plan.name, _id(plan.pk), "Subscription"
    return {
        "type": kind,
        "code": code,
        "name": name,
        "invoice_display_name": line.description,
        "lago_item_id": item_id,
        "item_type": item_type,
    }


def _id(pk: int | None) -> str:
    """An id as the SDK requires it: "" for what was never saved."""
    return "" if pk is None else str(pk)


def _fee(line: Line, preview: InvoicePreview, taxes: list[Line], now: Any) -> dict[str, Any]:
    cur = preview.currency
    amount_cents = to_cents(line.amount, cur)
    tax_cents = to_cents(line.tax_amount, cur)
    rates = [Decimal(str(tax.details.get("rate", "0"))) for tax in taxes]
    parts = split_proportionally(line.tax_amount, rates, cur)
    customer = preview.customer
    return {
        "lago_id": None,
        "lago_charge_id": None,
        "lago_invoice_id": None,
        "external_subscription_id": preview.subscription.external_id or None,
        "lago_customer_id": None if customer.pk is None else str(customer.pk),
        "external_customer_id": customer.external_id or None,
        "amount_cents": amount_cents,
        "amount_currency": cur,
        "precise_amount": format_decimal(line.amount),
        "taxes_amount_cents": tax_cents,
        "taxes_rate": float(sum(rates, ZERO)),
        "total_amount_cents": amount_cents + tax_cents,
        "total_amount_currency": cur,
        "precise_coupons_amount_cents": format_decimal(line.discount_amount.scaleb(currency_minor_digits(cur))),
        "units": format_decimal(line.quantity),
        "description": line.description,
        "pay_in_advance": preview.kind == InvoiceKind.ADVANCE,
        "invoiceable": True,
        "payment_status": PaymentStatus.PENDING,
        "from_date": iso_datetime(line.period_start),
        "to_date": iso_datetime(line.period_end),
        "created_at": iso_datetime(now),
        "item": _item(line, preview),
        "applied_taxes": [
            {
                "lago_tax_id": str(tax.details.get("tax", "")),
                "tax_name": tax.details.get("tax_name", tax.description),
                "tax_code": tax.details.get("tax_code", ""),
                "tax_rate": float(rate),
                "amount_cents": to_cents(part, cur),
                "amount_currency": cur,
            }
            for tax, rate, part in zip(taxes, rates, parts, strict=True)
        ],
    }


def _credit(line: Line, preview: InvoicePreview) -> dict[str, Any] | None:
    """Lago's credits[]: promotions and coupons (before taxes), credit notes."""
    if line.kind == LineKind.PROMOTION:
        promotion = preview.subscription.promotion
        item = {"type": "coupon", "code": promotion.code if promotion else "", "name": line.description}
    elif line.kind == LineKind.COUPON:
        item = {"type": "coupon", "code": str(line.details.get("coupon_code", "")), "name": line.description}
    elif line.kind == LineKind.CREDIT_NOTE:
        item = {"type": "credit_note", "code": line.description.removeprefix("Credit note "), "name": line.description}
    else:
        return None
    applied = line.details.get("applied_coupon") or line.details.get("credit_note")
    return {
        "lago_id": None,
        "amount_cents": to_cents(-line.amount, preview.currency),
        "amount_currency": preview.currency,
        "before_taxes": line.kind in (LineKind.PROMOTION, LineKind.COUPON),
        "item": {**item, "lago_item_id": str(applied) if applied else None},
        "invoice": {"lago_id": None, "payment_status": PaymentStatus.PENDING},
    }


def preview_json(preview: InvoicePreview) -> dict[str, Any]:
    """The preview in billing.api.invoice_json's shape (Lago's InvoiceResponse), from engine lines."""
    now = timezone.now()
    cur, lines = preview.currency, preview.lines
    fees = lines_sum(lines, *FEE_KINDS)
    tax_lines = [line for line in lines if line.kind == LineKind.TAX]
    subscription, customer = preview.subscription, preview.customer
    sub_out = subscription_json(subscription) | {
        "lago_id": _id(subscription.pk),
        "lago_customer_id": _id(customer.pk),
        "external_id": subscription.external_id or None,
    }
    return {
        "lago_id": "",
        "sequential_id": None,
        "number": "",
        "issuing_date": preview.issuing_date.isoformat(),
        "payment_due_date": preview.payment_due_date.isoformat(),
        "payment_overdue": False,
        "net_payment_term": preview.net_payment_term,
        "invoice_type": "subscription",
        "version_number": VERSION_NUMBER,
        "status": "finalized",  # Lago's unsaved invoice: its row's default status
        "payment_status": PaymentStatus.PENDING,
        "currency": cur,
        **amounts_json(lines, cur),
        "total_amount_cents": to_cents(preview.total, cur),
        "total_due_amount_cents": to_cents(preview.total, cur),
        "total_paid_amount_cents": 0,
        "total_offsetted_credit_note_amount_cents": 0,
        "self_billed": False,
        "voided_at": None,
        "created_at": iso_datetime(now),
        "updated_at": iso_datetime(now),
        "file_url": None,
        "xml_url": None,
        "customer": customer_json(customer) | {"lago_id": _id(customer.pk)},
        "subscriptions": [sub_out],
        "fees": [_fee(line, preview, tax_lines, now) for line in lines if line.kind in FEE_KINDS],
        "credits": [c for c in (_credit(line, preview) for line in lines) if c is not None],
        "applied_taxes": [
            {
                "lago_id": None,
                "lago_invoice_id": None,
                "lago_tax_id": str(line.details.get("tax", "")),
                "tax_name": line.details.get("tax_name", line.description),
                "tax_code": line.details.get("tax_code", ""),
                "tax_rate": float(line.details.get("rate", "0")),
                "tax_description": None,
                "amount_cents": to_cents(line.amount, cur),
                "amount_currency": cur,
                "fees_amount_cents": to_cents(fees, cur),
                "created_at": iso_datetime(now),
            }
            for line in tax_lines
        ],
        "error_details": [],
        # our own fields
        "kind": preview.kind,
        "total": money_str(preview.total, cur),
        "period_start": iso_datetime(preview.period.start),
        "period_end": iso_datetime(preview.period.end),
        "external_subscription_id": subscription.external_id or None,
        "plan_code": subscription.plan.code,
        "lines": [line_json(line, cur) for line in lines],
    }


class InvoicePreviewView(ApiView):
    atomic_writes = False  # it writes nothing

    @extend_schema(
        operation_id="preview_invoice",
        summary="The invoice a new subscription, or an existing one's open period, would get (nothing is saved)",
        request=InvoicePreviewInput,
        responses={200: dict},
        examples=[
            OpenApiExample(
                "A new subscription",
                value={"customer": {"external_id": "acme"}, "plan_code": "team", "billing_time": "calendar"},
                request_only=True,
            ),
            OpenApiExample(
                "The next invoice of a subscription",
                value={"customer": {"external_id": "acme"}, "subscriptions": {"external_ids": ["acme-team"]}},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = InvoicePreviewInput(data=request.data)
        if not serializer.is_valid():
            return validation_error(flat_errors(serializer.errors))
        try:
            preview = invoice_preview(request=preview_request(serializer.validated_data), now=timezone.now())
        except PreviewNotFound as exc:
            return not_found(exc.resource)
        except PreviewError as exc:
            return validation_error(exc.errors)
        return Response({"invoice": preview_json(preview)})

"""POST /api/v1/invoices: a one-off invoice (lago-python-client's `invoices.create(OneOffInvoice)`).

`{"invoice": {"external_customer_id", "currency", "fees": [{"add_on_code", "units",
"unit_amount_cents", "description", "invoice_display_name", "from_datetime", "to_datetime"}]}}`
→ the finalized `one_off` invoice, answered as GET /api/v1/invoices/<id> answers it
(billing.api.invoices). `units` is a JSON number or a decimal string (default 1);
`unit_amount_cents` a JSON integer in the currency's minor unit (default the add-on's
`amount_cents`); `currency` defaults to the customer's and must be it. What the invoice holds and
what is refused is billing.services.one_off_invoices. Refused, naming the field: per-fee
`tax_codes` (DESIGN §6: the customer's taxes apply), and the fields of Lago's input this app has
no use for (payment methods, invoice custom sections, billing entities, purchase order numbers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from billing.api.numbers import DecimalNumberField
from billing.engine.money import from_cents
from billing.models import Invoice
from billing.services.one_off_invoices import OneOffFee, OneOffInvoiceError, one_off_invoice_create
from config.api import (
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    UnsupportedField,
    currency_input,
    validation_error,
)
from customers.models import Customer
from metering.validation import parse_timestamp

UNKNOWN_CUSTOMER = "unknown customer {ref!r}"
NO_FEE_TAXES = "per-fee taxes are not part of this version: the customer's taxes apply to one-off invoices"
NO_PAYMENT_METHODS = "no payment providers here: payments are recorded with POST /api/v1/payments"
NO_CUSTOM_SECTIONS = "no invoice custom sections here"
ONE_BILLING_ENTITY = "one billing entity only"
NO_PURCHASE_ORDERS = "purchase order numbers are not part of this version"
NOT_A_MOMENT = "must be an ISO 8601 date-time, e.g. 2026-09-01T00:00:00Z"
MAX_CENTS = 10**15


@extend_schema_field({"type": "string", "format": "date-time"})
class MomentField(serializers.Field[datetime, Any, Any, Any]):
    """An ISO 8601 date-time (or Unix seconds), read as events' timestamps are."""

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str):
            raise serializers.ValidationError(NOT_A_MOMENT)
        try:
            return parse_timestamp(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value: Any) -> Any:
        return value


class OneOffFeeInput(StrictSerializer):
    add_on_code = StrictCharField(max_length=255)
    units = DecimalNumberField(required=False, allow_null=True, help_text="Greater than 0; default 1.")
    unit_amount_cents = StrictIntegerField(
        required=False,
        allow_null=True,
        max_value=MAX_CENTS,
        help_text="The price of one unit in the currency's minor unit; default the add-on's amount_cents.",
    )
    description = StrictCharField(max_length=2000, required=False, allow_null=True, allow_blank=True)
    invoice_display_name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    from_datetime = MomentField(required=False, allow_null=True, help_text="What the fee covers (with to_datetime).")
    to_datetime = MomentField(required=False, allow_null=True)
    tax_codes = UnsupportedField(NO_FEE_TAXES)


class OneOffInvoiceInput(StrictSerializer):
    external_customer_id = StrictCharField(max_length=255)
    currency = StrictCharField(max_length=3, required=False, allow_null=True, allow_blank=True)
    # A ListField, not many=True: allow_null there would let null items through as well.
    fees = serializers.ListField(child=OneOffFeeInput(), max_length=1000)
    payment_method = UnsupportedField(NO_PAYMENT_METHODS)
    invoice_custom_section = UnsupportedField(NO_CUSTOM_SECTIONS)
    billing_entity_code = UnsupportedField(ONE_BILLING_ENTITY)
    purchase_order_number = UnsupportedField(NO_PURCHASE_ORDERS)
    error_details = UnsupportedField()  # in the SDK's input model, though only answers carry it

    def validate_currency(self, value: str | None) -> str | None:
        return currency_input(value)


class OneOffInvoiceEnvelope(StrictSerializer):
    invoice = OneOffInvoiceInput()


def one_off_invoice_from_request(body: Any) -> Invoice | Response:
    """The one-off invoice the request asks for, created; or the 422 that refuses it."""
    # billing.api.alerts imports billing.api.invoices, which imports this module.
    from billing.api.alerts import flat_errors

    envelope = OneOffInvoiceEnvelope(data=body)
    if not envelope.is_valid():
        errors = flat_errors(envelope.errors)
        return validation_error(
            {(name[len("invoice.") :] if name.startswith("invoice.") else name): m for name, m in errors.items()}
        )
    data = envelope.validated_data["invoice"]
    customer = Customer.objects.filter(external_id=data["external_customer_id"]).first()
    if customer is None:
        return validation_error({"external_customer_id": [UNKNOWN_CUSTOMER.format(ref=data["external_customer_id"])]})
    currency = data.get("currency") or customer.currency
    fees = [
        OneOffFee(
            add_on_code=fee["add_on_code"],
            units=fee.get("units"),
            unit_amount=None
            if fee.get("unit_amount_cents") is None
            else from_cents(fee["unit_amount_cents"], currency),
            description=fee.get("description"),
            invoice_display_name=fee.get("invoice_display_name") or None,
            from_datetime=fee.get("from_datetime"),
            to_datetime=fee.get("to_datetime"),
        )
        for fee in data["fees"]
    ]
    try:
        return one_off_invoice_create(customer=customer, fees=fees, currency=currency, now=timezone.now())
    except OneOffInvoiceError as exc:
        return validation_error(exc.errors)

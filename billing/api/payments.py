"""POST /api/v1/payments, GET /api/v1/payments[/<id>] (lago-python-client's PaymentClient).

A payment is recorded on a finalized invoice, whole or in part (billing.services.payments):
paying more than is due, or a draft or voided invoice, is 422 naming the problem (Lago accepts
an over-payment and answers 403; we refuse it on purpose).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.invoices import PageMeta
from billing.engine.money import from_cents, money_str, to_cents
from billing.models import Invoice, Payment
from billing.services.payments import PaymentError, payment_create
from config.api import (
    ApiView,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    envelope_errors,
    iso_datetime,
    not_found,
    object_id,
    page_numbers,
    paginated,
    unknown_filters,
    validation_error,
)
from metering.validation import parse_timestamp

UNKNOWN_INVOICE = "unknown invoice {ref!r}"
BAD_INVOICE_FILTER = "must be an invoice's lago_id"

PAYMENT_FILTERS = ("invoice_id", "external_customer_id")  # Lago's PaymentIndex
LIST_PARAMETERS = [
    OpenApiParameter("invoice_id", str, description="Only this invoice's payments."),
    OpenApiParameter("external_customer_id", str, description="Only this customer's payments."),
    OpenApiParameter("page", int),
    OpenApiParameter("per_page", int),
]


def payment_json(payment: Payment) -> dict[str, Any]:
    cur = payment.currency
    return {
        "lago_id": str(payment.pk),
        "invoice_ids": [str(payment.invoice_id)],
        "invoice_numbers": [payment.invoice.number or f"DRAFT-{payment.invoice_id}"],
        "amount_cents": to_cents(payment.amount, cur),
        "amount_currency": cur,
        "payment_status": "succeeded",
        "type": "manual",
        "reference": payment.reference,
        "external_payment_id": None,
        "created_at": iso_datetime(payment.created_at),
        # our own fields
        "amount": money_str(payment.amount, cur),
        "paid_at": iso_datetime(payment.paid_at),
    }


def payments_for_json() -> QuerySet[Payment]:
    return Payment.objects.select_related("invoice")


class PaymentInput(StrictSerializer):
    invoice_id = StrictCharField(max_length=32)
    amount_cents = StrictIntegerField(min_value=1, max_value=10**15)
    reference = StrictCharField(max_length=255)
    paid_at = StrictCharField(required=False, allow_null=True, help_text="ISO 8601; default now.")

    def validate_paid_at(self, value: str | None) -> Any:
        if not value:
            return None
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class PaymentEnvelope(StrictSerializer):
    payment = PaymentInput()


class PaymentOutput(serializers.Serializer[Any]):
    """What payment_json answers: Lago's PaymentResponse, and our own `amount` and `paid_at`."""

    lago_id = serializers.CharField()
    invoice_ids = serializers.ListField(child=serializers.CharField(), help_text="The one invoice paid.")
    invoice_numbers = serializers.ListField(child=serializers.CharField())
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField()
    payment_status = serializers.CharField(help_text="Always succeeded: a payment is recorded once received.")
    type = serializers.CharField(help_text="Always manual: no payment providers here.")
    reference = serializers.CharField()
    external_payment_id = serializers.CharField(allow_null=True, help_text="Always null.")
    created_at = serializers.DateTimeField()
    amount = serializers.CharField(help_text='A decimal string: "100.00".')
    paid_at = serializers.DateTimeField(help_text="When the money was received.")


class PaymentOutputEnvelope(serializers.Serializer[Any]):
    payment = PaymentOutput()


class PaymentListEnvelope(serializers.Serializer[Any]):
    payments = PaymentOutput(many=True)
    meta = PageMeta()


def payment_list(request: Request, params: QueryDict) -> Response:
    """The list, newest first, filtered by `params` (invoice_id, external_customer_id) and
    paginated: GET /api/v1/payments, and a customer's (billing.api.customer_children)."""
    paging = page_numbers(params)
    errors = (dict(paging) if isinstance(paging, dict) else {}) | unknown_filters(params, PAYMENT_FILTERS)
    rows = payments_for_json().order_by("-created_at", "-id")
    invoice_ref = params.get("invoice_id")
    if invoice_ref:
        pk = object_id(invoice_ref)
        if pk is None:
            errors["invoice_id"] = [BAD_INVOICE_FILTER]
        else:
            rows = rows.filter(invoice_id=pk)
    if params.get("external_customer_id"):
        rows = rows.filter(
            invoice__customer__external_id=params["external_customer_id"], invoice__customer__deleted_at__isnull=True
        )
    if errors or isinstance(paging, dict):
        return validation_error(errors)
    page, per_page = paging
    return Response(paginated("payments", rows, page, per_page, payment_json))


class PaymentsView(ApiView):
    @extend_schema(
        operation_id="create_payment",
        summary="Record a payment of an invoice, partial or whole",
        request=PaymentEnvelope,
        responses={200: PaymentOutputEnvelope},
    )
    def post(self, request: Request) -> Response:
        envelope = PaymentEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "payment"))
        data = envelope.validated_data["payment"]
        pk = object_id(data["invoice_id"])
        invoice = Invoice.objects.filter(pk=pk).first() if pk is not None else None
        if invoice is None:
            return validation_error({"invoice_id": [UNKNOWN_INVOICE.format(ref=data["invoice_id"])]})
        now = timezone.now()
        try:
            payment = payment_create(
                invoice=invoice,
                amount=from_cents(data["amount_cents"], invoice.currency),
                reference=data["reference"],
                paid_at=data.get("paid_at") or now,
                now=now,
                user=None,  # an API key, not a staff user,
            )
        except PaymentError as exc:
            return validation_error(exc.errors)
        return Response({"payment": payment_json(payments_for_json().get(pk=payment.pk))})

    @extend_schema(
        operation_id="list_payments",
        summary="List payments, newest first, paginated",
        parameters=LIST_PARAMETERS,
        responses={200: PaymentListEnvelope},
    )
    def get(self, request: Request) -> Response:
        return payment_list(request, request.query_params)


class PaymentDetailView(ApiView):
    @extend_schema(operation_id="find_payment", summary="Fetch one payment", responses={200: PaymentOutputEnvelope})
    def get(self, request: Request, lago_id: str) -> Response:
        pk = object_id(lago_id)
        payment = payments_for_json().filter(pk=pk).first() if pk is not None else None
        if payment is None:
            return not_found("payment")
        return Response({"payment": payment_json(payment)})

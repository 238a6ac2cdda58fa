"""The invoices API: GET /api/v1/invoices (filtered, paginated), GET and PUT /api/v1/invoices/<id>,
PUT /api/v1/invoices/<id>/finalize and /refresh, POST /api/v1/invoices/<id>/void and /download.

Lago's envelopes ({"invoice": {...}}, {"invoices": [...], "meta": {...}}) with Lago's fields
(billing.api.invoice_json says how our invoice maps onto them), so lago-python-client's
InvoiceClient works: find, find_all, update (payment_status, metadata), finalize and refresh (a
draft, before its grace period ends), void / void_invoice
(with generate_credit_note, credit_amount, refund_amount), download (file_url: a signed link to
the PDF). The filters are billing.api.invoice_filters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.customers import CustomerOutput
from billing.api.invoice_filters import filter_invoices
from billing.api.invoice_json import FeeOutput, invoice_json, invoices_for_json
from billing.api.one_off_invoices import OneOffInvoiceEnvelope, one_off_invoice_from_request
from billing.engine.money import from_cents
from billing.engine.vocabulary import InvoiceKind, InvoiceStatus, InvoiceType, LineKind, PaymentStatus
from billing.models import Invoice
from billing.services.credit_notes import CreditNoteError
from billing.services.invoices import (
    InvoiceError,
    invoice_finalize,
    invoice_metadata_set,
    invoice_recompute,
    invoice_void,
)
from billing.services.payments import PaymentError, invoice_payment_status_set
from config.api import (
    DEFAULT_PER_PAGE,
    DUPLICATE_METADATA_KEY,
    ApiView,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    duplicate_keys,
    envelope_errors,
    error_response,
    metadata_ids,
    not_found,
    object_id,
    page_numbers,
    paginated,
    validation_error,
)

VOIDED_THROUGH_API = "Voided through the API"
DRAFT_HAS_NO_DOCUMENT = "a draft has no document yet: it is issued when the invoice is finalized"
AMOUNT_WITHOUT_CREDIT_NOTE = "is only used with generate_credit_note: true"
NOT_DELETABLE = "only a draft invoice can be deleted (Lago's not_deletable)"
DRAFT_NOT_DELETABLE = (
    "a draft here is the invoice of its subscription's period (or advance, or commitment prepayment): "
    "deleting it would leave that period unbilled. Refresh it to recompute it, or finalize and void it"
)


# --- schema ---------------------------------------------------------------------------------


class TierOutput(serializers.Serializer[Any]):
    position = serializers.IntegerField()
    up_to = serializers.CharField(allow_null=True)
    units = serializers.CharField()
    unit_amount = serializers.CharField()
    flat_amount = serializers.CharField()
    amount = serializers.CharField()


class InvoiceLineOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    kind = serializers.ChoiceField(choices=LineKind.choices)
    description = serializers.CharField()
    quantity = serializers.CharField(help_text="A decimal string.")
    unit_amount = serializers.CharField(allow_null=True, help_text="A decimal string (base fee lines).")
    amount = serializers.CharField(help_text='Rounded to the minor unit, a decimal string: "235.00".')
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField()
    metric = serializers.CharField(allow_null=True, help_text="Billable metric code (usage lines).")
    period_start = serializers.DateTimeField(help_text="What the line covers; a late_usage line: its old period.")
    period_end = serializers.DateTimeField()
    tiers = TierOutput(many=True)


class InvoiceOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    number = serializers.CharField(help_text="INV-YYYY-NNNNNN once finalized; DRAFT-<id> before.")
    issuing_date = serializers.DateField()
    invoice_type = serializers.ChoiceField(choices=InvoiceType.choices)
    status = serializers.ChoiceField(choices=InvoiceStatus.choices)
    payment_status = serializers.ChoiceField(choices=PaymentStatus.choices)
    payment_due_date = serializers.DateField(allow_null=True)
    payment_overdue = serializers.BooleanField()
    net_payment_term = serializers.IntegerField()
    currency = serializers.CharField()
    fees_amount_cents = serializers.IntegerField()
    coupons_amount_cents = serializers.IntegerField()
    progressive_billing_credit_amount_cents = serializers.IntegerField()
    taxes_amount_cents = serializers.IntegerField()
    credit_notes_amount_cents = serializers.IntegerField()
    prepaid_credit_amount_cents = serializers.IntegerField()
    prepaid_granted_credit_amount_cents = serializers.IntegerField(allow_null=True)
    prepaid_purchased_credit_amount_cents = serializers.IntegerField(allow_null=True)
    total_amount_cents = serializers.IntegerField()
    total_paid_amount_cents = serializers.IntegerField()
    total_due_amount_cents = serializers.IntegerField()
    file_url = serializers.URLField(allow_null=True, help_text="A signed link to the PDF (finalized invoices).")
    fees = FeeOutput(many=True)
    customer = CustomerOutput(help_text="The customer, as GET /api/v1/customers/<external_id> shows it.")
    subscriptions = serializers.ListField(child=serializers.DictField())
    total = serializers.CharField(help_text='A decimal string: "355.00".')
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=InvoiceKind.choices, help_text="Our finer type of invoice.")
    external_subscription_id = serializers.CharField()
    plan_code = serializers.CharField()
    lines = InvoiceLineOutput(many=True)


class InvoiceEnvelope(serializers.Serializer[Any]):
    invoice = InvoiceOutput()


class PageMeta(serializers.Serializer[Any]):
    current_page = serializers.IntegerField()
    next_page = serializers.IntegerField(allow_null=True)
    prev_page = serializers.IntegerField(allow_null=True)
    total_pages = serializers.IntegerField()
    total_count = serializers.IntegerField()


class InvoiceListEnvelope(serializers.Serializer[Any]):
    invoices = InvoiceOutput(many=True)
    meta = PageMeta()


LIST_PARAMETERS = [
    OpenApiParameter("external_customer_id", str, description="Only this customer's invoices."),
    OpenApiParameter("status", str, enum=InvoiceStatus.values),
    OpenApiParameter("payment_status", str, enum=PaymentStatus.values),
    OpenApiParameter("invoice_type", str, enum=InvoiceType.values, description="Lago's type."),
    OpenApiParameter("kind", str, enum=InvoiceKind.values, description="Our finer type."),
    OpenApiParameter("payment_overdue", str, enum=["true", "false"]),
    OpenApiParameter("period", str, description="Issuing month, YYYY-MM."),
    OpenApiParameter("issuing_date_from", OpenApiTypes.DATE, description="Issued on or after (inclusive)."),
    OpenApiParameter("issuing_date_to", OpenApiTypes.DATE, description="Issued on or before (inclusive)."),
    OpenApiParameter("period_from", OpenApiTypes.DATE, description="Billing period covers a day on or after this one."),
    OpenApiParameter("period_to", OpenApiTypes.DATE, description="Billing period covers a day on or before this one."),
    OpenApiParameter("page", int, description="1-based page number (default 1)."),
    OpenApiParameter("per_page", int, description=f"Invoices per page (default {DEFAULT_PER_PAGE}, at most 100)."),
]


# --- input ----------------------------------------------------------------------------------


class MetadataItem(StrictSerializer):
    id = StrictCharField(required=False, allow_null=True)
    key = StrictCharField(max_length=255)
    value = StrictCharField(max_length=1000, allow_blank=True, allow_null=True)


class InvoiceUpdateInput(StrictSerializer):
    payment_status = serializers.ChoiceField(choices=PaymentStatus.choices, required=False, allow_null=True)
    # A ListField, not many=True: allow_null there would let null items through as well.
    metadata = serializers.ListField(child=MetadataItem(), required=False, allow_null=True)

    def validate_metadata(self, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        twice = duplicate_keys(value or [])
        if twice:
            raise serializers.ValidationError([DUPLICATE_METADATA_KEY.format(key=key) for key in twice])
        return value


class InvoiceUpdateEnvelope(StrictSerializer):
    invoice = InvoiceUpdateInput()


class VoidInput(StrictSerializer):
    generate_credit_note = serializers.BooleanField(required=False, default=False)
    credit_amount = StrictIntegerField(required=False, default=0, min_value=0, max_value=10**15)
    refund_amount = StrictIntegerField(required=False, default=0, min_value=0, max_value=10**15)
    reason = StrictCharField(required=False, max_length=1000, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Amounts are for the credit note: without one they would be accepted and dropped.
        if not attrs["generate_credit_note"]:
            unused = {name: [AMOUNT_WITHOUT_CREDIT_NOTE] for name in ("credit_amount", "refund_amount") if attrs[name]}
            if unused:
                raise serializers.ValidationError(unused)
        return attrs


# The credit note of a void names its parts as a credit note does; the request names them so.
VOID_FIELDS = {"credit_amount_cents": "credit_amount", "refund_amount_cents": "refund_amount"}


# --- views ----------------------------------------------------------------------------------


def _invoice(lago_id: str) -> Invoice | None:
    # Ids are positive bigints; anything else is simply not found.
    pk = object_id(lago_id)
    return invoices_for_json().filter(pk=pk).first() if pk is not None else None


def _answer(request: Request, invoice: Invoice) -> Response:
    return Response({"invoice": invoice_json(invoices_for_json().get(pk=invoice.pk), request)})


def invoice_list(request: Request, params: QueryDict) -> Response:
    """The list, newest period first, filtered by `params` (billing.api.invoice_filters) and
    paginated: GET /api/v1/invoices, and a customer's (billing.api.customer_children)."""
    paging = page_numbers(params)
    filtered = filter_invoices(invoices_for_json(), params)
    errors = (paging if isinstance(paging, dict) else {}) | (filtered if isinstance(filtered, dict) else {})
    if errors:
        return validation_error(errors)
    assert not isinstance(paging, dict) and not isinstance(filtered, dict)
    page, per_page = paging
    rows = filtered.order_by("-period_start", "-id")
    return Response(paginated("invoices", rows, page, per_page, lambda row: invoice_json(row, request)))


class InvoicesView(ApiView):
    @extend_schema(
        operation_id="list_invoices",
        summary="List invoices, newest period first, with their fees and lines",
        description="Filters combine with AND; dates are the customer's calendar days. Paginated as Lago: "
        "`page`, `per_page` and `meta`.",
        parameters=LIST_PARAMETERS,
        responses={200: InvoiceListEnvelope},
    )
    def get(self, request: Request) -> Response:
        return invoice_list(request, request.query_params)

    @extend_schema(
        operation_id="create_invoice",
        summary="Create a one-off invoice: add-ons billed now, with the customer's taxes, finalized at once",
        description="billing.api.one_off_invoices: `fees[]` of add-ons (`units` default 1, `unit_amount_cents` "
        "default the add-on's); `currency` must be the customer's; per-fee `tax_codes` are refused.",
        request=OneOffInvoiceEnvelope,
        responses={200: InvoiceEnvelope},
    )
    def post(self, request: Request) -> Response:
        created = one_off_invoice_from_request(request.data)
        return created if isinstance(created, Response) else _answer(request, created)


class InvoiceDetailView(ApiView):
    @extend_schema(
        operation_id="find_invoice",
        summary="Fetch one invoice with its fees and lines",
        description="Amounts as Lago's integer `*_amount_cents` and as decimal strings (`total`, line `amount`).",
        parameters=[OpenApiParameter("lago_id", str, OpenApiParameter.PATH, description="The invoice's lago_id.")],
        responses={200: InvoiceEnvelope},
    )
    def get(self, request: Request, lago_id: str) -> Response:
        invoice = _invoice(lago_id)
        if invoice is None:
            return not_found("invoice")
        return Response({"invoice": invoice_json(invoice, request)})

    @extend_schema(
        operation_id="destroy_invoice",
        summary="Refused (405 not_deletable): a draft bills a period that nothing would bill again",
        responses={405: None},
    )
    def delete(self, request: Request, lago_id: str) -> Response:
        invoice = _invoice(lago_id)
        if invoice is None:
            return not_found("invoice")
        return invoice_delete_refused(invoice)

    @extend_schema(
        operation_id="update_invoice",
        summary="Set the payment status (succeeded pays what is left) or the metadata",
        request=InvoiceUpdateEnvelope,
        responses={200: InvoiceEnvelope},
    )
    def put(self, request: Request, lago_id: str) -> Response:
        invoice = _invoice(lago_id)
        if invoice is None:
            return not_found("invoice")
        envelope = InvoiceUpdateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "invoice"))
        data = envelope.validated_data["invoice"]
        user = None  # an API key, not a staff user
        try:
            if data.get("payment_status"):
                invoice = invoice_payment_status_set(
                    invoice=invoice, payment_status=data["payment_status"], now=timezone.now(), user=user
                )
            if data.get("metadata") is not None:
                items = data["metadata"]
                with_ids = [{**item, "id": i} for i, item in zip(metadata_ids(items), items, strict=True)]
                invoice = invoice_metadata_set(invoice=invoice, metadata=with_ids)
        except PaymentError as exc:
            return validation_error(exc.errors)
        return _answer(request, invoice)


def invoice_delete_refused(invoice: Invoice) -> Response:
    """DELETE /api/v1/invoices/<id> (Lago's Invoices::DeleteService deletes drafts): refused, 405
    `not_deletable` as Lago answers for a finalized invoice, for drafts too, since every draft
    here bills a period that nothing would bill again."""
    message = DRAFT_NOT_DELETABLE if invoice.status == InvoiceStatus.DRAFT else NOT_DELETABLE
    return error_response(405, "not_deletable", message=message)


class InvoiceVoidView(ApiView):
    @extend_schema(
        operation_id="void_invoice",
        summary="Void a finalized invoice (with generate_credit_note: first credit or refund those amounts)",
        request=VoidInput,
        responses={200: InvoiceEnvelope},
    )
    def post(self, request: Request, lago_id: str) -> Response:
        invoice = _invoice(lago_id)
        if invoice is None:
            return not_found("invoice")
        body = VoidInput(data=request.data)  # no body at all (the SDK's void) is {}
        if not body.is_valid():
            return validation_error(body.errors)
        data = body.validated_data
        user = None  # an API key, not a staff user
        try:
            voided = invoice_void(
                invoice=invoice,
                reason=data.get("reason") or VOIDED_THROUGH_API,
                now=timezone.now(),
                generate_credit_note=data["generate_credit_note"],
                credit_amount=from_cents(data["credit_amount"], invoice.currency),
                refund_amount=from_cents(data["refund_amount"], invoice.currency),
                user=user,
            )
        except InvoiceError as exc:
            return validation_error({exc.field: [exc.message]})
        except CreditNoteError as exc:
            return validation_error({VOID_FIELDS.get(field, field): messages for field, messages in exc.errors.items()})
        return _answer(request, voided)


def _on_draft(request: Request, lago_id: str, service: Callable[[Invoice], object]) -> Response:
    """Apply a service to a draft (it refuses anything else, 422 on `status`); answer the invoice."""
    invoice = _invoice(lago_id)
    if invoice is None:
        return not_found("invoice")
    try:
        service(invoice)
    except InvoiceError as exc:
        return validation_error({"status": [exc.message]})
    return _answer(request, invoice)


class InvoiceFinalizeView(ApiView):
    @extend_schema(
        operation_id="finalize_invoice",
        summary="Finalize a draft now: recomputed from the events stored, numbered, its payment terms set",
        request=None,
        responses={200: InvoiceEnvelope},
    )
    def put(self, request: Request, lago_id: str) -> Response:
        return _on_draft(request, lago_id, lambda invoice: invoice_finalize(invoice=invoice, now=timezone.now()))


class InvoiceRefreshView(ApiView):
    @extend_schema(
        operation_id="refresh_invoice",
        summary="Recompute a draft from the events stored now (a finalized invoice never changes)",
        request=None,
        responses={200: InvoiceEnvelope},
    )
    def put(self, request: Request, lago_id: str) -> Response:
        return _on_draft(request, lago_id, lambda invoice: invoice_recompute(invoice=invoice))


class InvoiceDownloadView(ApiView):
    @extend_schema(
        operation_id="download_invoice",
        summary="The invoice with `file_url`: a signed link to its PDF, valid BILLING_DOCUMENT_LINK_MAX_AGE_SECONDS",
        request=None,
        responses={200: InvoiceEnvelope},
    )
    def post(self, request: Request, lago_id: str) -> Response:
        invoice = _invoice(lago_id)
        if invoice is None:
            return not_found("invoice")
        if invoice.status == InvoiceStatus.DRAFT:
            return validation_error({"status": [DRAFT_HAS_NO_DOCUMENT]})
        return Response({"invoice": invoice_json(invoice, request)})

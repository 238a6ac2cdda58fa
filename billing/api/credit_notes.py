"""The credit notes API (lago-python-client's CreditNoteClient): create, find, find_all, update
(refund_status, metadata), void, download, estimate, and the metadata routes.

Amounts are Lago's integer cents; items name a fee by its `lago_id` (an invoice's `fees[]`).
The rules (what may be credited, refunded, offset; numbering) are billing.services.credit_notes;
the list's filters (Lago's) are billing.api.credit_note_filters.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.credit_note_filters import TYPES, filter_credit_notes
from billing.api.credit_note_json import (
    CreditNoteListEnvelope,
    CreditNoteOutputEnvelope,
    EstimateOutputEnvelope,
    credit_note_json,
    credit_notes_for_json,
    estimate_json,
)
from billing.api.metadata import (
    MetadataEnvelope,
    MetadataField,
    MetadataOutputEnvelope,
    change_metadata,
    clear,
    delete_metadata_key,
    merge,
    replace,
)
from billing.engine.money import from_cents
from billing.engine.vocabulary import CreditNoteReason, CreditStatus, RefundStatus
from billing.models import CreditNote, Invoice
from billing.services.credit_notes import (
    CreditNoteError,
    credit_note_create,
    credit_note_estimate,
    credit_note_update,
    credit_note_void,
)
from config.api import (
    ApiView,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    envelope_errors,
    not_found,
    object_id,
    page_numbers,
    paginated,
    validation_error,
)

UNKNOWN_INVOICE = "unknown invoice {ref!r}"
BAD_FEE = "must be a fee's lago_id"

LIST_PARAMETERS = [
    OpenApiParameter("external_customer_id", str, description="Only this customer's credit notes."),
    OpenApiParameter("invoice_id", str, description="Ours: the invoice's lago_id."),
    OpenApiParameter("invoice_number", str),
    OpenApiParameter("currency", str),
    OpenApiParameter("credit_status", str, enum=CreditStatus.values, many=True),
    OpenApiParameter("refund_status", str, enum=RefundStatus.values, many=True),
    OpenApiParameter("reason", str, enum=CreditNoteReason.values, many=True),
    OpenApiParameter("types", str, enum=list(TYPES), many=True, description="Notes with a part of that kind."),
    OpenApiParameter("issuing_date_from", OpenApiTypes.DATE, description="Inclusive."),
    OpenApiParameter("issuing_date_to", OpenApiTypes.DATE, description="Inclusive."),
    OpenApiParameter("amount_from", int, description="total_amount_cents at least (inclusive)."),
    OpenApiParameter("amount_to", int, description="total_amount_cents at most (inclusive)."),
    OpenApiParameter("search_term", str, description="Part of the number or of the customer's names."),
    OpenApiParameter("self_billed", str, enum=["true", "false"]),
    OpenApiParameter("page", int),
    OpenApiParameter("per_page", int),
]


class ItemInput(StrictSerializer):
    fee_id = StrictCharField(max_length=32)
    amount_cents = StrictIntegerField(min_value=0, max_value=10**15)


class CreditNoteInput(StrictSerializer):
    invoice_id = StrictCharField(max_length=32)
    reason = serializers.ChoiceField(choices=CreditNoteReason.values, required=False, default=CreditNoteReason.OTHER)
    description = StrictCharField(max_length=2000, required=False, allow_blank=True, allow_null=True)
    credit_amount_cents = StrictIntegerField(min_value=0, max_value=10**15, required=False, default=0)
    refund_amount_cents = StrictIntegerField(min_value=0, max_value=10**15, required=False, default=0)
    offset_amount_cents = StrictIntegerField(min_value=0, max_value=10**15, required=False, default=0)
    items = ItemInput(many=True)
    metadata = MetadataField(required=False, allow_null=True)


class CreditNoteEnvelope(StrictSerializer):
    credit_note = CreditNoteInput()


class EstimateInput(StrictSerializer):
    invoice_id = StrictCharField(max_length=32)
    items = ItemInput(many=True)


class EstimateEnvelope(StrictSerializer):
    credit_note = EstimateInput()


class CreditNoteUpdateInput(StrictSerializer):
    refund_status = serializers.ChoiceField(choices=RefundStatus.values, required=False, allow_null=True)
    metadata = MetadataField(required=False, allow_null=True)


class CreditNoteUpdateEnvelope(StrictSerializer):
    credit_note = CreditNoteUpdateInput()


# --- views ----------------------------------------------------------------------------------


def _invoice_and_items(data: dict[str, Any]) -> tuple[Invoice, list[tuple[int, Decimal]]] | Response:
    pk = object_id(data["invoice_id"])
    invoice = Invoice.objects.filter(pk=pk).first() if pk is not None else None
    if invoice is None:
        return validation_error({"invoice_id": [UNKNOWN_INVOICE.format(ref=data["invoice_id"])]})
    items: list[tuple[int, Decimal]] = []
    errors: dict[str, list[str]] = {}
    for i, item in enumerate(data["items"]):
        fee_id = object_id(item["fee_id"])
        if fee_id is None:
            errors[f"items.{i}.fee_id"] = [BAD_FEE]
            continue
        items.append((fee_id, from_cents(item["amount_cents"], invoice.currency)))
    if errors:
        return validation_error(errors)
    return invoice, items


def _note(lago_id: str) -> CreditNote | None:
    pk = object_id(lago_id)
    return credit_notes_for_json().filter(pk=pk).first() if pk is not None else None


def _answer(request: Request, note: CreditNote) -> Response:
    return Response({"credit_note": credit_note_json(credit_notes_for_json().get(pk=note.pk), request)})


def credit_note_list(request: Request, params: QueryDict) -> Response:
    """The list, newest first, filtered by `params` (billing.api.credit_note_filters) and
    paginated: GET /api/v1/credit_notes, and a customer's (billing.api.customer_children)."""
    paging = page_numbers(params)
    filtered = filter_credit_notes(credit_notes_for_json(), params)
    errors = (paging if isinstance(paging, dict) else {}) | (filtered if isinstance(filtered, dict) else {})
    if errors:
        return validation_error(errors)
    assert not isinstance(paging, dict) and not isinstance(filtered, dict)
    page, per_page = paging
    rows = filtered.order_by("-created_at", "-id")
    return Response(paginated("credit_notes", rows, page, per_page, lambda note: credit_note_json(note, request)))


class CreditNotesView(ApiView):
    @extend_schema(
        operation_id="create_credit_note",
        summary="Issue a credit note on a finalized invoice: items per fee, split into credit, refund and offset",
        request=CreditNoteEnvelope,
        responses={200: CreditNoteOutputEnvelope},
    )
    def post(self, request: Request) -> Response:
        envelope = CreditNoteEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "credit_note"))
        data = envelope.validated_data["credit_note"]
        found = _invoice_and_items(data)
        if isinstance(found, Response):
            return found
        invoice, items = found
        cur = invoice.currency
        try:
            note = credit_note_create(
                invoice=invoice,
                items=items,
                reason=data["reason"],
                description=data.get("description") or "",
                credit_amount=from_cents(data["credit_amount_cents"], cur),
                refund_amount=from_cents(data["refund_amount_cents"], cur),
                offset_amount=from_cents(data["offset_amount_cents"], cur),
                metadata=data.get("metadata") or {},
                user=None,  # an API key, not a staff user
                now=timezone.now(),
            )
        except CreditNoteError as exc:
            return validation_error(exc.errors)
        return _answer(request, note)

    @extend_schema(
        operation_id="list_credit_notes",
        summary="List credit notes, newest first, paginated",
        parameters=LIST_PARAMETERS,
        responses={200: CreditNoteListEnvelope},
    )
    def get(self, request: Request) -> Response:
        return credit_note_list(request, request.query_params)


class CreditNoteDetailView(ApiView):
    @extend_schema(
        operation_id="find_credit_note", summary="Fetch one credit note", responses={200: CreditNoteOutputEnvelope}
    )
    def get(self, request: Request, lago_id: str) -> Response:
        note = _note(lago_id)
        if note is None:
            return not_found("credit_note")
        return Response({"credit_note": credit_note_json(note, request)})

    @extend_schema(
        operation_id="update_credit_note",
        summary="Set the refund's status (finance marks a refund done), or merge keys into the metadata (as Lago)",
        request=CreditNoteUpdateEnvelope,
        responses={200: CreditNoteOutputEnvelope},
    )
    def put(self, request: Request, lago_id: str) -> Response:
        note = _note(lago_id)
        if note is None:
            return not_found("credit_note")
        envelope = CreditNoteUpdateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "credit_note"))
        data = envelope.validated_data["credit_note"]
        metadata = data.get("metadata")
        if metadata is not None:  # Lago's update merges the metadata sent into the note's
            locked = _locked_note(lago_id)
            assert locked is not None  # found above, and notes are never deleted
            metadata = locked.metadata | metadata
        try:
            note = credit_note_update(
                credit_note=note,
                refund_status=data.get("refund_status"),
                metadata=metadata,
                now=timezone.now(),
            )
        except CreditNoteError as exc:
            return validation_error(exc.errors)
        return _answer(request, note)


class CreditNoteVoidView(ApiView):
    @extend_schema(
        operation_id="void_credit_note",
        summary="Void what is left of the note's credit",
        request=None,
        responses={200: CreditNoteOutputEnvelope},
    )
    def put(self, request: Request, lago_id: str) -> Response:
        note = _note(lago_id)
        if note is None:
            return not_found("credit_note")
        try:
            note = credit_note_void(credit_note=note, now=timezone.now())
        except CreditNoteError as exc:
            return validation_error(exc.errors)
        return _answer(request, note)


class CreditNoteDownloadView(ApiView):
    @extend_schema(
        operation_id="download_credit_note",
        summary="The credit note with `file_url`: a signed link to its PDF",
        request=None,
        responses={200: CreditNoteOutputEnvelope},
    )
    def post(self, request: Request, lago_id: str) -> Response:
        note = _note(lago_id)
        if note is None:
            return not_found("credit_note")
        return Response({"credit_note": credit_note_json(note, request)})


class CreditNoteEstimateView(ApiView):
    atomic_writes = False  # writes nothing

    @extend_schema(
        operation_id="estimate_credit_note",
        summary="What a credit note with these items would amount to, and the most it may refund and offset",
        request=EstimateEnvelope,
        responses={200: EstimateOutputEnvelope},
    )
    def post(self, request: Request) -> Response:
        envelope = EstimateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "credit_note"))
        found = _invoice_and_items(envelope.validated_data["credit_note"])
        if isinstance(found, Response):
            return found
        invoice, items = found
        try:
            amounts = credit_note_estimate(invoice=invoice, items=items)
        except CreditNoteError as exc:
            return validation_error(exc.errors)
        invoice.refresh_from_db(fields=["number"])  # as the service read it, under its lock
        return Response({"estimated_credit_note": estimate_json(invoice, amounts)})


def _locked_note(lago_id: str) -> CreditNote | None:
    """The note under its row lock (in the request's transaction: ApiView makes writes atomic)."""
    pk = object_id(lago_id)
    return CreditNote.objects.select_for_update().filter(pk=pk).first() if pk is not None else None


class CreditNoteMetadataView(ApiView):
    """Lago's metadata routes (billing.api.metadata): POST replaces (no metadata sent: empties
    it), PATCH merges (no metadata sent: no change), DELETE removes all of it."""

    @extend_schema(
        operation_id="replace_credit_note_metadata", request=MetadataEnvelope, responses={200: MetadataOutputEnvelope}
    )
    def post(self, request: Request, lago_id: str) -> Response:
        return change_metadata(request, _locked_note(lago_id), "credit_note", replace)

    @extend_schema(
        operation_id="merge_credit_note_metadata", request=MetadataEnvelope, responses={200: MetadataOutputEnvelope}
    )
    def patch(self, request: Request, lago_id: str) -> Response:
        return change_metadata(request, _locked_note(lago_id), "credit_note", merge)

    @extend_schema(operation_id="delete_credit_note_metadata", responses={200: MetadataOutputEnvelope})
    def delete(self, request: Request, lago_id: str) -> Response:
        return change_metadata(request, _locked_note(lago_id), "credit_note", clear)


class CreditNoteMetadataKeyView(ApiView):
    """DELETE …/metadata/<key>: remove one key (as Lago: a key it does not have is no change; a
    note without metadata is 404 metadata_not_found)."""

    @extend_schema(operation_id="delete_credit_note_metadata_key", responses={200: MetadataOutputEnvelope})
    def delete(self, request: Request, lago_id: str, key: str) -> Response:
        return delete_metadata_key(_locked_note(lago_id), "credit_note", key)

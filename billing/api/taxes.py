"""/api/v1/taxes (lago-python-client's TaxClient): create, find, find_all, update, destroy, each
tax named by its code as in Lago (`PUT /api/v1/taxes/<code>` may change the code itself).

The rules (a unique code, a name, a rate from 0 to 100 % with at most 4 decimal places; what a
deletion does to customers and invoices) are billing.services.taxes. The list is ordered by
name, as Lago's, and paginated.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.invoices import PageMeta
from billing.api.list_params import pages_only
from billing.api.numbers import DecimalNumberField
from billing.api.tax_json import TaxOutput, tax_json
from billing.models import Tax
from billing.services.taxes import TaxError, tax_create, tax_destroy, tax_update
from config.api import (
    ApiView,
    StrictCharField,
    StrictSerializer,
    envelope_errors,
    not_found,
    paginated,
    validation_error,
)


class TaxEnvelope(serializers.Serializer[Any]):
    tax = TaxOutput()


class TaxListEnvelope(serializers.Serializer[Any]):
    taxes = TaxOutput(many=True)
    meta = PageMeta()


class TaxInput(StrictSerializer):
    """Lago's Tax input; on an update every field is optional (null: not given)."""

    code = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    rate = DecimalNumberField(required=False, allow_null=True, help_text="Percent, 0 to 100: 20 is 20 %.")
    description = StrictCharField(max_length=10_000, required=False, allow_null=True, allow_blank=True)
    applied_to_organization = serializers.BooleanField(required=False, allow_null=True)


class TaxInputEnvelope(StrictSerializer):
    tax = TaxInput()


def _answer(tax: Tax) -> Response:
    return Response({"tax": tax_json(tax)})


def _input(request: Request) -> dict[str, Any] | Response:
    envelope = TaxInputEnvelope(data=request.data)
    if not envelope.is_valid():
        return validation_error(envelope_errors(envelope.errors, "tax"))
    data: dict[str, Any] = envelope.validated_data["tax"]
    return data


class TaxesView(ApiView):
    @extend_schema(
        operation_id="create_tax",
        summary="Create a tax (applied_to_organization: it applies to customers without tax codes of their own)",
        request=TaxInputEnvelope,
        responses={200: TaxEnvelope},
        examples=[
            OpenApiExample(
                "VAT",
                value={"tax": {"code": "vat_fr", "name": "TVA", "rate": "20", "applied_to_organization": True}},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = _input(request)
        if isinstance(data, Response):
            return data
        try:
            tax = tax_create(
                code=data.get("code") or "",
                name=data.get("name") or "",
                rate=data.get("rate"),
                description=data.get("description") or "",
                applied_to_organization=bool(data.get("applied_to_organization")),
            )
        except TaxError as exc:
            return validation_error(exc.errors)
        return _answer(tax)

    @extend_schema(
        operation_id="list_taxes",
        summary="List the taxes by name, paginated",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: TaxListEnvelope},
    )
    def get(self, request: Request) -> Response:
        paging = pages_only(request.query_params)
        if isinstance(paging, dict):
            return validation_error(paging)
        page, per_page = paging
        return Response(paginated("taxes", Tax.objects.order_by("name", "id"), page, per_page, tax_json))


class TaxDetailView(ApiView):
    @extend_schema(operation_id="find_tax", summary="Fetch a tax by its code", responses={200: TaxEnvelope})
    def get(self, request: Request, code: str) -> Response:
        tax = Tax.objects.filter(code=code).first()
        return not_found("tax") if tax is None else _answer(tax)

    @extend_schema(
        operation_id="update_tax",
        summary="Change a tax (what is sent); finalized invoices keep the rate they were taxed at",
        request=TaxInputEnvelope,
        responses={200: TaxEnvelope},
    )
    def put(self, request: Request, code: str) -> Response:
        tax = Tax.objects.filter(code=code).first()
        if tax is None:
            return not_found("tax")
        data = _input(request)
        if isinstance(data, Response):
            return data
        try:
            tax = tax_update(
                tax=tax,
                code=data.get("code"),
                name=data.get("name"),
                rate=data.get("rate"),
                description=data.get("description"),
                applied_to_organization=data.get("applied_to_organization"),
            )
        except TaxError as exc:
            return validation_error(exc.errors)
        return _answer(tax)

    @extend_schema(
        operation_id="destroy_tax",
        summary="Delete a tax: customers that had it lose it; invoices keep the taxes they were issued with",
        responses={200: TaxEnvelope},
    )
    def delete(self, request: Request, code: str) -> Response:
        tax = Tax.objects.filter(code=code).first()
        if tax is None:
            return not_found("tax")
        return _answer(tax_destroy(tax=tax))

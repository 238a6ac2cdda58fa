"""/api/v1/add_ons (lago-python-client's AddOnClient): create, find, find_all, update, destroy,
each add-on named by its code as in Lago.

Lago's AddOnResponse, with our own `amount` (a decimal string) beside `amount_cents`. `taxes` is
always empty and `tax_codes` is refused (422 naming it): per-add-on taxes are not part of this
version, one-off invoices are taxed with the customer's taxes (DESIGN §6). The rules are
billing.services.addons. Changing only `amount_currency` keeps `amount_cents`, as Lago does.
The list is newest first, as Lago's, and paginated.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.invoices import PageMeta
from billing.api.list_params import pages_only
from billing.api.tax_json import TaxOutput
from billing.engine.money import from_cents, money_str, to_cents
from billing.models import AddOn
from billing.services.addons import AddOnError, add_on_create, add_on_destroy, add_on_update
from config.api import (
    ApiView,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    UnsupportedField,
    currency_input,
    envelope_errors,
    iso_datetime,
    not_found,
    paginated,
    validation_error,
)

NO_ADD_ON_TAXES = "per-add-on taxes are not part of this version: one-off invoices are taxed with the customer's taxes"
# The service's fields, as the API names them.
API_FIELDS = {"amount": "amount_cents", "currency": "amount_currency"}
MAX_CENTS = 10**15


def add_on_json(add_on: AddOn) -> dict[str, Any]:
    cur = add_on.currency
    return {
        "lago_id": str(add_on.pk),
        "name": add_on.name,
        "invoice_display_name": add_on.invoice_display_name or None,
        "code": add_on.code,
        "amount_cents": to_cents(add_on.amount, cur),
        "amount_currency": cur,
        "created_at": iso_datetime(add_on.created_at),
        "description": add_on.description or None,
        "taxes": [],
        # our own
        "amount": money_str(add_on.amount, cur),
    }


class AddOnOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    name = serializers.CharField()
    invoice_display_name = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    amount_cents = serializers.IntegerField(help_text="The default price of one unit, in the currency's minor unit.")
    amount_currency = serializers.CharField()
    created_at = serializers.DateTimeField()
    description = serializers.CharField(allow_null=True)
    taxes = TaxOutput(many=True, help_text="Always empty: one-off invoices are taxed with the customer's taxes.")
    amount = serializers.CharField(help_text='The same price as a decimal string: "125.00".')


class AddOnEnvelope(serializers.Serializer[Any]):
    add_on = AddOnOutput()


class AddOnListEnvelope(serializers.Serializer[Any]):
    add_ons = AddOnOutput(many=True)
    meta = PageMeta()


class AddOnInput(StrictSerializer):
    """Lago's AddOn input; on an update every field is optional (null: not given)."""

    code = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    invoice_display_name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    description = StrictCharField(max_length=10_000, required=False, allow_null=True, allow_blank=True)
    amount_cents = StrictIntegerField(required=False, allow_null=True, max_value=MAX_CENTS)
    amount_currency = StrictCharField(max_length=3, required=False, allow_null=True, allow_blank=True)
    tax_codes = UnsupportedField(NO_ADD_ON_TAXES)

    def validate_amount_currency(self, value: str | None) -> str | None:
        return currency_input(value)


class AddOnInputEnvelope(StrictSerializer):
    add_on = AddOnInput()


def _answer(add_on: AddOn) -> Response:
    return Response({"add_on": add_on_json(add_on)})


def _input(request: Request) -> dict[str, Any] | Response:
    envelope = AddOnInputEnvelope(data=request.data)
    if not envelope.is_valid():
        return validation_error(envelope_errors(envelope.errors, "add_on"))
    data: dict[str, Any] = envelope.validated_data["add_on"]
    return data


def _refused(exc: AddOnError) -> Response:
    return validation_error({API_FIELDS.get(field, field): messages for field, messages in exc.errors.items()})


class AddOnsView(ApiView):
    @extend_schema(
        operation_id="create_add_on",
        summary="Create an add-on: an item billed once, on one-off invoices",
        request=AddOnInputEnvelope,
        responses={200: AddOnEnvelope},
        examples=[
            OpenApiExample(
                "Set-up fee",
                value={
                    "add_on": {"code": "setup", "name": "Set-up fee", "amount_cents": 12500, "amount_currency": "USD"}
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = _input(request)
        if isinstance(data, Response):
            return data
        currency = data.get("amount_currency") or ""
        cents = data.get("amount_cents")
        # Without a currency the cents cannot be read as an amount; the service says it is missing.
        amount = None if cents is None else from_cents(cents, currency) if currency else Decimal(cents)
        try:
            add_on = add_on_create(
                code=data.get("code") or "",
                name=data.get("name") or "",
                amount=amount,
                currency=currency,
                invoice_display_name=data.get("invoice_display_name") or "",
                description=data.get("description") or "",
            )
        except AddOnError as exc:
            return _refused(exc)
        return _answer(add_on)

    @extend_schema(
        operation_id="list_add_ons",
        summary="List the add-ons, newest first, paginated",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: AddOnListEnvelope},
    )
    def get(self, request: Request) -> Response:
        paging = pages_only(request.query_params)
        if isinstance(paging, dict):
            return validation_error(paging)
        page, per_page = paging
        rows = AddOn.objects.order_by("-created_at", "id")
        return Response(paginated("add_ons", rows, page, per_page, add_on_json))


class AddOnDetailView(ApiView):
    @extend_schema(operation_id="find_add_on", summary="Fetch an add-on by its code", responses={200: AddOnEnvelope})
    def get(self, request: Request, code: str) -> Response:
        add_on = AddOn.objects.filter(code=code).first()
        return not_found("add_on") if add_on is None else _answer(add_on)

    @extend_schema(
        operation_id="update_add_on",
        summary="Change an add-on (what is sent); invoices already issued keep what they billed",
        request=AddOnInputEnvelope,
        responses={200: AddOnEnvelope},
    )
    def put(self, request: Request, code: str) -> Response:
        add_on = AddOn.objects.filter(code=code).first()
        if add_on is None:
            return not_found("add_on")
        data = _input(request)
        if isinstance(data, Response):
            return data
        currency = data.get("amount_currency") or add_on.currency
        cents = data.get("amount_cents")
        if cents is None and currency != add_on.currency:
            cents = to_cents(add_on.amount, add_on.currency)  # Lago keeps amount_cents
        try:
            add_on = add_on_update(
                add_on=add_on,
                code=data.get("code"),
                name=data.get("name"),
                amount=None if cents is None else from_cents(cents, currency),
                currency=currency,
                invoice_display_name=data.get("invoice_display_name"),
                description=data.get("description"),
            )
        except AddOnError as exc:
            return _refused(exc)
        return _answer(add_on)

    @extend_schema(
        operation_id="destroy_add_on",
        summary="Delete an add-on; invoices already issued keep what they billed",
        responses={200: AddOnEnvelope},
    )
    def delete(self, request: Request, code: str) -> Response:
        add_on = AddOn.objects.filter(code=code).first()
        if add_on is None:
            return not_found("add_on")
        return _answer(add_on_destroy(add_on=add_on))

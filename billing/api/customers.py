"""POST /api/v1/customers (create or update by external_id, as Lago) and GET /api/v1/customers[/<id>]."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.services.customers import CustomerError, customer_upsert
from config.api import ApiView, StrictCharField, iso_datetime, not_found, page_numbers, paginated, validation_error
from customers.models import Customer
from customers.validators import INVALID_CURRENCY, INVALID_TIMEZONE, validate_currency, validate_timezone


class CustomerInput(serializers.Serializer[Any]):
    external_id = StrictCharField(max_length=255)
    name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True)
    currency = StrictCharField(required=False, allow_null=True)
    timezone = StrictCharField(required=False, allow_null=True)
    legal_name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    tax_identification_number = StrictCharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    address_line1 = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    address_line2 = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    city = StrictCharField(max_length=128, required=False, allow_null=True, allow_blank=True)
    zipcode = StrictCharField(max_length=32, required=False, allow_null=True, allow_blank=True)
    state = StrictCharField(max_length=128, required=False, allow_null=True, allow_blank=True)
    country = StrictCharField(max_length=2, min_length=2, required=False, allow_null=True, allow_blank=True)

    def validate_currency(self, value: str | None) -> str | None:
        if value:
            try:
                validate_currency(value)
            except Exception:
                raise serializers.ValidationError(INVALID_CURRENCY.format(value=value)) from None
        return value

    def validate_timezone(self, value: str | None) -> str | None:
        if value:
            try:
                validate_timezone(value)
            except Exception:
                raise serializers.ValidationError(INVALID_TIMEZONE.format(value=value)) from None
        return value


class CustomerEnvelope(serializers.Serializer[Any]):
    customer = CustomerInput()


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "lago_id": str(customer.pk),
        "external_id": customer.external_id,
        "name": customer.name or None,
        "email": customer.email or None,
        "currency": customer.currency,
        "timezone": customer.timezone,
        "applicable_timezone": customer.timezone,
        "legal_name": customer.legal_name or None,
        "legal_number": None,
        "tax_identification_number": customer.tax_identification_number or None,
        "address_line1": customer.address_line1 or None,
        "address_line2": customer.address_line2 or None,
        "city": customer.city or None,
        "zipcode": customer.zipcode or None,
        "state": customer.state or None,
        "country": customer.country or None,
        "created_at": iso_datetime(customer.created_at),
        "updated_at": iso_datetime(customer.updated_at),
    }


class CustomersView(ApiView):
    @extend_schema(
        operation_id="create_customer",
        summary="Create a customer, or update the one with this external_id",
        request=CustomerEnvelope,
        responses={200: dict},
        examples=[
            OpenApiExample(
                "Customer",
                value={
                    "customer": {
                        "external_id": "acme",
                        "name": "Acme",
                        "email": "billing@acme.example",
                        "currency": "USD",
                        "timezone": "Europe/Paris",
                    }
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        envelope = CustomerEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope.errors.get("customer", envelope.errors))
        data = envelope.validated_data["customer"]
        try:
            customer, _created = customer_upsert(external_id=data["external_id"], changes=data)
        except CustomerError as exc:
            return validation_error(exc.errors)
        return Response({"customer": customer_json(customer)})

    @extend_schema(operation_id="list_customers", summary="List customers", responses={200: dict})
    def get(self, request: Request) -> Response:
        paging = page_numbers(request.query_params)
        if isinstance(paging, dict):
            return validation_error(paging)
        page, per_page = paging
        return Response(paginated("customers", Customer.objects.order_by("id"), page, per_page, customer_json))


class CustomerDetailView(ApiView):
    @extend_schema(operation_id="find_customer", summary="Fetch a customer by external_id", responses={200: dict})
    def get(self, request: Request, external_id: str) -> Response:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer")
        return Response({"customer": customer_json(customer)})

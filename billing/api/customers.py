"""POST /api/v1/customers (create or update by external_id, as Lago) and GET /api/v1/customers[/<id>]."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import ApiView, not_found, page_numbers, paginated, validation_error
from customers.models import Customer
from customers.validators import INVALID_CURRENCY, INVALID_TIMEZONE, validate_currency, validate_timezone
from metering.models import Event

TIMEZONE_LOCKED = "cannot change once the customer has usage events (their days and periods are counted in it)"
CURRENCY_LOCKED = "cannot change once the customer has subscriptions"

# Lago fields we store; every other field Lago's SDK may send (null or not) is accepted and ignored.
OPTIONAL_TEXT = (
    "name",
    "legal_name",
    "tax_identification_number",
    "address_line1",
    "address_line2",
    "city",
    "zipcode",
    "state",
)


class CustomerInput(serializers.Serializer):
    external_id = serializers.CharField(max_length=255)
    name = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True)
    currency = serializers.CharField(required=False, allow_null=True)
    timezone = serializers.CharField(required=False, allow_null=True)
    legal_name = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    tax_identification_number = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    address_line1 = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    address_line2 = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    city = serializers.CharField(max_length=128, required=False, allow_null=True, allow_blank=True)
    zipcode = serializers.CharField(max_length=32, required=False, allow_null=True, allow_blank=True)
    state = serializers.CharField(max_length=128, required=False, allow_null=True, allow_blank=True)
    country = serializers.CharField(max_length=2, min_length=2, required=False, allow_null=True, allow_blank=True)

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


class CustomerEnvelope(serializers.Serializer):
    customer = CustomerInput()


def customer_json(customer: Customer) -> dict[str, Any]:
    def iso(value: Any) -> str:
        return value.isoformat().replace("+00:00", "Z")

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
        "created_at": iso(customer.created_at),
        "updated_at": iso(customer.updated_at),
    }


@transaction.atomic
def customer_upsert(*, data: dict[str, Any]) -> Customer | dict[str, list[str]]:
    """Create the customer, or update the one with this external_id. Returns it, or errors by field."""
    customer = Customer.objects.select_for_update().filter(external_id=data["external_id"]).first()
    is_new = customer is None
    if customer is None:
        customer = Customer(external_id=data["external_id"])
    errors: dict[str, list[str]] = {}
    changes_timezone = not is_new and data.get("timezone") and data["timezone"] != customer.timezone
    if changes_timezone and Event.objects.filter(customer=customer).exists():
        errors["timezone"] = [TIMEZONE_LOCKED]
    changes_currency = not is_new and data.get("currency") and data["currency"] != customer.currency
    if changes_currency and customer.subscriptions.exists():  # type: ignore[attr-defined]
        errors["currency"] = [CURRENCY_LOCKED]
    if errors:
        return errors
    for field in OPTIONAL_TEXT:
        if field in data and data[field] is not None:
            setattr(customer, field, data[field])
    if data.get("email") is not None:
        customer.email = data["email"]
    if data.get("country") is not None:
        customer.country = data["country"].upper()
    if data.get("currency"):
        customer.currency = data["currency"]
    if data.get("timezone"):
        customer.timezone = data["timezone"]
    customer.save()
    return customer


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
        result = customer_upsert(data=envelope.validated_data["customer"])
        if isinstance(result, dict):
            return validation_error(result)
        return Response({"customer": customer_json(result)})

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

"""POST /api/v1/customers (create or update by external_id, as Lago), GET /api/v1/customers (with
Lago's filters: billing.api.customer_filters) and GET / DELETE /api/v1/customers/<external_id>."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.customer_filters import customer_list_filter
from billing.api.tax_json import TaxOutput, tax_json
from billing.models import CustomerTax, Tax
from billing.services.customers import TEXT_FIELDS, CustomerError, customer_destroy, customer_upsert
from billing.services.taxes import TaxError, customer_taxes_set
from config.api import (
    DUPLICATE_METADATA_KEY,
    ApiView,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    UnsupportedField,
    currency_input,
    duplicate_keys,
    envelope_errors,
    iso_datetime,
    metadata_ids,
    not_found,
    page_numbers,
    paginated,
    validation_error,
)
from customers.models import Customer
from customers.validators import INVALID_TIMEZONE, validate_timezone

NO_PAYMENT_PROVIDERS = "no payment providers here: payments are recorded with POST /api/v1/payments"


def _text(max_length: int = 255) -> StrictCharField:
    return StrictCharField(max_length=max_length, required=False, allow_null=True, allow_blank=True)


class MetadataItemInput(StrictSerializer):
    id = StrictCharField(required=False, allow_null=True)
    key = StrictCharField(max_length=255)
    value = StrictCharField(max_length=1000, allow_blank=True, allow_null=True)
    display_in_invoice = serializers.BooleanField(required=False, default=False)


class AddressInput(StrictSerializer):
    address_line1 = _text()
    address_line2 = _text()
    city = _text(128)
    zipcode = _text(32)
    state = _text(128)
    country = StrictCharField(max_length=2, min_length=2, required=False, allow_null=True, allow_blank=True)


class BillingConfigurationInput(StrictSerializer):
    """Lago's billing_configuration: the grace period and the documents' language are kept; the
    payment-provider settings are refused (no payment providers here)."""

    invoice_grace_period = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=365)
    document_locale = serializers.ChoiceField(choices=["en"], required=False, allow_null=True)
    subscription_invoice_issuing_date_anchor = UnsupportedField()
    subscription_invoice_issuing_date_adjustment = UnsupportedField()
    payment_provider = UnsupportedField(NO_PAYMENT_PROVIDERS)
    payment_provider_code = UnsupportedField(NO_PAYMENT_PROVIDERS)
    provider_customer_id = UnsupportedField(NO_PAYMENT_PROVIDERS)
    sync = UnsupportedField(NO_PAYMENT_PROVIDERS)
    sync_with_provider = UnsupportedField(NO_PAYMENT_PROVIDERS)
    provider_payment_methods = UnsupportedField(NO_PAYMENT_PROVIDERS)


class CustomerInput(StrictSerializer):
    """Every field of Lago's Customer input: stored and returned, or refused with the reason."""

    external_id = StrictCharField(max_length=255)
    name = _text()
    firstname = _text()
    lastname = _text()
    customer_type = serializers.ChoiceField(choices=["company", "individual"], required=False, allow_null=True)
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True)
    phone = _text(64)
    url = serializers.URLField(max_length=255, required=False, allow_null=True, allow_blank=True)
    logo_url = serializers.URLField(max_length=255, required=False, allow_null=True, allow_blank=True)
    currency = StrictCharField(required=False, allow_null=True)
    timezone = StrictCharField(required=False, allow_null=True)
    legal_name = _text()
    legal_number = _text()
    tax_identification_number = _text(64)
    address_line1 = _text()
    address_line2 = _text()
    city = _text(128)
    zipcode = _text(32)
    state = _text(128)
    country = StrictCharField(max_length=2, min_length=2, required=False, allow_null=True, allow_blank=True)
    net_payment_term = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=365)
    # A ListField, not many=True: allow_null there would let null items through as well.
    metadata = serializers.ListField(child=MetadataItemInput(), required=False, allow_null=True)
    shipping_address = AddressInput(required=False, allow_null=True)
    billing_configuration = BillingConfigurationInput(required=False, allow_null=True)
    finalize_zero_amount_invoice = serializers.ChoiceField(
        choices=["inherit", "finalize"],
        required=False,
        allow_null=True,
        help_text="Invoices of 0.00 are always finalized here; 'skip' is not supported.",
    )
    # The list replaces the customer's tax codes ([] clears them; null or absent: unchanged).
    tax_codes = serializers.ListField(
        child=StrictCharField(max_length=255), required=False, allow_null=True, max_length=100
    )
    integration_customers = UnsupportedField("no accounting or CRM integrations here")
    skip_invoice_custom_sections = UnsupportedField("no invoice custom sections here")
    invoice_custom_section_codes = UnsupportedField("no invoice custom sections here")
    billing_entity_code = UnsupportedField("one billing entity only")

    def validate_metadata(self, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        twice = duplicate_keys(value or [])
        if twice:
            raise serializers.ValidationError([DUPLICATE_METADATA_KEY.format(key=key) for key in twice])
        return value

    def validate_currency(self, value: str | None) -> str | None:
        return currency_input(value)

    def validate_timezone(self, value: str | None) -> str | None:
        if value:
            try:
                validate_timezone(value)
            except Exception:
                raise serializers.ValidationError(INVALID_TIMEZONE.format(value=value)) from None
        return value


class CustomerEnvelope(StrictSerializer):
    customer = CustomerInput()


def changes_of(data: dict[str, Any], shipping_address: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated input as the model's fields (None: not given). `shipping_address`: the
    customer's current one, which the address sent updates key by key, as Lago's update does (a
    key sent as null or "" clears it; a key not sent stays)."""
    changes = {field: data.get(field) for field in TEXT_FIELDS}
    changes["net_payment_term"] = data.get("net_payment_term")
    if data.get("metadata") is not None:
        items = data["metadata"]
        changes["metadata"] = [
            {
                "id": item_id,
                "key": item["key"],
                "value": item.get("value"),
                "display_in_invoice": item.get("display_in_invoice", False),
            }
            for item_id, item in zip(metadata_ids(items), items, strict=True)
        ]
    if data.get("shipping_address") is not None:
        sent = {k: (v.upper() if k == "country" and v else v) for k, v in data["shipping_address"].items()}
        merged = (shipping_address or {}) | sent
        changes["shipping_address"] = {k: v for k, v in merged.items() if v not in (None, "")}
    configuration = data.get("billing_configuration") or {}
    changes["invoice_grace_period"] = configuration.get("invoice_grace_period")
    changes["document_locale"] = configuration.get("document_locale")
    return changes


def customer_json(customer: Customer, *, with_taxes: bool = False) -> dict[str, Any]:
    """The customer as Lago answers it; `with_taxes`: with its `taxes` (its tax codes), as Lago's
    customer endpoints answer it and no other (an invoice's customer has none); read many from
    customers_for_json()."""
    return {
        "lago_id": str(customer.pk),
        "external_id": customer.external_id,
        "name": customer.name or None,
        "firstname": customer.firstname or None,
        "lastname": customer.lastname or None,
        "customer_type": customer.customer_type or None,
        "email": customer.email or None,
        "phone": customer.phone or None,
        "url": customer.url or None,
        "logo_url": customer.logo_url or None,
        "currency": customer.currency,
        "timezone": customer.timezone,
        "applicable_timezone": customer.timezone,
        "legal_name": customer.legal_name or None,
        "legal_number": customer.legal_number or None,
        "tax_identification_number": customer.tax_identification_number or None,
        "address_line1": customer.address_line1 or None,
        "address_line2": customer.address_line2 or None,
        "city": customer.city or None,
        "zipcode": customer.zipcode or None,
        "state": customer.state or None,
        "country": customer.country or None,
        "net_payment_term": customer.net_payment_term,
        "metadata": [
            {
                "lago_id": item.get("id"),
                "key": item.get("key"),
                "value": item.get("value"),
                "display_in_invoice": item.get("display_in_invoice", False),
            }
            for item in customer.metadata
        ],
        "shipping_address": customer.shipping_address or None,
        "billing_configuration": {
            "invoice_grace_period": customer.invoice_grace_period,
            "document_locale": customer.document_locale or "en",
            "payment_provider": None,
        },
        "finalize_zero_amount_invoice": "finalize",
        **({"taxes": [tax_json(tax) for tax in own_taxes(customer)]} if with_taxes else {}),
        "integration_customers": [],
        "created_at": iso_datetime(customer.created_at),
        "updated_at": iso_datetime(customer.updated_at),
    }


def own_taxes(customer: Customer) -> list[Tax]:
    """The customer's tax codes' taxes, by code (from customers_for_json's prefetch if made)."""
    links = getattr(customer, TAX_LINKS, None)
    if links is None:
        links = CustomerTax.objects.filter(customer=customer).select_related("tax").order_by("tax__code")
    return [link.tax for link in links]


TAX_LINKS = "prefetched_tax_links"


def customers_for_json() -> QuerySet[Customer]:
    """Customers with what customer_json(with_taxes=True) reads, in two queries however many."""
    return _with_taxes(Customer.objects.all())


def customers_for_json_all() -> QuerySet[Customer]:
    """customers_for_json() with the deleted customers too (DELETE answers the one it deleted)."""
    return _with_taxes(Customer.all_objects.all())


def _with_taxes(qs: QuerySet[Customer]) -> QuerySet[Customer]:
    links = CustomerTax.objects.select_related("tax").order_by("tax__code")
    return qs.prefetch_related(Prefetch("customer_taxes", queryset=links, to_attr=TAX_LINKS))


# --- schema: what customer_json answers ----------------------------------------------------


def _nullable_text() -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text="null when not set.")


class MetadataItemOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField(allow_null=True)
    key = serializers.CharField()
    value = serializers.CharField(allow_null=True)
    display_in_invoice = serializers.BooleanField()


class AddressOutput(serializers.Serializer[Any]):
    """Only the parts that are set."""

    address_line1 = serializers.CharField(required=False)
    address_line2 = serializers.CharField(required=False)
    city = serializers.CharField(required=False)
    zipcode = serializers.CharField(required=False)
    state = serializers.CharField(required=False)
    country = serializers.CharField(required=False)


class BillingConfigurationOutput(serializers.Serializer[Any]):
    invoice_grace_period = serializers.IntegerField(allow_null=True, help_text="Days; null: the default.")
    document_locale = serializers.CharField()
    payment_provider = serializers.CharField(allow_null=True, help_text="Always null: no payment providers here.")


class CustomerOutput(serializers.Serializer[Any]):
    """A customer as the API shows it (Lago's CustomerResponse), in its own answers and inside
    invoices and credit notes."""

    lago_id = serializers.CharField()
    external_id = serializers.CharField()
    name = _nullable_text()
    firstname = _nullable_text()
    lastname = _nullable_text()
    customer_type = serializers.ChoiceField(choices=["company", "individual"], allow_null=True)
    email = _nullable_text()
    phone = _nullable_text()
    url = _nullable_text()
    logo_url = _nullable_text()
    currency = serializers.CharField()
    timezone = serializers.CharField()
    applicable_timezone = serializers.CharField()
    legal_name = _nullable_text()
    legal_number = _nullable_text()
    tax_identification_number = _nullable_text()
    address_line1 = _nullable_text()
    address_line2 = _nullable_text()
    city = _nullable_text()
    zipcode = _nullable_text()
    state = _nullable_text()
    country = _nullable_text()
    net_payment_term = serializers.IntegerField(allow_null=True, help_text="Days; null: the default.")
    metadata = MetadataItemOutput(many=True)
    shipping_address = AddressOutput(allow_null=True)
    billing_configuration = BillingConfigurationOutput()
    finalize_zero_amount_invoice = serializers.CharField(help_text="Always finalize.")
    taxes = TaxOutput(
        many=True,
        required=False,
        help_text="The customer's own taxes (its tax_codes); on the customer's endpoints only, as Lago.",
    )
    integration_customers = serializers.ListField(child=serializers.DictField(), help_text="Always empty.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


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
            return validation_error(envelope_errors(envelope.errors, "customer"))
        data = envelope.validated_data["customer"]
        # Under the row lock (this request's transaction), so the address merges into the latest.
        current = Customer.objects.select_for_update().filter(external_id=data["external_id"]).first()
        changes = changes_of(data, current.shipping_address if current is not None else None)
        try:
            # One savepoint: refused tax codes leave the customer as it was, created or not.
            with transaction.atomic():
                customer, _created = customer_upsert(external_id=data["external_id"], changes=changes)
                if data.get("tax_codes") is not None:
                    customer_taxes_set(customer=customer, tax_codes=data["tax_codes"])
        except (CustomerError, TaxError) as exc:
            return validation_error(exc.errors)
        return Response({"customer": customer_json(customers_for_json().get(pk=customer.pk), with_taxes=True)})

    @extend_schema(
        operation_id="list_customers",
        summary="List customers (Lago's filters: search_term, currencies[], countries[], metadata[key], …)",
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        paging = page_numbers(request.query_params)
        rows = customer_list_filter(customers_for_json(), request.query_params)
        if isinstance(paging, dict) or isinstance(rows, dict):
            return validation_error(
                (paging if isinstance(paging, dict) else {}) | (rows if isinstance(rows, dict) else {})
            )
        page, per_page = paging
        rows = rows.order_by("id")
        return Response(
            paginated("customers", rows, page, per_page, lambda customer: customer_json(customer, with_taxes=True))
        )


class CustomerDetailView(ApiView):
    @extend_schema(operation_id="find_customer", summary="Fetch a customer by external_id", responses={200: dict})
    def get(self, request: Request, external_id: str) -> Response:
        customer = customers_for_json().filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer")
        return Response({"customer": customer_json(customer, with_taxes=True)})

    @extend_schema(
        operation_id="destroy_customer",
        summary="Delete a customer (refused while it has live subscriptions or unsettled invoices)",
        responses={200: dict},
    )
    def delete(self, request: Request, external_id: str) -> Response:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer")
        try:
            deleted = customer_destroy(customer=customer, now=timezone.now())
        except Customer.DoesNotExist:
            return not_found("customer")  # deleted by a request that ran at the same time
        except CustomerError as exc:
            return validation_error(exc.errors)
        return Response({"customer": customer_json(customers_for_json_all().get(pk=deleted.pk), with_taxes=True)})

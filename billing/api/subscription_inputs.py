"""What the subscriptions API reads: the bodies (lago-python-client 1.55's Subscription,
PlanOverrides and ChargeOverrides input models, and the lifetime usage's) and the query
parameters of its list, find and destroy. Every field of those models is declared; the ones
this app does not support are refused with 422 naming the field, never accepted and dropped
(DESIGN §6). The values are checked by the services (billing.services.subscriptions,
billing.services.plan_overrides)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers

from billing.models import BillingTime, SubscriptionStatus
from config.api import (
    DEFAULT_PER_PAGE,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    UnsupportedField,
    moment_input,
)

NOT_YET = "not supported yet"
TAXES_NOT_YET = "not part of this wave: a customer's tax_codes (or the organization's taxes) apply"
OUT_OF_SCOPE = "out of scope for now (DESIGN §6)"
NOT_A_NUMBER = "must be a number of days"


@extend_schema_field({"type": "number", "nullable": True})
class JsonNumberField(serializers.Field[Any, Any, Any, Any]):
    """A JSON number, as sent (Lago's trial_period is a float of days); the service checks it."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError(NOT_A_NUMBER)
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class ChargeOverrideInput(StrictSerializer):
    """One charge's own prices (lago-python-client's ChargeOverrides)."""

    id = StrictCharField(
        max_length=64, help_text="The charge's lago_id: of the subscription's plan, or of the catalog plan it copies."
    )
    invoice_display_name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    properties = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="Lago's properties of the charge's model, replacing its pricing: standard {amount}, graduated "
        "{graduated_ranges}, volume {volume_ranges}, package {amount, package_size, free_units}.",
    )
    min_amount_cents = UnsupportedField(NOT_YET)
    filters = UnsupportedField(OUT_OF_SCOPE)
    tax_codes = UnsupportedField(TAXES_NOT_YET)


class PlanOverridesInput(StrictSerializer):
    """The subscription's own prices (lago-python-client's PlanOverrides); the values are checked
    by the catalog's rules (billing.services.plan_overrides)."""

    name = StrictCharField(required=False, allow_null=True, allow_blank=True)
    invoice_display_name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    description = StrictCharField(required=False, allow_null=True, allow_blank=True)
    amount_cents = StrictIntegerField(required=False, allow_null=True, help_text="The base fee.")
    amount_currency = StrictCharField(required=False, allow_null=True, help_text="Only the plan's own currency.")
    trial_period = JsonNumberField(
        required=False, allow_null=True, help_text="Days, whole: 100 % off the base fee from the start; 0: none."
    )
    charges = ChargeOverrideInput(many=True, required=False, allow_null=True)
    tax_codes = UnsupportedField(TAXES_NOT_YET)
    fixed_charges = UnsupportedField(OUT_OF_SCOPE)
    minimum_commitment = UnsupportedField(NOT_YET)
    usage_thresholds = UnsupportedField(NOT_YET)
    metadata = UnsupportedField(NOT_YET)


class _Moments(StrictSerializer):
    """The moments of a subscription's input (ISO 8601 or Unix seconds), parsed."""

    def validate_subscription_at(self, value: str | None) -> Any:
        return moment_input(value)

    def validate_ending_at(self, value: str | None) -> Any:
        return moment_input(value)


class SubscriptionInput(_Moments):
    external_customer_id = StrictCharField(max_length=255)
    plan_code = StrictCharField(max_length=64)
    external_id = StrictCharField(max_length=255)
    name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    subscription_at = StrictCharField(required=False, allow_null=True, help_text="ISO 8601; default now.")
    billing_time = serializers.ChoiceField(choices=BillingTime.values, required=False, allow_null=True)
    plan_overrides = PlanOverridesInput(required=False, allow_null=True)
    ending_at = StrictCharField(
        required=False, allow_null=True, help_text="ISO 8601: the subscription terminates then (a later day)."
    )
    payment_method = UnsupportedField(OUT_OF_SCOPE)
    invoice_custom_section = UnsupportedField(NOT_YET)
    consolidate_invoice = UnsupportedField(NOT_YET)
    billing_entity_code = UnsupportedField(OUT_OF_SCOPE)
    purchase_order_number = UnsupportedField(NOT_YET)
    activation_rules = UnsupportedField(NOT_YET)


class SubscriptionEnvelope(serializers.Serializer[Any]):
    subscription = SubscriptionInput()


class SubscriptionUpdateInput(_Moments):
    """What Lago's update takes; the fields of the create input that say which subscription it
    is are accepted when they do not change."""

    name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    plan_overrides = PlanOverridesInput(required=False, allow_null=True)
    external_customer_id = StrictCharField(required=False, allow_null=True)
    external_id = StrictCharField(required=False, allow_null=True)
    plan_code = StrictCharField(required=False, allow_null=True)
    billing_time = StrictCharField(required=False, allow_null=True)
    subscription_at = StrictCharField(
        required=False, allow_null=True, help_text="ISO 8601; only a pending subscription's start changes."
    )
    ending_at = StrictCharField(required=False, allow_null=True, help_text="ISO 8601: it terminates then.")
    on_termination_credit_note = StrictCharField(
        required=False, allow_null=True, help_text="Only `skip`: no credit note is issued on termination."
    )
    on_termination_invoice = StrictCharField(
        required=False, allow_null=True, help_text="`generate` (default) or `skip`: no closing invoice."
    )
    progressive_billing_disabled = UnsupportedField(NOT_YET)
    billing_entity_id = UnsupportedField(OUT_OF_SCOPE)
    billing_entity_code = UnsupportedField(OUT_OF_SCOPE)
    consolidate_invoice = UnsupportedField(NOT_YET)
    purchase_order_number = UnsupportedField(NOT_YET)
    activation_rules = UnsupportedField(NOT_YET)
    invoice_custom_section = UnsupportedField(NOT_YET)
    payment_method = UnsupportedField(OUT_OF_SCOPE)
    usage_thresholds = UnsupportedField(NOT_YET)


class SubscriptionUpdateEnvelope(serializers.Serializer[Any]):
    subscription = SubscriptionUpdateInput()


class LifetimeUsageInput(StrictSerializer):
    external_historical_usage_amount_cents = StrictIntegerField(min_value=0, max_value=2**63 - 1)


class LifetimeUsageEnvelope(serializers.Serializer[Any]):
    lifetime_usage = LifetimeUsageInput()


# --- query parameters ----------------------------------------------------------------------------

LIST_FILTERS = ("external_customer_id", "plan_code", "status", "external_id", "currency", "overridden", "overriden")
NOT_BOOLEAN = "must be true or false"
BAD_STATUS = "must be one of: {choices}"
DELETE_PARAMETERS = ("status", "on_termination_invoice", "on_termination_credit_note")


def status_param(params: Any) -> tuple[str | None, dict[str, list[str]]]:
    """Lago's `status` query parameter of one subscription (find, update, destroy), or a 422's errors."""
    status = params.get("status") or None
    if status is not None and status not in SubscriptionStatus.values:
        return None, {"status": [BAD_STATUS.format(choices=", ".join(SubscriptionStatus.values))]}
    return status, {}


LIST_PARAMETERS = [
    OpenApiParameter("external_customer_id", str, description="Only this customer's subscriptions."),
    OpenApiParameter(
        "status[]",
        str,
        many=True,
        enum=SubscriptionStatus.values,
        description="Only these statuses (default: active only, as Lago); `status` is accepted too.",
    ),
    OpenApiParameter("plan_code", str, description="Only subscriptions to this plan (any version, own prices too)."),
    OpenApiParameter("external_id", str, description="Only subscriptions with this external id."),
    OpenApiParameter("currency", str, description="Only subscriptions priced in this currency."),
    OpenApiParameter("overridden", bool, description="true: only those with their own prices; false: without."),
    OpenApiParameter("page", int, description="1-based page number (default 1)."),
    OpenApiParameter("per_page", int, description=f"Per page (default {DEFAULT_PER_PAGE}, at most 100)."),
]

"""What the wallets API reads (lago-python-client 1.55's Wallet and WalletTransaction input models).

Every field of those models is declared: the ones this app does (name, code, rate, credits,
expiry, metadata, transaction name and metadata) are read; `priority` may only be 1 and
`invoice_requires_successful_payment` only false (what this app always does: one active wallet
per currency, paid credits usable once their invoice is paid); `ignore_paid_top_up_limits*` are
read and change nothing, there being no limits; `applies_to` is accepted only empty (a wallet
applies to every fee). The rest (recurring rules, top-up limits, payment method, invoice custom
section, billing entity, purchase order) is refused with 422 naming the field, never dropped.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.api.metadata import MetadataField
from billing.api.numbers import DecimalNumberField
from config.api import StrictCharField, StrictIntegerField, StrictSerializer, UnsupportedField, moment_input

PRIORITY_ONE = "only 1 is supported: a customer has one active wallet per currency"
ALWAYS_AFTER_PAYMENT = "only false is supported: paid credits are usable once their invoice is paid"
APPLIES_TO_EVERYTHING = "is not supported: a wallet applies to every fee (only empty lists are accepted)"
CREATE_ONLY = "cannot change after the wallet is created"
TOP_UP_ELSEWHERE = "is not read here: top up with POST /api/v1/wallet_transactions"
NO_LIMITS = "no top-up limits: there is nothing to ignore"


class KeyValue(StrictSerializer):
    """One of Lago's [{key, value}] metadata pairs on a transaction (key ≤ 20, value ≤ 100 characters)."""

    key = StrictCharField(max_length=20)
    value = StrictCharField(max_length=100)


def transaction_metadata(most: int, **kwargs: Any) -> serializers.ListField:
    return serializers.ListField(child=KeyValue(), max_length=most, required=False, allow_null=True, **kwargs)


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {
            "fee_types": {"type": "array", "items": {"type": "string"}},
            "billable_metric_codes": {"type": "array", "items": {"type": "string"}},
        },
        "description": "Only empty lists (or null): a wallet applies to every fee.",
    }
)
class AppliesToField(serializers.Field[Any, Any, Any, Any]):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if data is None or (isinstance(data, dict) and all(value in (None, []) for value in data.values())):
            return None
        raise serializers.ValidationError(APPLIES_TO_EVERYTHING)

    def to_representation(self, value: Any) -> Any:
        return value


class PriorityField(StrictIntegerField):
    def to_internal_value(self, data: Any) -> int:
        value = super().to_internal_value(data)
        if value != 1:
            raise serializers.ValidationError(PRIORITY_ONE)
        return value


class AfterPaymentField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        value = super().to_internal_value(data)
        if value:
            raise serializers.ValidationError(ALWAYS_AFTER_PAYMENT)
        return value


def _unsupported() -> dict[str, UnsupportedField]:
    """Lago's wallet fields this app does not support (the same on create and update)."""
    return {
        "recurring_transaction_rules": UnsupportedField("no recurring top-ups"),
        "paid_top_up_min_amount_cents": UnsupportedField("no top-up limits"),
        "paid_top_up_max_amount_cents": UnsupportedField("no top-up limits"),
        "payment_method": UnsupportedField("no payment providers"),
        "invoice_custom_section": UnsupportedField("no invoice custom sections"),
        "billing_entity_code": UnsupportedField("one billing entity"),
        "purchase_order_number": UnsupportedField("no purchase orders"),
    }


class WalletInput(StrictSerializer):
    """POST /api/v1/wallets (and /customers/<id>/wallets, where the path names the customer)."""

    external_customer_id = StrictCharField(max_length=255, required=False)
    rate_amount = DecimalNumberField(help_text="The price of one credit, > 0, at most 5 decimals.")
    name = StrictCharField(max_length=255, required=False, allow_blank=True, allow_null=True)
    code = StrictCharField(max_length=255, required=False, allow_blank=True, allow_null=True)
    priority = PriorityField(required=False, allow_null=True)
    currency = StrictCharField(max_length=3, required=False, allow_null=True, help_text="The customer's, if given.")
    paid_credits = DecimalNumberField(required=False, allow_null=True, help_text="Invoiced at once (credit invoice).")
    granted_credits = DecimalNumberField(required=False, allow_null=True, help_text="Usable at once.")
    expiration_at = StrictCharField(required=False, allow_null=True, allow_blank=True, help_text="ISO 8601.")
    transaction_name = StrictCharField(max_length=255, required=False, allow_blank=True, allow_null=True)
    transaction_metadata = transaction_metadata(5)
    metadata = MetadataField(required=False, allow_null=True)
    applies_to = AppliesToField()
    invoice_requires_successful_payment = AfterPaymentField(required=False, allow_null=True)
    ignore_paid_top_up_limits_on_creation = serializers.BooleanField(
        required=False, allow_null=True, help_text=NO_LIMITS
    )

    def get_fields(self) -> dict[str, Any]:
        return {**super().get_fields(), **_unsupported()}

    def validate_expiration_at(self, value: str | None) -> Any:
        return moment_input(value)


class WalletEnvelope(StrictSerializer):
    wallet = WalletInput()


class WalletUpdateInput(StrictSerializer):
    """PUT /api/v1/wallets/<id>: what Lago lets change."""

    name = StrictCharField(max_length=255, required=False, allow_blank=True, allow_null=True)
    code = StrictCharField(max_length=255, required=False, allow_blank=True, allow_null=True)
    priority = PriorityField(required=False, allow_null=True)
    expiration_at = StrictCharField(
        required=False, allow_null=True, allow_blank=True, help_text="ISO 8601; null: no expiry."
    )
    metadata = MetadataField(required=False, allow_null=True, help_text="Replaces the wallet's.")
    applies_to = AppliesToField()
    invoice_requires_successful_payment = AfterPaymentField(required=False, allow_null=True)

    def get_fields(self) -> dict[str, Any]:
        # The SDK sends one model for create and update: these may be repeated, not changed.
        repeated = f"Refused unless it is the wallet's: {CREATE_ONLY}."
        create_only = {
            "external_customer_id": StrictCharField(required=False, allow_null=True, help_text=repeated),
            "currency": StrictCharField(required=False, allow_null=True, help_text=repeated),
            "rate_amount": DecimalNumberField(required=False, allow_null=True, help_text=repeated),
        }
        top_up = {
            name: UnsupportedField(TOP_UP_ELSEWHERE)
            for name in (
                "paid_credits",
                "granted_credits",
                "transaction_name",
                "transaction_metadata",
                "ignore_paid_top_up_limits_on_creation",
            )
        }
        return {**super().get_fields(), **_unsupported(), **create_only, **top_up}

    def validate_expiration_at(self, value: str | None) -> Any:
        return moment_input(value)


class WalletUpdateEnvelope(StrictSerializer):
    wallet = WalletUpdateInput()


class WalletTransactionInput(StrictSerializer):
    """POST /api/v1/wallet_transactions."""

    wallet_id = StrictCharField(max_length=32)
    paid_credits = DecimalNumberField(required=False, allow_null=True, help_text="Invoiced at once (credit invoice).")
    granted_credits = DecimalNumberField(required=False, allow_null=True, help_text="Usable at once.")
    voided_credits = DecimalNumberField(required=False, allow_null=True, help_text="At most the balance.")
    name = StrictCharField(max_length=255, required=False, allow_blank=True, allow_null=True)
    metadata = transaction_metadata(15)
    invoice_requires_successful_payment = AfterPaymentField(required=False, allow_null=True)
    ignore_paid_top_up_limits = serializers.BooleanField(required=False, allow_null=True, help_text=NO_LIMITS)
    purchase_order_number = UnsupportedField("no purchase orders")
    payment_method = UnsupportedField("no payment providers")
    invoice_custom_section = UnsupportedField("no invoice custom sections")


class WalletTransactionEnvelope(StrictSerializer):
    wallet_transaction = WalletTransactionInput()

"""A wallet and a wallet transaction as the API renders them: Lago's WalletResponse and
WalletTransactionResponse (lago-python-client 1.55), with the output serializers that describe
them in the OpenAPI schema.

- Amounts: `balance_cents`, `ongoing_balance_cents`, `ongoing_usage_balance_cents` are integers in
  the currency's minor unit; credits (`credits_balance`, `consumed_credits`, …) and `rate_amount`
  are decimal strings, as Lago's; a transaction's `amount` is a decimal string in money.
- The ongoing figures are read when the wallet is rendered (billing.selectors.wallets).
- What this app has no use for is rendered as Lago renders its defaults: no recurring rules, no
  limitation (`applies_to` empty), a `provider` payment method without id, no custom sections,
  no billing entity or purchase order; `priority` is 1 (a customer has one active wallet per
  currency, so it is always first). Transactions are `manual`, of priority 50 (Lago's default),
  and not traceable (`remaining_*` null).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Max, Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.api.invoices import PageMeta
from billing.engine.money import format_decimal, money_str, to_cents
from billing.engine.vocabulary import (
    WalletStatus,
    WalletTransactionKind,
    WalletTransactionStatus,
    WalletTransactionType,
)
from billing.models import Wallet, WalletTransaction
from billing.selectors.wallets import ongoing_balance
from config.api import iso_datetime

WALLET_PRIORITY = 1
TRANSACTION_PRIORITY = 50  # Lago's default
PAYMENT_METHOD = {"payment_method_id": None, "payment_method_type": "provider"}


def wallets_for_json() -> QuerySet[Wallet]:
    """Wallets with what wallet_json reads besides their ongoing balance: the customer, and
    when the balance last moved."""
    return Wallet.objects.select_related("customer").annotate(
        last_balance_sync=Max(
            "transactions__settled_at", filter=Q(transactions__status=WalletTransactionStatus.SETTLED)
        )
    )


def _credits(value: Any) -> str:
    return format_decimal(value)


def wallet_json(wallet: Wallet, now: datetime | None = None) -> dict[str, Any]:
    """One wallet (loaded with wallets_for_json), its ongoing balance as of `now` (default: now)."""
    cur = wallet.currency
    ongoing = ongoing_balance(wallet, now=now or timezone.now())
    return {
        "lago_id": str(wallet.pk),
        "lago_customer_id": str(wallet.customer_id),
        "external_customer_id": wallet.customer.external_id,
        "billing_entity_code": None,
        "status": wallet.status,
        "currency": cur,
        "name": wallet.name or None,
        "code": wallet.code or None,
        "purchase_order_number": None,
        "priority": WALLET_PRIORITY,
        "rate_amount": _credits(wallet.rate_amount),
        "credits_balance": _credits(wallet.credits_balance),
        "credits_ongoing_balance": _credits(ongoing.credits_balance),
        "credits_ongoing_usage_balance": _credits(ongoing.credits_usage),
        "balance_cents": to_cents(wallet.balance, cur),
        "ongoing_balance_cents": to_cents(ongoing.balance, cur),
        "ongoing_usage_balance_cents": to_cents(ongoing.usage, cur),
        "consumed_credits": _credits(wallet.consumed_credits),
        "created_at": iso_datetime(wallet.created_at),
        "expiration_at": iso_datetime(wallet.expiration_at),
        "last_balance_sync_at": iso_datetime(getattr(wallet, "last_balance_sync", None)),
        "last_consumed_credit_at": iso_datetime(wallet.last_consumed_credit_at),
        "terminated_at": iso_datetime(wallet.terminated_at),
        "invoice_requires_successful_payment": False,
        "paid_top_up_min_amount_cents": None,
        "paid_top_up_max_amount_cents": None,
        "recurring_transaction_rules": [],
        "applies_to": {"fee_types": [], "billable_metric_codes": []},
        "applied_invoice_custom_sections": [],
        "payment_method": dict(PAYMENT_METHOD),
        "metadata": wallet.metadata or {},
        # our own fields
        "balance": money_str(wallet.balance, cur),
        "consumed_amount_cents": to_cents(wallet.consumed_amount, cur),
    }


def transactions_for_json() -> QuerySet[WalletTransaction]:
    return WalletTransaction.objects.select_related("wallet")


def wallet_transaction_json(movement: WalletTransaction, *, with_wallet: bool = False) -> dict[str, Any]:
    """One transaction (Lago's serializer); `with_wallet`: its wallet too, as Lago's webhook has it."""
    out: dict[str, Any] = {
        "lago_id": str(movement.pk),
        "lago_wallet_id": str(movement.wallet_id),
        "lago_invoice_id": str(movement.invoice_id) if movement.invoice_id else None,
        "lago_credit_note_id": None,
        "lago_voided_invoice_id": str(movement.voided_invoice_id) if movement.voided_invoice_id else None,
        "billing_entity_code": None,
        "status": movement.status,
        "source": "manual",
        "transaction_status": movement.transaction_status,
        "transaction_type": movement.transaction_type,
        "amount": money_str(movement.amount, movement.wallet.currency),
        "credit_amount": _credits(movement.credit_amount),
        "remaining_amount_cents": None,
        "remaining_credit_amount": None,
        "priority": TRANSACTION_PRIORITY,
        "purchase_order_number": None,
        "settled_at": iso_datetime(movement.settled_at),
        "failed_at": iso_datetime(movement.failed_at),
        "created_at": iso_datetime(movement.created_at),
        "invoice_requires_successful_payment": False,
        "metadata": movement.metadata or [],
        "name": movement.name or None,
        "payment_method": dict(PAYMENT_METHOD),
        "applied_invoice_custom_sections": [],
    }
    if with_wallet:
        out["wallet"] = wallet_json(wallets_for_json().get(pk=movement.wallet_id))
    return out


# --- schema ---------------------------------------------------------------------------------


def _status_field(values: list[str], help_text: str) -> serializers.CharField:
    """A status as an inline enum: a named one would collide with the other lists' `status`."""

    @extend_schema_field({"type": "string", "enum": values})
    class StatusField(serializers.CharField):
        pass

    return StatusField(help_text=help_text)


class AppliesToOutput(serializers.Serializer[Any]):
    fee_types = serializers.ListField(child=serializers.CharField(), help_text="Always empty: no limitation.")
    billable_metric_codes = serializers.ListField(child=serializers.CharField(), help_text="Always empty.")


class PaymentMethodOutput(serializers.Serializer[Any]):
    payment_method_id = serializers.CharField(allow_null=True, help_text="Always null: no payment providers.")
    payment_method_type = serializers.CharField(help_text="Always provider (Lago's default).")


class WalletOutput(serializers.Serializer[Any]):
    """Lago's WalletResponse, and our own `balance` and `consumed_amount_cents`."""

    lago_id = serializers.CharField()
    lago_customer_id = serializers.CharField()
    external_customer_id = serializers.CharField()
    billing_entity_code = serializers.CharField(allow_null=True, help_text="Always null: one billing entity.")
    status = _status_field(WalletStatus.values, "active or terminated.")
    currency = serializers.CharField()
    name = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)
    purchase_order_number = serializers.CharField(allow_null=True, help_text="Always null.")
    priority = serializers.IntegerField(help_text="Always 1: one active wallet per customer and currency.")
    rate_amount = serializers.CharField(help_text="The price of one credit, a decimal string.")
    credits_balance = serializers.CharField(help_text="A decimal string.")
    credits_ongoing_balance = serializers.CharField(help_text="A decimal string; may be negative.")
    credits_ongoing_usage_balance = serializers.CharField(help_text="A decimal string.")
    balance_cents = serializers.IntegerField()
    ongoing_balance_cents = serializers.IntegerField(help_text="The balance less the usage so far; may be negative.")
    ongoing_usage_balance_cents = serializers.IntegerField(
        help_text="Usage so far (open periods' usage charges with taxes, and drafts' totals before credits)."
    )
    consumed_credits = serializers.CharField(help_text="A decimal string.")
    created_at = serializers.DateTimeField()
    expiration_at = serializers.DateTimeField(allow_null=True)
    last_balance_sync_at = serializers.DateTimeField(allow_null=True, help_text="When the balance last moved.")
    last_consumed_credit_at = serializers.DateTimeField(allow_null=True)
    terminated_at = serializers.DateTimeField(allow_null=True)
    invoice_requires_successful_payment = serializers.BooleanField(help_text="Always false.")
    paid_top_up_min_amount_cents = serializers.IntegerField(allow_null=True, help_text="Always null: no limits.")
    paid_top_up_max_amount_cents = serializers.IntegerField(allow_null=True, help_text="Always null: no limits.")
    recurring_transaction_rules = serializers.ListField(
        child=serializers.DictField(), help_text="Always empty: not supported."
    )
    applies_to = AppliesToOutput()
    applied_invoice_custom_sections = serializers.ListField(child=serializers.DictField(), help_text="Always empty.")
    payment_method = PaymentMethodOutput()
    metadata = serializers.DictField(child=serializers.CharField(allow_null=True))
    balance = serializers.CharField(help_text='Ours: the balance as a decimal string, "100.00".')
    consumed_amount_cents = serializers.IntegerField(help_text="Ours: what invoices have used, in money.")


class WalletOutputEnvelope(serializers.Serializer[Any]):
    wallet = WalletOutput()


class WalletListEnvelope(serializers.Serializer[Any]):
    wallets = WalletOutput(many=True)
    meta = PageMeta()


class WalletTransactionOutput(serializers.Serializer[Any]):
    """Lago's WalletTransactionResponse."""

    lago_id = serializers.CharField()
    lago_wallet_id = serializers.CharField()
    lago_invoice_id = serializers.CharField(
        allow_null=True, help_text="The purchase invoice (purchased) or the invoice that used the credit (invoiced)."
    )
    lago_credit_note_id = serializers.CharField(allow_null=True, help_text="Always null.")
    lago_voided_invoice_id = serializers.CharField(
        allow_null=True, help_text="The voided invoice whose use of the credit this gives back."
    )
    billing_entity_code = serializers.CharField(allow_null=True, help_text="Always null.")
    status = _status_field(
        WalletTransactionStatus.values, "pending (a purchase not paid yet), settled (in the balance) or failed."
    )
    # A field named like Field.source: the serializer's metaclass takes it as a field all the same.
    source = serializers.CharField(help_text="Always manual.")  # type: ignore[assignment]
    transaction_status = serializers.ChoiceField(choices=WalletTransactionKind.values)
    transaction_type = serializers.ChoiceField(choices=WalletTransactionType.values)
    amount = serializers.CharField(help_text='In money, a decimal string: "10.00".')
    credit_amount = serializers.CharField(help_text="In credits, a decimal string.")
    remaining_amount_cents = serializers.IntegerField(allow_null=True, help_text="Always null: not traceable.")
    remaining_credit_amount = serializers.CharField(allow_null=True, help_text="Always null.")
    priority = serializers.IntegerField(help_text="Always 50 (Lago's default).")
    purchase_order_number = serializers.CharField(allow_null=True, help_text="Always null.")
    settled_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    invoice_requires_successful_payment = serializers.BooleanField(help_text="Always false.")
    metadata = serializers.ListField(child=serializers.DictField(), help_text="Lago's [{key, value}] pairs.")
    name = serializers.CharField(allow_null=True)
    payment_method = PaymentMethodOutput()
    applied_invoice_custom_sections = serializers.ListField(child=serializers.DictField(), help_text="Always empty.")


class WalletTransactionListOutput(serializers.Serializer[Any]):
    """What POST /wallet_transactions answers: the transactions it made."""

    wallet_transactions = WalletTransactionOutput(many=True)


class WalletTransactionListEnvelope(serializers.Serializer[Any]):
    wallet_transactions = WalletTransactionOutput(many=True)
    meta = PageMeta()

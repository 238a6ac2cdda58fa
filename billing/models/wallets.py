"""Wallets: prepaid credits (DESIGN §6 "Wallets"; Lago's wallets and wallet transactions).

One active wallet per customer and currency (a database constraint). A credit is worth
`rate_amount`; the wallet keeps its balance both in money and in credits, never below zero
(constraints). Every movement is a WalletTransaction: purchased credits (pending until their
`credit` invoice is paid, then settled into the balance), granted credits (settled at once),
voided credits, and what an invoice used at step 7 (once per wallet and invoice) or gave back
when it was voided (once per voided invoice).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Q

from billing.engine.money import amount_field_kwargs
from billing.engine.vocabulary import (
    WalletStatus,
    WalletTransactionKind,
    WalletTransactionStatus,
    WalletTransactionType,
)
from billing.models.invoices import Invoice
from customers.models import Customer


def credits_field(**kwargs: Any) -> models.DecimalField[Decimal, Decimal]:
    """A number of credits (5 decimals)."""
    return models.DecimalField(max_digits=24, decimal_places=5, **kwargs)


class Wallet(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="wallets")
    currency = models.CharField(max_length=3)
    name = models.CharField(max_length=255, blank=True)
    code = models.CharField(max_length=255, blank=True)
    rate_amount = models.DecimalField(max_digits=20, decimal_places=5, help_text="The price of one credit.")
    balance = models.DecimalField(**amount_field_kwargs(), default=0, help_text="Usable credit, in money.")
    credits_balance = credits_field(default=0, help_text="Usable credit, in credits.")
    consumed_amount = models.DecimalField(**amount_field_kwargs(), default=0)
    consumed_credits = credits_field(default=0)
    status = models.CharField(max_length=16, choices=WalletStatus.choices, default=WalletStatus.ACTIVE)
    expiration_at = models.DateTimeField(null=True, blank=True, help_text="The balance is voided then.")
    terminated_at = models.DateTimeField(null=True, blank=True)
    last_consumed_credit_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["customer", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "currency"],
                condition=Q(status=WalletStatus.ACTIVE),
                name="wallet_one_active_per_currency",
            ),
            models.CheckConstraint(
                condition=Q(balance__gte=0, credits_balance__gte=0), name="wallet_balance_not_negative"
            ),
            models.CheckConstraint(condition=Q(rate_amount__gt=0), name="wallet_rate_positive"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.customer} {self.currency} wallet"


class WalletTransaction(models.Model):
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="transactions")
    transaction_type = models.CharField(max_length=16, choices=WalletTransactionType.choices)
    status = models.CharField(max_length=16, choices=WalletTransactionStatus.choices)
    transaction_status = models.CharField(max_length=16, choices=WalletTransactionKind.choices)
    amount = models.DecimalField(**amount_field_kwargs(), help_text="In money.")
    credit_amount = credits_field(help_text="In credits.")
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="wallet_transactions",
        help_text="The purchase invoice (purchased), or the invoice that used the credit (invoiced).",
    )
    voided_invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="wallet_refunds",
        help_text="The voided invoice whose use of the credit this gives back.",
    )
    name = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=list, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0, credit_amount__gte=0), name="wallet_transaction_not_negative"
            ),
            models.UniqueConstraint(
                fields=["wallet", "invoice"],
                condition=Q(transaction_status=WalletTransactionKind.INVOICED),
                name="wallet_used_once_per_invoice",
            ),
            models.UniqueConstraint(
                fields=["wallet", "voided_invoice"],
                condition=Q(voided_invoice__isnull=False),
                name="wallet_refund_once_per_voided_invoice",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_type} {self.credit_amount.normalize():f} credits ({self.transaction_status})"

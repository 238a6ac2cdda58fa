"""Prepaid commitments and their append-only ledger."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from billing.engine.money import amount_field_kwargs, price_field_kwargs, quantize_money
from billing.engine.vocabulary import CommitmentCovers, CommitmentStatus, LedgerKind
from billing.models.history import history_user
from billing.models.invoices import Invoice
from billing.models.subscriptions import Subscription


class Commitment(models.Model):
    """A prepaid commitment of a subscription: invoiced in full at its start, drawn down by invoices.

    Its balance is the sum of its ledger entries; it is never stored apart from them.
    """

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="commitments")
    amount = models.DecimalField(**price_field_kwargs())
    currency = models.CharField(max_length=3)
    term_start = models.DateTimeField()
    term_end = models.DateTimeField()
    months = models.PositiveSmallIntegerField()
    covers = models.CharField(max_length=16, choices=CommitmentCovers.choices, default=CommitmentCovers.BASE_FEE)
    auto_renew = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=CommitmentStatus.choices, default=CommitmentStatus.PENDING)
    renewed_from = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="renewal")
    invoice = models.OneToOneField(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="commitment",
        help_text="The prepayment invoice.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)  # shown in the admin's History view

    class Meta:
        ordering = ["-term_start", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "term_start"], name="commitment_one_per_term"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="commitment_amount_positive"),
            models.CheckConstraint(condition=Q(months__gt=0), name="commitment_months_positive"),
            models.CheckConstraint(condition=Q(term_start__lt=models.F("term_end")), name="commitment_term_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} commitment {self.term_start:%Y-%m-%d} ({self.months} months)"


class LedgerEntry(models.Model):
    """An append-only movement of a commitment's balance."""

    commitment = models.ForeignKey(Commitment, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=LedgerKind.choices)
    amount = models.DecimalField(**amount_field_kwargs(), help_text="Signed: + adds to the balance.")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries")
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice"], condition=Q(kind="drawdown"), name="ledger_one_drawdown_per_invoice"
            ),
            models.UniqueConstraint(
                fields=["commitment"], condition=Q(kind="purchase"), name="ledger_one_purchase_per_commitment"
            ),
            models.UniqueConstraint(
                fields=["commitment"], condition=Q(kind="expiry"), name="ledger_one_expiry_per_commitment"
            ),
            models.CheckConstraint(condition=~Q(kind="purchase") | Q(amount__gt=0), name="ledger_purchase_positive"),
            models.CheckConstraint(
                condition=~Q(kind="drawdown") | (Q(amount__lt=0) & Q(invoice__isnull=False)),
                name="ledger_drawdown_negative_with_invoice",
            ),
            models.CheckConstraint(condition=~Q(kind="expiry") | Q(amount__lte=0), name="ledger_expiry_not_positive"),
            models.CheckConstraint(
                condition=~Q(kind="adjustment") | ~Q(reason=""), name="ledger_adjustment_has_reason"
            ),
        ]

    def __str__(self) -> str:
        currency = self.commitment.currency
        return f"{self.get_kind_display()} of {quantize_money(self.amount, currency):,} {currency}"

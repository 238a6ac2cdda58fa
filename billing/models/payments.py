"""Payments received against invoices: append-only rows, with who recorded them and when."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.engine.money import amount_field_kwargs
from billing.models.invoices import Invoice


class Payment(models.Model):
    """Money received for an invoice, whole or in part (Lago's manual payment).

    Append-only: nothing edits or deletes a payment; a mistake is answered by a credit note
    with a refund. The invoice's amount paid is the sum of its payments.
    """

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(**amount_field_kwargs())
    currency = models.CharField(max_length=3)
    reference = models.CharField(max_length=255, help_text="The bank transfer's reference, a receipt number, …")
    paid_at = models.DateTimeField(help_text="When the money was received.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The staff user who recorded it (empty: the API).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive")]
        indexes = [models.Index(fields=["invoice", "created_at"], name="payment_invoice_created")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} ({self.reference})"

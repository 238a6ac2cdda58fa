"""Credit notes: amounts taken back from a finalized invoice, per fee (DESIGN §6 "Credit notes").

A note's total is split in three parts that add up to it (a database constraint): `credit`
becomes the customer's credit, consumed by later invoices (CreditApplication, one per note and
invoice); `refund` is money to pay back (`refund_status` until finance marks it done); `offset`
reduces what is still due on the invoice itself.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from billing.engine.money import amount_field_kwargs
from billing.engine.vocabulary import CreditNoteReason, CreditStatus, RefundStatus
from billing.models.invoices import Invoice, InvoiceLine
from customers.models import Customer


class CreditNote(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    sequence = models.PositiveIntegerField(help_text="n of <invoice number>-CN<n>: 1, 2, … per invoice, gap-free.")
    number = models.CharField(max_length=48, unique=True)
    reason = models.CharField(max_length=32, choices=CreditNoteReason.choices)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3)
    items_amount = models.DecimalField(
        **amount_field_kwargs(), help_text="The fees credited, before discounts and tax."
    )
    coupons_adjustment_amount = models.DecimalField(
        **amount_field_kwargs(), default=0, help_text="The credited fees' share of their discounts."
    )
    sub_total_excluding_taxes_amount = models.DecimalField(**amount_field_kwargs())
    taxes_amount = models.DecimalField(**amount_field_kwargs(), default=0)
    total_amount = models.DecimalField(**amount_field_kwargs())
    credit_amount = models.DecimalField(**amount_field_kwargs(), default=0)
    refund_amount = models.DecimalField(**amount_field_kwargs(), default=0)
    offset_amount = models.DecimalField(**amount_field_kwargs(), default=0)
    balance_amount = models.DecimalField(**amount_field_kwargs(), default=0, help_text="Credit not yet consumed.")
    credit_status = models.CharField(max_length=16, choices=CreditStatus.choices, default=CreditStatus.AVAILABLE)
    refund_status = models.CharField(
        max_length=16, choices=RefundStatus.choices, blank=True, help_text="Empty when the note refunds nothing."
    )
    issued_on = models.DateField(help_text="The customer's day it was issued.")
    refunded_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "sequence"], name="credit_note_sequence_per_invoice"),
            models.CheckConstraint(
                condition=Q(total_amount=F("credit_amount") + F("refund_amount") + F("offset_amount")),
                name="credit_note_parts_add_up",
            ),
            models.CheckConstraint(
                condition=Q(total_amount__gt=0, credit_amount__gte=0, refund_amount__gte=0, offset_amount__gte=0),
                name="credit_note_amounts_positive",
            ),
            models.CheckConstraint(
                condition=Q(balance_amount__gte=0, balance_amount__lte=F("credit_amount")),
                name="credit_note_balance_within_credit",
            ),
            models.CheckConstraint(
                condition=Q(refund_amount=0, refund_status="") | (Q(refund_amount__gt=0) & ~Q(refund_status="")),
                name="credit_note_refund_status_with_refund",
            ),
        ]
        indexes = [models.Index(fields=["customer", "credit_status"], name="credit_note_customer_status")]

    def __str__(self) -> str:
        return self.number


class CreditNoteItem(models.Model):
    """An amount credited on one fee of the invoice (before the fee's discounts and tax)."""

    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="items")
    fee = models.ForeignKey(InvoiceLine, on_delete=models.PROTECT, related_name="credit_note_items")
    amount = models.DecimalField(**amount_field_kwargs())

    class Meta:
        ordering = ["credit_note", "id"]
        constraints = [
            models.UniqueConstraint(fields=["credit_note", "fee"], name="credit_note_item_one_per_fee"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_note_item_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} on fee {self.fee_id}"


class CreditApplication(models.Model):
    """Credit of a note consumed by a later invoice (its `credit_note` line), once per note and invoice.

    Written when the invoice is finalized; a voided invoice gives its credit back (`reversed_at`).
    """

    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, related_name="applications")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_applications")
    amount = models.DecimalField(**amount_field_kwargs())
    reversed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["credit_note", "invoice"], name="credit_application_once_per_invoice"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_application_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of {self.credit_note_id} on invoice {self.invoice_id}"

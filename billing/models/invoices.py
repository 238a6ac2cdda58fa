"""Invoices and their lines."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from billing.engine.money import amount_field_kwargs, price_field_kwargs
from billing.engine.vocabulary import InvoiceStatus, InvoiceType, LineKind
from billing.models.subscriptions import Subscription
from customers.models import Customer
from metering.models import BillableMetric


class Invoice(models.Model):
    """One invoice per subscription, type and period (database-unique).

    Built as a draft (recomputed while the grace period runs), finalized with a gap-free number
    and a snapshot of the customer's billing details, then paid or voided. A finalized invoice
    never changes (services refuse it; the admin shows it read-only).
    """

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="invoices")
    invoice_type = models.CharField(max_length=16, choices=InvoiceType.choices, default=InvoiceType.PERIOD)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    number = models.CharField(max_length=32, null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(**amount_field_kwargs(), default=0)
    issued_on = models.DateField(null=True, blank=True, help_text="Finalization date.")
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)
    customer_snapshot = models.JSONField(default=dict, blank=True, help_text="Billing details at finalization.")
    seller_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "invoice_type", "period_start"], name="invoice_one_per_subscription_period"
            ),
            models.CheckConstraint(condition=Q(period_start__lt=models.F("period_end")), name="invoice_period_ordered"),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(number__isnull=False), name="invoice_numbered_once_finalized"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "period_start"], name="invoice_customer_period"),
            models.Index(fields=["status", "period_end"], name="invoice_status_period_end"),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft {self.pk} ({self.period_start:%Y-%m-%d})"

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(max_length=24, choices=LineKind.choices)
    description = models.CharField(max_length=255)
    metric = models.ForeignKey(BillableMetric, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    quantity = models.DecimalField(**price_field_kwargs(), default=0)
    unit_amount = models.DecimalField(**price_field_kwargs(), null=True, blank=True)
    amount = models.DecimalField(**amount_field_kwargs())
    currency = models.CharField(max_length=3)
    period_start = models.DateTimeField(help_text="What the line covers (a late_usage line: its old period).")
    period_end = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True, help_text="Tier breakdown and measured quantities.")

    class Meta:
        ordering = ["invoice", "position", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.amount} {self.currency}"

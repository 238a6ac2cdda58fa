"""Invoices and their lines."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from billing.engine.money import amount_field_kwargs, price_field_kwargs
from billing.engine.vocabulary import INVOICE_TYPE, InvoiceKind, InvoiceStatus, InvoiceType, LineKind, PaymentStatus
from billing.models.subscriptions import Subscription
from customers.models import Customer
from metering.models import BillableMetric


class Invoice(models.Model):
    """One live (not voided) invoice per subscription, kind and period (database-unique).

    Built as a draft (recomputed while the grace period runs), finalized with a gap-free number,
    a snapshot of the customer's billing details and its payment terms; possibly voided later.
    Payment is tracked apart (`payment_status`, Payment rows, credit-note offsets): a finalized
    invoice's lines and amounts never change (services refuse it; the admin shows it read-only).
    """

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
        help_text="Empty for one-off and wallet credit invoices, which belong to the customer only.",
    )
    kind = models.CharField(max_length=16, choices=InvoiceKind.choices, default=InvoiceKind.PERIOD)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    payment_status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    number = models.CharField(max_length=32, null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(**amount_field_kwargs(), default=0)
    issued_on = models.DateField(null=True, blank=True, help_text="Finalization date (the customer's day).")
    net_payment_term = models.PositiveIntegerField(
        default=0, help_text="Days to pay, as the customer's at finalization."
    )
    payment_due_date = models.DateField(null=True, blank=True, help_text="Issuing date + payment term.")
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True, help_text="When nothing was left due.")
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)
    customer_snapshot = models.JSONField(default=dict, blank=True, help_text="Billing details at finalization.")
    seller_name = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=list, blank=True, help_text="Lago's key/value pairs.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "kind", "period_start"],
                condition=~Q(status="voided"),
                name="invoice_one_live_per_subscription_period",
            ),
            # A one-off or wallet credit invoice is dated, not a period: it starts and ends at its
            # creation (as Lago's one-off fees do); a subscription's invoice covers a period.
            models.CheckConstraint(
                condition=Q(period_start__lt=models.F("period_end"))
                | Q(subscription__isnull=True, period_start=models.F("period_end")),
                name="invoice_period_ordered",
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(number__isnull=False), name="invoice_numbered_once_finalized"
            ),
            models.CheckConstraint(
                condition=~Q(status="draft") | Q(payment_status="pending"), name="invoice_draft_payment_pending"
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

    @property
    def invoice_type(self) -> InvoiceType:
        """Lago's invoice_type: subscription, one_off or credit."""
        return INVOICE_TYPE[InvoiceKind(self.kind)]


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
    discount_amount = models.DecimalField(
        **amount_field_kwargs(),
        default=0,
        help_text="A fee's share of the promotion, drawdown and coupon lines that reduce it (DESIGN §6).",
    )
    tax_amount = models.DecimalField(
        **amount_field_kwargs(),
        default=0,
        help_text="A fee's share of the tax lines (Lago's fees[].taxes_amount_cents).",
    )

    class Meta:
        ordering = ["invoice", "position", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.amount} {self.currency}"

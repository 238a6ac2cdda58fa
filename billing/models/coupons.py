"""Coupons (DESIGN §6 "Coupons"; Lago's coupons and applied coupons).

A Coupon is the catalog's offer; an AppliedCoupon gives it to one customer, with its own amount,
rate and frequency (copied from the coupon unless overridden) and what is left of it
(`amount_remaining` for a `once` fixed coupon, `frequency_duration_remaining` for a recurring
one). Each invoice that uses it writes a CouponApplication, once per applied coupon and invoice
(a database constraint), when it is finalized; voiding the invoice gives it back (`reversed_at`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Q

from billing.engine.money import amount_field_kwargs
from billing.engine.vocabulary import CouponExpiration, CouponFrequency, CouponStatus, CouponType
from billing.models.invoices import Invoice
from customers.models import Customer


def rate_field(**kwargs: Any) -> models.DecimalField[Decimal | None, Decimal | None]:
    """A percentage, 0.0001 to 100."""
    return models.DecimalField(max_digits=7, decimal_places=4, **kwargs)


class Coupon(models.Model):
    code = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    coupon_type = models.CharField(max_length=16, choices=CouponType.choices)
    amount = models.DecimalField(**amount_field_kwargs(), null=True, blank=True, help_text="Fixed amount coupons.")
    currency = models.CharField(max_length=3, blank=True, help_text="Of the fixed amount.")
    percentage_rate = rate_field(null=True, blank=True, help_text="Percentage coupons.")
    frequency = models.CharField(max_length=16, choices=CouponFrequency.choices, default=CouponFrequency.ONCE)
    frequency_duration = models.PositiveIntegerField(
        null=True, blank=True, help_text="Recurring coupons: how many subscription invoices it reduces."
    )
    expiration = models.CharField(
        max_length=16, choices=CouponExpiration.choices, default=CouponExpiration.NO_EXPIRATION
    )
    expiration_at = models.DateTimeField(null=True, blank=True, help_text="No new application after it.")
    reusable = models.BooleanField(default=True, help_text="May be applied to the same customer again.")
    plan_codes = models.JSONField(default=list, blank=True, help_text="Only the fees of these plans count.")
    billable_metric_codes = models.JSONField(
        default=list, blank=True, help_text="Only the usage fees of these metrics count."
    )
    status = models.CharField(max_length=16, choices=CouponStatus.choices, default=CouponStatus.ACTIVE)
    terminated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(coupon_type=CouponType.FIXED_AMOUNT, amount__gt=0, percentage_rate__isnull=True) & ~Q(currency="")
                )
                | Q(
                    coupon_type=CouponType.PERCENTAGE,
                    amount__isnull=True,
                    percentage_rate__gt=0,
                    percentage_rate__lte=100,
                ),
                name="coupon_amount_or_rate",
            ),
            models.CheckConstraint(
                condition=Q(frequency=CouponFrequency.RECURRING, frequency_duration__gt=0)
                | (~Q(frequency=CouponFrequency.RECURRING) & Q(frequency_duration__isnull=True)),
                name="coupon_duration_for_recurring",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.code


class AppliedCoupon(models.Model):
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="applied")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="applied_coupons")
    coupon_type = models.CharField(max_length=16, choices=CouponType.choices)
    amount = models.DecimalField(**amount_field_kwargs(), null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    percentage_rate = rate_field(null=True, blank=True)
    frequency = models.CharField(max_length=16, choices=CouponFrequency.choices)
    frequency_duration = models.PositiveIntegerField(null=True, blank=True)
    amount_remaining = models.DecimalField(
        **amount_field_kwargs(), null=True, blank=True, help_text="A once fixed coupon: what is left to use."
    )
    frequency_duration_remaining = models.PositiveIntegerField(
        null=True, blank=True, help_text="A recurring coupon: invoices it still reduces."
    )
    status = models.CharField(max_length=16, choices=CouponStatus.choices, default=CouponStatus.ACTIVE)
    terminated_at = models.DateTimeField(null=True, blank=True)
    reusable = models.BooleanField(
        default=True, help_text="The coupon's, when applied: if not, a database constraint keeps it once per customer."
    )
    used_up = models.BooleanField(
        default=False, help_text="Terminated because invoices used all of it (a void gives it back)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_remaining__isnull=True) | Q(amount_remaining__gte=0),
                name="applied_coupon_remaining_not_negative",
            ),
            # A coupon that is not reusable is applied to a customer once, ever (besides the check
            # under the customer's lock, which names the field).
            models.UniqueConstraint(
                fields=["customer", "coupon"], condition=Q(reusable=False), name="applied_coupon_once_unless_reusable"
            ),
        ]
        indexes = [models.Index(fields=["customer", "status"], name="applied_coupon_customer")]

    def __str__(self) -> str:
        return f"{self.coupon} for {self.customer}"


class CouponApplication(models.Model):
    """What an applied coupon took off one invoice (written at finalization)."""

    applied_coupon = models.ForeignKey(AppliedCoupon, on_delete=models.PROTECT, related_name="applications")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="coupon_applications")
    amount = models.DecimalField(**amount_field_kwargs())
    reversed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["applied_coupon", "invoice"], name="coupon_applied_once_per_invoice"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="coupon_application_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of {self.applied_coupon_id} on invoice {self.invoice_id}"

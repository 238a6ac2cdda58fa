"""Subscriptions: a customer on a plan version."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from billing.engine.vocabulary import BillingTime, OnTerminationInvoice, SubscriptionStatus
from billing.models.catalog import Plan, Promotion
from customers.models import Customer


class Subscription(models.Model):
    """A customer on a plan version from `subscription_at` until it is terminated."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    external_id = models.CharField(
        max_length=255, help_text="Unique among live subscriptions; a plan change keeps it (as in Lago)."
    )
    name = models.CharField(max_length=255, blank=True, help_text="Its own name (Lago's); empty: the plan's.")
    subscription_at = models.DateTimeField(help_text="Start of the subscription.")
    billing_time = models.CharField(max_length=16, choices=BillingTime.choices, default=BillingTime.CALENDAR)
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    terminated_at = models.DateTimeField(null=True, blank=True)
    promotion = models.ForeignKey(
        Promotion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="subscriptions",
        help_text="Copied from the plan at creation (or from the previous plan's subscription).",
    )
    promotion_start = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Where the promotion window starts: subscription_at, or the first subscription's start "
        "after plan changes (a trial is given once).",
    )
    previous = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="next",
        help_text="The subscription this one replaced on a plan change.",
    )
    trial_end_announced_at = models.DateTimeField(
        null=True, blank=True, help_text="When subscription.trial_ended was announced (once)."
    )
    ending_at = models.DateTimeField(
        null=True, blank=True, help_text="Lago's ending_at: the clock terminates the subscription at this moment."
    )
    canceled_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was canceled: ended while pending, before it started (Lago's)."
    )
    on_termination_invoice = models.CharField(
        max_length=16,
        choices=OnTerminationInvoice.choices,
        default=OnTerminationInvoice.GENERATE,
        help_text="skip: its termination bills no closing invoice for the final part of its period (Lago's).",
    )
    on_termination_credit_note = models.CharField(
        max_length=16,
        blank=True,
        help_text="Lago's on_termination_credit_note as set (only `skip`: no credit note is issued on termination).",
    )
    next_plan = models.ForeignKey(
        Plan,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="A downgrade staged to the end of the current period (Lago's next_plan_code).",
    )
    next_name = models.CharField(max_length=255, blank=True, help_text="The name the downgraded subscription takes.")
    next_ending_at = models.DateTimeField(null=True, blank=True, help_text="The downgraded subscription's ending_at.")
    downgrade_at = models.DateTimeField(
        null=True, blank=True, help_text="When the staged downgrade applies: the end of the current period."
    )
    historical_usage_amount_cents = models.BigIntegerField(
        default=0, help_text="Lago's external_historical_usage_amount_cents (lifetime usage), as set through the API."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-subscription_at", "id"]
        indexes = [
            models.Index(fields=["customer", "status"], name="subscription_customer_status"),
            models.Index(fields=["external_id"], name="subscription_external_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~Q(status__in=["terminated", "canceled"]),
                name="subscription_external_id_live_unique",
            ),
            models.CheckConstraint(
                condition=Q(terminated_at__isnull=True) | Q(terminated_at__gte=models.F("subscription_at")),
                name="subscription_terminates_after_start",
            ),
            models.CheckConstraint(
                condition=Q(ending_at__isnull=True) | Q(ending_at__gt=models.F("subscription_at")),
                name="subscription_ends_after_start",
            ),
            # A staged downgrade has its plan and its date, or neither.
            models.CheckConstraint(
                condition=Q(next_plan__isnull=True, downgrade_at__isnull=True)
                | Q(next_plan__isnull=False, downgrade_at__isnull=False),
                name="subscription_downgrade_plan_and_date",
            ),
            models.CheckConstraint(
                condition=Q(canceled_at__isnull=True) | Q(status="canceled"),
                name="subscription_canceled_at_if_canceled",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id

"""Usage alerts on subscriptions (DESIGN §6 "Usage alerts"; Lago's `alerts`).

An alert watches one value of a subscription's open period: its usage amount in cents
(`current_usage_amount`) or one metric's units (`billable_metric_current_usage_units`).
`check_alerts` compares the value with the alert's `previous_value` and records each threshold
crossed upward since, once per period: an AlertCrossing per (alert, period, value), unique in
the database, so a threshold cannot fire twice in a period however often the check runs.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Q

from billing.engine.vocabulary import AlertType
from billing.models.subscriptions import Subscription
from metering.models import BillableMetric


def value_field(**kwargs: Any) -> models.DecimalField[Decimal, Decimal]:
    """A usage value: units (up to 6 decimals) or an amount in cents."""
    return models.DecimalField(max_digits=24, decimal_places=6, **kwargs)


class Alert(models.Model):
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="alerts")
    alert_type = models.CharField(max_length=48, choices=AlertType.choices)
    code = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    metric = models.ForeignKey(BillableMetric, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts")
    previous_value = value_field(default=0, help_text="The value at the last check.")
    previous_period_start = models.DateTimeField(
        null=True, blank=True, help_text="The period the previous value was measured in (usage restarts each period)."
    )
    last_processed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["subscription", "code"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "code"], name="alert_code_per_subscription"),
            models.CheckConstraint(
                condition=Q(alert_type=AlertType.BILLABLE_METRIC_CURRENT_USAGE_UNITS, metric__isnull=False)
                | (~Q(alert_type=AlertType.BILLABLE_METRIC_CURRENT_USAGE_UNITS) & Q(metric__isnull=True)),
                name="alert_metric_for_units_only",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.code


class AlertThreshold(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="thresholds")
    code = models.CharField(max_length=255, blank=True)
    value = value_field()
    recurring = models.BooleanField(default=False)

    class Meta:
        ordering = ["alert", "recurring", "value"]
        constraints = [
            models.CheckConstraint(condition=Q(value__gt=0), name="alert_threshold_positive"),
            models.UniqueConstraint(
                fields=["alert"], condition=Q(recurring=True), name="alert_one_recurring_threshold"
            ),
            models.UniqueConstraint(
                fields=["alert", "value"], condition=Q(recurring=False), name="alert_threshold_value_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code or self.value}{' (recurring)' if self.recurring else ''}"


class TriggeredAlert(models.Model):
    """One check that found thresholds crossed (Lago's `triggered_alert`)."""

    alert = models.ForeignKey(Alert, on_delete=models.SET_NULL, null=True, blank=True, related_name="triggered")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="triggered_alerts")
    alert_code = models.CharField(max_length=255)
    alert_name = models.CharField(max_length=255, blank=True)
    alert_type = models.CharField(max_length=48, choices=AlertType.choices)
    metric_code = models.CharField(max_length=255, blank=True)
    period_start = models.DateTimeField()
    current_value = value_field()
    previous_value = value_field()
    triggered_at = models.DateTimeField()

    class Meta:
        ordering = ["-triggered_at", "-id"]

    def __str__(self) -> str:
        return f"{self.alert_code} at {self.current_value}"


class AlertCrossing(models.Model):
    """A threshold crossed in a period: at most once per alert, period and value."""

    triggered = models.ForeignKey(TriggeredAlert, on_delete=models.CASCADE, related_name="crossings")
    # SET_NULL, as TriggeredAlert.alert: deleting an alert keeps what it triggered, crossings included.
    alert = models.ForeignKey(Alert, on_delete=models.SET_NULL, null=True, blank=True, related_name="crossings")
    period_start = models.DateTimeField()
    code = models.CharField(max_length=255, blank=True)
    value = value_field()
    recurring = models.BooleanField(default=False)

    class Meta:
        ordering = ["triggered", "value"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "period_start", "value"], name="alert_threshold_fires_once_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code or self.value}"

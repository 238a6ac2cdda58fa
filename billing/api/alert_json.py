"""Usage alerts as Lago shows them: `alert` (the API's, lago-python-client's AlertResponse) and
`triggered_alert` (the alert.triggered webhook's object)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from billing.api.usage import LAGO_AGGREGATIONS
from billing.models import Alert, TriggeredAlert
from config.api import ORGANIZATION_ID, iso_datetime
from metering.models import BillableMetric

ALERT_DIRECTION = "increasing"  # subscription alerts watch usage going up (Lago's wallet alerts go down)


def value_str(value: Decimal) -> str:
    """A threshold or usage value as Lago writes it: a decimal string, without trailing zeros."""
    text = format(value.normalize(), "f")
    return text if "." in text else f"{text}.0"


def triggered_alert_json(triggered: TriggeredAlert) -> dict[str, Any]:
    subscription = triggered.subscription
    return {
        "lago_id": str(triggered.pk),
        "lago_alert_id": str(triggered.alert_id) if triggered.alert_id else None,
        "lago_subscription_id": str(subscription.pk),
        "external_subscription_id": subscription.external_id,
        "external_customer_id": subscription.customer.external_id,
        "billable_metric_code": triggered.metric_code or None,
        "alert_name": triggered.alert_name or None,
        "alert_code": triggered.alert_code,
        "alert_type": triggered.alert_type,
        "current_value": value_str(triggered.current_value),
        "previous_value": value_str(triggered.previous_value),
        "crossed_thresholds": [
            {"code": crossing.code or None, "value": value_str(crossing.value), "recurring": crossing.recurring}
            for crossing in triggered.crossings.all()
        ],
        "triggered_at": iso_datetime(triggered.triggered_at),
    }


def billable_metric_json(metric: BillableMetric) -> dict[str, Any]:
    """A metric as Lago's BillableMetricSerializer shows it (no filters, rounding or expressions here)."""
    return {
        "lago_id": str(metric.pk),
        "name": metric.name,
        "code": metric.code,
        "description": metric.description or None,
        "aggregation_type": LAGO_AGGREGATIONS[metric.aggregation],
        "weighted_interval": None,
        "recurring": False,
        "rounding_function": None,
        "rounding_precision": None,
        "created_at": iso_datetime(metric.created_at),
        "field_name": metric.field or None,
        "expression": None,
        "filters": [],
    }


def alerts_for_json() -> QuerySet[Alert]:
    return Alert.objects.select_related("subscription", "metric").prefetch_related("thresholds")


def alert_json(alert: Alert) -> dict[str, Any]:
    """Lago's `alert` (V1::UsageMonitoring::AlertSerializer); read it with `alerts_for_json()`."""
    return {
        "lago_id": str(alert.pk),
        "lago_organization_id": ORGANIZATION_ID,
        "external_subscription_id": alert.subscription.external_id,
        "lago_wallet_id": None,
        "wallet_code": None,
        "alert_type": alert.alert_type,
        "code": alert.code,
        "name": alert.name or None,
        "direction": ALERT_DIRECTION,
        "previous_value": value_str(alert.previous_value),
        "last_processed_at": iso_datetime(alert.last_processed_at),
        "thresholds": [
            {"code": threshold.code or None, "value": value_str(threshold.value), "recurring": threshold.recurring}
            for threshold in alert.thresholds.all()
        ],
        "created_at": iso_datetime(alert.created_at),
        "billable_metric": None if alert.metric is None else billable_metric_json(alert.metric),
    }

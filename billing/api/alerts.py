"""/api/v1/subscriptions/<external_id>/alerts (lago-python-client's create_alerts and
delete_alerts; Lago's Api::V1::Subscriptions::AlertsController):

- `POST …/alerts` with {"alerts": [...]} creates them all or none (errors "alerts.0.code"),
  answering {"alerts": [...]}; with {"alert": {...}} one alert, answering {"alert": {...}}.
- `GET …/alerts` lists them, paginated (`page`, `per_page`, `meta`).
- `GET`, `PUT`, `DELETE …/alerts/<code>`: one alert (PUT replaces the thresholds when given).
- `DELETE …/alerts` deletes them all, answering them (Lago answers an empty 200).

The subscription is the one with that external id in `subscription_status` (or `status`),
active by default, as Lago finds it. The rules are billing.services.alerts.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.alert_json import alert_json, alerts_for_json
from billing.api.invoices import PageMeta
from billing.engine.vocabulary import AlertType, SubscriptionStatus
from billing.models import Alert, Subscription
from billing.services.alerts import (
    TYPE_FIXED,
    AlertError,
    AlertInput,
    ThresholdInput,
    alert_create,
    alert_delete,
    alert_update,
    alerts_create,
    alerts_delete_all,
)
from config.api import (
    ApiView,
    StrictCharField,
    StrictSerializer,
    not_found,
    page_numbers,
    paginated,
    unknown_filters,
    validation_error,
)

# flat_errors lives in config.api (the subscriptions API needs it without importing this module,
# which imports the invoices API, which imports the subscriptions API); re-exported for the
# modules that import it from here.
from config.api import flat_errors as flat_errors

BAD_STATUS = "must be one of: {choices}"
ALERTS_OR_ALERT = 'send "alerts" (a list) or "alert" (one), not both'
ALERTS_REQUIRED = 'is required: a list of alerts (or "alert": one alert)'
TOO_MANY_ALERTS = "at most {n} alerts per request"
VALUE_NOT_TEXT = 'must be a decimal number written as a string, e.g. "1000" or "12.5"'
MAX_ALERTS_PER_REQUEST = 100

STATUS_PARAMETERS = [
    OpenApiParameter(
        "subscription_status",
        str,
        enum=SubscriptionStatus.values,
        description="The subscription with this external id in this status (default active).",
    ),
    OpenApiParameter("status", str, enum=SubscriptionStatus.values, description="Same as subscription_status."),
]


# --- input -------------------------------------------------------------------------------------------


@extend_schema_field(
    {"type": "string", "example": "1000", "description": "A decimal number > 0 (a JSON integer is read too)."}
)
class ThresholdValueField(serializers.Field[Any, Any, Any, Any]):
    """A threshold value: a string (as Lago's SDK sends it) or a JSON integer; never a float, whose
    decimal value is not what was written. The service reads the number."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, str | int):
            raise serializers.ValidationError(VALUE_NOT_TEXT)
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class ThresholdInputSerializer(StrictSerializer):
    code = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    value = ThresholdValueField()
    recurring = serializers.BooleanField(required=False, allow_null=True)


class AlertInputSerializer(StrictSerializer):
    alert_type = serializers.ChoiceField(choices=AlertType.choices)
    code = StrictCharField(max_length=255)
    name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    billable_metric_code = StrictCharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    thresholds = ThresholdInputSerializer(many=True)


class AlertUpdateSerializer(StrictSerializer):
    alert_type = serializers.ChoiceField(
        choices=AlertType.choices, required=False, allow_null=True, help_text="Only the alert's own type."
    )
    code = StrictCharField(max_length=255, required=False)
    name = StrictCharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    billable_metric_code = StrictCharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    thresholds = ThresholdInputSerializer(many=True, required=False, help_text="Replace all the thresholds.")


class AlertsCreateEnvelope(StrictSerializer):
    alerts = AlertInputSerializer(many=True, required=False, help_text="Several alerts, created all or none.")
    alert = AlertInputSerializer(required=False, help_text="One alert.")


class AlertUpdateEnvelope(StrictSerializer):
    alert = AlertUpdateSerializer()


# --- output ------------------------------------------------------------------------------------------


class ThresholdOutput(serializers.Serializer[Any]):
    code = serializers.CharField(allow_null=True)
    value = serializers.CharField()
    recurring = serializers.BooleanField()


class AlertMetricOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    name = serializers.CharField()
    code = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    aggregation_type = serializers.ChoiceField(
        choices=["count_agg", "sum_agg", "max_agg", "latest_agg", "unique_count_agg"]
    )
    weighted_interval = serializers.CharField(allow_null=True)
    recurring = serializers.BooleanField()
    rounding_function = serializers.CharField(allow_null=True)
    rounding_precision = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    # DRF's Field has a `field_name` attribute too; the metaclass takes this declaration first.
    field_name = serializers.CharField(allow_null=True)  # type: ignore[assignment]
    expression = serializers.CharField(allow_null=True)
    filters = serializers.ListField(child=serializers.DictField())


class AlertOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    lago_organization_id = serializers.CharField()
    external_subscription_id = serializers.CharField()
    lago_wallet_id = serializers.CharField(allow_null=True)
    wallet_code = serializers.CharField(allow_null=True)
    alert_type = serializers.ChoiceField(choices=AlertType.choices)
    code = serializers.CharField()
    name = serializers.CharField(allow_null=True)
    direction = serializers.ChoiceField(choices=["increasing"])
    previous_value = serializers.CharField()
    last_processed_at = serializers.DateTimeField(allow_null=True)
    thresholds = ThresholdOutput(many=True)
    created_at = serializers.DateTimeField()
    billable_metric = AlertMetricOutput(allow_null=True)


class AlertEnvelope(serializers.Serializer[Any]):
    alert = AlertOutput()


class AlertsEnvelope(serializers.Serializer[Any]):
    alerts = AlertOutput(many=True)


class AlertsCreatedEnvelope(serializers.Serializer[Any]):
    alerts = AlertOutput(many=True, required=False, help_text='When "alerts" was sent.')
    alert = AlertOutput(required=False, help_text='When "alert" was sent.')


class AlertListEnvelope(serializers.Serializer[Any]):
    alerts = AlertOutput(many=True)
    meta = PageMeta()


# --- helpers -------------------------------------------------------------------------------------------


def _unprefixed(errors: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    """Errors of one enveloped object named by its own fields ("alert.code" → "code")."""
    return {(name[len(prefix) + 1 :] if name.startswith(prefix + ".") else name): m for name, m in errors.items()}


def _thresholds(items: list[dict[str, Any]]) -> list[ThresholdInput]:
    return [ThresholdInput(value=t["value"], code=t.get("code"), recurring=t.get("recurring")) for t in items]


def _alert_input(data: dict[str, Any]) -> AlertInput:
    return AlertInput(
        alert_type=data["alert_type"],
        code=data["code"],
        name=data.get("name"),
        billable_metric_code=data.get("billable_metric_code"),
        thresholds=_thresholds(data["thresholds"]),
    )


def find_subscription(request: Request, external_id: str) -> Subscription | Response:
    """The subscription the path names, in the status asked for (active by default), as Lago:
    the live one first, then the latest terminated."""
    params = request.query_params
    status = params.get("subscription_status") or params.get("status") or SubscriptionStatus.ACTIVE
    if status not in SubscriptionStatus.values:
        name = "subscription_status" if params.get("subscription_status") else "status"
        return validation_error({name: [BAD_STATUS.format(choices=", ".join(SubscriptionStatus.values))]})
    subscription = (
        Subscription.objects.filter(external_id=external_id, status=status)
        .order_by(F("terminated_at").desc(nulls_first=True), "-subscription_at", "-id")
        .first()
    )
    return not_found("subscription") if subscription is None else subscription


def _answer(alert: Alert) -> Response:
    return Response({"alert": alert_json(alerts_for_json().get(pk=alert.pk))})


def _many(alerts: list[Alert]) -> list[dict[str, Any]]:
    found = {a.pk: a for a in alerts_for_json().filter(pk__in=[a.pk for a in alerts])}
    return [alert_json(found[a.pk]) for a in alerts]


class SubscriptionAlertsView(ApiView):
    @extend_schema(
        operation_id="create_subscription_alerts",
        summary="Create usage alerts on a subscription (all or none)",
        parameters=STATUS_PARAMETERS,
        request=AlertsCreateEnvelope,
        responses={200: AlertsCreatedEnvelope},
    )
    def post(self, request: Request, external_id: str) -> Response:
        subscription = find_subscription(request, external_id)
        if isinstance(subscription, Response):
            return subscription
        single = isinstance(request.data, dict) and "alert" in request.data
        if single and "alerts" in request.data:
            return validation_error({"alerts": [ALERTS_OR_ALERT]})
        envelope = AlertsCreateEnvelope(data=request.data)
        if not envelope.is_valid():
            errors = flat_errors(envelope.errors)
            return validation_error(_unprefixed(errors, "alert") if single else errors)
        data = envelope.validated_data
        try:
            if "alert" in data:
                alert = alert_create(subscription=subscription, alert=_alert_input(data["alert"]))
                return _answer(alert)
            if "alerts" not in data:
                return validation_error({"alerts": [ALERTS_REQUIRED]})
            if len(data["alerts"]) > MAX_ALERTS_PER_REQUEST:
                return validation_error({"alerts": [TOO_MANY_ALERTS.format(n=MAX_ALERTS_PER_REQUEST)]})
            alerts = alerts_create(subscription=subscription, alerts=[_alert_input(a) for a in data["alerts"]])
        except AlertError as exc:
            return validation_error(exc.errors)
        return Response({"alerts": _many(alerts)})

    @extend_schema(
        operation_id="list_subscription_alerts",
        summary="List a subscription's usage alerts, paginated",
        parameters=[*STATUS_PARAMETERS, OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: AlertListEnvelope},
    )
    def get(self, request: Request, external_id: str) -> Response:
        subscription = find_subscription(request, external_id)
        if isinstance(subscription, Response):
            return subscription
        paging = page_numbers(request.query_params)
        # The subscription's status picks which subscription the path names (find_subscription).
        errors = (paging if isinstance(paging, dict) else {}) | unknown_filters(
            request.query_params, ("subscription_status", "status")
        )
        if errors or isinstance(paging, dict):
            return validation_error(errors)
        page, per_page = paging
        rows = alerts_for_json().filter(subscription=subscription).order_by("created_at", "id")
        return Response(paginated("alerts", rows, page, per_page, alert_json))

    @extend_schema(
        operation_id="destroy_subscription_alerts",
        summary="Delete every usage alert of a subscription (answers them)",
        parameters=STATUS_PARAMETERS,
        responses={200: AlertsEnvelope},
    )
    def delete(self, request: Request, external_id: str) -> Response:
        subscription = find_subscription(request, external_id)
        if isinstance(subscription, Response):
            return subscription
        answer = [
            alert_json(a) for a in alerts_for_json().filter(subscription=subscription).order_by("created_at", "id")
        ]
        alerts_delete_all(subscription=subscription)
        return Response({"alerts": answer})


class SubscriptionAlertView(ApiView):
    def _alert(self, request: Request, external_id: str, code: str) -> Alert | Response:
        subscription = find_subscription(request, external_id)
        if isinstance(subscription, Response):
            return subscription
        alert = alerts_for_json().filter(subscription=subscription, code=code).first()
        return not_found("alert") if alert is None else alert

    @extend_schema(
        operation_id="find_subscription_alert",
        summary="Fetch one usage alert by its code",
        parameters=STATUS_PARAMETERS,
        responses={200: AlertEnvelope},
    )
    def get(self, request: Request, external_id: str, code: str) -> Response:
        alert = self._alert(request, external_id, code)
        return alert if isinstance(alert, Response) else Response({"alert": alert_json(alert)})

    @extend_schema(
        operation_id="update_subscription_alert",
        summary="Change a usage alert's code, name, metric or thresholds",
        parameters=STATUS_PARAMETERS,
        request=AlertUpdateEnvelope,
        responses={200: AlertEnvelope},
    )
    def put(self, request: Request, external_id: str, code: str) -> Response:
        alert = self._alert(request, external_id, code)
        if isinstance(alert, Response):
            return alert
        envelope = AlertUpdateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(_unprefixed(flat_errors(envelope.errors), "alert"))
        data = envelope.validated_data["alert"]
        if data.get("alert_type") not in (None, alert.alert_type):
            return validation_error({"alert_type": [TYPE_FIXED]})
        try:
            alert = alert_update(
                alert=alert,
                code=data.get("code"),
                name=(data.get("name") or "") if "name" in data else None,
                billable_metric_code=data.get("billable_metric_code") or None,
                thresholds=_thresholds(data["thresholds"]) if "thresholds" in data else None,
            )
        except AlertError as exc:
            return validation_error(exc.errors)
        return _answer(alert)

    @extend_schema(
        operation_id="destroy_subscription_alert",
        summary="Delete a usage alert (what it triggered stays)",
        parameters=STATUS_PARAMETERS,
        responses={200: AlertEnvelope},
    )
    def delete(self, request: Request, external_id: str, code: str) -> Response:
        alert = self._alert(request, external_id, code)
        if isinstance(alert, Response):
            return alert
        answer = alert_json(alert)
        alert_delete(alert=alert)
        return Response({"alert": answer})

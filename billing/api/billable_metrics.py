"""/api/v1/billable_metrics (lago-python-client's BillableMetricClient): create, find, find_all,
update, destroy, each metric named by its code as in Lago.

Lago's fields are read into the catalog's (DESIGN §4) and written through the service
`manage.py load_catalog` uses (billing.services.catalog.metric_save), under the same rules: a
metric billed on subscribed plans cannot change how it bills (`aggregation_type`, `field_name`:
422 naming the field; Lago ignores such changes silently), and one billed by a plan or with
events cannot change its code (events name it).

`aggregation_type`: count_agg, sum_agg, max_agg, latest_agg, unique_count_agg (our count, sum,
max, latest, unique_count); Lago's weighted_sum_agg and custom_agg are refused (422 naming the
value). Recurring metrics, rounding, weighted intervals, expressions and filters are not
supported: `recurring`, `rounding_function`, `rounding_precision`, `weighted_interval`,
`expression` and `filters` are accepted only absent, null, false or empty, otherwise 422 naming
them. (`billable_metrics.evaluate_expression` is not served: there are no expressions.)

Destroy deletes a metric nothing uses; one billed by any plan version, or with events, alerts or
invoice lines, is refused with 422 (Lago soft-deletes it and detaches its charges from plans).
The list is Lago's: newest first, paginated, no filters (any other query parameter is 422).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.alert_json import billable_metric_json
from billing.api.invoices import PageMeta
from billing.api.usage import LAGO_AGGREGATIONS
from billing.engine.catalog import CatalogError
from billing.services.catalog import ALREADY_EXISTS, metric_destroy, metric_save, parse_stored_catalog
from config.api import (
    ApiView,
    StrictCharField,
    StrictSerializer,
    UnsupportedField,
    envelope_errors,
    not_found,
    page_numbers,
    paginated,
    unknown_filters,
    validation_error,
)
from metering.models import BillableMetric
from metering.vocabulary import Aggregation

AGGREGATIONS = {lago: ours for ours, lago in LAGO_AGGREGATIONS.items()}
UNSUPPORTED_AGGREGATION = "{value!r} is not supported: metrics aggregate by " + ", ".join(AGGREGATIONS)
UNKNOWN_AGGREGATION = "must be one of " + ", ".join(AGGREGATIONS) + " (got {value!r})"
REQUIRED = "is required"
LAGO_ONLY_AGGREGATIONS = ("weighted_sum_agg", "custom_agg")
# The catalog's metric fields, as the API names them.
API_FIELDS = {
    "code": "code",
    "name": "name",
    "aggregation": "aggregation_type",
    "field": "field_name",
    "description": "description",
}


class MetricInput(StrictSerializer):
    """Lago's BillableMetric input; on an update every field is optional (absent or null: unchanged)."""

    name = StrictCharField(required=False, allow_null=True, allow_blank=True)
    code = StrictCharField(required=False, allow_null=True, allow_blank=True)
    description = StrictCharField(required=False, allow_null=True, allow_blank=True)
    aggregation_type = StrictCharField(required=False, allow_null=True, allow_blank=True)
    # DRF's Field has a `field_name` attribute; a declared field of that name is still a field.
    field_name = StrictCharField(required=False, allow_null=True, allow_blank=True)  # type: ignore[assignment]
    recurring = UnsupportedField("recurring metrics (carried from one period to the next) are not supported")
    rounding_function = UnsupportedField("the aggregated value is not rounded")
    rounding_precision = UnsupportedField("the aggregated value is not rounded")
    weighted_interval = UnsupportedField("weighted sums are not supported")
    expression = UnsupportedField("expressions are not supported")
    filters = UnsupportedField("metric filters (and charge filters) are not supported")

    def validate_aggregation_type(self, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if value in LAGO_ONLY_AGGREGATIONS:
            raise serializers.ValidationError(UNSUPPORTED_AGGREGATION.format(value=value))
        if value not in AGGREGATIONS:
            raise serializers.ValidationError(UNKNOWN_AGGREGATION.format(value=value))
        return AGGREGATIONS[value]


class MetricInputEnvelope(StrictSerializer):
    billable_metric = MetricInput()


class MetricOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    name = serializers.CharField()
    code = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    aggregation_type = serializers.CharField()
    weighted_interval = serializers.CharField(allow_null=True)
    recurring = serializers.BooleanField()
    rounding_function = serializers.CharField(allow_null=True)
    rounding_precision = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    field_name = serializers.CharField(allow_null=True)  # type: ignore[assignment]
    expression = serializers.CharField(allow_null=True)
    filters = serializers.ListField(child=serializers.DictField(), help_text="Always empty: no filters here.")


class MetricEnvelope(serializers.Serializer[Any]):
    billable_metric = MetricOutput()


class MetricListEnvelope(serializers.Serializer[Any]):
    billable_metrics = MetricOutput(many=True)
    meta = PageMeta()


def catalog_errors(exc: CatalogError, fields: dict[str, str], prefix: str) -> dict[str, list[str]]:
    """The catalog's "path: message" errors by the API's field names: `prefix` (the catalog path
    of the object, "billable_metrics[0]") is cut and each field renamed by `fields`."""
    out: dict[str, list[str]] = {}
    for line in exc.errors:
        path, _, message = line.partition(": ")
        field = path.removeprefix(prefix).removeprefix(".")
        out.setdefault(fields.get(field, field or "billable_metric"), []).append(message)
    return out


def _input(request: Request) -> dict[str, Any] | Response:
    envelope = MetricInputEnvelope(data=request.data)
    if not envelope.is_valid():
        return validation_error(envelope_errors(envelope.errors, "billable_metric"))
    data: dict[str, Any] = envelope.validated_data["billable_metric"]
    return data


def _save(document: dict[str, Any], *, stored_code: str | None) -> Response:
    """Validate the metric (as a catalog's) and save it through the catalog's service."""
    try:
        metric = parse_stored_catalog({"billable_metrics": [document]}).metrics[0]
        saved, _ = metric_save(metric=metric, stored_code=stored_code, new=stored_code is None)
    except CatalogError as exc:
        errors = catalog_errors(exc, API_FIELDS, "billable_metrics[0]")
        code = document["code"]
        if code != stored_code and "code" not in errors and BillableMetric.objects.filter(code=code).exists():
            errors["code"] = [ALREADY_EXISTS.format(what="billable metric", code=code)]
        if document["aggregation"] is None:  # not "must be one of count, …": our names, not Lago's
            errors["aggregation_type"] = [REQUIRED]
        return validation_error(errors)
    return Response({"billable_metric": billable_metric_json(saved)})


class BillableMetricsView(ApiView):
    @extend_schema(
        operation_id="create_billable_metric",
        summary="Create a billable metric (what events are counted, summed or counted distinctly)",
        request=MetricInputEnvelope,
        responses={200: MetricEnvelope},
        examples=[
            OpenApiExample(
                "Monthly tracked users",
                value={
                    "billable_metric": {
                        "name": "Monthly tracked users",
                        "code": "mtu",
                        "aggregation_type": "unique_count_agg",
                        "field_name": "user_id",
                    }
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = _input(request)
        if isinstance(data, Response):
            return data
        document = {
            "code": data.get("code"),
            "name": data.get("name"),
            "aggregation": data.get("aggregation_type"),
            "field": data.get("field_name") or None,
            "description": data.get("description") or "",
        }
        return _save(document, stored_code=None)

    @extend_schema(
        operation_id="list_billable_metrics",
        summary="List the billable metrics, newest first, paginated",
        parameters=[OpenApiParameter("page", int), OpenApiParameter("per_page", int)],
        responses={200: MetricListEnvelope},
    )
    def get(self, request: Request) -> Response:
        refused = unknown_filters(request.query_params, [])
        paging = page_numbers(request.query_params)
        if refused or isinstance(paging, dict):
            return validation_error({**refused, **(paging if isinstance(paging, dict) else {})})
        page, per_page = paging
        rows = BillableMetric.objects.order_by("-created_at", "id")
        return Response(paginated("billable_metrics", rows, page, per_page, billable_metric_json))


class BillableMetricDetailView(ApiView):
    @extend_schema(
        operation_id="find_billable_metric",
        summary="Fetch a billable metric by its code",
        responses={200: MetricEnvelope},
    )
    def get(self, request: Request, code: str) -> Response:
        metric = BillableMetric.objects.filter(code=code).first()
        return (
            not_found("billable_metric")
            if metric is None
            else Response({"billable_metric": billable_metric_json(metric)})
        )

    @extend_schema(
        operation_id="update_billable_metric",
        summary="Change a billable metric (what is sent); one billed on subscribed plans keeps how it bills",
        request=MetricInputEnvelope,
        responses={200: MetricEnvelope},
    )
    def put(self, request: Request, code: str) -> Response:
        metric = BillableMetric.objects.filter(code=code).first()
        if metric is None:
            return not_found("billable_metric")
        data = _input(request)
        if isinstance(data, Response):
            return data
        aggregation = data.get("aggregation_type") or metric.aggregation
        field = data.get("field_name")
        if field is None:  # unchanged, unless the new aggregation reads no property
            field = "" if aggregation == Aggregation.COUNT and data.get("aggregation_type") else metric.field
        document = {
            "code": data.get("code") or metric.code,
            "name": data.get("name") if data.get("name") is not None else metric.name,
            "aggregation": aggregation,
            "field": field or None,
            "description": data.get("description") if data.get("description") is not None else metric.description,
        }
        return _save(document, stored_code=metric.code)

    @extend_schema(
        operation_id="destroy_billable_metric",
        summary="Delete a billable metric nothing uses (no plan bills it, no events)",
        responses={200: MetricEnvelope},
    )
    def delete(self, request: Request, code: str) -> Response:
        metric = BillableMetric.objects.filter(code=code).first()
        if metric is None:
            return not_found("billable_metric")
        answer = {"billable_metric": billable_metric_json(metric)}
        try:
            metric_destroy(metric=metric)
        except CatalogError as exc:
            return validation_error(catalog_errors(exc, API_FIELDS, ""))
        return Response(answer)

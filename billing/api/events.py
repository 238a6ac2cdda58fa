"""POST /api/v1/events, POST /api/v1/events/batch, GET /api/v1/events/<transaction_id>.

The API edge for usage: it parses the body, calls billing.services.events.events_ingest (owners,
validation, the late flag, storage) and renders the stored events. Bodies and responses follow
Lago's envelopes ({"event": {...}}, {"events": [...]}) so Lago's SDKs work unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from billing.engine.vocabulary import SubscriptionStatus
from billing.models import Subscription
from billing.selectors.event_owners import EventRefs, active_subscription_ids, key_and_event_refs
from billing.services.events import EventsInvalid, IngestedEvent, events_ingest
from config.api import (
    ApiView,
    StrictSerializer,
    envelope_errors,
    error_response,
    iso_datetime,
    not_found,
    validation_error,
)
from customers.authentication import ApiKeyAuthentication
from metering.ingest import EventConflict, StoredEvent
from metering.models import BillableMetric, Event, EventKey

BATCH_NOT_A_LIST = "must be a list of events"
BATCH_EMPTY = "must contain at least one event"
BATCH_TOO_LARGE = "must contain at most {n} events (BILLING_EVENTS_BATCH_MAX)"
AMBIGUOUS_TRANSACTION = "several customers used this transaction_id; pass external_customer_id"


@lru_cache(maxsize=4096)
def _utc_text(moment: datetime) -> str:
    """ISO 8601 with Z; cached, as a batch's events mostly share a few timestamps."""
    return iso_datetime(moment)


def event_json(event: StoredEvent, *, external_customer_id: str, fallback_subscription_id: str = "") -> dict[str, Any]:
    return {
        "lago_id": str(event.pk),
        "transaction_id": event.transaction_id,
        "lago_customer_id": str(event.customer_id),
        "external_customer_id": external_customer_id,
        "lago_subscription_id": None,
        "external_subscription_id": event.external_subscription_id or fallback_subscription_id,
        "code": event.metric_code,
        "timestamp": _utc_text(event.timestamp),
        "properties": event.properties,
        "precise_total_amount_cents": None,
        "created_at": _utc_text(event.received_at),
        "is_late": event.is_late,
    }


def _ingest(
    payloads: list[Any], *, single: bool = False, refs: EventRefs | None = None
) -> list[dict[str, Any]] | Response:
    """Store the payloads; their JSON, or the error response (errors by index, or by field for
    a single event)."""
    try:
        ingested = events_ingest(payloads=payloads, now=timezone.now(), refs=refs)
    except EventsInvalid as exc:
        return validation_error(exc.errors["0"] if single else exc.errors)
    except EventConflict as exc:
        return error_response(
            409,
            "transaction_id_conflict",
            {"transaction_id": [f"already used for a different event: {', '.join(exc.transaction_ids)}"]},
        )
    return [_ingested_json(event) for event in ingested]


def _ingested_json(event: IngestedEvent) -> dict[str, Any]:
    return event_json(
        event.stored,
        external_customer_id=event.external_customer_id,
        fallback_subscription_id=event.fallback_subscription_id,
    )


class EventInput(serializers.Serializer[Any]):
    transaction_id = serializers.CharField(max_length=255, help_text="Your unique id; retries are idempotent.")
    external_customer_id = serializers.CharField(required=False, allow_null=True)
    external_subscription_id = serializers.CharField(required=False, allow_null=True)
    code = serializers.CharField(help_text="The billable metric code, e.g. mtu.")
    timestamp = serializers.CharField(
        required=False, allow_null=True, help_text="Unix seconds (int, float or string) or ISO 8601; default now."
    )
    properties = serializers.DictField(required=False, allow_null=True)


class EventEnvelope(serializers.Serializer[Any]):
    event = EventInput()


class BatchEnvelope(serializers.Serializer[Any]):
    events = EventInput(many=True)


class EventOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    transaction_id = serializers.CharField()
    lago_customer_id = serializers.CharField()
    external_customer_id = serializers.CharField()
    external_subscription_id = serializers.CharField()
    code = serializers.CharField()
    timestamp = serializers.DateTimeField()
    properties = serializers.DictField()
    created_at = serializers.DateTimeField()
    is_late = serializers.BooleanField()


class EventOutputEnvelope(serializers.Serializer[Any]):
    event = EventOutput()


class BatchOutputEnvelope(serializers.Serializer[Any]):
    events = EventOutput(many=True)


MTU_EVENT = {
    "transaction_id": "evt_2026_10_01_000001",
    "external_customer_id": "acme",
    "code": "mtu",
    "timestamp": 1790812800,
    "properties": {"user_id": "user_42"},
}
ERRORS_422 = OpenApiExample(
    "Invalid event",
    value={
        "status": 422,
        "error": "Unprocessable Entity",
        "code": "validation_errors",
        "error_details": {"0": {"properties.user_id": ["is required by metric 'mtu'"]}},
    },
    response_only=True,
    status_codes=["422"],
)


class FastJsonMixin:
    """orjson renders the response (every API request is parsed by orjson, config.parsers): a
    batch of 1,000 events is about 150 kB, where the standard library's json costs more than
    storing the events."""

    renderer_classes: Sequence[type[BaseRenderer]] = [ORJSONRenderer]
    # Storage is atomic by itself (one statement for one event, a transaction for a batch) and
    # validated before it; the answer is built from what was stored.
    atomic_writes = False


def _stored_response(request: Request, body: dict[str, Any]) -> HttpResponse:
    """The 200 answer of the event endpoints, rendered here as their renderer (orjson) would
    render it, with the media type negotiated: DRF's Response would render it through a template
    response and the renderer's context, some 4 % of a single event's CPU. The body holds only
    JSON's own types (event_json builds it), which orjson writes the same with or without the
    renderer's fallback for other types. Errors keep DRF's Response."""
    return HttpResponse(orjson.dumps(body), content_type=request.accepted_media_type)


def _single_event(body: Any) -> dict[str, Any] | None:
    return body["event"] if isinstance(body, dict) and isinstance(body.get("event"), dict) else None


def _batch_events(body: Any) -> list[Any] | None:
    """The batch's events, if the body holds a list of them no longer than the limit."""
    events = body.get("events") if isinstance(body, dict) else None
    if isinstance(events, list) and len(events) <= settings.BILLING_EVENTS_BATCH_MAX:
        return events
    return None


class KeyWithRefsView(FastJsonMixin, ApiView):
    """An events endpoint that reads the API key together with what its events name (owners,
    metrics) in one statement (billing.selectors.event_owners.key_and_event_refs): one round
    trip instead of three before storing.

    To read the owners with the key, the body is parsed while authenticating; an error in it is
    kept and raised once the key has been checked (post() calls raise_body_error()), so a
    request without a valid key is refused with 401 whatever its body, as on every other endpoint.
    """

    refs: EventRefs | None = None
    body_error: Exception | None = None

    def payloads(self, body: Any) -> list[Any] | None:
        """The payloads whose refs to read with the key; None if the body holds none to store."""
        raise NotImplementedError

    def get_authenticators(self) -> list[BaseAuthentication]:
        return [ApiKeyAuthentication(find=self._find_key)]

    def _find_key(self, key_hash: str) -> tuple[Any, ...] | None:
        try:
            payloads = self.payloads(self.request.data)
        except Exception as exc:  # whatever parsing raised, post() raises it: after authentication
            self.body_error = exc
            payloads = None
        key, refs = key_and_event_refs(key_hash=key_hash, payloads=payloads or [])
        self.refs = None if payloads is None else refs
        return key

    def raise_body_error(self) -> None:
        if self.body_error is not None:
            raise self.body_error


class EventCreateView(KeyWithRefsView):
    """One event: two round trips, one read (the API key with the event's owner and metric) and
    the statement that stores it."""

    def payloads(self, body: Any) -> list[Any] | None:
        event = _single_event(body)
        return None if event is None else [event]

    @extend_schema(
        operation_id="create_event",
        summary="Send one usage event",
        request=EventEnvelope,
        responses={200: EventOutputEnvelope},
        examples=[
            OpenApiExample("MTU event", value={"event": MTU_EVENT}, request_only=True),
            ERRORS_422,
        ],
    )
    def post(self, request: Request) -> HttpResponse:
        self.raise_body_error()
        event = _single_event(request.data)
        if event is None:
            return validation_error({"event": ["is required and must be an object"]})
        result = _ingest([event], single=True, refs=self.refs)
        if isinstance(result, Response):
            return result
        return _stored_response(request, {"event": result[0]})


class EventBatchView(KeyWithRefsView):
    """Up to BILLING_EVENTS_BATCH_MAX events: one read (the API key with every owner and metric
    the batch names), then the storing statement and its commit."""

    def payloads(self, body: Any) -> list[Any] | None:
        return _batch_events(body)

    @extend_schema(
        operation_id="create_batch_events",
        summary="Send up to BILLING_EVENTS_BATCH_MAX events; stored all or none",
        request=BatchEnvelope,
        responses={200: BatchOutputEnvelope},
        examples=[
            OpenApiExample(
                "Two MTU events",
                value={
                    "events": [MTU_EVENT, {**MTU_EVENT, "transaction_id": "evt_2", "properties": {"user_id": "u7"}}]
                },
                request_only=True,
            ),
            ERRORS_422,
        ],
    )
    def post(self, request: Request) -> HttpResponse:
        self.raise_body_error()
        body = request.data
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            return validation_error({"events": [BATCH_NOT_A_LIST]})
        if not events:
            return validation_error({"events": [BATCH_EMPTY]})
        limit = settings.BILLING_EVENTS_BATCH_MAX
        if len(events) > limit:
            return validation_error({"events": [BATCH_TOO_LARGE.format(n=limit)]})
        result = _ingest(events, refs=self.refs)
        if isinstance(result, Response):
            return result
        return _stored_response(request, {"events": result})


class EventDetailView(ApiView):
    @extend_schema(
        operation_id="find_event",
        summary="Fetch one stored event by transaction id",
        parameters=[OpenApiParameter("external_customer_id", str, description="The customer who sent it.")],
        responses={200: EventOutputEnvelope},
    )
    def get(self, request: Request, transaction_id: str) -> Response:
        keys = EventKey.objects.filter(transaction_id=transaction_id)
        customer_ref = request.query_params.get("external_customer_id")
        if customer_ref:
            keys = keys.filter(customer__external_id=customer_ref, customer__deleted_at__isnull=True)
        found_keys = list(keys[:2])
        if not found_keys:
            return not_found("event")
        if len(found_keys) > 1:
            return validation_error({"external_customer_id": [AMBIGUOUS_TRANSACTION]})
        key = found_keys[0]
        found = list(
            Event.objects.filter(
                customer_id=key.customer_id,
                metric_id=key.metric_id,
                timestamp=key.timestamp,
                transaction_id=transaction_id,
            ).select_related("metric", "customer")[:1]
        )
        if not found:
            return not_found("event")
        event = found[0]
        fallback = active_subscription_ids({event.customer_id}).get(event.customer_id, "")
        return Response(
            {
                "event": event_json(
                    StoredEvent.of(event),
                    external_customer_id=event.customer.external_id,
                    fallback_subscription_id=fallback,
                )
            }
        )


# --- POST /api/v1/events/estimate_fees ----------------------------------------------------------

NOT_A_NUMBER = "must be a number (Unix seconds)"
PROPERTY_NOT_A_NUMBER = "{field!r} must be a number for metric {code!r}"
NO_INSTANT_CHARGE = (
    "does not match a pay-in-advance charge of the subscription's plan: this app bills usage in arrears "
    "only, so there is no fee to estimate for one event (Lago's does_not_match_an_instant_charge)"
)


class EventEstimateInput(StrictSerializer):
    """Lago's event for an estimate (EventsController#create_params): nothing is stored."""

    transaction_id = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)
    external_subscription_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    code = serializers.CharField()
    timestamp = serializers.JSONField(required=False, allow_null=True)
    precise_total_amount_cents = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    properties = serializers.DictField(required=False, allow_null=True)


class EventEstimateEnvelope(StrictSerializer):
    event = EventEstimateInput()


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class EventEstimateFeesView(ApiView):
    @extend_schema(
        operation_id="estimate_event_fees",
        summary="Estimate the pay-in-advance fees one event would create (none here: 422, as Lago's answer "
        "for an event no pay-in-advance charge matches)",
        description="Checked as Lago does, in its order: the active subscription (404 subscription_not_found), "
        "the timestamp (a number), the metric (404 billable_metric_not_found), the aggregated property (a "
        "number for sum, max and latest); then, since no charge here is paid in advance, 422 on `code`. "
        "Nothing is stored.",
        request=EventEstimateEnvelope,
        responses={200: None},
    )
    def post(self, request: Request) -> Response:
        envelope = EventEstimateEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "event"))
        data = envelope.validated_data["event"]
        external_id = data.get("external_subscription_id")
        subscription = (
            Subscription.objects.filter(external_id=external_id, status=SubscriptionStatus.ACTIVE)
            .order_by("-subscription_at", "-id")
            .first()
            if external_id
            else None
        )
        if subscription is None:
            return not_found("subscription")
        if data.get("timestamp") not in (None, "") and not _is_number(data["timestamp"]):
            return validation_error({"timestamp": [NOT_A_NUMBER]})
        metric = BillableMetric.objects.filter(code=data["code"]).first()
        if metric is None:
            return not_found("billable_metric")
        value = (data.get("properties") or {}).get(metric.field)
        if metric.needs_numeric_field and value is not None and not _is_number(value):
            return validation_error(
                {"properties": [PROPERTY_NOT_A_NUMBER.format(field=metric.field, code=metric.code)]}
            )
        # Lago estimates only pay-in-advance charges; charges here are billed at the period's end.
        return validation_error({"code": [ErrorDetail(NO_INSTANT_CHARGE, code="does_not_match_an_instant_charge")]})

"""POST /api/v1/events, POST /api/v1/events/batch, GET /api/v1/events/<transaction_id>.

This is the API edge for usage: it resolves `external_customer_id` or `external_subscription_id`
to the customer (metering knows no subscriptions), then hands validated events to
`metering.ingest`. Bodies and responses follow Lago's envelopes ({"event": {...}},
{"events": [...]}) so Lago's SDKs work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.models import Invoice, InvoiceStatus, InvoiceType, Subscription, SubscriptionStatus
from config.api import ApiView, error_response, not_found, validation_error
from customers.models import Customer
from metering.ingest import EventConflict, Owner, ValidEvent, store_events, validate_event
from metering.models import BillableMetric, Event, EventKey

UNKNOWN_CUSTOMER = "unknown customer {ref!r}"
UNKNOWN_SUBSCRIPTION = "unknown subscription {ref!r}"
SUBSCRIPTION_OF_OTHER_CUSTOMER = "subscription {sub!r} belongs to customer {owner!r}, not {ref!r}"
BATCH_NOT_A_LIST = "must be a list of events"
BATCH_EMPTY = "must contain at least one event"
BATCH_TOO_LARGE = "must contain at most {n} events (BILLING_EVENTS_BATCH_MAX)"
AMBIGUOUS_TRANSACTION = "several customers used this transaction_id; pass external_customer_id"


def owner_resolver(payloads: Iterable[Any]) -> Callable[[str | None, str | None], tuple[Owner | None, dict[str, str]]]:
    """Resolve the owners of a whole batch with two queries."""
    customer_refs: set[str] = set()
    subscription_refs: set[str] = set()
    for p in payloads:
        if isinstance(p, dict):
            if isinstance(p.get("external_customer_id"), str):
                customer_refs.add(p["external_customer_id"])
            if isinstance(p.get("external_subscription_id"), str):
                subscription_refs.add(p["external_subscription_id"])
    customers = {
        c.external_id: c
        for c in Customer.objects.filter(external_id__in=customer_refs).only("id", "external_id", "timezone")
    }
    subscriptions = {
        s.external_id: s
        # Oldest first, so after a plan change the live subscription (the newest) wins.
        for s in Subscription.objects.filter(external_id__in=subscription_refs)
        .order_by("subscription_at", "id")
        .select_related("customer")
        .only("id", "external_id", "customer__id", "customer__external_id", "customer__timezone")
    }

    def resolve(customer_ref: str | None, subscription_ref: str | None) -> tuple[Owner | None, dict[str, str]]:
        if subscription_ref is not None:
            sub = subscriptions.get(subscription_ref)
            if sub is None:
                return None, {"external_subscription_id": UNKNOWN_SUBSCRIPTION.format(ref=subscription_ref)}
            if customer_ref is not None and sub.customer.external_id != customer_ref:
                message = SUBSCRIPTION_OF_OTHER_CUSTOMER.format(
                    sub=subscription_ref, owner=sub.customer.external_id, ref=customer_ref
                )
                return None, {"external_subscription_id": message}
            c = sub.customer
            return Owner(c.pk, c.timezone, c.external_id, sub.external_id), {}
        assert customer_ref is not None
        customer = customers.get(customer_ref)
        if customer is None:
            return None, {"external_customer_id": UNKNOWN_CUSTOMER.format(ref=customer_ref)}
        return Owner(customer.pk, customer.timezone, customer.external_id), {}

    return resolve


def _validate(payloads: list[Any]) -> tuple[list[ValidEvent], dict[str, Any]]:
    frozen_now = timezone.now()
    metrics = {m.code: m for m in BillableMetric.objects.all()}
    resolve = owner_resolver(payloads)
    valid: list[ValidEvent] = []
    errors: dict[str, Any] = {}
    for i, payload in enumerate(payloads):
        event, event_errors = validate_event(
            payload,
            resolve_owner=resolve,
            metrics=metrics,
            now=frozen_now,
            max_age_days=settings.BILLING_EVENT_MAX_AGE_DAYS,
        )
        if event is None:
            errors[str(i)] = event_errors
        else:
            valid.append(event)
    return valid, errors


def _active_subscription_ids(customer_ids: set[int]) -> dict[int, str]:
    """For events sent by customer: the subscription Lago's response names (its newest active one)."""
    found: dict[int, str] = {}
    rows = (
        Subscription.objects.filter(customer_id__in=customer_ids, status=SubscriptionStatus.ACTIVE)
        .order_by("customer_id", "-subscription_at")
        .values_list("customer_id", "external_id")
    )
    for customer_id, external_id in rows:
        found.setdefault(customer_id, external_id)
    return found


def event_json(event: Event, *, external_customer_id: str, fallback_subscription_id: str = "") -> dict[str, Any]:
    return {
        "lago_id": str(event.pk),
        "transaction_id": event.transaction_id,
        "lago_customer_id": str(event.customer_id),
        "external_customer_id": external_customer_id,
        "lago_subscription_id": None,
        "external_subscription_id": event.external_subscription_id or fallback_subscription_id,
        "code": event.metric.code,
        "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "properties": event.properties,
        "precise_total_amount_cents": None,
        "created_at": event.received_at.isoformat().replace("+00:00", "Z"),
        "is_late": event.is_late,
    }


def flag_late(events: list[ValidEvent]) -> list[ValidEvent]:
    """Mark events whose period is already invoiced (finalized): they will be billed as late usage.

    The flag informs (API response, admin filter); billing does not depend on it: every close
    re-measures recent finalized periods, so an event is billed even if it raced a finalization.
    """
    if not events:
        return events
    earliest = min(e.timestamp for e in events)
    closed: dict[int, list[tuple[datetime, datetime]]] = {}
    rows = (
        Invoice.objects.filter(
            customer_id__in={e.owner.customer_id for e in events},
            invoice_type=InvoiceType.PERIOD,
            period_end__gt=earliest,
        )
        .exclude(status=InvoiceStatus.DRAFT)
        .values_list("customer_id", "period_start", "period_end")
    )
    for customer_id, start, end in rows:
        closed.setdefault(customer_id, []).append((start, end))
    if not closed:
        return events
    return [
        replace(e, is_late=True)
        if any(start <= e.timestamp < end for start, end in closed.get(e.owner.customer_id, ()))
        else e
        for e in events
    ]


def _store(valid: list[ValidEvent]) -> list[dict[str, Any]] | Response:
    valid = flag_late(valid)
    try:
        stored = store_events(valid, received_at=timezone.now())
    except EventConflict as exc:
        return error_response(
            409,
            "transaction_id_conflict",
            {"transaction_id": [f"already used for a different event: {', '.join(exc.transaction_ids)}"]},
        )
    fallback = _active_subscription_ids({e.owner.customer_id for e in valid if not e.owner.external_subscription_id})
    return [
        event_json(
            row,
            external_customer_id=ev.owner.external_customer_id,
            fallback_subscription_id=fallback.get(ev.owner.customer_id, ""),
        )
        for row, ev in zip(stored, valid, strict=True)
    ]


class EventInput(serializers.Serializer):
    transaction_id = serializers.CharField(max_length=255, help_text="Your unique id; retries are idempotent.")
    external_customer_id = serializers.CharField(required=False, allow_null=True)
    external_subscription_id = serializers.CharField(required=False, allow_null=True)
    code = serializers.CharField(help_text="The billable metric code, e.g. mtu.")
    timestamp = serializers.CharField(
        required=False, allow_null=True, help_text="Unix seconds (int, float or string) or ISO 8601; default now."
    )
    properties = serializers.DictField(required=False, allow_null=True)


class EventEnvelope(serializers.Serializer):
    event = EventInput()


class BatchEnvelope(serializers.Serializer):
    events = EventInput(many=True)


class EventOutput(serializers.Serializer):
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


class EventOutputEnvelope(serializers.Serializer):
    event = EventOutput()


class BatchOutputEnvelope(serializers.Serializer):
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


class EventCreateView(ApiView):
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
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
            return validation_error({"event": ["is required and must be an object"]})
        valid, errors = _validate([body["event"]])
        if errors:
            return validation_error(errors["0"])
        result = _store(valid)
        if isinstance(result, Response):
            return result
        return Response({"event": result[0]})


class EventBatchView(ApiView):
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
    def post(self, request: Request) -> Response:
        body = request.data
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            return validation_error({"events": [BATCH_NOT_A_LIST]})
        if not events:
            return validation_error({"events": [BATCH_EMPTY]})
        limit = settings.BILLING_EVENTS_BATCH_MAX
        if len(events) > limit:
            return validation_error({"events": [BATCH_TOO_LARGE.format(n=limit)]})
        valid, errors = _validate(events)
        if errors:
            return validation_error(errors)
        result = _store(valid)
        if isinstance(result, Response):
            return result
        return Response({"events": result})


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
            keys = keys.filter(customer__external_id=customer_ref)
        found_keys = list(keys[:2])
        if not found_keys:
            return not_found("event")
        if len(found_keys) > 1:
            return validation_error({"external_customer_id": [AMBIGUOUS_TRANSACTION]})
        key = found_keys[0]
        found = list(
            Event.objects.filter(
                customer_id=key.customer_id, metric_id=key.metric_id, timestamp=key.timestamp,
                transaction_id=transaction_id,
            ).select_related("metric", "customer")[:1]
        )
        if not found:
            return not_found("event")
        event = found[0]
        fallback = _active_subscription_ids({event.customer_id}).get(event.customer_id, "")
        return Response(
            {
                "event": event_json(
                    event, external_customer_id=event.customer.external_id, fallback_subscription_id=fallback
                )
            }
        )

"""POST /api/v1/events, POST /api/v1/events/batch, GET /api/v1/events/<transaction_id>.

This is the API edge for usage: it resolves `external_customer_id` or `external_subscription_id`
to the customer (metering knows no subscriptions), then hands validated events to
`metering.ingest`. Bodies and responses follow Lago's envelopes ({"event": {...}},
{"events": [...]}) so Lago's SDKs work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from drf_orjson_renderer.parsers import ORJSONParser
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.models import Invoice, InvoiceStatus, InvoiceType, Subscription, SubscriptionStatus
from config.api import ApiView, error_response, not_found, validation_error
from customers.models import Customer
from metering.ingest import EventConflict, Owner, StoredEvent, ValidEvent, store_events, validate_event
from metering.models import BillableMetric, Event, EventKey

UNKNOWN_CUSTOMER = "unknown customer {ref!r}"
UNKNOWN_SUBSCRIPTION = "unknown subscription {ref!r}"
SUBSCRIPTION_OF_OTHER_CUSTOMER = "subscription {sub!r} belongs to customer {owner!r}, not {ref!r}"
BATCH_NOT_A_LIST = "must be a list of events"
BATCH_EMPTY = "must contain at least one event"
BATCH_TOO_LARGE = "must contain at most {n} events (BILLING_EVENTS_BATCH_MAX)"
AMBIGUOUS_TRANSACTION = "several customers used this transaction_id; pass external_customer_id"


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _placeholders(values: Iterable[Any]) -> str:
    return ", ".join(["%s"] * len(list(values)))


# The lookups of the ingestion path are raw SQL: they run on every request, and compiling the
# ORM queries cost more than running them. Each customer comes with what the response and the
# late flag need: its newest active subscription, and the end of its last closed period.
_CUSTOMER = Customer._meta.db_table
_SUBSCRIPTION = Subscription._meta.db_table
_INVOICE = Invoice._meta.db_table
_CUSTOMER_EXTRAS = f"""
    (SELECT s.external_id FROM {_SUBSCRIPTION} s WHERE s.customer_id = c.id AND s.status = '{SubscriptionStatus.ACTIVE}'
     ORDER BY s.subscription_at DESC, s.id DESC LIMIT 1),
    (SELECT max(i.period_end) FROM {_INVOICE} i WHERE i.customer_id = c.id
     AND i.invoice_type = '{InvoiceType.PERIOD}' AND i.status <> '{InvoiceStatus.DRAFT}')
"""
CUSTOMERS_SQL = f"SELECT c.id, c.external_id, c.timezone, {_CUSTOMER_EXTRAS} FROM {_CUSTOMER} c WHERE c.external_id IN "
# Oldest first, so after a plan change the live subscription (the newest) wins.
SUBSCRIPTIONS_SQL = (
    f"SELECT sub.external_id, c.id, c.external_id, c.timezone, {_CUSTOMER_EXTRAS} "
    f"FROM {_SUBSCRIPTION} sub JOIN {_CUSTOMER} c ON c.id = sub.customer_id WHERE sub.external_id IN "
)
METRICS_SQL = f"SELECT id, code, name, aggregation, field FROM {BillableMetric._meta.db_table} WHERE code IN "


@dataclass(frozen=True)
class Customers:
    """The owners of a batch's events, and per customer what the response and late flag need."""

    resolve: Callable[[str | None, str | None], tuple[Owner | None, dict[str, str]]]
    active_subscription: dict[int, str]  # customer id → newest active subscription's external id
    closed_until: dict[int, datetime]  # customer id → end of the last non-draft period invoice


def _aware(value: datetime | str) -> datetime:
    """SQLite returns the subquery's max(period_end) as text."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def owner_resolver(payloads: Iterable[Any]) -> Customers:
    """Resolve the owners of a whole batch with at most two queries."""
    customer_refs: set[str] = set()
    subscription_refs: set[str] = set()
    for p in payloads:
        if isinstance(p, dict):
            if isinstance(p.get("external_customer_id"), str):
                customer_refs.add(p["external_customer_id"])
            if isinstance(p.get("external_subscription_id"), str):
                subscription_refs.add(p["external_subscription_id"])
    customers: dict[str, Owner] = {}
    subscriptions: dict[str, Owner] = {}
    active: dict[int, str] = {}
    closed: dict[int, datetime] = {}
    if customer_refs:
        for pk, external_id, tz, active_sub, closed_end in _rows(
            f"{CUSTOMERS_SQL} ({_placeholders(customer_refs)})", list(customer_refs)
        ):
            customers[external_id] = Owner(pk, tz, external_id)
            if active_sub is not None:
                active[pk] = active_sub
            if closed_end is not None:
                closed[pk] = _aware(closed_end)
    if subscription_refs:
        for sub_id, pk, external_id, tz, active_sub, closed_end in _rows(
            f"{SUBSCRIPTIONS_SQL} ({_placeholders(subscription_refs)}) ORDER BY sub.subscription_at, sub.id",
            list(subscription_refs),
        ):
            subscriptions[sub_id] = Owner(pk, tz, external_id, sub_id)
            if active_sub is not None:
                active[pk] = active_sub
            if closed_end is not None:
                closed[pk] = _aware(closed_end)

    def resolve(customer_ref: str | None, subscription_ref: str | None) -> tuple[Owner | None, dict[str, str]]:
        if subscription_ref is not None:
            owner = subscriptions.get(subscription_ref)
            if owner is None:
                return None, {"external_subscription_id": UNKNOWN_SUBSCRIPTION.format(ref=subscription_ref)}
            if customer_ref is not None and owner.external_customer_id != customer_ref:
                message = SUBSCRIPTION_OF_OTHER_CUSTOMER.format(
                    sub=subscription_ref, owner=owner.external_customer_id, ref=customer_ref
                )
                return None, {"external_subscription_id": message}
            return owner, {}
        assert customer_ref is not None
        owner = customers.get(customer_ref)
        if owner is None:
            return None, {"external_customer_id": UNKNOWN_CUSTOMER.format(ref=customer_ref)}
        return owner, {}

    return Customers(resolve, active, closed)


def _metrics(payloads: list[Any]) -> dict[str, BillableMetric]:
    codes = {p["code"] for p in payloads if isinstance(p, dict) and isinstance(p.get("code"), str)}
    if not codes:
        return {}
    return {
        code: BillableMetric(id=pk, code=code, name=name, aggregation=aggregation, field=field)
        for pk, code, name, aggregation, field in _rows(f"{METRICS_SQL} ({_placeholders(codes)})", list(codes))
    }


def _validate(payloads: list[Any]) -> tuple[list[ValidEvent], dict[str, Any], Customers]:
    frozen_now = timezone.now()
    metrics = _metrics(payloads)
    customers = owner_resolver(payloads)
    valid: list[ValidEvent] = []
    errors: dict[str, Any] = {}
    max_age_days = settings.BILLING_EVENT_MAX_AGE_DAYS
    for i, payload in enumerate(payloads):
        event, event_errors = validate_event(
            payload,
            resolve_owner=customers.resolve,
            metrics=metrics,
            now=frozen_now,
            max_age_days=max_age_days,
        )
        if event is None:
            errors[str(i)] = event_errors
        else:
            valid.append(event)
    return valid, errors, customers


def _active_subscription_ids(customer_ids: set[int]) -> dict[int, str]:
    """For events sent by customer: the subscription Lago's response names (its newest active one)."""
    found: dict[int, str] = {}
    rows = (
        Subscription.objects.filter(customer_id__in=customer_ids, status=SubscriptionStatus.ACTIVE)
        .order_by("customer_id", "-subscription_at", "-id")
        .values_list("customer_id", "external_id")
    )
    for customer_id, external_id in rows:
        found.setdefault(customer_id, external_id)
    return found


@lru_cache(maxsize=4096)
def _utc_text(moment: datetime) -> str:
    """ISO 8601 with Z; cached, as a batch's events mostly share a few timestamps."""
    return moment.isoformat().replace("+00:00", "Z")


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


def flag_late(events: list[ValidEvent], closed_until: dict[int, datetime]) -> list[ValidEvent]:
    """Mark events whose period is already invoiced (finalized): they will be billed as late usage.

    The flag informs (API response, admin filter); billing does not depend on it: every close
    re-measures recent finalized periods, so an event is billed even if it raced a finalization.
    `closed_until` (each customer's last closed period end) spares the query when every event
    is newer, as nearly all are.
    """
    maybe = [e for e in events if e.timestamp < closed_until.get(e.owner.customer_id, e.timestamp)]
    if not maybe:
        return events
    earliest = min(e.timestamp for e in maybe)
    closed: dict[int, list[tuple[datetime, datetime]]] = {}
    rows = (
        Invoice.objects.filter(
            customer_id__in={e.owner.customer_id for e in maybe},
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


def _store(valid: list[ValidEvent], customers: Customers) -> list[dict[str, Any]] | Response:
    valid = flag_late(valid, customers.closed_until)
    try:
        stored = store_events(valid, received_at=timezone.now())
    except EventConflict as exc:
        return error_response(
            409,
            "transaction_id_conflict",
            {"transaction_id": [f"already used for a different event: {', '.join(exc.transaction_ids)}"]},
        )
    fallback = customers.active_subscription
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


class FastJsonMixin:
    """orjson parses the request and renders the response: a batch of 1,000 events is about 150 kB
    each way, where the standard library's json costs more than storing the events."""

    parser_classes = [ORJSONParser]
    renderer_classes = [ORJSONRenderer]


class EventCreateView(FastJsonMixin, ApiView):
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
        valid, errors, customers = _validate([body["event"]])
        if errors:
            return validation_error(errors["0"])
        result = _store(valid, customers)
        if isinstance(result, Response):
            return result
        return Response({"event": result[0]})


class EventBatchView(FastJsonMixin, ApiView):
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
        valid, errors, customers = _validate(events)
        if errors:
            return validation_error(errors)
        result = _store(valid, customers)
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
                    StoredEvent.of(event),
                    external_customer_id=event.customer.external_id,
                    fallback_subscription_id=fallback,
                )
            }
        )

"""Ingesting usage events: resolve their owners, validate, flag the late ones, store (DESIGN §4).

The API edge (billing.api.events) parses the body and renders the result; everything between is
here. Owners are resolved for the whole batch at once (billing.selectors.event_owners), each event
is validated by metering (metering.validation), and the batch is stored whole or not at all, once
per (customer, transaction_id) (metering.ingest).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings

from billing.selectors.event_owners import UNKNOWN_CUSTOMER, EventRefs, closed_periods, event_refs
from customers.models import Customer
from metering.ingest import StoredEvent, store_events
from metering.ingest_postgresql import OwnersGone
from metering.models import BillableMetric
from metering.validation import UNKNOWN_METRIC, ValidEvent, validate_events


class EventsInvalid(Exception):
    """Some events are invalid; nothing was stored. `errors`: by index ("0", "1", …), then by field."""

    def __init__(self, errors: dict[str, dict[str, list[str]]]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} invalid event(s)")


class IngestedEvent(NamedTuple):
    """A stored event with what its echo names (a named tuple: a batch builds 1,000)."""

    stored: StoredEvent
    external_customer_id: str
    # The subscription Lago's response names for an event sent by customer: its newest active one.
    fallback_subscription_id: str


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
    closed = closed_periods({e.owner.customer_id for e in maybe}, min(e.timestamp for e in maybe))
    if not closed:
        return events
    return [
        e._replace(is_late=True)
        if any(start <= e.timestamp < end for start, end in closed.get(e.owner.customer_id, ()))
        else e
        for e in events
    ]


def events_ingest(*, payloads: list[Any], now: datetime, refs: EventRefs | None = None) -> list[IngestedEvent]:
    """Validate and store a batch of event payloads, all or none, in order.

    `refs`: what these payloads name (owners, metrics), when the caller has read it already (the
    events endpoint reads it with the API key, in one statement); else it is read here.

    Raises EventsInvalid (errors by index and field) when any is invalid (a customer or metric
    deleted while the batch was being stored included), and metering.ingest.EventConflict when
    a transaction id was already used for another event.
    """
    if refs is None:
        refs = event_refs(payloads)
    owners = refs.owners
    valid, errors = validate_events(
        payloads,
        resolve_owner=owners.resolve,
        metrics=refs.metrics,
        now=now,
        max_age_days=settings.BILLING_EVENT_MAX_AGE_DAYS,
    )
    if errors:
        raise EventsInvalid(errors)
    valid = flag_late(valid, owners.closed_until)
    try:
        stored = store_events(valid, received_at=now)
    except OwnersGone as exc:  # deleted since validation: refused as if it had been gone then
        raise EventsInvalid(_gone_errors(valid, exc)) from None
    active = owners.active_subscription
    return [
        IngestedEvent(row, event.owner.external_customer_id, active.get(event.owner.customer_id, ""))
        for row, event in zip(stored, valid, strict=True)
    ]


def _gone_errors(events: list[ValidEvent], gone: OwnersGone) -> dict[str, dict[str, list[str]]]:
    """The errors validation gives for an unknown customer or metric, on the events of the one
    storage found deleted (every payload was valid, so event i is payload i)."""
    live_customer = Customer.objects.filter(pk=gone.customer_id).exists()
    live_metrics = set(BillableMetric.objects.filter(pk__in=gone.metric_ids).values_list("pk", flat=True))
    errors: dict[str, dict[str, list[str]]] = {}
    for i, event in enumerate(events):
        if event.owner.customer_id != gone.customer_id:
            continue
        found: dict[str, list[str]] = {}
        if not live_customer:
            found["external_customer_id"] = [UNKNOWN_CUSTOMER.format(ref=event.owner.external_customer_id)]
        if event.metric.pk not in live_metrics:
            found["code"] = [UNKNOWN_METRIC.format(code=event.metric.code)]
        if found:
            errors[str(i)] = found
    if not errors:  # nothing found deleted now: not a state deletions can leave
        raise gone
    return errors

"""Webhooks: announce a change in its own transaction, deliver it signed, retry, never twice.

Announcing (`announce`) writes one WebhookDelivery per endpoint listening to the type, in the
transaction of the change (the outbox): the body is rendered there, from the same JSON as the
API's GET of the object, and never changes again. After the commit a django-q2 task is queued
to send it within seconds; a periodic task and `manage.py deliver_webhooks` send whatever is
due, so a delivery written by a process that died before queueing still goes out.

Delivering (`deliver_due`) claims one due delivery at a time under its row lock (`SKIP LOCKED`
on PostgreSQL, so concurrent workers take different rows), numbers the attempt (a database
constraint refuses the same number twice), commits, then POSTs: no transaction stays open
during the request. The claim carries a lease (`claimed_until`): a worker that dies mid-POST
leaves the delivery to be taken again when the lease ends, as the next attempt, with the same
body and `X-Lago-Unique-Key` (receivers de-duplicate on it).

Headers (DESIGN §6): `X-Lago-Signature-Algorithm: hmac`, `X-Lago-Signature:
base64(HMAC-SHA256(key, raw body))`, `X-Lago-Unique-Key`. Anything but a 2xx within
WEBHOOK_TIMEOUT_SECONDS is retried after WEBHOOK_RETRY_BASE_SECONDS × 2^(attempt − 1), up to
WEBHOOK_MAX_ATTEMPTS attempts, then the delivery is failed; finance may resend it (one more
attempt, the same body and key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from billing.engine.vocabulary import DeliveryStatus, WebhookType
from billing.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSigningKey
from billing.services.errors import FieldErrors
from billing.services.outbox import backoff, claim_due, locked_if_current, queue_after_commit

logger = logging.getLogger(__name__)

USER_AGENT = "billing-webhooks/1"
RESPONSE_EXCERPT = 2000  # characters of a response body kept for the deliveries log
LEASE_MARGIN = timedelta(seconds=30)  # beyond the request's timeout, before another worker may retry
ENDPOINT_DELETED = "the endpoint was deleted"

# object_type → the API's JSON of that object (registered by billing.api.webhook_objects, so
# this module does not import the API; see BillingConfig.ready).
Renderer = Callable[[Any], dict[str, Any]]
RENDERERS: dict[str, Renderer] = {}


def register_renderer(object_type: str, render: Renderer) -> None:
    RENDERERS[object_type] = render


# --- signing --------------------------------------------------------------------------------


def signing_key() -> str:
    """WEBHOOK_HMAC_KEY, else the key stored in the database (generated on first use: two
    processes generating at once keep the first one written)."""
    if settings.WEBHOOK_HMAC_KEY:
        return str(settings.WEBHOOK_HMAC_KEY)
    row = WebhookSigningKey.objects.filter(pk=1).first()
    if row is None:
        try:
            with transaction.atomic():
                row = WebhookSigningKey.objects.create(pk=1, key=secrets.token_urlsafe(48))
        except IntegrityError:  # another process made it first
            row = WebhookSigningKey.objects.get(pk=1)
    return row.key


def signature(body: bytes, key: str) -> str:
    """Lago's `X-Lago-Signature`: base64 of the HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


# --- announcing (in the change's transaction) ------------------------------------------------


def announce(*, webhook_type: WebhookType | str, object_type: str, obj: Any, object_id: Any) -> int:
    """Write the deliveries of this change for every endpoint listening to its type; call it
    inside the change's transaction. Returns how many were written.

    Without endpoints (a common case: a period close announces every invoice) it costs one
    plain read and renders nothing."""
    if not any_endpoint():
        return 0
    endpoints = [e for e in WebhookEndpoint.objects.order_by("id") if e.listens_to(str(webhook_type))]
    if not endpoints:
        return 0
    payload = {"webhook_type": str(webhook_type), "object_type": object_type, object_type: RENDERERS[object_type](obj)}
    body = orjson.dumps(payload).decode()
    now = timezone.now()
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint,
                webhook_url=endpoint.webhook_url,
                webhook_type=str(webhook_type),
                object_type=object_type,
                object_id=str(object_id),
                body=body,
                max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
                next_attempt_at=now,
            )
            for endpoint in endpoints
        ]
    )
    _queue_delivery()
    return len(endpoints)


def any_endpoint() -> bool:
    """Whether an endpoint exists, read in the change's transaction (no cache: an endpoint made
    a moment ago is seen), in plain SQL: the ORM's query costs several times the statement."""
    connection = connections[router.db_for_write(WebhookEndpoint)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(WebhookEndpoint._meta.db_table)} LIMIT 1")
        return cursor.fetchone() is not None


def _queue_delivery() -> None:
    queue_after_commit("billing.tasks.deliver_webhooks", name="deliver webhooks", group="webhooks")


# --- delivering --------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    succeeded: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.succeeded) + len(self.retrying) + len(self.failed)

    def __str__(self) -> str:
        return (
            f"{self.sent} sent: {len(self.succeeded)} succeeded, {len(self.retrying)} to retry, "
            f"{len(self.failed)} failed"
        )


def retry_delay(attempt: int) -> timedelta:
    """How long after failed attempt `attempt` (1, 2, …) the next one is due."""
    return backoff(settings.WEBHOOK_RETRY_BASE_SECONDS, attempt)


def _claim(now: datetime) -> tuple[WebhookDelivery, WebhookAttempt] | None:
    """Take one due delivery for this worker and number its attempt (committed before sending:
    the database refuses the same number twice)."""
    attempts: list[WebhookAttempt] = []

    def number_it(delivery: WebhookDelivery) -> None:
        attempts.append(WebhookAttempt.objects.create(delivery=delivery, number=delivery.attempts, started_at=now))

    lease = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS) + LEASE_MARGIN
    delivery = claim_due(WebhookDelivery, now=now, lease=lease, then=number_it)
    return (delivery, attempts[0]) if delivery is not None else None


def _post(client: httpx.Client, delivery: WebhookDelivery, key: str) -> tuple[int | None, str, str]:
    """POST the delivery; (status code or None, response excerpt, error)."""
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Lago-Signature-Algorithm": "hmac",
        "X-Lago-Signature": signature(body, key),
        "X-Lago-Unique-Key": str(delivery.unique_key),
    }
    try:
        response = client.post(delivery.webhook_url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, "", f"{type(exc).__name__}: {exc}"[:500]
    return response.status_code, response.text[:RESPONSE_EXCERPT], ""


def _record(
    delivery: WebhookDelivery,
    attempt: WebhookAttempt,
    outcome: tuple[int | None, str, str],
    started: float,
    *,
    final: bool = False,
) -> str:
    """Write the attempt's outcome and what comes next; returns the delivery's status."""
    status_code, excerpt, error = outcome
    now = timezone.now()
    with transaction.atomic():
        WebhookAttempt.objects.filter(pk=attempt.pk).update(
            duration_ms=int((time.monotonic() - started) * 1000),
            status_code=status_code,
            response_excerpt=excerpt,
            error=error,
        )
        current = locked_if_current(WebhookDelivery, delivery)
        if current is None:  # a later attempt took over (this worker outlived its lease)
            return str(WebhookDelivery.objects.get(pk=delivery.pk).status)
        ok = status_code is not None and 200 <= status_code < 300
        current.last_attempt_at = now
        current.last_status_code = status_code
        current.last_response = excerpt
        current.last_error = error if not ok else ""
        current.claimed_until = None
        if ok:
            current.status, current.next_attempt_at, current.delivered_at = DeliveryStatus.SUCCEEDED, None, now
        elif final or attempt.number >= current.max_attempts:
            current.status, current.next_attempt_at = DeliveryStatus.FAILED, None
        else:
            current.next_attempt_at = now + retry_delay(attempt.number)
        current.save()
        return str(current.status)


def deliver_due(*, limit: int | None = None) -> DeliveryReport:
    """Send every delivery due now (each attempt once, whatever other workers do); returns what
    happened. `limit`: at most this many attempts."""
    report = DeliveryReport()
    key = signing_key()
    with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False) as client:
        while limit is None or report.sent < limit:
            claimed = _claim(timezone.now())
            if claimed is None:
                break
            delivery, attempt = claimed
            started = time.monotonic()
            gone = delivery.endpoint_id is None  # deleted since: nothing is sent to it any more
            outcome = (None, "", ENDPOINT_DELETED) if gone else _post(client, delivery, key)
            status = _record(delivery, attempt, outcome, started, final=gone)
            {
                DeliveryStatus.SUCCEEDED: report.succeeded,
                DeliveryStatus.FAILED: report.failed,
            }.get(DeliveryStatus(status), report.retrying).append(delivery.pk)
    return report


class DeliveryPending(Exception):
    """A pending delivery is sent when due; it is not resent."""


@transaction.atomic
def delivery_resend(*, delivery: WebhookDelivery, now: datetime) -> WebhookDelivery:
    """Send a succeeded or failed delivery again now (finance's resend): the same body and
    unique key, one more attempt; if it fails it is failed again (no new round of retries).
    A pending one raises DeliveryPending (checked under its row lock)."""
    locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    if locked.status == DeliveryStatus.PENDING:
        raise DeliveryPending(str(locked))
    locked.status = DeliveryStatus.PENDING
    locked.next_attempt_at = now
    locked.claimed_until = None
    locked.max_attempts = locked.attempts + 1
    locked.save(update_fields=["status", "next_attempt_at", "claimed_until", "max_attempts"])
    _queue_delivery()
    return locked


# --- endpoints ------------------------------------------------------------------------------

URL_SCHEME = "must be an http:// or https:// URL"
URL_TAKEN = "an endpoint with this URL exists already"
JWT_UNSUPPORTED = "only hmac is supported (JWT signatures are not part of this version)"
UNKNOWN_TYPES = "unknown webhook type(s): {types}; known: {known}"


class WebhookEndpointError(FieldErrors):
    """Refused; messages by field."""


def _checked(
    *, webhook_url: str, signature_algo: str | None, event_types: list[str] | None, exclude: int | None
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not webhook_url.startswith(("http://", "https://")):
        errors["webhook_url"] = [URL_SCHEME]
    elif WebhookEndpoint.objects.filter(webhook_url=webhook_url).exclude(pk=exclude or 0).exists():
        errors["webhook_url"] = [URL_TAKEN]
    if signature_algo not in (None, "", "hmac"):
        errors["signature_algo"] = [JWT_UNSUPPORTED]
    unknown = sorted(set(event_types or []) - set(WebhookType.values))
    if unknown:
        errors["event_types"] = [UNKNOWN_TYPES.format(types=", ".join(unknown), known=", ".join(WebhookType.values))]
    return errors


@transaction.atomic
def webhook_endpoint_create(
    *, webhook_url: str, name: str = "", signature_algo: str | None = None, event_types: list[str] | None = None
) -> WebhookEndpoint:
    errors = _checked(webhook_url=webhook_url, signature_algo=signature_algo, event_types=event_types, exclude=None)
    if errors:
        raise WebhookEndpointError(errors)
    return WebhookEndpoint.objects.create(
        webhook_url=webhook_url, name=name, signature_algo="hmac", event_types=event_types or None
    )


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    webhook_url: str | None = None,
    name: str | None = None,
    signature_algo: str | None = None,
    event_types: list[str] | None = None,
    event_types_sent: bool = False,
) -> WebhookEndpoint:
    """Change what is given (`event_types_sent`: event_types was in the request, null or not)."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    url = webhook_url if webhook_url is not None else locked.webhook_url
    errors = _checked(webhook_url=url, signature_algo=signature_algo, event_types=event_types, exclude=locked.pk)
    if errors:
        raise WebhookEndpointError(errors)
    locked.webhook_url = url
    if name is not None:
        locked.name = name
    if event_types_sent:
        locked.event_types = event_types or None
    locked.save()
    return locked


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Delete the endpoint; its deliveries stay in the log, and pending ones are not sent."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    locked.delete()
    return endpoint

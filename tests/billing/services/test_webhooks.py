"""Webhooks (DESIGN §6): the outbox, signed deliveries to a real HTTP receiver, retries, failure.

The receiver (tests/billing/services/webhook_receiver.py) is a real HTTP server in the test
process; deliveries go out over real HTTP through `deliver_due`, as `manage.py deliver_webhooks`
and the django-q2 task send them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from billing.api.credit_note_json import credit_note_json, credit_notes_for_json
from billing.api.invoice_json import invoice_json, invoices_for_json
from billing.engine.vocabulary import WebhookType
from billing.models import (
    DeliveryStatus,
    Invoice,
    Subscription,
    SubscriptionStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSigningKey,
)
from billing.services.credit_notes import credit_note_create
from billing.services.invoices import invoice_void
from billing.services.payments import payment_create
from billing.services.subscription_clock import subscriptions_watch
from billing.services.subscriptions import subscription_terminate
from billing.services.webhooks import (
    ENDPOINT_DELETED,
    JWT_UNSUPPORTED,
    URL_TAKEN,
    DeliveryPending,
    WebhookEndpointError,
    announce,
    deliver_due,
    delivery_resend,
    retry_delay,
    signing_key,
    webhook_endpoint_create,
    webhook_endpoint_delete,
)
from tests.billing.services.lifecycle import SEPTEMBER_CLOSE, september_invoice
from tests.billing.services.webhook_receiver import Receiver, webhook_receiver
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan
from tests.helpers import at, travel

pytestmark = pytest.mark.django_db

NOW = at(2026, 10, 20, 12)
D = Decimal


@pytest.fixture
def receiver() -> Any:
    with webhook_receiver() as running:
        yield running


def endpoint(receiver: Receiver, **kwargs: Any) -> WebhookEndpoint:
    return webhook_endpoint_create(webhook_url=receiver.url, **kwargs)


def verify(received: Any, key: str) -> bool:
    expected = base64.b64encode(hmac.new(key.encode(), received.body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(received.headers["X-Lago-Signature"], expected)


def without_links(data: dict[str, Any]) -> dict[str, Any]:
    """The object without its signed PDF link (its token carries the moment it was signed)."""
    return {k: v for k, v in data.items() if k != "file_url"}


# --- an invoice finalized by the period close -------------------------------------------------


def test_a_finalized_invoice_is_announced_once_signed_with_the_key(receiver: Receiver) -> None:
    endpoint(receiver)
    world = september_invoice()  # the period close finalizes August and September
    deliveries = WebhookDelivery.objects.filter(webhook_type="invoice.created").order_by("id")
    assert [d.object_id for d in deliveries] == [
        str(pk) for pk in Invoice.objects.order_by("period_start").values_list("pk", flat=True)
    ]

    with travel(SEPTEMBER_CLOSE + timedelta(seconds=5)):
        report = deliver_due()
    assert (len(report.succeeded), report.retrying, report.failed) == (2, [], [])
    september = next(r for r in receiver.requests if r.json["invoice"]["lago_id"] == str(world.september.pk))
    assert september.path == "/hooks"
    assert september.headers["Content-Type"] == "application/json"
    assert september.headers["X-Lago-Signature-Algorithm"] == "hmac"
    assert verify(september, signing_key())
    assert not verify(september, "another key")
    body = september.json
    assert (body["webhook_type"], body["object_type"]) == ("invoice.created", "invoice")
    with travel(SEPTEMBER_CLOSE):  # the API's GET of the invoice, when it was announced
        api = invoice_json(invoices_for_json().get(pk=world.september.pk))
    assert without_links(body["invoice"]) == without_links(api)
    assert body["invoice"]["file_url"].startswith("http://127.0.0.1:8000/documents/")
    assert body["invoice"]["total_amount_cents"] == 35500

    # after the 200s, another run sends nothing
    assert deliver_due().sent == 0
    call_command("deliver_webhooks")
    assert len(receiver.requests) == 2


def test_drafts_are_not_announced(receiver: Receiver, settings: Any) -> None:
    endpoint(receiver)
    settings.BILLING_GRACE_PERIOD_HOURS = 24 * 30
    september_invoice_draft = SubscriptionFactory(plan=scaled_team_plan(), subscription_at=at(2026, 9, 1))
    from billing.services.period_close import close_periods

    close_periods(now=at(2026, 10, 1, 1))
    assert Invoice.objects.get(subscription=september_invoice_draft).status == "draft"
    assert not WebhookDelivery.objects.exists()


# --- retries, failure, resend ------------------------------------------------------------------


def test_a_failed_attempt_is_retried_with_the_same_body_and_unique_key(receiver: Receiver, settings: Any) -> None:
    endpoint(receiver, event_types=["invoice.voided"])
    world = september_invoice()
    with travel(NOW):
        invoice_void(invoice=world.september, reason="duplicate", now=NOW)
    receiver.statuses = [500]
    with travel(NOW):
        report = deliver_due()
    assert report.retrying and not report.succeeded
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert delivery.last_response == "receiver failure"
    assert delivery.next_attempt_at == NOW + retry_delay(1) == NOW + timedelta(seconds=60)

    with travel(NOW + timedelta(seconds=59)):
        assert deliver_due().sent == 0  # not due yet
    with travel(NOW + timedelta(seconds=61)):
        assert len(deliver_due().succeeded) == 1
    first, second = receiver.requests
    assert first.headers["X-Lago-Unique-Key"] == second.headers["X-Lago-Unique-Key"] == str(delivery.unique_key)
    assert first.body == second.body
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (DeliveryStatus.SUCCEEDED, 2, None)
    assert list(delivery.attempt_log.values_list("number", "status_code")) == [(1, 500), (2, 200)]
    with travel(NOW + timedelta(days=1)):
        assert deliver_due().sent == 0


def test_retries_back_off_then_the_delivery_fails(receiver: Receiver, settings: Any) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    endpoint(receiver, event_types=["invoice.voided"])
    world = september_invoice()
    with travel(NOW):
        invoice_void(invoice=world.september, reason="duplicate", now=NOW)
    receiver.statuses = [503, 503, 503, 200]
    moment = NOW
    for expected_wait in (10, 20):
        with travel(moment):
            deliver_due()
        delivery = WebhookDelivery.objects.get()
        assert delivery.next_attempt_at == moment + timedelta(seconds=expected_wait)
        moment = delivery.next_attempt_at
    with travel(moment):
        assert len(deliver_due().failed) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (DeliveryStatus.FAILED, 3, None)
    with travel(moment + timedelta(days=1)):
        assert deliver_due().sent == 0  # failed: no more attempts

    # finance resends: one more attempt, the same key; the receiver is back
    with travel(moment + timedelta(days=1)):
        delivery_resend(delivery=delivery, now=moment + timedelta(days=1))
        assert len(deliver_due().succeeded) == 1
    assert len(set(receiver.keys())) == 1 and len(receiver.requests) == 4


def test_an_unreachable_endpoint_is_an_error_recorded_and_retried(settings: Any) -> None:
    webhook_endpoint_create(webhook_url="http://127.0.0.1:9/nothing-listens", event_types=["invoice.voided"])
    world = september_invoice()
    with travel(NOW):
        invoice_void(invoice=world.september, reason="duplicate", now=NOW)
        deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code is None
    assert "ConnectError" in delivery.last_error


def test_a_deleted_endpoint_gets_nothing_more(receiver: Receiver) -> None:
    made = endpoint(receiver, event_types=["invoice.voided"])
    world = september_invoice()
    with travel(NOW):
        invoice_void(invoice=world.september, reason="duplicate", now=NOW)
    webhook_endpoint_delete(endpoint=made)
    with travel(NOW):
        assert len(deliver_due().failed) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_error, delivery.endpoint) == (DeliveryStatus.FAILED, ENDPOINT_DELETED, None)
    assert receiver.requests == []


# --- the outbox: in the change's transaction --------------------------------------------------


def test_a_rolled_back_change_announces_nothing(receiver: Receiver) -> None:
    endpoint(receiver)
    world = september_invoice()
    WebhookDelivery.objects.all().delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        invoice_void(invoice=world.september, reason="duplicate", now=NOW)
        assert WebhookDelivery.objects.count() == 1  # written with the change…
        raise RuntimeError("the change fails after")
    assert not WebhookDelivery.objects.exists()  # …and gone with it
    assert Invoice.objects.get(pk=world.september.pk).status == "finalized"


def test_each_endpoint_gets_the_types_it_listens_to(receiver: Receiver) -> None:
    with webhook_receiver() as other:
        endpoint(receiver, event_types=["credit_note.created"])
        endpoint(other)  # every type
        world = september_invoice()
        with travel(NOW):
            payment_create(invoice=world.september, amount=D("355"), reference="wire", paid_at=NOW, now=NOW)
            credit_note_create(
                invoice=world.september,
                items=[(world.usage_fee.pk, D("50"))],
                reason="other",
                credit_amount=D("30"),
                refund_amount=D("20"),
                offset_amount=D("0"),
                now=NOW,
            )
            deliver_due()
        assert [r.json["webhook_type"] for r in receiver.requests] == ["credit_note.created"]
        note = receiver.requests[0].json["credit_note"]
        assert without_links(note) == without_links(credit_note_json(credit_notes_for_json().get()))
        assert sorted(r.json["webhook_type"] for r in other.requests) == [
            "credit_note.created",
            "invoice.created",
            "invoice.created",
            "invoice.payment_status_updated",
        ]
        paid = next(r.json for r in other.requests if r.json["webhook_type"] == "invoice.payment_status_updated")
        assert paid["invoice"]["payment_status"] == "succeeded"


def test_subscriptions_are_announced_when_they_start_end_and_leave_their_trial(receiver: Receiver) -> None:
    endpoint(receiver)
    plan = scaled_team_plan()
    from billing.services.subscriptions import subscription_create

    customer = CustomerFactory(external_id="acme")
    with travel(NOW):
        started, _ = subscription_create(
            customer=customer, plan=plan, external_id="now", subscription_at=NOW, billing_time="calendar", now=NOW
        )
        later, _ = subscription_create(
            customer=customer,
            plan=plan,
            external_id="later",
            subscription_at=NOW + timedelta(days=3),
            billing_time="calendar",
            now=NOW,
        )
    assert later.status == SubscriptionStatus.PENDING
    assert list(WebhookDelivery.objects.values_list("webhook_type", "object_id")) == [
        ("subscription.started", str(started.pk))
    ]
    # three days on, the pending one starts; fourteen days on, the first one's trial has ended
    with travel(NOW + timedelta(days=3, minutes=1)):
        report = subscriptions_watch(now=NOW + timedelta(days=3, minutes=1))
    assert report.started == [later.pk] and report.trials_ended == []
    assert Subscription.objects.get(pk=later.pk).status == SubscriptionStatus.ACTIVE
    trial_over = at(2026, 11, 3, 0, 1)  # Oct 20 + 14 days, the customer's midnight (UTC)
    with travel(trial_over):
        assert subscriptions_watch(now=trial_over).trials_ended == [started.pk]
        assert subscriptions_watch(now=trial_over).trials_ended == []  # once
        subscription_terminate(subscription=started, at=trial_over)
    types = list(WebhookDelivery.objects.order_by("id").values_list("webhook_type", flat=True))
    assert types == [
        "subscription.started",
        "subscription.started",
        "subscription.trial_ended",
        "subscription.terminated",
    ]
    with travel(trial_over):
        deliver_due()
    ended = next(r.json for r in receiver.requests if r.json["webhook_type"] == "subscription.trial_ended")
    assert ended["subscription"]["external_id"] == "now"
    assert ended["subscription"]["trial_ended_at"] == "2026-11-03T00:00:00Z"


# --- endpoints and the key ---------------------------------------------------------------------


def test_endpoints_refuse_jwt_a_taken_url_and_unknown_types(receiver: Receiver) -> None:
    endpoint(receiver)
    for kwargs, field in (
        ({"webhook_url": receiver.url}, "webhook_url"),
        ({"webhook_url": "ftp://example.com"}, "webhook_url"),
        ({"webhook_url": "https://example.com/a", "signature_algo": "jwt"}, "signature_algo"),
        ({"webhook_url": "https://example.com/b", "event_types": ["invoice.exploded"]}, "event_types"),
    ):
        with pytest.raises(WebhookEndpointError) as caught:
            webhook_endpoint_create(**kwargs)
        assert list(caught.value.errors) == [field]
    assert WebhookEndpoint.objects.count() == 1
    assert URL_TAKEN and JWT_UNSUPPORTED


def test_the_key_is_the_setting_or_one_generated_once(settings: Any) -> None:
    settings.WEBHOOK_HMAC_KEY = ""
    first = signing_key()
    assert len(first) >= 40 and signing_key() == first == WebhookSigningKey.objects.get().key
    settings.WEBHOOK_HMAC_KEY = "from-the-environment"
    assert signing_key() == "from-the-environment"
    assert WebhookAttempt.objects.count() == 0


def test_a_pending_delivery_is_not_resent(receiver: Receiver) -> None:
    endpoint(receiver, event_types=["invoice.voided"])
    world = september_invoice()
    with travel(NOW):
        invoice_void(invoice=world.september, reason="duplicate", now=NOW)
    delivery = WebhookDelivery.objects.get()
    with pytest.raises(DeliveryPending):
        delivery_resend(delivery=delivery, now=NOW)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.max_attempts) == (DeliveryStatus.PENDING, 8)


# --- announcing without endpoints ----------------------------------------------------------------


def test_without_endpoints_an_announcement_is_one_read_renders_nothing_and_writes_nothing() -> None:
    with CaptureQueriesContext(connection) as queries:
        # An object no renderer could render: rendering it would raise.
        written = announce(webhook_type=WebhookType.INVOICE_CREATED, object_type="invoice", obj=None, object_id=1)
    assert written == 0
    assert len(queries.captured_queries) == 1
    assert not WebhookDelivery.objects.exists()


def test_an_endpoint_made_a_moment_ago_gets_the_next_announcement(receiver: Receiver) -> None:
    subscription = SubscriptionFactory(plan=scaled_team_plan(), subscription_at=NOW)

    def started() -> int:
        return announce(
            webhook_type=WebhookType.SUBSCRIPTION_STARTED,
            object_type="subscription",
            obj=subscription,
            object_id=subscription.pk,
        )

    assert started() == 0
    endpoint(receiver)  # no cache to wait for: the next announcement sees it
    assert started() == 1
    assert WebhookDelivery.objects.get().object_id == str(subscription.pk)

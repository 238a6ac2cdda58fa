"""The webhooks back office: endpoints (billing.admin.webhook_endpoints) with the signing key, and
the deliveries log with "Resend" (billing.admin.webhook_deliveries).

Deliveries are written by the services as in production and sent over real HTTP to a receiver in
the test process (tests/billing/services/webhook_receiver.py) by `deliver_due`, as the workers
send them. The `log` fixture, on `discounted_invoice` (tests/billing/admin/conftest.py), with
WEBHOOK_MAX_ATTEMPTS 1 so a refused attempt fails the delivery at once:

| delivery | endpoint | status |
|---|---|---|
| invoice.created (the invoice) | ops (every type) | succeeded (200) |
| credit_note.created (CN1) | ops | failed (500 "receiver failure") |
| credit_note.created (CN1) | ledger (credit notes only) | succeeded (200) |
| invoice.payment_status_updated (paid) | ops | pending, not sent yet |
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.contrib.admin import helpers
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.admin import webhook_endpoints as endpoints_admin
from billing.admin.webhook_deliveries import NOTHING_RESENT, RESENT, STILL_PENDING
from billing.admin.webhook_endpoints import ALL_TYPES, KEY_FROM_SETTING, KEY_GENERATED, SIGNATURE_ALGORITHM
from billing.engine.vocabulary import WebhookType
from billing.models import (
    CreditNote,
    CreditNoteReason,
    DeliveryStatus,
    Invoice,
    LineKind,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSigningKey,
)
from billing.services.credit_notes import credit_note_create
from billing.services.payments import payment_create
from billing.services.webhooks import (
    URL_SCHEME,
    URL_TAKEN,
    announce,
    deliver_due,
    signing_key,
    webhook_endpoint_create,
)
from tests.billing.services.webhook_receiver import Receiver, webhook_receiver

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@dataclass
class Log:
    receiver: Receiver
    ops: WebhookEndpoint
    ledger: WebhookEndpoint
    invoice: Invoice
    note: CreditNote

    def delivery(self, webhook_type: str, endpoint: WebhookEndpoint) -> WebhookDelivery:
        return WebhookDelivery.objects.get(webhook_type=webhook_type, endpoint=endpoint)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
def log(receiver: Receiver, settings: Any, request: pytest.FixtureRequest) -> Log:
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    ops = webhook_endpoint_create(webhook_url=receiver.url, name="ops")
    ledger = webhook_endpoint_create(
        webhook_url=f"{receiver.url}/ledger", name="ledger", event_types=[WebhookType.CREDIT_NOTE_CREATED]
    )
    invoice: Invoice = request.getfixturevalue("discounted_invoice")  # finalized: invoice.created
    assert deliver_due().succeeded

    usage = invoice.lines.get(kind=LineKind.USAGE)
    note = credit_note_create(
        invoice=invoice,
        items=[(usage.pk, Decimal(12))],
        reason=CreditNoteReason.ORDER_CHANGE,
        credit_amount=Decimal(9),
        refund_amount=Decimal(0),
        offset_amount=Decimal(0),
        now=NOW,
    )
    receiver.statuses = [500]  # the first sent (ops: the lower id) is refused, the other is taken
    report = deliver_due()
    assert (len(report.succeeded), len(report.failed)) == (1, 1)

    payment_create(invoice=invoice, amount=invoice.total, reference="wire", paid_at=NOW, now=NOW)
    log = Log(receiver=receiver, ops=ops, ledger=ledger, invoice=invoice, note=note)
    assert log.delivery("invoice.payment_status_updated", ops).status == DeliveryStatus.PENDING
    return log


def staff_client(username: str, *codenames: str) -> Client:
    user = User.objects.create_user(username, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def reader_client() -> Client:
    """Staff who may view endpoints and deliveries (and what they link to), nothing else."""
    return staff_client(
        "rita", "view_webhookendpoint", "view_webhookdelivery", "view_invoice", "view_creditnote", "view_subscription"
    )


def endpoints_url(view: str = "changelist", *args: Any) -> str:
    return reverse(f"admin:billing_webhookendpoint_{view}", args=args)


def deliveries_url(view: str = "changelist", *args: Any) -> str:
    return reverse(f"admin:billing_webhookdelivery_{view}", args=args)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def form_errors(response: Any) -> dict[str, list[str]]:
    return {name: [str(e) for e in errors] for name, errors in response.context["adminform"].form.errors.items()}


# --- Endpoints: the list and the signing key -------------------------------------------------------


def test_endpoint_list_shows_types_and_links_pending_and_failed_deliveries(
    admin_client: Client, log: Log, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(10):
        response = admin_client.get(endpoints_url())
    rows = {endpoint.name: endpoint for endpoint in response.context["cl"].result_list}
    assert (rows["ops"].pending_count, rows["ops"].failed_count) == (1, 1)
    assert (rows["ledger"].pending_count, rows["ledger"].failed_count) == (0, 0)
    content = response.content.decode()
    assert log.receiver.url in content and "credit_note.created" in content
    assert f'<td class="field-event_types_list">{ALL_TYPES}</td>' in content
    for status in ("pending", "failed"):
        link = f"{deliveries_url()}?endpoint__id__exact={log.ops.pk}&amp;status__exact={status}"
        assert f'href="{link}"' in content, status
    # The link finds that one delivery.
    failed = admin_client.get(deliveries_url(), {"endpoint__id__exact": log.ops.pk, "status__exact": "failed"})
    assert [d.pk for d in failed.context["cl"].result_list] == [log.delivery("credit_note.created", log.ops).pk]


def test_finance_sees_the_generated_signing_key_and_where_it_comes_from(admin_client: Client, log: Log) -> None:
    content = admin_client.get(endpoints_url()).content.decode()
    assert 'id="webhook-signing-key"' in content
    assert f'value="{signing_key()}"' in content and signing_key() == WebhookSigningKey.objects.get().key
    assert KEY_GENERATED in content
    assert 'data-copy-target="signing-key-value"' in content and "billing/admin/copy_button.js" in content


def test_the_signing_key_is_generated_on_the_first_look_and_kept(admin_client: Client) -> None:
    assert not WebhookSigningKey.objects.exists()
    first = admin_client.get(endpoints_url()).context["signing_key"]
    assert admin_client.get(endpoints_url()).context["signing_key"] == first == WebhookSigningKey.objects.get().key


def test_a_configured_signing_key_is_shown_with_its_source(admin_client: Client, settings: Any) -> None:
    settings.WEBHOOK_HMAC_KEY = "configured-key-0123456789"
    content = admin_client.get(endpoints_url()).content.decode()
    assert 'value="configured-key-0123456789"' in content and KEY_FROM_SETTING in content
    assert not WebhookSigningKey.objects.exists()


def test_read_only_staff_see_the_endpoints_but_not_the_key(reader_client: Client, log: Log) -> None:
    response = reader_client.get(endpoints_url())
    assert response.status_code == 200
    content = response.content.decode()
    assert "ops" in content and "signing_key" not in response.context
    assert signing_key() not in content and 'id="webhook-signing-key"' not in content
    assert response.context["action_form"] is None
    page = reader_client.get(endpoints_url("change", log.ops.pk)).content.decode()
    assert 'name="_save"' not in page and signing_key() not in page


def test_read_only_staff_looking_generate_no_key(reader_client: Client) -> None:
    assert reader_client.get(endpoints_url()).status_code == 200
    assert not WebhookSigningKey.objects.exists()


# --- Endpoints: add, change, delete through the services ------------------------------------------


def test_add_form_offers_every_type_as_a_checkbox_and_shows_the_algorithm(admin_client: Client) -> None:
    content = admin_client.get(endpoints_url("add")).content.decode()
    for webhook_type in WebhookType.values:
        assert f'type="checkbox" name="event_types" value="{webhook_type}"' in content, webhook_type
    assert SIGNATURE_ALGORITHM in content and 'name="signature_algo"' not in content


def test_add_form_creates_the_endpoint_through_the_service(admin_client: Client) -> None:
    data = {
        "name": "Accounting",
        "webhook_url": "https://hooks.example.test/billing",
        "event_types": ["invoice.created", "credit_note.created"],
    }
    with mock.patch.object(
        endpoints_admin, "webhook_endpoint_create", wraps=endpoints_admin.webhook_endpoint_create
    ) as service:
        response = admin_client.post(endpoints_url("add"), data, follow=True)
    service.assert_called_once()
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.name, endpoint.webhook_url, endpoint.signature_algo) == (
        "Accounting",
        "https://hooks.example.test/billing",
        "hmac",
    )
    assert endpoint.event_types == ["invoice.created", "credit_note.created"]
    assert any("was added successfully" in text for text in messages_of(response))
    assert LogEntry.objects.get().object_id == str(endpoint.pk)


def test_no_type_checked_means_every_type(admin_client: Client) -> None:
    response = admin_client.post(endpoints_url("add"), {"name": "", "webhook_url": "https://all.example.test/"})
    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types is None and endpoint.listens_to("alert.triggered")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://taken.example.test/hooks", "An endpoint with this URL exists already"),
        ("ftp://files.example.test/hooks", "Webhook URL must be an http:// or https:// URL"),
    ],
)
def test_add_form_shows_the_services_refusal_on_the_url_and_stores_nothing(
    admin_client: Client, url: str, message: str
) -> None:
    assert URL_TAKEN.lower() in message.lower() or URL_SCHEME in message  # the service's own words
    webhook_endpoint_create(webhook_url="https://taken.example.test/hooks")
    response = admin_client.post(endpoints_url("add"), {"name": "second", "webhook_url": url})
    assert response.status_code == 200
    assert form_errors(response) == {"webhook_url": [message]}
    assert WebhookEndpoint.objects.count() == 1 and not LogEntry.objects.exists()


def test_add_form_refuses_an_unknown_type_and_a_bad_url_before_the_service(admin_client: Client) -> None:
    with mock.patch.object(endpoints_admin, "webhook_endpoint_create") as service:
        response = admin_client.post(
            endpoints_url("add"), {"webhook_url": "not a url", "event_types": ["invoice.exploded"]}
        )
    service.assert_not_called()
    assert set(form_errors(response)) == {"webhook_url", "event_types"}
    assert not WebhookEndpoint.objects.exists()


def test_change_form_updates_through_the_service(admin_client: Client, log: Log) -> None:
    form = admin_client.get(endpoints_url("change", log.ledger.pk)).context["adminform"].form
    assert form.initial["event_types"] == ["credit_note.created"]
    with mock.patch.object(
        endpoints_admin, "webhook_endpoint_update", wraps=endpoints_admin.webhook_endpoint_update
    ) as service:
        response = admin_client.post(
            endpoints_url("change", log.ledger.pk),
            {"name": "ledger v2", "webhook_url": f"{log.receiver.url}/v2"},  # no type checked: all
        )
    assert response.status_code == 302
    service.assert_called_once()
    log.ledger.refresh_from_db()
    assert (log.ledger.name, log.ledger.webhook_url, log.ledger.event_types) == (
        "ledger v2",
        f"{log.receiver.url}/v2",
        None,
    )


def test_change_form_refuses_a_taken_url_on_its_field_and_changes_nothing(admin_client: Client, log: Log) -> None:
    response = admin_client.post(
        endpoints_url("change", log.ledger.pk),
        {"name": "renamed", "webhook_url": log.receiver.url, "event_types": ["invoice.voided"]},
    )
    assert response.status_code == 200
    assert form_errors(response) == {"webhook_url": ["An endpoint with this URL exists already"]}
    log.ledger.refresh_from_db()
    assert (log.ledger.name, log.ledger.event_types) == ("ledger", ["credit_note.created"])
    assert not LogEntry.objects.exists()


def test_delete_asks_first_then_deletes_through_the_service_and_keeps_the_log(admin_client: Client, log: Log) -> None:
    target = endpoints_url("delete", log.ops.pk)
    confirmation = admin_client.get(target)
    assert confirmation.status_code == 200 and "Are you sure" in confirmation.content.decode()
    assert WebhookEndpoint.objects.filter(pk=log.ops.pk).exists()
    with mock.patch.object(
        endpoints_admin, "webhook_endpoint_delete", wraps=endpoints_admin.webhook_endpoint_delete
    ) as service:
        response = admin_client.post(target, {"post": "yes"})
    assert response.status_code == 302
    service.assert_called_once()
    assert not WebhookEndpoint.objects.filter(pk=log.ops.pk).exists()
    kept = WebhookDelivery.objects.filter(webhook_url=log.receiver.url)
    assert kept.count() == 3 and not kept.exclude(endpoint=None).exists()
    listing = admin_client.get(deliveries_url()).content.decode()
    assert "(deleted)" in listing


def test_bulk_delete_goes_through_the_service(admin_client: Client, log: Log) -> None:
    data = {"action": "delete_selected", helpers.ACTION_CHECKBOX_NAME: [log.ops.pk, log.ledger.pk], "index": "0"}
    assert "Are you sure" in admin_client.post(endpoints_url(), data).content.decode()
    with mock.patch.object(
        endpoints_admin, "webhook_endpoint_delete", wraps=endpoints_admin.webhook_endpoint_delete
    ) as service:
        admin_client.post(endpoints_url(), {**data, "post": "yes"})
    assert service.call_count == 2
    assert not WebhookEndpoint.objects.exists() and WebhookDelivery.objects.count() == 4


# --- Deliveries: the log --------------------------------------------------------------------------


def test_log_lists_each_delivery_with_its_object_status_and_last_response(admin_client: Client, log: Log) -> None:
    response = admin_client.get(deliveries_url())
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 4
    content = response.content.decode()
    invoice_page = reverse("admin:billing_invoice_change", args=[log.invoice.pk])
    note_page = reverse("admin:billing_creditnote_change", args=[log.note.pk])
    assert f'<a href="{invoice_page}">invoice #{log.invoice.pk}</a>' in content
    assert f'<a href="{note_page}">credit note #{log.note.pk}</a>' in content
    for text in (
        "invoice.payment_status_updated",
        f"{log.receiver.url}/ledger",
        "500 · receiver failure",
        "200 · {&quot;ok&quot;: true}",
        "1 / 1",
        "0 / 1",
    ):
        assert text in content, text
    assert '<span class="delivery-status delivery-failed">Failed</span>' in content
    assert 'value="resend_selected"' in content and 'value="delete_selected"' not in content
    assert f'href="{deliveries_url("add")}"' not in content


def test_log_filters_by_status_type_and_endpoint_and_searches_keys_and_ids(admin_client: Client, log: Log) -> None:
    def found(**params: Any) -> set[int]:
        return {d.pk for d in admin_client.get(deliveries_url(), params).context["cl"].result_list}

    failed = log.delivery("credit_note.created", log.ops)
    to_ledger = log.delivery("credit_note.created", log.ledger)
    assert found(status__exact="failed") == {failed.pk}
    assert len(found(status__exact="succeeded")) == 2
    assert found(webhook_type__exact="credit_note.created") == {failed.pk, to_ledger.pk}
    assert found(endpoint__id__exact=log.ledger.pk) == {to_ledger.pk}
    assert found(q=str(failed.unique_key)) == {failed.pk}
    assert found(q=str(failed.unique_key)[:8]) == {failed.pk}
    # One key in forty starts with eight digits: its start is still found.
    WebhookDelivery.objects.filter(pk=failed.pk).update(unique_key=uuid.UUID("12345678-9abc-4def-8123-456789abcdef"))
    assert found(q="12345678") == {failed.pk}
    invoice_ids = {d.pk for d in WebhookDelivery.objects.filter(object_type="invoice")}
    assert found(q=str(log.invoice.pk)) == invoice_ids | (
        {failed.pk, to_ledger.pk} if log.note.pk == log.invoice.pk else set()  # ids of two tables may meet
    )
    assert len(invoice_ids) == 2
    assert found(q="no-such-key") == set()


def test_log_queries_do_not_grow_with_the_deliveries(admin_client: Client, log: Log) -> None:
    admin_client.get(deliveries_url())  # warm up the session and content types
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(deliveries_url()).status_code == 200
    for _ in range(30):
        announce(
            webhook_type=WebhookType.INVOICE_CREATED, object_type="invoice", obj=log.invoice, object_id=log.invoice.pk
        )
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(deliveries_url())
    assert len(response.context["cl"].result_list) == 34  # ops listens to every type, ledger to credit notes
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    assert len(many) <= 10


# --- Deliveries: a delivery's page ----------------------------------------------------------------


def test_delivery_page_shows_the_body_headers_and_attempts_read_only(admin_client: Client, log: Log) -> None:
    failed = log.delivery("credit_note.created", log.ops)
    page = deliveries_url("change", failed.pk)
    content = admin_client.get(page).content.decode()
    assert '<pre class="webhook-body">{\n  &quot;webhook_type&quot;: &quot;credit_note.created&quot;,' in content
    assert f"&quot;lago_id&quot;: &quot;{log.note.pk}&quot;" in content
    assert "<th>X-Lago-Signature-Algorithm</th><td><code>hmac</code></td>" in content
    assert f"<th>X-Lago-Unique-Key</th><td><code>{failed.unique_key}</code></td>" in content
    attempts = content.split('<table class="webhook-attempts">')[1].split("</table>")[0]
    assert attempts.count("<tr>") == 2  # the header and the one attempt
    assert '<td class="number">500</td>' in attempts and "receiver failure" in attempts and " ms</td>" in attempts
    assert 'name="_save"' not in content and "/delete/" not in content
    assert 'id="resend-delivery"' in content  # failed: may be resent
    pending = log.delivery("invoice.payment_status_updated", log.ops)
    pending_page = admin_client.get(deliveries_url("change", pending.pk)).content.decode()
    assert "No attempt yet." in pending_page and 'id="resend-delivery"' not in pending_page

    assert admin_client.post(page, {"status": "succeeded"}).status_code == 403
    assert admin_client.get(deliveries_url("add")).status_code == 403
    assert admin_client.post(deliveries_url("delete", failed.pk), {"post": "yes"}).status_code == 403
    assert WebhookDelivery.objects.get(pk=failed.pk).status == DeliveryStatus.FAILED


def test_delivery_page_links_its_endpoint_and_says_when_it_was_deleted(admin_client: Client, log: Log) -> None:
    delivery = log.delivery("invoice.created", log.ops)
    content = admin_client.get(deliveries_url("change", delivery.pk)).content.decode()
    assert f'href="{endpoints_url("change", log.ops.pk)}"' in content
    WebhookEndpoint.objects.filter(pk=log.ops.pk).delete()
    content = admin_client.get(deliveries_url("change", delivery.pk)).content.decode()
    assert "(deleted)" in content


# --- Deliveries: "Resend" -------------------------------------------------------------------------


def resend(client: Client, deliveries: list[WebhookDelivery], **extra: str) -> Any:
    data = {"action": "resend_selected", helpers.ACTION_CHECKBOX_NAME: [d.pk for d in deliveries], "index": "0"}
    return client.post(deliveries_url(), {**data, **extra}, follow=True)


def test_resend_sends_failed_and_succeeded_deliveries_again_with_the_same_key(admin_client: Client, log: Log) -> None:
    failed = log.delivery("credit_note.created", log.ops)
    succeeded = log.delivery("invoice.created", log.ops)
    pending = log.delivery("invoice.payment_status_updated", log.ops)
    first_bodies = {r.headers["X-Lago-Unique-Key"]: r.body for r in log.receiver.requests}

    response = resend(admin_client, [failed, succeeded, pending])
    texts = messages_of(response)
    assert RESENT[1] % {"count": 2} in texts
    refused = STILL_PENDING.format(
        webhook_type="invoice.payment_status_updated", object=f"invoice #{log.invoice.pk}", attempts=0, max_attempts=1
    )
    assert refused in texts
    for delivery, attempts in ((failed, 1), (succeeded, 1)):
        delivery.refresh_from_db()
        assert (delivery.status, delivery.max_attempts, delivery.attempts) == (DeliveryStatus.PENDING, 2, attempts)
    pending.refresh_from_db()
    assert (pending.status, pending.max_attempts) == (DeliveryStatus.PENDING, 1)  # untouched

    sent_before = len(log.receiver.requests)
    report = deliver_due()
    assert len(report.succeeded) == 3  # the two resent, and the pending one now due
    again = log.receiver.requests[sent_before:]
    for delivery in (failed, succeeded):
        key = str(delivery.unique_key)
        assert [r.body for r in again if r.headers["X-Lago-Unique-Key"] == key] == [first_bodies[key]]
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.SUCCEEDED, 2, 200)


def test_resending_only_pending_deliveries_is_refused(admin_client: Client, log: Log) -> None:
    pending = log.delivery("invoice.payment_status_updated", log.ops)
    before = WebhookDelivery.objects.filter(pk=pending.pk).values().get()
    response = resend(admin_client, [pending])
    assert NOTHING_RESENT in messages_of(response)
    assert WebhookDelivery.objects.filter(pk=pending.pk).values().get() == before  # unchanged
    assert response.redirect_chain[-1][0] == deliveries_url()


def test_resend_button_on_a_delivery_page_comes_back_to_it(admin_client: Client, log: Log) -> None:
    failed = log.delivery("credit_note.created", log.ops)
    response = resend(admin_client, [failed], _from_delivery_page="1")
    assert response.redirect_chain[-1][0] == deliveries_url("change", failed.pk)
    assert RESENT[0] % {"count": 1} in messages_of(response)
    failed.refresh_from_db()
    assert failed.status == DeliveryStatus.PENDING


def test_read_only_staff_view_the_log_and_a_delivery_but_may_not_resend(reader_client: Client, log: Log) -> None:
    failed = log.delivery("credit_note.created", log.ops)
    listing = reader_client.get(deliveries_url())
    assert listing.status_code == 200 and listing.context["action_form"] is None
    page = reader_client.get(deliveries_url("change", failed.pk)).content.decode()
    assert "receiver failure" in page and 'id="resend-delivery"' not in page
    before = list(WebhookDelivery.objects.order_by("pk").values())
    response = resend(reader_client, [failed], _from_delivery_page="1")
    assert response.status_code in (200, 403)
    assert list(WebhookDelivery.objects.order_by("pk").values()) == before

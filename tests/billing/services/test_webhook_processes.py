"""Webhooks across processes, on PostgreSQL (the subprocesses connect to the test database):

- a process killed between committing a change and queueing its delivery loses nothing: the
  delivery waits in the outbox and `deliver_webhooks` sends it afterwards;
- two `deliver_webhooks` processes at once send each attempt once (row locks, SKIP LOCKED).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django_q.models import OrmQ

from billing.engine.vocabulary import WebhookType
from billing.models import DeliveryStatus, Invoice, InvoiceStatus, WebhookAttempt, WebhookDelivery
from billing.services.webhooks import announce, signing_key, webhook_endpoint_create
from tests.billing.services.lifecycle import september_invoice
from tests.billing.services.webhook_receiver import webhook_receiver
from tests.conftest import using_postgres
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import at

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not using_postgres(), reason="the subprocesses need the test database on PostgreSQL"),
]

ROOT = Path(__file__).resolve().parents[3]
DELIVERIES = 30  # × 0.2 s at the receiver: both workers are busy at once

# Finalizes September inside a transaction whose first after-commit callback kills the process:
# the commit happens, the delivery task is never queued.
KILLED_AFTER_COMMIT = """
import os, signal, django
django.setup()
from datetime import UTC, datetime
from django.db import transaction
from billing.services.period_close import close_periods
with transaction.atomic():
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    close_periods(now=datetime(2026, 10, 2, 9, tzinfo=UTC))
"""


def database_url() -> str:
    db = connection.settings_dict
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def run(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def test_a_process_killed_after_the_commit_loses_no_delivery() -> None:
    with webhook_receiver() as receiver:
        webhook_endpoint_create(webhook_url=receiver.url, event_types=["invoice.created"])
        customer = CustomerFactory(external_id="acme")
        subscription = SubscriptionFactory(customer=customer, plan=scaled_team_plan(), subscription_at=at(2026, 9, 1))
        store_users(customer, range(300), at(2026, 9, 20), "sep")

        process = run([sys.executable, "-c", KILLED_AFTER_COMMIT])
        output, _ = process.communicate(timeout=120)
        assert process.returncode == -signal.SIGKILL, output.decode()

        invoice = Invoice.objects.get(subscription=subscription)  # the change committed…
        assert invoice.status == InvoiceStatus.FINALIZED
        delivery = WebhookDelivery.objects.get()  # …with its delivery
        assert (delivery.status, delivery.object_id) == (DeliveryStatus.PENDING, str(invoice.pk))
        assert not OrmQ.objects.exists() and receiver.requests == []  # nothing queued, nothing sent

        call_command("deliver_webhooks")
        assert [r.json["invoice"]["lago_id"] for r in receiver.requests] == [str(invoice.pk)]
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SUCCEEDED


def test_two_delivering_processes_send_each_attempt_once() -> None:
    world = september_invoice()
    with webhook_receiver(delay=0.2) as receiver:
        webhook_endpoint_create(webhook_url=receiver.url, event_types=["invoice.voided"])
        for _ in range(DELIVERIES):
            announce(webhook_type=WebhookType.INVOICE_VOIDED, object_type="invoice", obj=world.september, object_id=1)
        key = signing_key()
        workers = [run([sys.executable, "manage.py", "deliver_webhooks"]) for _ in range(2)]
        outputs = [worker.communicate(timeout=300)[0].decode() for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], outputs
        # both worked, and between them every delivery went out exactly once
        assert all("succeeded" in out and " 0 sent" not in out for out in outputs), outputs
        assert len(receiver.requests) == DELIVERIES
        assert len(set(receiver.keys())) == DELIVERIES
        assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
        assert WebhookAttempt.objects.count() == DELIVERIES
        for received in receiver.requests:
            expected = base64.b64encode(hmac.new(key.encode(), received.body, hashlib.sha256).digest()).decode()
            assert received.headers["X-Lago-Signature"] == expected

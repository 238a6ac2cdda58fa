"""Two django-q2 clusters on one Redis broker close the same periods: each invoice exactly once."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_q.models import Success

from billing.models import Invoice, InvoiceKind, Plan
from billing.services.period_close_workers import CHUNK_GROUP
from billing.services.subscriptions import subscription_create
from customers.models import Customer
from metering.ingest import store_events
from metering.models import BillableMetric
from metering.validation import Owner, ValidEvent
from tests.conftest import using_postgres

ROOT = Path(__file__).resolve().parents[3]
REDIS = ("127.0.0.1", 6379)


def redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1):
            return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(not using_postgres(), reason="two clusters need PostgreSQL (row locks across processes)"),
    pytest.mark.skipif(not redis_up(), reason="no Redis on 127.0.0.1:6379"),
]


def child_env(name: str) -> dict[str, str]:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
        "Q_CLUSTER_NAME": name,
        "Q_WORKERS": "2",
    }


def setup_customers(count: int) -> None:
    call_command("load_catalog", stdout=open(os.devnull, "w"))  # noqa: SIM115
    team = Plan.objects.get(code="team", is_current=True)
    mtu = BillableMetric.objects.get(code="mtu")
    frozen_now = timezone.now()
    this_month = datetime(frozen_now.year, frozen_now.month, 1, tzinfo=UTC)
    started = (this_month - timedelta(days=40)).replace(day=1)  # two closed periods at least
    events = []
    for i in range(count):
        customer = Customer.objects.create(external_id=f"c{i}", name=f"Customer {i}")
        subscription_create(
            customer=customer,
            plan=team,
            external_id=f"s{i}",
            subscription_at=started,
            billing_time="calendar",
            now=frozen_now,
        )
        owner = Owner(customer.pk, "UTC", customer.external_id)
        for u in range(20):
            events.append(
                ValidEvent(
                    owner=owner,
                    metric=mtu,
                    transaction_id=f"e{i}-{u}",
                    timestamp=started + timedelta(days=3),
                    properties={"user_id": f"u{u}"},
                    value=None,
                    distinct=f"u{u}",
                    payload_hash=f"h{i}-{u}",
                )
            )
    store_events(events, received_at=frozen_now)


@pytest.mark.django_db(transaction=True)
def test_two_clusters_on_redis_close_each_period_once() -> None:
    setup_customers(30)
    name = f"billing-test-{uuid.uuid4().hex[:8]}"
    env = child_env(name)
    clusters = [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        # Six runs of the scheduled task at once, picked up by both clusters' workers.
        enqueue = (
            "from django_q.tasks import async_task\n"
            "for _ in range(6): async_task('billing.tasks.close_ended_periods', group='two-clusters')\n"
        )
        subprocess.run([sys.executable, "manage.py", "shell", "-c", enqueue], cwd=ROOT, env=env, check=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and Success.objects.filter(group="two-clusters").count() < 6:
            time.sleep(0.5)
        assert Success.objects.filter(group="two-clusters").count() == 6
        # Each run queued the subscriptions due in chunks, one close_period_chunk task each:
        # wait for all of them too.
        summaries = Success.objects.filter(group="two-clusters").values_list("result", flat=True)
        chunks = sum(int(re.fullmatch(r"\d+ subscriptions in (\d+) chunks? queued", s).group(1)) for s in summaries)  # type: ignore[union-attr]
        done = Success.objects.filter(group=CHUNK_GROUP)
        while time.monotonic() < deadline and done.count() < chunks:
            time.sleep(0.5)
        assert done.count() == chunks
        assert all(cluster.poll() is None for cluster in clusters)  # both clusters were up throughout
    finally:
        for cluster in clusters:
            cluster.terminate()
        for cluster in clusters:
            try:
                cluster.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cluster.kill()

    invoices = Invoice.objects.filter(kind=InvoiceKind.PERIOD)
    per_period = invoices.values_list("subscription_id", "period_start")
    assert len(per_period) == len(set(per_period))  # each invoice exactly once
    assert invoices.count() >= 30 * 2
    numbers = sorted(int(n.rsplit("-", 1)[1]) for n in invoices.values_list("number", flat=True))
    assert numbers == list(range(1, len(numbers) + 1))  # unique and gap-free
    assert settings.Q_CLUSTER["name"] == "billing"  # the test process itself kept its own config

"""Concurrent ingestion through the real HTTP API, on PostgreSQL (STYLE rule 4).

Eight clients post at once to the live server, which serves each request in its own thread with
its own database connection, so the inserts really race: the (customer, transaction_id) unique
constraint and the DistinctValue upserts must make every client's view consistent, with no
deadlock, no 500 and no 409 between identical events.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone

from metering.models import DistinctValue, Event, EventCount
from metering.selectors import unique_count
from tests.conftest import using_postgres
from tests.factories import ApiKeyFactory, BillableMetricFactory, CustomerFactory
from tests.helpers import run_concurrently

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not using_postgres(), reason="concurrent writers need PostgreSQL (SQLite has one writer)"),
]

CLIENTS = 8
EVENTS = 10_000
USERS = 7_000
BATCH = 500


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: datetime) -> datetime:
    return month_start(month_start(moment) + timedelta(days=32))


def settled_now(margin: timedelta = timedelta(minutes=5)) -> datetime:
    """The real time, after waiting out the end of a UTC month that is less than `margin` away,
    so that every event is stamped in the month the test then counts."""
    now = timezone.now()
    turn = next_month_start(now)
    if turn - now < margin:
        time.sleep((turn - now).total_seconds() + 1)
        now = timezone.now()
    return now


def api_client(live_server: Any, raw_key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{live_server.url}/api/v1/", headers={"Authorization": f"Bearer {raw_key}"}, timeout=120
    )


def test_concurrent_identical_batches_store_each_event_once(live_server: Any) -> None:
    now = settled_now()
    customer = CustomerFactory(external_id="acme", timezone="UTC")
    metric = BillableMetricFactory()
    _, raw_key = ApiKeyFactory.create_with_key()

    rng = random.Random(20_260_101)
    users = [f"user-{i:05d}" for i in range(USERS)]
    # Every user once, then some of them again (possibly on another day: bits are OR-ed in).
    picks = users + [rng.choice(users) for _ in range(EVENTS - USERS)]
    first, last = int(month_start(now).timestamp()), int(now.timestamp()) - 1
    events = [
        {
            "transaction_id": f"tx-{i:05d}",
            "external_customer_id": "acme",
            "code": "mtu",
            "timestamp": rng.randint(first, max(first, last)),
            "properties": {"user_id": user},
        }
        for i, user in enumerate(picks)
    ]

    def client_sends_everything(seed: int) -> list[tuple[int, str]]:
        order = events[:]
        random.Random(seed).shuffle(order)
        statuses = []
        with api_client(live_server, raw_key) as http:
            for start in range(0, EVENTS, BATCH):
                response = http.post("events/batch", json={"events": order[start : start + BATCH]})
                statuses.append((response.status_code, response.text[:300]))
        return statuses

    started = time.monotonic()
    results = run_concurrently([lambda seed=seed: client_sends_everything(seed) for seed in range(CLIENTS)])
    elapsed = time.monotonic() - started

    failed = [(status, body) for statuses in results for status, body in statuses if status != 200]
    assert not failed, f"{len(failed)} of {CLIENTS * EVENTS // BATCH} batches failed, first: {failed[0]}"
    assert elapsed < 300

    assert Event.objects.filter(customer=customer).count() == EVENTS
    start, end = month_start(now), next_month_start(now)
    assert unique_count(customer=customer, metric=metric, start=start, end=end) == USERS
    assert DistinctValue.objects.filter(customer=customer, metric=metric).count() == USERS

    # No OR of a day bit was lost between concurrent upserts of the same row.
    expected_days: dict[str, int] = {}
    for event in events:
        day = datetime.fromtimestamp(event["timestamp"], tz=UTC).day
        user = event["properties"]["user_id"]
        expected_days[user] = expected_days.get(user, 0) | (1 << (day - 1))
    stored_days = dict(DistinctValue.objects.filter(customer=customer, metric=metric).values_list("value", "days"))
    assert stored_days == expected_days
    # Nor an increment of a daily event count.
    expected_counts: dict[date, int] = {}
    for event in events:
        day = datetime.fromtimestamp(event["timestamp"], tz=UTC).date()
        expected_counts[day] = expected_counts.get(day, 0) + 1
    stored_counts = dict(EventCount.objects.filter(customer=customer, metric=metric).values_list("day", "count"))
    assert stored_counts == expected_counts


def test_concurrent_reuse_of_a_transaction_id_stores_one_payload(live_server: Any) -> None:
    now = settled_now()
    customer = CustomerFactory(external_id="acme", timezone="UTC")
    metric = BillableMetricFactory()
    _, raw_key = ApiKeyFactory.create_with_key()
    rounds = 10

    for round_ in range(rounds):
        transaction_id = f"tx-race-{round_}"
        payloads = [
            {
                "transaction_id": transaction_id,
                "external_customer_id": "acme",
                "code": "mtu",
                "timestamp": int(now.timestamp()) - 60,
                "properties": {"user_id": f"user-{round_}-{'ab'[i % 2]}"},
            }
            for i in range(CLIENTS)
        ]

        def send(payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            with api_client(live_server, raw_key) as http:
                response = http.post("events", json={"event": payload})
            return response.status_code, response.json()

        results = run_concurrently([lambda p=p: send(p) for p in payloads])

        (stored,) = Event.objects.filter(customer=customer, transaction_id=transaction_id)
        for payload, (status, body) in zip(payloads, results, strict=True):
            if payload["properties"] == stored.properties:
                assert status == 200, body
                assert body["event"]["lago_id"] == str(stored.pk)
                assert body["event"]["properties"] == stored.properties
            else:
                assert status == 409, body
                assert body["code"] == "transaction_id_conflict"
        assert Counter(status for status, _ in results) == {200: CLIENTS // 2, 409: CLIENTS // 2}

    # A refused event left nothing behind: only the stored payloads' users are counted.
    stored_users = {e.properties["user_id"] for e in Event.objects.filter(customer=customer)}
    assert len(stored_users) == rounds
    counted = set(DistinctValue.objects.filter(customer=customer, metric=metric).values_list("value", flat=True))
    assert counted == stored_users

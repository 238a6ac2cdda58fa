"""Lago's official Python SDK (lago-python-client 1.55, unmodified) against the live API (DESIGN §4).

The server runs in another thread on the real clock, so time cannot be frozen: the subscription
starts at the beginning of the previous month (its 14-day trial, on the base fee only, is over)
and events are stamped earlier in the current month, which stays within the accepted event age.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.event import BatchEvent
from lago_python_client.models.event import Event as LagoEvent
from lago_python_client.models.subscription import Subscription as LagoSubscription

from billing.engine.money import to_cents
from billing.engine.pricing import price_charge
from billing.models import Subscription, SubscriptionStatus
from billing.selectors.plans import charge_spec, current_plan, plan_spec
from customers.services import api_key_create
from metering.models import DistinctValue, Event
from metering.validation import UNKNOWN_METRIC
from tests.helpers import messages

pytestmark = pytest.mark.django_db(transaction=True)

USERS = 10_050  # 10,000 included, then 50 at 0.012: $0.60
BATCH = 1_000  # BILLING_EVENTS_BATCH_MAX
SINGLE = 5  # events sent one by one; the rest go in batches


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: datetime) -> datetime:
    return month_start(month_start(moment) + timedelta(days=32))


def settled_now(margin: timedelta = timedelta(minutes=5)) -> datetime:
    """The real time, after waiting out the end of a UTC month that is less than `margin` away.

    Usage is read for the period containing the server's "now": it must be the month the events
    were stamped in, so the test does not start when the month could turn while it runs.
    """
    now = timezone.now()
    turn = next_month_start(now)
    if turn - now < margin:
        time.sleep((turn - now).total_seconds() + 1)
        now = timezone.now()
    return now


def timestamps(now: datetime, n: int) -> list[int]:
    """`n` Unix timestamps in this UTC month, at most six hours ago and not after `now`.

    Early on the 1st the window is small (down to one second): the timestamps then repeat.
    """
    earliest = max(month_start(now), now - timedelta(hours=6))
    first = int(earliest.timestamp()) + (earliest.microsecond > 0)
    last = int(now.timestamp())
    span = max(1, last - first + 1)
    return [first + i % span for i in range(n)]


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def lago(live_server: Any) -> Client:
    call_command("load_catalog", verbosity=0)
    _, raw_key = api_key_create(name="lago sdk")
    return Client(api_key=raw_key, api_url=live_server.url)


def test_lago_sdk_meters_and_prices_team_usage(lago: Client) -> None:
    now = settled_now()

    customer = lago.customers.create(LagoCustomer(external_id="acme", name="Acme Inc.", currency="USD", timezone="UTC"))
    assert customer is not None
    assert (customer.external_id, customer.currency, customer.applicable_timezone) == ("acme", "USD", "UTC")

    subscribed_at = month_start(month_start(now) - timedelta(days=1))
    subscription = lago.subscriptions.create(
        LagoSubscription(
            external_customer_id="acme",
            plan_code="team",
            external_id="acme-team",
            subscription_at=iso(int(subscribed_at.timestamp())),
            billing_time="calendar",
        )
    )
    assert subscription is not None
    assert (subscription.external_id, subscription.plan_code, subscription.status) == ("acme-team", "team", "active")
    assert subscription.trial_ended_at is not None
    assert datetime.fromisoformat(subscription.trial_ended_at) <= month_start(now)

    stamps = timestamps(now, USERS)
    events = [
        LagoEvent(
            transaction_id=f"tx-{i:05d}",
            external_subscription_id="acme-team",
            code="mtu",
            # Unix seconds and ISO 8601, both as Lago accepts them.
            timestamp=stamps[i] if i % 2 else iso(stamps[i]),
            properties={"user_id": f"user-{i:05d}"},
        )
        for i in range(USERS)
    ]

    for event in events[:SINGLE]:
        stored = lago.events.create(event)
        assert stored is not None
        assert (stored.transaction_id, stored.external_subscription_id, stored.code) == (
            event.transaction_id,
            "acme-team",
            "mtu",
        )
    for start in range(SINGLE, USERS, BATCH):
        assert lago.events.batch_create(BatchEvent(events=events[start : start + BATCH])) is None

    # The same event again: accepted, stored once.
    first = lago.events.create(events[0])
    again = lago.events.create(events[0])
    assert first is not None and again is not None
    assert first.lago_id == again.lago_id
    assert Event.objects.filter(transaction_id=events[0].transaction_id).count() == 1
    found = lago.events.find(events[0].transaction_id)
    assert (found.lago_id, found.properties) == (first.lago_id, {"user_id": "user-00000"})
    assert Event.objects.count() == USERS
    assert DistinctValue.objects.count() == USERS

    usage = lago.customers.current_usage("acme", external_subscription_id="acme-team")

    plan = current_plan("team")
    (mtu_charge,) = plan.charges.all()
    assert [c.metric_code for c in plan_spec(plan).charges] == ["mtu"]
    priced = price_charge(charge_spec(mtu_charge), Decimal(USERS), plan.currency)
    expected_cents = to_cents(priced.amount, plan.currency)
    assert expected_cents == 60  # 50 users over the 10,000 included, at $0.012

    assert usage.currency == "USD"
    assert datetime.fromisoformat(usage.from_datetime) == month_start(now)
    assert datetime.fromisoformat(usage.to_datetime) == next_month_start(now)
    assert (usage.amount_cents, usage.taxes_amount_cents, usage.total_amount_cents) == (expected_cents, 0, 60)
    (charge_usage,) = usage.charges_usage
    assert charge_usage.billable_metric.code == "mtu"
    assert charge_usage.billable_metric.aggregation_type == "unique_count_agg"
    assert charge_usage.charge.charge_model == "graduated"
    assert (charge_usage.units, charge_usage.events_count) == ("10050", USERS)
    assert (charge_usage.amount_cents, charge_usage.amount_currency) == (expected_cents, "USD")


def test_lago_sdk_unknown_metric_code_is_a_422(lago: Client) -> None:
    now = settled_now()
    lago.customers.create(LagoCustomer(external_id="acme", name="Acme Inc.", currency="USD", timezone="UTC"))
    lago.subscriptions.create(LagoSubscription(external_customer_id="acme", plan_code="team", external_id="acme-team"))

    with pytest.raises(LagoApiError) as caught:
        lago.events.create(
            LagoEvent(
                transaction_id="tx-unknown",
                external_subscription_id="acme-team",
                code="no-such-metric",
                timestamp=timestamps(now, 1)[0],
                properties={"user_id": "user-1"},
            )
        )

    assert caught.value.status_code == 422
    assert caught.value.response["code"] == "validation_errors"
    assert messages(caught.value.response["error_details"]) == {"code": [UNKNOWN_METRIC.format(code="no-such-metric")]}
    assert not Event.objects.exists()


def test_lago_sdk_destroy_terminates_the_subscription(lago: Client) -> None:
    lago.customers.create(LagoCustomer(external_id="acme", name="Acme Inc.", currency="USD", timezone="UTC"))
    lago.subscriptions.create(LagoSubscription(external_customer_id="acme", plan_code="team", external_id="acme-team"))

    assert lago.customers.find("acme").name == "Acme Inc."
    assert [c.external_id for c in lago.customers.find_all()["customers"]] == ["acme"]
    listed = lago.subscriptions.find_all({"external_customer_id": "acme"})["subscriptions"]
    assert [(s.external_id, s.status) for s in listed] == [("acme-team", "active")]

    terminated = lago.subscriptions.destroy("acme-team")

    assert (terminated.external_id, terminated.status) == ("acme-team", "terminated")
    assert terminated.terminated_at is not None
    subscription = Subscription.objects.get(external_id="acme-team")
    assert subscription.status == SubscriptionStatus.TERMINATED
    assert subscription.terminated_at is not None

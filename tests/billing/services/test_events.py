"""billing.services.events.events_ingest: owners resolved for the batch, every event validated,
late ones flagged, the batch stored whole or not at all (the orchestration the API used to do)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.selectors.event_owners import UNKNOWN_CUSTOMER, UNKNOWN_SUBSCRIPTION
from billing.services.events import EventsInvalid, events_ingest
from billing.services.period_close import close_periods
from metering.models import Event
from tests.factories import BillableMetricFactory, CustomerFactory, PlanFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 10, 10, 12, tzinfo=UTC)


def event(n: int, **fields: object) -> dict[str, object]:
    return {
        "transaction_id": f"tx-{n}",
        "code": "mtu",
        "timestamp": NOW.timestamp(),
        "properties": {"user_id": f"u{n}"},
    } | fields


@pytest.fixture
def acme() -> None:
    BillableMetricFactory()
    customer = CustomerFactory(external_id="acme")
    SubscriptionFactory(
        customer=customer, plan=PlanFactory(), external_id="acme-sub", subscription_at=NOW - timedelta(days=60)
    )


def test_a_batch_is_stored_in_order_with_the_owner_each_names(acme: None) -> None:
    ingested = events_ingest(
        payloads=[event(1, external_customer_id="acme"), event(2, external_subscription_id="acme-sub")], now=NOW
    )
    assert [e.stored.transaction_id for e in ingested] == ["tx-1", "tx-2"]
    assert [e.external_customer_id for e in ingested] == ["acme", "acme"]
    # Sent by customer, an event is answered with the customer's active subscription (as Lago).
    assert [e.stored.external_subscription_id or e.fallback_subscription_id for e in ingested] == ["acme-sub"] * 2
    assert Event.objects.count() == 2


def test_one_invalid_event_stores_nothing_and_names_it_by_index(acme: None) -> None:
    with pytest.raises(EventsInvalid) as refused:
        events_ingest(
            payloads=[
                event(1, external_customer_id="acme"),
                event(2, external_customer_id="nobody"),
                event(3, external_subscription_id="gone"),
            ],
            now=NOW,
        )
    assert refused.value.errors == {
        "1": {"external_customer_id": [UNKNOWN_CUSTOMER.format(ref="nobody")]},
        "2": {"external_subscription_id": [UNKNOWN_SUBSCRIPTION.format(ref="gone")]},
    }
    assert not Event.objects.exists()


def test_an_event_of_an_invoiced_period_is_flagged_late(acme: None) -> None:
    close_periods(now=datetime(2026, 10, 1, 0, 5, tzinfo=UTC))  # September is invoiced and final
    september = NOW - timedelta(days=15)
    [late, current] = events_ingest(
        payloads=[
            event(1, external_customer_id="acme", timestamp=september.timestamp()),
            event(2, external_customer_id="acme"),
        ],
        now=NOW,
    )
    assert (late.stored.is_late, current.stored.is_late) == (True, False)
    assert Event.objects.filter(is_late=True).count() == 1

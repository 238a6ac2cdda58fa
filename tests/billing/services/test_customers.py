"""billing.services.customers: one rule for when a customer's currency and time zone lock, for
the API and the admin alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.services.customers import (
    CURRENCY_LOCKED,
    TIMEZONE_LOCKED,
    CustomerError,
    customer_update,
    customer_upsert,
    locked_fields,
)
from customers.models import Customer
from metering.ingest import store_events
from metering.validation import Owner, ValidEvent, payload_hash
from tests.factories import BillableMetricFactory, CustomerFactory, SubscriptionFactory, team_plan

pytestmark = pytest.mark.django_db

JUNE_1 = datetime(2026, 6, 1, tzinfo=UTC)


def send_event(customer: Customer) -> None:
    metric = BillableMetricFactory()
    owner = Owner(customer.pk, customer.timezone, customer.external_id)
    properties = {"user_id": "u1"}
    store_events(
        [
            ValidEvent(
                owner=owner,
                metric=metric,
                transaction_id="tx-1",
                timestamp=JUNE_1,
                properties=properties,
                value=None,
                distinct="u1",
                payload_hash=payload_hash("mtu", JUNE_1.timestamp(), properties),
            )
        ],
        received_at=JUNE_1,
    )


def test_a_new_customer_has_nothing_locked() -> None:
    assert locked_fields(CustomerFactory()) == {}


def test_events_lock_the_time_zone_but_not_the_currency() -> None:
    customer = CustomerFactory()
    send_event(customer)
    assert locked_fields(customer) == {"timezone": TIMEZONE_LOCKED}
    changed = customer_update(customer=customer, changes={"currency": "EUR"})
    assert changed.currency == "EUR"
    with pytest.raises(CustomerError) as refused:
        customer_update(customer=customer, changes={"timezone": "Europe/Paris"})
    assert refused.value.errors == {"timezone": [TIMEZONE_LOCKED]}
    assert Customer.objects.get(pk=customer.pk).timezone == "UTC"


def test_a_subscription_locks_both() -> None:
    customer = CustomerFactory()
    SubscriptionFactory(customer=customer, plan=team_plan(), subscription_at=JUNE_1)
    assert locked_fields(customer) == {"timezone": TIMEZONE_LOCKED, "currency": CURRENCY_LOCKED}
    with pytest.raises(CustomerError) as refused:
        customer_upsert(external_id=customer.external_id, changes={"currency": "EUR", "timezone": "Asia/Tokyo"})
    assert refused.value.errors == {"timezone": [TIMEZONE_LOCKED], "currency": [CURRENCY_LOCKED]}


def test_sending_the_current_value_again_is_not_a_change() -> None:
    customer = CustomerFactory(timezone="Europe/Paris")
    SubscriptionFactory(customer=customer, plan=team_plan(), subscription_at=JUNE_1)
    saved, created = customer_upsert(
        external_id=customer.external_id, changes={"timezone": "Europe/Paris", "currency": "USD", "name": "Renamed"}
    )
    assert (created, saved.name) == (False, "Renamed")


def test_upsert_creates_then_updates_by_external_id_and_ignores_absent_fields() -> None:
    customer, created = customer_upsert(external_id="acme", changes={"name": "Acme", "country": "fr"})
    assert created and (customer.name, customer.country, customer.currency) == ("Acme", "FR", "USD")
    again, created = customer_upsert(external_id="acme", changes={"name": None, "email": "a@acme.example"})
    assert not created and (again.pk, again.name, again.email) == (customer.pk, "Acme", "a@acme.example")

"""POST /api/v1/events and /api/v1/events/batch, GET /api/v1/events/<transaction_id> (DESIGN §4).

Lago's envelopes, idempotency by (customer, transaction_id), 422 per field (per index in a batch,
nothing of the batch stored), 409 on a reused transaction id, 401 without a valid key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from billing.api.events import BATCH_TOO_LARGE
from billing.selectors.event_owners import UNKNOWN_CUSTOMER, UNKNOWN_SUBSCRIPTION
from customers.authentication import INVALID_KEY, MISSING_KEY
from customers.models import ApiKey, Customer
from customers.services import api_key_revoke
from metering.models import DistinctValue, Event
from metering.validation import (
    BAD_TIMESTAMP,
    CUSTOMER_OR_SUBSCRIPTION,
    IN_FUTURE,
    PROPERTY_NOT_NUMERIC,
    PROPERTY_REQUIRED,
    REQUIRED,
    TOO_LONG,
    TOO_OLD,
    UNKNOWN_METRIC,
)
from tests.conftest import using_postgres
from tests.factories import ApiKeyFactory, BillableMetricFactory, CustomerFactory, SubscriptionFactory, team_plan
from tests.helpers import errors

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def customer() -> Customer:
    BillableMetricFactory()  # mtu: unique_count of user_id
    BillableMetricFactory(code="storage", name="Storage", aggregation="sum", field="gb")
    return CustomerFactory(external_id="acme")


def subscribe(customer: Customer, external_id: str = "acme-team") -> None:
    SubscriptionFactory(
        customer=customer, plan=team_plan(), external_id=external_id, subscription_at=NOW - timedelta(days=60)
    )


def mtu(tx: str = "tx-1", **overrides: Any) -> dict[str, Any]:
    event = {
        "transaction_id": tx,
        "external_customer_id": "acme",
        "code": "mtu",
        "timestamp": NOW_TS - 60,
        "properties": {"user_id": "user-42"},
    }
    event.update(overrides)
    return event


def post_event(api: APIClient, event: dict[str, Any]) -> Any:
    return api.post("/api/v1/events", {"event": event}, format="json")


def post_batch(api: APIClient, events: list[Any]) -> Any:
    return api.post("/api/v1/events/batch", {"events": events}, format="json")


# --- one event -----------------------------------------------------------------------------------


def test_event_by_external_customer_id_is_stored_and_echoed_in_lago_envelope(
    api: APIClient, customer: Customer
) -> None:
    response = post_event(api, mtu())
    assert response.status_code == 200
    event = response.json()["event"]
    stored = Event.objects.get()
    assert event["lago_id"] == str(stored.pk)
    assert event["lago_customer_id"] == str(customer.pk)
    assert event["transaction_id"] == "tx-1"
    assert event["external_customer_id"] == "acme"
    assert event["code"] == "mtu"
    assert event["properties"] == {"user_id": "user-42"}
    assert event["timestamp"] == "2026-10-20T11:59:00Z"
    assert (stored.customer_id, stored.timestamp, stored.properties) == (
        customer.pk,
        NOW - timedelta(seconds=60),
        {"user_id": "user-42"},
    )
    assert DistinctValue.objects.get().value == "user-42"


def test_event_by_external_subscription_id_belongs_to_its_customer(api: APIClient, customer: Customer) -> None:
    subscribe(customer)
    event = mtu(external_subscription_id="acme-team")
    del event["external_customer_id"]
    response = post_event(api, event)
    assert response.status_code == 200
    assert response.json()["event"]["external_subscription_id"] == "acme-team"
    assert response.json()["event"]["external_customer_id"] == "acme"
    stored = Event.objects.get()
    assert (stored.customer_id, stored.external_subscription_id) == (customer.pk, "acme-team")


def test_same_event_twice_is_accepted_and_stored_once(api: APIClient, customer: Customer) -> None:
    first = post_event(api, mtu())
    second = post_event(api, mtu())
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["event"]["lago_id"] == second.json()["event"]["lago_id"]
    assert Event.objects.count() == 1


def test_same_transaction_id_with_a_different_payload_is_a_conflict_and_changes_nothing(
    api: APIClient, customer: Customer
) -> None:
    post_event(api, mtu())
    response = post_event(api, mtu(properties={"user_id": "someone-else"}))
    assert response.status_code == 409
    assert response.json()["status"] == 409
    assert "tx-1" in response.json()["error_details"]["transaction_id"][0]
    assert list(Event.objects.values_list("properties", flat=True)) == [{"user_id": "user-42"}]
    assert list(DistinctValue.objects.values_list("value", flat=True)) == ["user-42"]


def test_same_transaction_id_with_another_timestamp_is_a_conflict(api: APIClient, customer: Customer) -> None:
    post_event(api, mtu())
    assert post_event(api, mtu(timestamp=NOW_TS - 120)).status_code == 409


def test_retry_without_timestamp_is_accepted_and_stored_once(api: APIClient, customer: Customer) -> None:
    event = mtu()
    del event["timestamp"]
    assert post_event(api, event).status_code == 200
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        retry = post_event(api, event)
    assert retry.status_code == 200
    stored = Event.objects.get()
    assert stored.timestamp == NOW  # the first arrival's clock
    assert retry.json()["event"]["timestamp"] == "2026-10-20T12:00:00Z"


def test_same_transaction_id_for_two_customers_is_two_events(api: APIClient, customer: Customer) -> None:
    CustomerFactory(external_id="globex")
    assert post_event(api, mtu()).status_code == 200
    assert post_event(api, mtu(external_customer_id="globex")).status_code == 200
    assert Event.objects.count() == 2


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (NOW_TS - 3600, NOW - timedelta(hours=1)),
        (NOW_TS - 3600.25, NOW - timedelta(hours=1, microseconds=250_000)),
        (str(NOW_TS - 3600), NOW - timedelta(hours=1)),
        (f"{NOW_TS - 3600}.5", NOW - timedelta(hours=1) + timedelta(microseconds=500_000)),
        ("2026-10-20T11:00:00Z", NOW - timedelta(hours=1)),
        ("2026-10-20T13:00:00+02:00", NOW - timedelta(hours=1)),
        ("2026-10-20T11:00:00", NOW - timedelta(hours=1)),  # no offset: UTC
        ("2026-10-20T11:00:00.123456Z", NOW - timedelta(hours=1) + timedelta(microseconds=123_456)),
    ],
)
def test_timestamp_as_int_float_numeric_string_or_iso_8601_is_accepted(
    api: APIClient, customer: Customer, timestamp: Any, expected: datetime
) -> None:
    response = post_event(api, mtu(timestamp=timestamp))
    assert response.status_code == 200, response.content
    assert Event.objects.get().timestamp == expected


def test_timestamp_a_few_minutes_ahead_is_accepted(api: APIClient, customer: Customer) -> None:
    assert post_event(api, mtu(timestamp=NOW_TS + 4 * 60)).status_code == 200


def test_null_optional_fields_are_absent_and_unknown_fields_are_ignored(api: APIClient, customer: Customer) -> None:
    subscribe(customer)
    # What lago-python-client's Event(...).dict() sends: every optional field, null when unset.
    event = {
        "transaction_id": "tx-sdk",
        "external_subscription_id": "acme-team",
        "external_customer_id": None,
        "code": "mtu",
        "timestamp": None,
        "precise_total_amount_cents": None,
        "properties": {"user_id": "u1"},
        "some_future_lago_field": {"nested": True},
    }
    response = post_event(api, event)
    assert response.status_code == 200, response.content
    stored = Event.objects.get()
    assert (stored.timestamp, stored.properties) == (NOW, {"user_id": "u1"})


def test_null_properties_are_accepted_for_a_metric_that_reads_none(api: APIClient, customer: Customer) -> None:
    BillableMetricFactory(code="api-calls", name="API calls", aggregation="count", field="")
    response = post_event(api, mtu(code="api-calls", properties=None))
    assert response.status_code == 200, response.content
    assert Event.objects.get().properties == {}


# --- 422 per field -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"external_customer_id": "nobody"}, "external_customer_id", UNKNOWN_CUSTOMER.format(ref="nobody")),
        ({"external_customer_id": None}, "external_customer_id", CUSTOMER_OR_SUBSCRIPTION),
        (
            {"external_customer_id": None, "external_subscription_id": "nope"},
            "external_subscription_id",
            UNKNOWN_SUBSCRIPTION.format(ref="nope"),
        ),
        ({"code": "pageviews"}, "code", UNKNOWN_METRIC.format(code="pageviews")),
        ({"transaction_id": None}, "transaction_id", REQUIRED),
        ({"properties": {"anonymous_id": "x"}}, "properties.user_id", PROPERTY_REQUIRED.format(code="mtu")),
        ({"properties": {}}, "properties.user_id", PROPERTY_REQUIRED.format(code="mtu")),
        (
            {"code": "storage", "properties": {"gb": "lots"}},
            "properties.gb",
            PROPERTY_NOT_NUMERIC.format(code="storage", value="lots"),
        ),
        ({"code": "storage", "properties": {}}, "properties.gb", PROPERTY_REQUIRED.format(code="storage")),
        ({"timestamp": NOW_TS + 10 * 60}, "timestamp", IN_FUTURE),
        ({"timestamp": NOW_TS - 36 * 86_400}, "timestamp", TOO_OLD.format(days=35)),
        ({"timestamp": "yesterday"}, "timestamp", BAD_TIMESTAMP.format(value="yesterday")),
        ({"timestamp": "2026-13-01T00:00:00Z"}, "timestamp", BAD_TIMESTAMP.format(value="2026-13-01T00:00:00Z")),
        ({"timestamp": True}, "timestamp", BAD_TIMESTAMP.format(value=True)),
    ],
)
def test_invalid_event_is_rejected_with_a_message_for_its_field(
    api: APIClient, customer: Customer, overrides: dict[str, Any], field: str, message: str
) -> None:
    response = post_event(api, mtu(**overrides))
    assert errors(response) == {field: [message]}
    assert Event.objects.count() == 0


def test_several_problems_are_reported_together(api: APIClient, customer: Customer) -> None:
    details = errors(post_event(api, mtu(code="pageviews", timestamp="soon", external_customer_id="nobody")))
    assert set(details) == {"code", "timestamp", "external_customer_id"}


def test_timestamp_within_the_accepted_age_is_accepted(api: APIClient, customer: Customer) -> None:
    assert post_event(api, mtu(timestamp=NOW_TS - 34 * 86_400)).status_code == 200


def test_body_without_an_event_object_is_rejected(api: APIClient, customer: Customer) -> None:
    assert "event" in errors(api.post("/api/v1/events", {"events": []}, format="json"))


def test_subscription_of_another_customer_is_rejected(api: APIClient, customer: Customer) -> None:
    subscribe(CustomerFactory(external_id="globex"), "globex-team")
    details = errors(post_event(api, mtu(external_subscription_id="globex-team")))
    assert list(details) == ["external_subscription_id"]


# --- batches -------------------------------------------------------------------------------------


def test_batch_stores_every_event_and_answers_in_order(api: APIClient, customer: Customer) -> None:
    subscribe(customer)
    events = [mtu(f"tx-{i}", properties={"user_id": f"u{i % 3}"}) for i in range(5)]
    events.append(
        {
            **mtu("tx-by-sub", external_subscription_id="acme-team", properties={"user_id": "u0"}),
            "external_customer_id": None,
        }
    )
    response = post_batch(api, events)
    assert response.status_code == 200, response.content
    body = response.json()["events"]
    assert [e["transaction_id"] for e in body] == [*(f"tx-{i}" for i in range(5)), "tx-by-sub"]
    assert all(e["external_subscription_id"] == "acme-team" for e in body)
    assert Event.objects.count() == 6
    assert DistinctValue.objects.count() == 3


def test_batch_with_one_invalid_event_is_rejected_by_index_and_stores_nothing(
    api: APIClient, customer: Customer
) -> None:
    events = [mtu(f"tx-{i}", properties={"user_id": f"u{i}"}) for i in range(5)]
    events[3]["properties"] = {}
    details = errors(post_batch(api, events))
    assert details == {"3": {"properties.user_id": [PROPERTY_REQUIRED.format(code="mtu")]}}
    assert Event.objects.count() == 0
    assert DistinctValue.objects.count() == 0


def test_batch_reports_every_invalid_index(api: APIClient, customer: Customer) -> None:
    events = [mtu("tx-0"), mtu("tx-1", code="nope"), mtu("tx-2"), "not an object", mtu("tx-4", timestamp="x")]
    details = errors(post_batch(api, events))
    assert set(details) == {"1", "3", "4"}
    assert details["1"] == {"code": [UNKNOWN_METRIC.format(code="nope")]}


def test_batch_with_a_conflicting_transaction_id_stores_nothing(api: APIClient, customer: Customer) -> None:
    post_event(api, mtu("tx-old"))
    response = post_batch(api, [mtu("tx-new"), mtu("tx-old", properties={"user_id": "changed"})])
    assert response.status_code == 409
    assert list(Event.objects.values_list("transaction_id", flat=True)) == ["tx-old"]


def test_batch_repeating_a_transaction_id_with_another_payload_is_a_conflict(
    api: APIClient, customer: Customer
) -> None:
    response = post_batch(api, [mtu("tx-1"), mtu("tx-1", properties={"user_id": "other"})])
    assert response.status_code == 409
    assert Event.objects.count() == 0


def test_batch_retry_is_idempotent(api: APIClient, customer: Customer) -> None:
    events = [mtu(f"tx-{i}", properties={"user_id": f"u{i}"}) for i in range(3)]
    first = post_batch(api, events)
    second = post_batch(api, [*events, mtu("tx-3", properties={"user_id": "u3"})])
    assert (first.status_code, second.status_code) == (200, 200)
    assert Event.objects.count() == 4
    assert [e["lago_id"] for e in first.json()["events"]] == [e["lago_id"] for e in second.json()["events"][:3]]


def test_batch_above_the_maximum_is_rejected(api: APIClient, customer: Customer, settings: Any) -> None:
    settings.BILLING_EVENTS_BATCH_MAX = 3
    details = errors(post_batch(api, [mtu(f"tx-{i}") for i in range(4)]))
    assert details == {"events": [BATCH_TOO_LARGE.format(n=3)]}
    assert Event.objects.count() == 0
    assert post_batch(api, [mtu(f"tx-{i}", properties={"user_id": str(i)}) for i in range(3)]).status_code == 200


def test_default_batch_maximum_is_1000(api: APIClient, customer: Customer) -> None:
    details = errors(post_batch(api, [mtu(f"tx-{i}") for i in range(1001)]))
    assert details == {"events": [BATCH_TOO_LARGE.format(n=1000)]}


@pytest.mark.parametrize("body", [{"events": []}, {"events": "nope"}, {"event": {}}, []])
def test_batch_body_must_be_a_non_empty_list(api: APIClient, customer: Customer, body: Any) -> None:
    assert "events" in errors(api.post("/api/v1/events/batch", body, format="json"))


# --- authentication ------------------------------------------------------------------------------


def test_no_key_is_unauthorized(customer: Customer) -> None:
    response = APIClient().post("/api/v1/events", {"event": mtu()}, format="json")
    assert response.status_code == 401
    assert response.json()["message"] == MISSING_KEY
    assert response["WWW-Authenticate"] == "Bearer"
    assert Event.objects.count() == 0


@pytest.mark.parametrize("header", ["Bearer bk_not-a-real-key", "Token something", "Bearer "])
def test_wrong_key_is_unauthorized(customer: Customer, header: str) -> None:
    ApiKeyFactory.create_with_key()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=header)
    assert api.post("/api/v1/events", {"event": mtu()}, format="json").status_code == 401


def test_revoked_key_is_unauthorized(customer: Customer) -> None:
    key, raw = ApiKeyFactory.create_with_key()
    api_key_revoke(key=key)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api.post("/api/v1/events/batch", {"events": [mtu()]}, format="json")
    assert response.status_code == 401
    assert response.json()["message"] == INVALID_KEY
    assert api.get("/api/v1/events/tx-1").status_code == 401


def test_using_a_key_records_when_it_was_last_used(api: APIClient, customer: Customer) -> None:
    post_event(api, mtu())
    assert ApiKey.objects.get().last_used_at == NOW


# --- GET /api/v1/events/<transaction_id> --------------------------------------------------------


def test_get_event_by_transaction_id_and_customer(api: APIClient, customer: Customer) -> None:
    posted = post_event(api, mtu("tx-get", properties={"user_id": 42})).json()["event"]
    response = api.get("/api/v1/events/tx-get", {"external_customer_id": "acme"})
    assert response.status_code == 200
    assert response.json()["event"] == posted
    assert response.json()["event"]["properties"] == {"user_id": 42}


def test_get_unknown_event_is_not_found(api: APIClient, customer: Customer) -> None:
    post_event(api, mtu("tx-1"))
    CustomerFactory(external_id="globex")
    assert api.get("/api/v1/events/tx-unknown", {"external_customer_id": "acme"}).status_code == 404
    assert api.get("/api/v1/events/tx-1", {"external_customer_id": "globex"}).status_code == 404
    body = api.get("/api/v1/events/tx-unknown").json()
    assert (body["status"], body["code"]) == (404, "event_not_found")


@pytest.mark.parametrize(
    "gb", ["99999999999999999999.99999999999", "-99999999999999999999.999999999995", "1e20", 1e25, "NaN", [1]]
)
def test_numeric_property_too_large_for_the_value_column_is_rejected(
    api: APIClient, customer: Customer, gb: Any
) -> None:
    details = errors(post_event(api, mtu(code="storage", properties={"gb": gb})))
    assert details == {"properties.gb": [PROPERTY_NOT_NUMERIC.format(code="storage", value=gb)]}


@pytest.mark.parametrize(
    "gb",
    [
        pytest.param(
            "99999999999999999999.9999999999",
            # SQLite keeps the column as a float: this reads back as 1e20, which no longer fits.
            marks=pytest.mark.skipif(not using_postgres(), reason="exact numeric(30, 10) on PostgreSQL only"),
        ),
        "9999999999999999999.9999999999",
        "-12345678901234567890",
        "0.00000000001",
        1e19,
    ],
)
def test_numeric_property_that_fits_the_value_column_is_accepted(api: APIClient, customer: Customer, gb: Any) -> None:
    assert post_event(api, mtu(code="storage", properties={"gb": gb})).status_code == 200


def test_too_long_ids_are_rejected(api: APIClient, customer: Customer) -> None:
    details = errors(post_event(api, mtu("t" * 256, properties={"user_id": "u" * 256})))
    assert details == {"transaction_id": [TOO_LONG.format(n=255)], "properties.user_id": [TOO_LONG.format(n=255)]}
    assert post_event(api, mtu("t" * 255, properties={"user_id": "u" * 255})).status_code == 200


def test_numeric_sum_property_is_stored_as_a_decimal_value(api: APIClient, customer: Customer) -> None:
    assert post_event(api, mtu(code="storage", properties={"gb": "1.25"})).status_code == 200
    assert post_event(api, mtu("tx-2", code="storage", properties={"gb": 2})).status_code == 200
    assert sorted(Event.objects.values_list("value", flat=True)) == [Decimal("1.25"), Decimal(2)]

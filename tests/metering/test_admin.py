"""The events admin: read-only for everyone, searchable by exact ids, cheap on a huge table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse

from customers.models import Customer
from metering.admin import CappedCountPaginator, EventAdmin
from metering.ingest import store_events
from metering.models import BillableMetric, Event
from metering.validation import Owner, ValidEvent, payload_hash
from tests.factories import BillableMetricFactory, CustomerFactory

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


def send(customer: Customer, metric: BillableMetric, count: int, *, at: datetime, prefix: str = "evt") -> list[Event]:
    """`count` events of the metric, one minute apart from `at`, through the ingestion service."""
    owner = Owner(customer.pk, customer.timezone, customer.external_id)
    events = []
    for i in range(count):
        timestamp = at + timedelta(minutes=i)
        properties = {"user_id": f"user_{i}"} if metric.field == "user_id" else {}
        events.append(
            ValidEvent(
                owner=owner,
                metric=metric,
                transaction_id=f"{prefix}-{i:04d}",
                timestamp=timestamp,
                properties=properties,
                value=None,
                distinct=properties.get("user_id"),
                payload_hash=payload_hash(metric.code, timestamp.isoformat(), properties),
            )
        )
    return store_events(events, received_at=at)


@pytest.fixture
def mtu() -> BillableMetric:
    return BillableMetricFactory()


@pytest.fixture
def calls() -> BillableMetric:
    return BillableMetricFactory(code="api_calls", name="API calls", aggregation="count", field="")


def listed(client: Client, **params: str) -> list[str]:
    response = client.get(reverse("admin:metering_event_changelist"), params)
    assert response.status_code == 200
    return [event.transaction_id for event in response.context["cl"].result_list]


def test_event_list_renders_newest_first_in_a_bounded_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any, mtu: BillableMetric, calls: BillableMetric
) -> None:
    acme = CustomerFactory(external_id="acme")
    hooli = CustomerFactory(external_id="hooli")
    send(acme, mtu, 200, at=NOW - timedelta(days=3), prefix="acme")
    send(hooli, calls, 100, at=NOW - timedelta(days=2), prefix="hooli")

    # Session, user, the capped count, the page (customer and metric joined), the metric codes.
    # No unfiltered total, no facet counts, no date hierarchy.
    with django_assert_max_num_queries(5):
        response = admin_client.get(reverse("admin:metering_event_changelist"))

    assert response.status_code == 200
    rows = response.context["cl"].result_list
    assert len(rows) == 100
    assert rows[0].transaction_id == "hooli-0099"  # the newest stored first
    content = response.content.decode()
    assert "hooli-0099" in content and "api_calls" in content
    assert reverse("admin:customers_customer_change", args=[hooli.pk]) in content
    assert "300 events" in content


def test_nobody_may_add_change_or_delete_an_event_not_even_a_superuser(
    admin_client: Client, admin_user: User, mtu: BillableMetric
) -> None:
    (event,) = send(CustomerFactory(), mtu, 1, at=NOW)
    model_admin = admin.site._registry[Event]
    request = RequestFactory().get("/")
    request.user = admin_user

    assert isinstance(model_admin, EventAdmin)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
    assert model_admin.has_view_permission(request, event)

    change_url = reverse("admin:metering_event_change", args=[event.pk])
    page = admin_client.get(change_url)
    assert page.status_code == 200
    content = page.content.decode()
    assert "evt-0000" in content and "user_0" in content
    assert 'name="_save"' not in content and 'name="transaction_id"' not in content
    assert admin_client.get(reverse("admin:metering_event_add")).status_code == 403
    assert admin_client.post(change_url, {"transaction_id": "changed"}).status_code == 403
    assert admin_client.get(reverse("admin:metering_event_delete", args=[event.pk])).status_code == 403
    assert (
        admin_client.post(reverse("admin:metering_event_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    )
    bulk = admin_client.post(
        reverse("admin:metering_event_changelist"),
        {"action": "delete_selected", "_selected_action": [str(event.pk)], "post": "yes"},
    )
    assert bulk.status_code in {200, 302}
    assert Event.objects.get(pk=event.pk).transaction_id == "evt-0000"
    assert Event.objects.count() == 1


def test_events_are_searched_by_exact_transaction_id_and_customer_external_id(
    admin_client: Client, mtu: BillableMetric
) -> None:
    acme = CustomerFactory(external_id="acme")
    hooli = CustomerFactory(external_id="hooli")
    send(acme, mtu, 3, at=NOW - timedelta(hours=1), prefix="tx")
    send(hooli, mtu, 2, at=NOW - timedelta(hours=1), prefix="tx")

    assert sorted(listed(admin_client, q="acme")) == ["tx-0000", "tx-0001", "tx-0002"]
    assert listed(admin_client, q="tx-0002") == ["tx-0002"]  # only acme has a third event
    assert listed(admin_client, q="hooli tx-0001") == ["tx-0001"]
    assert [e for e in listed(admin_client, q="tx-0001")] == ["tx-0001", "tx-0001"]
    assert listed(admin_client, q="tx-000") == []  # exact, not a substring
    assert listed(admin_client, q="ACME") == []  # exact, case-sensitive


def test_events_are_filtered_by_metric_code_date_and_customer(
    admin_client: Client, mtu: BillableMetric, calls: BillableMetric
) -> None:
    acme = CustomerFactory(external_id="acme")
    send(acme, mtu, 2, at=NOW - timedelta(days=20), prefix="old")
    send(acme, calls, 2, at=NOW - timedelta(hours=2), prefix="today")
    other = CustomerFactory()
    send(other, mtu, 1, at=NOW - timedelta(hours=1), prefix="other")

    assert sorted(listed(admin_client, code="api_calls")) == ["today-0000", "today-0001"]
    today = NOW.replace(hour=0)
    since_today = {"timestamp__gte": today.isoformat(), "timestamp__lt": (today + timedelta(days=1)).isoformat()}
    assert sorted(listed(admin_client, **since_today)) == ["other-0000", "today-0000", "today-0001"]
    # The customer page links to its events this way.
    assert sorted(listed(admin_client, customer__id__exact=str(other.pk))) == ["other-0000"]


def test_event_counts_stop_at_the_cap(
    admin_client: Client, mtu: BillableMetric, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CappedCountPaginator, "cap", 150)
    send(CustomerFactory(), mtu, 200, at=NOW - timedelta(days=1))

    response = admin_client.get(reverse("admin:metering_event_changelist"))
    searched = admin_client.get(reverse("admin:metering_event_changelist"), {"q": "evt-0007"})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 150
    assert "More than 150 events" in response.content.decode()
    assert len(response.context["cl"].result_list) == 100
    assert searched.context["cl"].result_count == 1
    assert "1 result" in searched.content.decode()

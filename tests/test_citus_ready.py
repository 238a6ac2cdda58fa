"""Ready for Citus in fact (issue 18, item 5): every statement that ingestion, current usage and
the period close send to the tables the README says are distributed by customer
(`metering_event`, `metering_eventkey`, `metering_distinctvalue`, `metering_distinctcount`,
`metering_eventcount`) names one customer: an equality (or IN list) on `customer_id`, so Citus
routes it to one shard (or a few). Inserts carry the column in every row. The SQL is captured on
PostgreSQL, where it is the SQL production runs. Ingestion sends one storing statement per
customer, the customer written into it (metering/ingest_postgresql.py), with or without prepared
statements."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.services.period_close import close_periods
from tests.factories import BillableMetricFactory, ChargeFactory, CustomerFactory, PlanFactory, SubscriptionFactory
from tests.helpers import api_client, get, post

if TYPE_CHECKING:
    from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

DISTRIBUTED = (
    "metering_event",
    "metering_eventkey",
    "metering_distinctvalue",
    "metering_distinctcount",
    "metering_eventcount",
)
TABLE = re.compile(r'\b(?:FROM|JOIN|UPDATE|INTO)\s+"?(' + "|".join(DISTRIBUTED) + r')"?\b', re.IGNORECASE)
# A value, not a join: `"customer_id" = 42` or `customer_id IN (42, 43)` (the SQL as sent, with
# its parameters in it). A join condition (`customer_id = "customers_customer"."id"`) does not count.
ONE_CUSTOMER = re.compile(r'customer_id"?\s*(?:=\s*\d+\b|IN\s*\(\s*\d)', re.IGNORECASE)
SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)


def routed_by_customer(sql: str) -> bool:
    if sql.lstrip().upper().startswith("INSERT"):
        return "customer_id" in sql  # every row carries its shard's key
    return bool(ONE_CUSTOMER.search(sql))


def offenders(captured: list[dict[str, str]]) -> list[str]:
    return [q["sql"][:300] for q in captured if TABLE.search(q["sql"]) and not routed_by_customer(q["sql"])]


@pytest.fixture
def world() -> None:
    metric = BillableMetricFactory(code="mtu", aggregation="unique_count", field="user_id")
    plan = PlanFactory(code="metered", base_fee=Decimal("10"))
    ChargeFactory(plan=plan, metric=metric, unit_amount=Decimal("0.10"))
    for name in ("acme", "globex"):
        SubscriptionFactory(
            customer=CustomerFactory(external_id=name), plan=plan, external_id=f"{name}-sub", subscription_at=SEPTEMBER
        )


def ingest(api: APIClient) -> list[dict[str, str]]:
    """One event per customer, then a batch mixing both, sent twice (the retry reads what is
    stored); the SQL they sent."""
    with CaptureQueriesContext(connection) as captured:
        for i, name in enumerate(("acme", "globex")):
            event = {"transaction_id": f"t-{i}", "external_customer_id": name, "code": "mtu"}
            post(api, "/api/v1/events", {"event": {**event, "properties": {"user_id": "u1"}}})
        batch = [
            {
                "transaction_id": f"b-{n}",
                "external_customer_id": name,
                "code": "mtu",
                "properties": {"user_id": f"u{n}"},
            }
            for n, name in enumerate(["acme", "globex"] * 3)
        ]
        for _ in range(2):
            post(api, "/api/v1/events/batch", {"events": batch})
    return captured.captured_queries


@pytest.fixture
def postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the SQL Citus would route is PostgreSQL's")


def test_current_usage_and_the_close_route_each_statement_to_one_customer(world: None, postgresql: None) -> None:
    api = api_client()
    with time_machine.travel(datetime(2026, 9, 20, 12, tzinfo=UTC), tick=False):
        ingest(api)
        with CaptureQueriesContext(connection) as usage:
            get(api, "/api/v1/customers/acme/current_usage", external_subscription_id="acme-sub")
    with CaptureQueriesContext(connection) as close:
        report = close_periods(now=datetime(2026, 10, 1, 0, 5, tzinfo=UTC))
    assert not report.errors and len(report.finalized) == 2

    touched = [q for q in [*usage.captured_queries, *close.captured_queries] if TABLE.search(q["sql"])]
    assert touched, "the capture saw none of the distributed tables"
    assert offenders(usage.captured_queries) == []
    assert offenders(close.captured_queries) == []


def test_ingestion_routes_each_statement_to_one_customer(world: None, postgresql: None) -> None:
    with time_machine.travel(datetime(2026, 9, 20, 12, tzinfo=UTC), tick=False):
        captured = ingest(api_client())
    assert [q for q in captured if TABLE.search(q["sql"])], "the capture saw none of the distributed tables"
    assert offenders(captured) == []

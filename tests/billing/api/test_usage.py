"""GET /api/v1/customers/<external_id>/current_usage: the open period measured, priced and previewed.

The acceptance case: the shipped Segment catalog, a `team` subscription past its trial, 50,000
events from 30,000 distinct users posted through the batch API → 30,000 MTUs, $235.00 of usage,
an invoice preview of $355.00.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from billing.api.usage import NO_ACTIVE_SUBSCRIPTION, SUBSCRIPTION_REQUIRED
from customers.models import Customer
from metering.models import Event
from tests.factories import CustomerFactory
from tests.helpers import messages

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture(autouse=True)
def segment_catalog() -> None:
    call_command("load_catalog", stdout=io.StringIO())


@pytest.fixture
def customer() -> Customer:
    return CustomerFactory(external_id="acme")


def subscribe(api: APIClient, plan_code: str, subscription_at: datetime, external_id: str = "acme-sub") -> None:
    response = api.post(
        "/api/v1/subscriptions",
        {
            "subscription": {
                "external_customer_id": "acme",
                "plan_code": plan_code,
                "external_id": external_id,
                "subscription_at": subscription_at.isoformat(),
                "billing_time": "calendar",
            }
        },
        format="json",
    )
    assert response.status_code == 200, response.content


def post_mtus(api: APIClient, user_ids: list[str], *, start: datetime, end: datetime, prefix: str = "e") -> None:
    """One event per user id, spread evenly over [start, end), in batches of 1,000."""
    span = (end - start) / len(user_ids)
    events = [
        {
            "transaction_id": f"{prefix}-{i}",
            "external_customer_id": "acme",
            "code": "mtu",
            "timestamp": (start + span * i).timestamp(),
            "properties": {"user_id": user_id},
        }
        for i, user_id in enumerate(user_ids)
    ]
    for chunk in range(0, len(events), 1000):
        response = api.post("/api/v1/events/batch", {"events": events[chunk : chunk + 1000]}, format="json")
        assert response.status_code == 200, response.content[:500]


def current_usage(api: APIClient, **params: str) -> dict[str, Any]:
    response = api.get("/api/v1/customers/acme/current_usage", params)
    assert response.status_code == 200, response.content
    return response.json()["customer_usage"]


def preview(usage: dict[str, Any]) -> list[tuple[str, str]]:
    return [(line["kind"], line["amount"]) for line in usage["invoice_preview"]["lines"]]


def test_team_plan_with_30000_distinct_users_in_50000_events_costs_355(api: APIClient, customer: Customer) -> None:
    subscribe(api, "team", datetime(2026, 8, 1, tzinfo=UTC))  # trial ended in August
    users = (
        [f"user-{n}" for n in range(30_000)]
        + [f"user-{n}" for n in range(0, 30_000, 3)]
        + [f"user-{n}" for n in range(1, 30_000, 3)]
    )
    assert (len(users), len(set(users))) == (50_000, 30_000)
    post_mtus(api, users, start=OCTOBER, end=NOW)
    # Last month's users do not count in October.
    post_mtus(api, ["september-only"], start=NOW - timedelta(days=25), end=NOW - timedelta(days=24), prefix="s")
    assert Event.objects.count() == 50_001

    usage = current_usage(api)
    assert (usage["from_datetime"], usage["to_datetime"]) == ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    assert usage["amount_cents"] == 23500
    assert usage["total_amount_cents"] == 23500
    assert usage["amount"] == "235.00"
    assert usage["currency"] == "USD"
    assert usage["plan_code"] == "team"
    [charge] = usage["charges_usage"]
    assert charge["units"] == "30000"
    assert charge["events_count"] == 50_000
    assert charge["amount_cents"] == 23500
    assert charge["amount"] == "235.00"
    assert charge["billable_metric"]["code"] == "mtu"
    assert charge["billable_metric"]["aggregation_type"] == "unique_count_agg"
    assert charge["limit_exceeded"] is False
    assert [(t["units"], t["amount"]) for t in charge["tiers"]] == [
        ("10000", "0"),
        ("15000", "180"),
        ("5000", "55"),
        ("0", "0"),
    ]
    assert preview(usage) == [("base_fee", "120.00"), ("usage", "235.00")]
    assert usage["invoice_preview"]["total"] == "355.00"
    assert usage["invoice_preview"]["total_cents"] == 35500


def test_current_usage_parses_with_lagos_sdk_model(api: APIClient, customer: Customer) -> None:
    models = pytest.importorskip("lago_python_client.models.customer_usage")
    subscribe(api, "team", datetime(2026, 8, 1, tzinfo=UTC))
    post_mtus(api, ["a", "b"], start=OCTOBER, end=NOW)
    parsed = models.CustomerUsageResponse.parse_obj(current_usage(api))
    assert parsed.amount_cents == 0
    assert parsed.charges_usage[0].units == "2"


def test_free_plan_over_1000_mtus_flags_the_limit_and_bills_nothing(api: APIClient, customer: Customer) -> None:
    subscribe(api, "free", datetime(2026, 8, 1, tzinfo=UTC))
    post_mtus(api, [f"u{n}" for n in range(1_500)], start=OCTOBER, end=NOW)
    usage = current_usage(api)
    [charge] = usage["charges_usage"]
    assert charge["units"] == "1500"
    assert charge["billed_units"] == "1000"
    assert charge["usage_limit"] == "1000"
    assert charge["limit_exceeded"] is True
    assert (charge["amount_cents"], charge["amount"]) == (0, "0.00")
    assert usage["amount_cents"] == 0
    assert usage["invoice_preview"]["total"] == "0.00"


def test_free_plan_at_the_limit_is_not_exceeded(api: APIClient, customer: Customer) -> None:
    subscribe(api, "free", datetime(2026, 8, 1, tzinfo=UTC))
    post_mtus(api, [f"u{n}" for n in range(1_000)], start=OCTOBER, end=NOW)
    assert current_usage(api)["charges_usage"][0]["limit_exceeded"] is False


def test_team_trial_discounts_the_base_fee_but_bills_usage(api: APIClient, customer: Customer) -> None:
    subscribe(api, "team", OCTOBER)  # trial: October 1st to 14th
    post_mtus(api, [f"u{n}" for n in range(12_000)], start=OCTOBER, end=OCTOBER + timedelta(days=10))
    usage = current_usage(api)
    # 120 × 14 / 31 = 54.19 off the base fee; 2,000 MTUs above the included 10,000 at 0.012.
    assert preview(usage) == [("base_fee", "120.00"), ("promotion", "-54.19"), ("usage", "24.00")]
    assert usage["invoice_preview"]["total"] == "89.81"
    assert usage["amount_cents"] == 2400


def test_team_subscription_started_mid_month_prorates_the_base_fee(api: APIClient, customer: Customer) -> None:
    subscribe(api, "team", datetime(2026, 10, 10, 9, tzinfo=UTC))  # Oct 10th: 22 of 31 days, trial to 23rd
    usage = current_usage(api)
    assert usage["from_datetime"] == "2026-10-10T00:00:00Z"
    # 120 × 22 / 31 = 85.16; the trial covers 14 of those days: 120 × 14 / 31 = 54.19.
    assert preview(usage) == [("base_fee", "85.16"), ("promotion", "-54.19"), ("usage", "0.00")]
    assert usage["invoice_preview"]["total"] == "30.97"


def test_team_annual_first_month_discounts_usage_seen_only_during_the_trial(api: APIClient, customer: Customer) -> None:
    subscribe(api, "team-annual", OCTOBER)  # plan-level trial: October 1st to 14th
    trial_end = OCTOBER + timedelta(days=14)
    # 12,000 users this month; 7,000 of them are (also) seen after the trial.
    post_mtus(api, [f"u{n}" for n in range(9_000)], start=OCTOBER, end=trial_end, prefix="trial")
    post_mtus(api, [f"u{n}" for n in range(5_000, 12_000)], start=trial_end, end=NOW, prefix="after")
    usage = current_usage(api)
    assert usage["charges_usage"][0]["units"] == "12000"
    assert usage["amount_cents"] == 2400  # Lago's amount: the charge before promotions
    assert preview(usage) == [
        ("base_fee", "120.00"),
        ("promotion", "-54.19"),
        ("usage", "24.00"),
        ("promotion", "-24.00"),  # price(12,000) − price(7,000 outside the trial)
    ]
    assert usage["invoice_preview"]["total"] == "65.81"


def test_team_annual_after_the_trial_month_has_no_discount(api: APIClient, customer: Customer) -> None:
    subscribe(api, "team-annual", datetime(2026, 8, 1, tzinfo=UTC))
    post_mtus(api, [f"u{n}" for n in range(12_000)], start=OCTOBER, end=NOW)
    assert preview(current_usage(api)) == [("base_fee", "120.00"), ("usage", "24.00")]


def test_current_usage_in_the_customer_time_zone(api: APIClient) -> None:
    CustomerFactory(external_id="acme", timezone="America/New_York")
    subscribe(api, "team", datetime(2026, 8, 1, 12, tzinfo=UTC))
    # 02:00 UTC on Oct 1st is still September 30th in New York: not in the open period.
    post_mtus(api, ["late-september"], start=datetime(2026, 10, 1, 2, tzinfo=UTC), end=OCTOBER + timedelta(hours=3))
    post_mtus(api, ["october"], start=datetime(2026, 10, 1, 4, tzinfo=UTC), end=NOW, prefix="o")
    usage = current_usage(api)
    assert (usage["from_datetime"], usage["to_datetime"]) == ("2026-10-01T04:00:00Z", "2026-11-01T04:00:00Z")
    assert usage["charges_usage"][0]["units"] == "1"


def test_current_usage_needs_an_active_subscription(api: APIClient, customer: Customer) -> None:
    response = api.get("/api/v1/customers/acme/current_usage")
    assert response.status_code == 422
    assert messages(response.json()["error_details"]) == {"external_subscription_id": [NO_ACTIVE_SUBSCRIPTION]}
    assert api.get("/api/v1/customers/nobody/current_usage").status_code == 404


def test_current_usage_names_the_subscription_when_several_are_active(api: APIClient, customer: Customer) -> None:
    subscribe(api, "team", datetime(2026, 8, 1, tzinfo=UTC), external_id="one")
    subscribe(api, "free", datetime(2026, 8, 1, tzinfo=UTC), external_id="two")
    response = api.get("/api/v1/customers/acme/current_usage")
    assert response.status_code == 422
    expected = {"external_subscription_id": [SUBSCRIPTION_REQUIRED.format(n=2)]}
    assert messages(response.json()["error_details"]) == expected
    assert current_usage(api, external_subscription_id="two")["plan_code"] == "free"

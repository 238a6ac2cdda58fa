"""Subscriptions as Lago's API has them (issue 16): update (ending_at, a pending one's start, what
its termination bills), the list (active by default, status[], plan_code, 422 for other
parameters) and the customer's list, a pending one canceled, a downgrade staged to the end of the
period, DELETE's options, lifetime usage; and one round trip with lago-python-client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command
from lago_python_client.client import Client
from lago_python_client.models.alert import Alert as LagoAlert
from lago_python_client.models.alert import AlertsList, AlertThreshold, AlertThresholdList
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.subscription import Subscription as LagoSubscription
from rest_framework.test import APIClient

from billing.engine.vocabulary import OnTerminationInvoice
from billing.models import Plan, Subscription, SubscriptionStatus
from billing.services.subscriptions import CREDIT_NOTE_SKIP_ONLY, ENDS_TOO_EARLY, ONLY_WHILE_PENDING
from customers.services import api_key_create
from tests.factories import CustomerFactory, PlanFactory, team_plan
from tests.helpers import errors, get, post_subscription

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def team() -> Plan:
    CustomerFactory(external_id="acme")
    return team_plan()


def subscribe(api: APIClient, external_id: str = "s", **fields: Any) -> dict[str, Any]:
    fields = {"external_customer_id": "acme", "plan_code": "team", "external_id": external_id} | fields
    response = post_subscription(api, **fields)
    assert response.status_code == 200, response.content
    return dict(response.json()["subscription"])


def put(api: APIClient, external_id: str, **fields: Any) -> Any:
    return api.put(f"/api/v1/subscriptions/{external_id}", {"subscription": fields}, format="json")


def listed(api: APIClient, path: str = "/api/v1/subscriptions", **params: Any) -> list[str]:
    return [s["external_id"] for s in get(api, path, **params)["subscriptions"]]


def test_update_sets_ending_at_and_refuses_a_past_one(api: APIClient, team: Plan) -> None:
    subscribe(api)
    body = put(api, "s", ending_at="2026-12-31T00:00:00Z", on_termination_invoice="skip").json()["subscription"]
    assert (body["ending_at"], body["on_termination_invoice"]) == ("2026-12-31T00:00:00Z", "skip")
    assert errors(put(api, "s", ending_at="2026-10-20T23:00:00Z")) == {"ending_at": [ENDS_TOO_EARLY]}
    assert set(errors(put(api, "s", on_termination_invoice="later"))) == {"on_termination_invoice"}
    assert errors(put(api, "s", on_termination_credit_note="refund")) == {
        "on_termination_credit_note": [CREDIT_NOTE_SKIP_ONLY]
    }
    assert errors(put(api, "s", subscription_at="2026-11-01T00:00:00Z")) == {"subscription_at": [ONLY_WHILE_PENDING]}


def test_a_pending_subscriptions_start_moves_and_a_past_one_starts_it(api: APIClient, team: Plan) -> None:
    subscribe(api, subscription_at="2026-11-15T00:00:00Z")
    moved = put(api, "s", subscription_at="2026-12-01T00:00:00Z").json()["subscription"]
    assert (moved["status"], moved["subscription_at"]) == ("pending", "2026-12-01T00:00:00Z")
    started = put(api, "s", subscription_at="2026-10-19T00:00:00Z").json()["subscription"]
    assert (started["status"], started["started_at"]) == ("active", "2026-10-19T00:00:00Z")


def test_the_list_is_lagos_active_by_default_with_its_filters(api: APIClient, team: Plan) -> None:
    PlanFactory(code="starter")
    subscribe(api, "a")
    subscribe(api, "b", plan_code="starter")
    subscribe(api, "later", subscription_at="2026-11-15T00:00:00Z")
    subscribe(api, "gone")
    api.delete("/api/v1/subscriptions/gone")
    api.delete("/api/v1/subscriptions/later")

    assert listed(api) == ["a", "b"]
    assert listed(api, **{"status[]": ["canceled", "terminated"]}) == ["later", "gone"]
    assert listed(api, plan_code="starter") == ["b"]
    assert listed(api, "/api/v1/customers/acme/subscriptions", plan_code="team") == ["a"]
    page = get(api, "/api/v1/subscriptions", per_page=1, page=2)
    assert ([s["external_id"] for s in page["subscriptions"]], page["meta"]["total_count"]) == (["b"], 2)
    assert set(errors(api.get("/api/v1/subscriptions", {"plan": "team"}))) == {"plan"}
    assert set(errors(api.get("/api/v1/subscriptions", {"status[]": "gone"}))) == {"status"}
    assert api.get("/api/v1/customers/nobody/subscriptions").json()["code"] == "customer_not_found"


def test_a_pending_subscription_deleted_is_canceled(api: APIClient, team: Plan) -> None:
    subscribe(api, subscription_at="2026-11-15T00:00:00Z")
    body = api.delete("/api/v1/subscriptions/s?status=pending").json()
    canceled = body["subscription"]
    assert (canceled["status"], canceled["canceled_at"], canceled["terminated_at"], canceled["started_at"]) == (
        "canceled",
        "2026-10-20T12:00:00Z",
        None,
        None,
    )


def test_delete_takes_and_checks_lagos_options(api: APIClient, team: Plan) -> None:
    subscribe(api)
    bad = api.delete("/api/v1/subscriptions/s?on_termination_invoice=never&on_termination_credit_note=credit&x=1")
    assert set(errors(bad)) == {"on_termination_invoice", "on_termination_credit_note", "x"}
    assert Subscription.objects.get().status == SubscriptionStatus.ACTIVE
    ended = api.delete("/api/v1/subscriptions/s?on_termination_invoice=skip&on_termination_credit_note=skip")
    body = ended.json()["subscription"]
    assert (body["status"], body["on_termination_invoice"], body["on_termination_credit_note"]) == (
        "terminated",
        "skip",
        "skip",
    )
    assert Subscription.objects.get().on_termination_invoice == OnTerminationInvoice.SKIP


def test_a_downgrade_is_shown_staged_to_the_end_of_the_period(api: APIClient, team: Plan) -> None:
    PlanFactory(code="starter")  # a $0 base fee: a downgrade from $120
    subscribe(api, subscription_at="2026-10-01T00:00:00Z")

    staged = subscribe(api, plan_code="starter")

    assert (staged["plan_code"], staged["next_plan_code"], staged["downgrade_plan_date"]) == (
        "team",
        "starter",
        "2026-11-01",
    )
    assert get(api, "/api/v1/subscriptions/s")["subscription"]["next_plan_code"] == "starter"


def test_lifetime_usage_reads_and_sets_the_historical_amount(api: APIClient, team: Plan) -> None:
    subscribe(api, subscription_at="2026-10-01T00:00:00Z")
    path = "/api/v1/subscriptions/s/lifetime_usage"
    body = api.put(path, {"lifetime_usage": {"external_historical_usage_amount_cents": 1234}}, format="json").json()
    usage = body["lifetime_usage"]
    assert (usage["external_subscription_id"], usage["external_historical_usage_amount_cents"]) == ("s", 1234)
    assert (usage["invoiced_usage_amount_cents"], usage["current_usage_amount_cents"]) == (0, 0)
    assert get(api, path)["lifetime_usage"]["from_datetime"] == "2026-10-01T00:00:00Z"
    refused = api.put(path, {"lifetime_usage": {"external_historical_usage_amount_cents": "12"}}, format="json")
    assert set(errors(refused)) == {"external_historical_usage_amount_cents"}


@pytest.mark.django_db(transaction=True)
def test_lago_sdk_round_trip_of_a_subscription(live_server: Any) -> None:
    call_command("load_catalog", verbosity=0)
    _, raw_key = api_key_create(name="lago sdk")
    lago = Client(api_key=raw_key, api_url=live_server.url)
    lago.customers.create(LagoCustomer(external_id="acme", currency="USD", timezone="UTC"))
    for external_id in ("acme-1", "acme-2", "acme-3"):
        lago.subscriptions.create(
            LagoSubscription(external_customer_id="acme", plan_code="team", external_id=external_id)
        )

    found = lago.subscriptions.find("acme-2")
    pages = [lago.subscriptions.find_all({"per_page": 2, "page": page}) for page in (1, 2)]
    updated = lago.subscriptions.update(LagoSubscription(name="Acme", ending_at="2027-01-01T00:00:00Z"), "acme-1")
    alerts = lago.subscriptions.create_alerts(
        "acme-1",
        AlertsList(
            alerts=[
                LagoAlert(
                    alert_type="current_usage_amount",
                    code="spend",
                    thresholds=AlertThresholdList(__root__=[AlertThreshold(value="100")]),
                )
            ]
        ),
    )
    lago.subscriptions.delete_alerts("acme-1")
    destroyed = lago.subscriptions.destroy("acme-3", {"on_termination_invoice": "skip"})

    assert (found.external_id, found.status, found.plan_code) == ("acme-2", "active", "team")
    assert [s.external_id for page in pages for s in page["subscriptions"]] == ["acme-1", "acme-2", "acme-3"]
    assert pages[0]["meta"]["total_pages"] == 2
    assert (updated.name, updated.ending_at) == ("Acme", "2027-01-01T00:00:00Z")
    assert [alert.code for alert in alerts["alerts"]] == ["spend"]
    assert (destroyed.status, destroyed.on_termination_invoice) == ("terminated", "skip")
    assert Subscription.objects.get(external_id="acme-1").alerts.count() == 0


def test_a_subscriptions_charges_are_listed_and_repriced_for_it_alone(api: APIClient, team: Plan) -> None:
    subscribe(api)
    base = "/api/v1/subscriptions/s/charges"
    charges = get(api, base)
    code = charges["charges"][0]["code"]
    assert charges["meta"]["total_count"] == 1
    ranges = [{"from_value": 0, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"}]
    body = {"charge": {"invoice_display_name": "Users", "properties": {"graduated_ranges": ranges}}}

    updated = api.put(f"{base}/{code}", body, format="json").json()["charge"]

    assert (updated["invoice_display_name"], updated["properties"]["graduated_ranges"][0]["per_unit_amount"]) == (
        "Users",
        "0.5",
    )
    assert get(api, f"{base}/{code}")["charge"]["lago_id"] == updated["lago_id"]
    assert Subscription.objects.get().plan.parent == team  # its own prices; the catalog plan is unchanged
    assert set(errors(api.put(f"{base}/{code}", {"charge": {"min_amount_cents": 1}}, format="json"))) == {
        "min_amount_cents"
    }
    assert api.get(f"{base}/nope").json()["code"] == "charge_not_found"


def test_a_plan_changes_start_cannot_move_and_an_ended_ones_termination_is_fixed(api: APIClient, team: Plan) -> None:
    PlanFactory(code="business", base_fee=500)
    subscribe(api, subscription_at="2026-10-01T00:00:00Z")
    successor = subscribe(api, plan_code="business", subscription_at="2026-11-15T00:00:00Z")
    assert (successor["status"], successor["previous_plan_code"]) == ("pending", "team")

    # The old plan ends where the new one starts: moving the start would leave a gap or an overlap.
    assert set(errors(put(api, "s", subscription_at="2026-12-01T00:00:00Z"))) == {"subscription_at"}
    path = "/api/v1/subscriptions/s?status=terminated"
    refused = api.put(path, {"subscription": {"on_termination_invoice": "skip"}}, format="json")
    assert set(errors(refused)) == {"on_termination_invoice"}
    assert Subscription.objects.get(status=SubscriptionStatus.TERMINATED).on_termination_invoice == "generate"

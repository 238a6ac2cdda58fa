"""The catalog over the API (DESIGN §6): /api/v1/billable_metrics and /api/v1/plans in Lago's
shapes, written through the service load_catalog uses, under the same versioning rules."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.billable_metric import BillableMetric as LagoMetric
from lago_python_client.models.charge import Charge as LagoCharge
from lago_python_client.models.charge import Charges as LagoCharges
from lago_python_client.models.plan import Plan as LagoPlan
from rest_framework.test import APIClient

from billing.engine.catalog import CatalogError
from billing.engine.vocabulary import SubscriptionStatus
from billing.management.commands.load_catalog import SEGMENT_CATALOG
from billing.models import Charge, Plan, Promotion, Subscription, Tier
from billing.selectors.catalog import catalog_export, plan_def
from billing.selectors.plans import current_plan, plans_with_charges
from billing.services.catalog import METRIC_IN_USE, PLAN_SUBSCRIBED, parse_stored_catalog, plan_destroy
from billing.services.subscriptions import PLAN_RETIRED, SubscriptionError, subscription_create
from customers.services import api_key_create
from metering.models import BillableMetric
from tests.factories import CustomerFactory, SubscriptionFactory
from tests.helpers import errors, get, load_catalog, post
from tests.test_openapi import Answers

pytestmark = pytest.mark.django_db

TEAM_RANGES = [
    {"from_value": 0, "to_value": 10000, "per_unit_amount": "0", "flat_amount": "0"},
    {"from_value": 10001, "to_value": 25000, "per_unit_amount": "0.012", "flat_amount": "0"},
    {"from_value": 25001, "to_value": 100000, "per_unit_amount": "0.011", "flat_amount": "0"},
    {"from_value": 100001, "to_value": None, "per_unit_amount": "0.01", "flat_amount": "0"},
]


def segment() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SEGMENT_CATALOG.read_text())
    return data


def mtu(api: APIClient) -> dict[str, Any]:
    body = {
        "name": "Monthly tracked users",
        "code": "mtu",
        "aggregation_type": "unique_count_agg",
        "field_name": "user_id",
    }
    metric: dict[str, Any] = post(api, "/api/v1/billable_metrics", {"billable_metric": body})["billable_metric"]
    return metric


def team_body(metric_id: str, code: str = "team", **fields: Any) -> dict[str, Any]:
    plan = {
        "name": "Team",
        "code": code,
        "interval": "monthly",
        "amount_cents": 12000,
        "amount_currency": "USD",
        "trial_period": 14,
        "charges": [
            {
                "billable_metric_id": metric_id,
                "charge_model": "graduated",
                "properties": {"graduated_ranges": TEAM_RANGES},
            }
        ],
    }
    return {"plan": {**plan, **fields}}


def put(api: APIClient, path: str, body: dict[str, Any]) -> Any:
    return api.put(path, body, format="json")


def rows() -> tuple[Any, ...]:
    return (
        list(BillableMetric.objects.values().order_by("id")),
        list(Promotion.objects.values().order_by("id")),
        list(Plan.objects.values().order_by("id")),
        list(Charge.objects.values().order_by("id")),
        list(Tier.objects.values().order_by("id")),
    )


# --- billable metrics -----------------------------------------------------------------------


def test_metric_is_created_found_listed_updated_and_deleted(api: APIClient) -> None:
    created = mtu(api)
    assert (created["code"], created["aggregation_type"], created["field_name"]) == (
        "mtu",
        "unique_count_agg",
        "user_id",
    )
    assert (created["recurring"], created["filters"]) == (False, [])
    assert get(api, "/api/v1/billable_metrics/mtu")["billable_metric"] == created
    count = {"name": "API calls", "code": "calls", "aggregation_type": "count_agg"}
    post(api, "/api/v1/billable_metrics", {"billable_metric": count})
    listed = get(api, "/api/v1/billable_metrics", per_page=1)
    assert [m["code"] for m in listed["billable_metrics"]] == ["calls"]  # newest first
    assert listed["meta"]["total_count"] == 2 and listed["meta"]["next_page"] == 2

    response = put(api, "/api/v1/billable_metrics/calls", {"billable_metric": {"code": "requests", "name": "Requests"}})
    assert response.status_code == 200, response.content
    assert (response.json()["billable_metric"]["code"], BillableMetric.objects.get(code="requests").name) == (
        "requests",
        "Requests",
    )
    deleted = api.delete("/api/v1/billable_metrics/requests")
    assert deleted.status_code == 200 and deleted.json()["billable_metric"]["code"] == "requests"
    assert not BillableMetric.objects.filter(code="requests").exists()
    assert api.get("/api/v1/billable_metrics/requests").json()["code"] == "billable_metric_not_found"


def test_metric_input_that_cannot_be_honoured_is_refused_by_name(api: APIClient) -> None:
    mtu(api)
    before = rows()
    body = {
        "name": "Seats",
        "code": "mtu",
        "aggregation_type": "weighted_sum_agg",
        "recurring": True,
        "expression": "round(x)",
        "filters": [{"key": "region", "values": ["eu"]}],
    }
    details = errors(api.post("/api/v1/billable_metrics", {"billable_metric": body}, format="json"))
    assert set(details) == {"aggregation_type", "recurring", "expression", "filters"}
    assert "weighted_sum_agg" in details["aggregation_type"][0]
    details = errors(
        api.post(
            "/api/v1/billable_metrics",
            {"billable_metric": {"name": "x", "code": "mtu", "aggregation_type": "sum_agg"}},
            format="json",
        )
    )
    assert set(details) == {"code", "field_name"}  # taken; a sum needs a property
    assert set(errors(api.get("/api/v1/billable_metrics", {"search_term": "m"}))) == {"search_term"}
    assert rows() == before


def test_a_metric_billed_on_a_subscribed_plan_keeps_how_it_bills_and_is_not_deleted(api: APIClient) -> None:
    metric = mtu(api)
    post(api, "/api/v1/plans", team_body(metric["lago_id"]))
    SubscriptionFactory(plan=current_plan("team"))
    response = put(api, "/api/v1/billable_metrics/mtu", {"billable_metric": {"aggregation_type": "count_agg"}})
    assert errors(response) == {"aggregation_type": [METRIC_IN_USE.format(code="mtu")]}
    renamed = put(api, "/api/v1/billable_metrics/mtu", {"billable_metric": {"name": "MTUs"}})
    assert renamed.status_code == 200 and renamed.json()["billable_metric"]["name"] == "MTUs"
    assert set(errors(api.delete("/api/v1/billable_metrics/mtu"))) == {"code"}


# --- plans ----------------------------------------------------------------------------------


def test_plan_is_created_in_lagos_shape_with_its_trial(api: APIClient) -> None:
    metric = mtu(api)
    plan = post(api, "/api/v1/plans", team_body(metric["lago_id"]))["plan"]
    assert (plan["code"], plan["interval"], plan["amount_cents"], plan["amount_currency"]) == (
        "team",
        "monthly",
        12000,
        "USD",
    )
    assert (plan["trial_period"], plan["version"], plan["promotion"]["applies_to"]) == (14.0, 1, "base_fee")
    [charge] = plan["charges"]
    assert (charge["code"], charge["charge_model"], charge["lago_billable_metric_id"]) == (
        "mtu",
        "graduated",
        metric["lago_id"],
    )
    assert charge["properties"]["graduated_ranges"][1] == {
        "from_value": 10001,
        "to_value": 25000,
        "per_unit_amount": "0.012",
        "flat_amount": "0",
    }
    assert get(api, "/api/v1/plans/team")["plan"] == plan
    assert [p["code"] for p in get(api, "/api/v1/plans")["plans"]] == ["team"]
    # a plan-level promotion (Lago has no field for it) is our own `promotion`, trial_period null
    promo = Promotion.objects.create(code="launch", name="Launch", percent_off=50, duration_days=30, applies_to="plan")
    body = team_body(metric["lago_id"], code="launch-team", trial_period=None, promotion=promo.code)
    other = post(api, "/api/v1/plans", body)["plan"]
    assert (other["trial_period"], other["promotion"]["code"]) == (None, "launch")


def test_a_plan_through_the_api_and_through_load_catalog_is_the_same_plan(api: APIClient, tmp_path: Path) -> None:
    load_catalog(tmp_path, segment())
    metric_id = str(BillableMetric.objects.get(code="mtu").pk)
    post(api, "/api/v1/plans", team_body(metric_id, code="team-api"))
    from_file, from_api = plan_def(current_plan("team")), plan_def(current_plan("team-api"))
    assert from_api == replace(from_file, code="team-api")  # the same prices, tiers and trial promotion
    assert Promotion.objects.filter(percent_off=100, duration_days=14, applies_to="base_fee").count() == 1

    # the same plan sent again changes nothing, through either door
    before = rows()
    assert put(api, "/api/v1/plans/team", team_body(metric_id)).status_code == 200
    catalog = segment()
    catalog["plans"].append({**catalog["plans"][1], "code": "team-api"})
    assert "unchanged" in load_catalog(tmp_path, catalog)
    assert rows() == before


def test_repricing_a_subscribed_plan_over_the_api_makes_a_new_version(api: APIClient) -> None:
    metric = mtu(api)
    post(api, "/api/v1/plans", team_body(metric["lago_id"]))
    old = current_plan("team")
    subscription = SubscriptionFactory(plan=old)
    ranges = [dict(r) for r in TEAM_RANGES]
    ranges[1]["per_unit_amount"] = "0.013"
    charge = {"id": str(old.charges.get().pk), "properties": {"graduated_ranges": ranges}}
    response = put(api, "/api/v1/plans/team", {"plan": {"amount_cents": 15000, "charges": [charge]}})
    assert response.status_code == 200, response.content
    plan = response.json()["plan"]
    assert (plan["version"], plan["amount_cents"], plan["trial_period"]) == (2, 15000, 14.0)
    assert plan["charges"][0]["properties"]["graduated_ranges"][1]["per_unit_amount"] == "0.013"
    subscription.refresh_from_db()
    assert subscription.plan_id == old.pk  # the subscriber keeps the prices it bought
    kept = plans_with_charges().get(pk=old.pk)
    assert (kept.is_current, kept.base_fee, kept.charges.get().tiers.all()[1].unit_amount) == (
        False,
        Decimal(120),
        Decimal("0.012"),
    )
    # a rename is not a repricing: the current version changes in place
    renamed = put(api, "/api/v1/plans/team", {"plan": {"name": "Team 2026"}}).json()["plan"]
    assert (renamed["version"], renamed["name"]) == (2, "Team 2026")


def test_plan_input_that_cannot_be_honoured_is_refused_by_name(api: APIClient) -> None:
    metric = mtu(api)
    before = rows()
    bad_ranges = [dict(r) for r in TEAM_RANGES]
    bad_ranges[1]["to_value"] = 5000
    body = team_body(
        metric["lago_id"],
        interval="weekly",
        tax_codes=["vat"],
        minimum_commitment={"amount_cents": 1000},
        charges=[
            {
                "billable_metric_id": metric["lago_id"],
                "charge_model": "graduated",
                "properties": {"graduated_ranges": bad_ranges},
            },
            {"billable_metric_id": "999999", "charge_model": "percentage", "pay_in_advance": True},
        ],
    )
    details = errors(api.post("/api/v1/plans", body, format="json"))
    assert set(details) == {
        "interval",
        "tax_codes",
        "minimum_commitment",
        "charges.1.charge_model",
        "charges.1.pay_in_advance",
    }
    body = team_body(
        metric["lago_id"],
        charges=[
            {
                "billable_metric_id": metric["lago_id"],
                "charge_model": "graduated",
                "properties": {"graduated_ranges": bad_ranges},
            },
            {"billable_metric_id": "999999", "charge_model": "standard", "properties": {"amount": "1"}},
        ],
    )
    details = errors(api.post("/api/v1/plans", body, format="json"))
    assert {"charges.0.properties.graduated_ranges.1.to_value", "charges.1.billable_metric_id"} <= set(details)
    assert rows() == before
    post(api, "/api/v1/plans", team_body(metric["lago_id"]))
    assert set(errors(api.post("/api/v1/plans", team_body(metric["lago_id"]), format="json"))) == {"code"}
    assert set(errors(put(api, "/api/v1/plans/team", {"plan": {"code": "other"}}))) == {"code"}
    assert set(errors(api.get("/api/v1/plans", {"with_deleted": "true"}))) == {"with_deleted"}
    body = team_body(
        metric["lago_id"],
        code="yearly",
        interval="yearly",
        bill_charges_monthly=False,
        promotion="trial-14d-base",
    )
    details = errors(api.post("/api/v1/plans", body, format="json"))
    assert set(details) == {"bill_charges_monthly", "promotion"}
    body = team_body(metric["lago_id"], code="x", metadata={"crm": 1}, cascade_updates=True)
    assert set(errors(api.post("/api/v1/plans", body, format="json"))) == {"metadata.crm", "cascade_updates"}
    assert set(errors(api.post("/api/v1/plans", team_body(metric["lago_id"], trial_period=1.5), format="json"))) == {
        "trial_period"
    }


def test_destroying_a_plan_refuses_subscribers_retires_ended_ones_and_deletes_unused(api: APIClient) -> None:
    metric = mtu(api)
    for code in ("a", "b", "c"):
        post(api, "/api/v1/plans", team_body(metric["lago_id"], code=code))
    subscribed = SubscriptionFactory(plan=current_plan("a"))
    SubscriptionFactory(plan=current_plan("b"), status=SubscriptionStatus.TERMINATED)
    assert errors(api.delete("/api/v1/plans/a")) == {"code": [PLAN_SUBSCRIBED.format(code="a", count=1)]}
    assert api.delete("/api/v1/plans/b").json()["plan"]["code"] == "b"
    assert list(Plan.objects.filter(code="b").values_list("is_current", flat=True)) == [False]  # retired, kept
    assert api.delete("/api/v1/plans/c").status_code == 200
    assert not Plan.objects.filter(code="c").exists()
    assert [p["code"] for p in get(api, "/api/v1/plans")["plans"]] == ["a"]
    assert api.get("/api/v1/plans/b").status_code == 404
    # the retired code can be created again: its next version
    assert post(api, "/api/v1/plans", team_body(metric["lago_id"], code="b"))["plan"]["version"] == 2
    assert Subscription.objects.get(pk=subscribed.pk).plan.is_current


def test_a_plan_a_downgrade_is_staged_to_counts_as_sold(api: APIClient) -> None:
    """A staged downgrade (Subscription.next_plan) starts on its plan at the period's end: that
    plan is sold, so a repricing makes a new version and deleting it is refused."""
    metric = mtu(api)
    for code in ("big", "small"):
        post(api, "/api/v1/plans", team_body(metric["lago_id"], code=code))
    small = current_plan("small")
    staged = SubscriptionFactory(plan=current_plan("big"))
    Subscription.objects.filter(pk=staged.pk).update(next_plan=small, downgrade_at=staged.subscription_at)
    response = put(api, "/api/v1/plans/small", {"plan": {"amount_cents": 100}})
    assert response.json()["plan"]["version"] == 2
    assert plans_with_charges().get(pk=small.pk).base_fee == Decimal(120)  # what the downgrade bought
    assert errors(api.delete("/api/v1/plans/small")) == {"code": [PLAN_SUBSCRIBED.format(code="small", count=1)]}
    Subscription.objects.filter(pk=staged.pk).update(status=SubscriptionStatus.CANCELED)
    Subscription.objects.filter(plan__code="big").update(status=SubscriptionStatus.CANCELED)
    assert api.delete("/api/v1/plans/big").status_code == 200  # canceled ones are not live


def test_plan_charges_are_added_found_changed_and_removed(api: APIClient) -> None:
    metric = mtu(api)
    calls = post(
        api,
        "/api/v1/billable_metrics",
        {"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}},
    )["billable_metric"]
    post(api, "/api/v1/plans", team_body(metric["lago_id"]))
    charge = {
        "billable_metric_id": calls["lago_id"],
        "charge_model": "package",
        "properties": {"amount": "5", "package_size": 1000},
    }
    added = post(api, "/api/v1/plans/team/charges", {"charge": charge})["charge"]
    assert (added["code"], added["properties"]) == ("calls", {"amount": "5", "package_size": 1000, "free_units": 0})
    assert get(api, "/api/v1/plans/team/charges/calls")["charge"] == added
    assert [c["code"] for c in get(api, "/api/v1/plans/team/charges")["charges"]] == ["mtu", "calls"]
    changed = put(
        api, "/api/v1/plans/team/charges/calls", {"charge": {"properties": {"amount": "4", "package_size": 1000}}}
    )
    assert changed.status_code == 200 and changed.json()["charge"]["properties"]["amount"] == "4"
    refused = put(
        api, "/api/v1/plans/team/charges/calls", {"charge": {"properties": {"amount": "-1", "package_size": 1000}}}
    )
    assert set(errors(refused)) == {"properties.amount"}
    assert api.delete("/api/v1/plans/team/charges/calls").json()["charge"]["code"] == "calls"
    assert [c["code"] for c in get(api, "/api/v1/plans/team")["plan"]["charges"]] == ["mtu"]
    assert current_plan("team").version == 1  # nobody subscribed: changed in place


# --- Lago's SDK, unmodified, against the live server -----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_lago_sdk_manages_metrics_and_plans(live_server: Any) -> None:
    _, key = api_key_create(name="sdk")
    lago = Client(api_key=key, api_url=live_server.url)

    metric = lago.billable_metrics.create(
        LagoMetric(name="Monthly tracked users", code="mtu", aggregation_type="unique_count_agg", field_name="user_id")
    )
    assert metric is not None and metric.aggregation_type == "unique_count_agg"
    assert lago.billable_metrics.find("mtu").lago_id == metric.lago_id
    assert [m.code for m in lago.billable_metrics.find_all()["billable_metrics"]] == ["mtu"]
    assert lago.billable_metrics.update(LagoMetric(name="MTUs"), "mtu").name == "MTUs"

    charge = LagoCharge(
        billable_metric_id=metric.lago_id, charge_model="graduated", properties={"graduated_ranges": TEAM_RANGES}
    )
    plan = lago.plans.create(
        LagoPlan(
            name="Team",
            code="team",
            interval="monthly",
            amount_cents=12000,
            amount_currency="USD",
            trial_period=14,
            pay_in_advance=False,
            charges=LagoCharges(__root__=[charge]),
        )
    )
    assert plan is not None and (plan.amount_cents, plan.trial_period, plan.interval) == (12000, 14.0, "monthly")
    assert plan.charges is not None and plan.charges.__root__[0].properties == {"graduated_ranges": TEAM_RANGES}
    assert lago.plans.find("team").lago_id == plan.lago_id
    assert [p.code for p in lago.plans.find_all({"per_page": 10})["plans"]] == ["team"]
    assert lago.plans.update(LagoPlan(amount_cents=15000), "team").amount_cents == 15000
    assert lago.plans.replace_metadata("team", {"crm": "42", "tier": "gold"}) == {"crm": "42", "tier": "gold"}
    assert lago.plans.merge_metadata("team", {"tier": None}) == {"crm": "42", "tier": None}
    assert lago.plans.delete_metadata_key("team", "crm") == {"tier": None}
    assert lago.plans.delete_all_metadata("team") == {}
    with pytest.raises(LagoApiError) as refused:
        lago.plans.update(LagoPlan(tax_codes=["vat"]), "team")
    assert refused.value.status_code == 422

    assert lago.plans.destroy("team").code == "team"
    assert lago.billable_metrics.destroy("mtu").code == "mtu"
    assert not Plan.objects.exists() and not BillableMetric.objects.exists()


def test_catalog_answers_match_the_schema_field_for_field(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    answer = Answers(api, schema)
    body = {"name": "MTU", "code": "mtu", "aggregation_type": "unique_count_agg", "field_name": "user_id"}
    metric = answer("post", "/api/v1/billable_metrics", {"billable_metric": body})["billable_metric"]
    answer("get", "/api/v1/billable_metrics/{code}", code="mtu")
    answer("get", "/api/v1/billable_metrics")
    answer("put", "/api/v1/billable_metrics/{code}", {"billable_metric": {"description": "d"}}, code="mtu")
    answer("post", "/api/v1/plans", team_body(metric["lago_id"], invoice_display_name="Team plan"))
    answer("get", "/api/v1/plans/{code}", code="team")
    answer("get", "/api/v1/plans")
    answer("put", "/api/v1/plans/{code}", {"plan": {"trial_period": 0}}, code="team")
    calls = {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}
    calls_id = answer("post", "/api/v1/billable_metrics", {"billable_metric": calls})["billable_metric"]["lago_id"]
    charge = {"billable_metric_id": calls_id, "charge_model": "standard", "properties": {"amount": "0.5"}}
    answer("post", "/api/v1/plans/{code}/charges", {"charge": charge}, code="team")
    answer("get", "/api/v1/plans/{code}/charges", code="team")
    answer("get", "/api/v1/plans/{code}/charges/{charge_code}", code="team", charge_code="calls")
    answer(
        "put",
        "/api/v1/plans/{code}/charges/{charge_code}",
        {"charge": {"usage_limit": 100}},
        code="team",
        charge_code="calls",
    )
    answer("delete", "/api/v1/plans/{code}/charges/{charge_code}", code="team", charge_code="calls")
    answer("delete", "/api/v1/billable_metrics/{code}", code="calls")
    answer("post", "/api/v1/plans/{code}/metadata", {"metadata": {"a": "1", "b": None}}, code="team")
    answer("patch", "/api/v1/plans/{code}/metadata", {"metadata": {"c": "3"}}, code="team")
    answer("delete", "/api/v1/plans/{code}/metadata/{key}", code="team", key="a")
    answer("delete", "/api/v1/plans/{code}/metadata", code="team")
    answer("delete", "/api/v1/plans/{code}", code="team")
    documented = {
        operation["operationId"]
        for path, operations in schema["paths"].items()
        if path.startswith(("/api/v1/plans", "/api/v1/billable_metrics"))
        for operation in operations.values()
    }
    assert documented - answer.checked == set()


# --- plan metadata (Lago's; billing.api.metadata, shared with credit notes and wallets) ---------


def test_plan_metadata_is_stored_changed_and_never_makes_a_version(api: APIClient) -> None:
    metric = mtu(api)
    plan = post(api, "/api/v1/plans", team_body(metric["lago_id"], metadata={"crm": "7", "note": None}))["plan"]
    assert plan["metadata"] == {"crm": "7", "note": None}
    SubscriptionFactory(plan=current_plan("team"))
    # not pricing: a subscribed plan's metadata changes in place (update replaces, null empties)
    changed = put(api, "/api/v1/plans/team", {"plan": {"metadata": {"crm": "8"}}}).json()["plan"]
    assert (changed["version"], changed["metadata"]) == (1, {"crm": "8"})
    assert put(api, "/api/v1/plans/team", {"plan": {"name": "Team 2"}}).json()["plan"]["metadata"] == {"crm": "8"}
    url = "/api/v1/plans/team/metadata"
    assert post(api, url, {"metadata": {"a": "1", "b": "2"}}) == {"metadata": {"a": "1", "b": "2"}}
    assert post(api, url, {}) == {"metadata": {"a": "1", "b": "2"}}  # as Lago's plans: none sent, no change
    assert api.patch(url, {"metadata": {"b": None, "c": "3"}}, format="json").json() == {
        "metadata": {"a": "1", "b": None, "c": "3"}
    }
    assert api.delete(f"{url}/a").json() == {"metadata": {"b": None, "c": "3"}}
    assert api.delete(f"{url}/zzz").json() == {"metadata": {"b": None, "c": "3"}}  # no such key: no change
    assert errors(api.post(url, {"metadata": {"a": 1}}, format="json"))["metadata"]["a"] == ["Not a valid string."]
    assert set(errors(api.post(url, {"metadata": {}, "other": 1}, format="json"))) == {"other"}
    assert current_plan("team").version == 1 and Plan.objects.filter(code="team").count() == 1
    # a repricing makes a version, which keeps the plan's metadata
    repriced = put(api, "/api/v1/plans/team", {"plan": {"amount_cents": 15000}}).json()["plan"]
    assert (repriced["version"], repriced["metadata"]) == (2, {"b": None, "c": "3"})
    assert api.delete(url).json() == {"metadata": {}}
    assert api.delete(f"{url}/c").json()["code"] == "metadata_not_found"
    assert api.post("/api/v1/plans/nope/metadata", {"metadata": {}}, format="json").json()["code"] == "plan_not_found"
    assert api.delete("/api/v1/plans/nope/metadata/a").status_code == 404


def test_plan_metadata_round_trips_through_the_catalog_file(tmp_path: Path) -> None:
    catalog = segment()
    catalog["plans"][1]["metadata"] = {"crm": "team-1", "owner": None}
    load_catalog(tmp_path, catalog)
    assert current_plan("team").metadata == {"crm": "team-1", "owner": None}
    exported = {plan["code"]: plan for plan in catalog_export()["plans"]}
    assert exported["team"]["metadata"] == {"crm": "team-1", "owner": None} and "metadata" not in exported["free"]
    del catalog["plans"][1]["metadata"]  # a file without it keeps the plan's metadata
    assert "0 changed" in load_catalog(tmp_path, catalog)
    assert current_plan("team").metadata == {"crm": "team-1", "owner": None}
    catalog["plans"][1]["metadata"] = {"crm": 1}
    with pytest.raises(CatalogError) as refused:
        parse_stored_catalog(catalog)
    assert refused.value.errors == ["plans[1].metadata.crm: must be a string or null"]


def test_a_plan_deleted_or_retired_meanwhile_sells_nothing(api: APIClient) -> None:
    """subscription_create takes the plan's row lock after the customer's, as plan_destroy takes
    it: a caller that read the plan before it was deleted (or retired) is refused, never given a
    subscription on a plan that is gone."""
    metric = mtu(api)
    post(api, "/api/v1/plans", team_body(metric["lago_id"], code="gone"))
    stale = current_plan("gone")
    plan_destroy(plan=stale)
    customer = CustomerFactory(external_id="late")
    with pytest.raises(SubscriptionError) as refused:
        subscription_create(
            customer=customer,
            plan=stale,
            external_id="late-sub",
            subscription_at=customer.created_at,
            billing_time="calendar",
            now=customer.created_at,
        )
    assert (refused.value.field, refused.value.message) == ("plan_code", PLAN_RETIRED.format(code="gone"))
    assert not Subscription.objects.exists()

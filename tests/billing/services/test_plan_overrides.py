"""A subscription's own prices (Lago's plan_overrides): the override plan it gets, the catalog's
rules on what is overridden (errors named by request field, nothing stored), in place or a new
override plan on a second override, and the catalog's load and export leaving them out."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.engine.catalog import ChargeDef
from billing.engine.charge_properties import lago_properties
from billing.engine.pricing import TIER_NOT_ASCENDING, TierSpec
from billing.engine.quotes import quote_plan
from billing.engine.vocabulary import AppliesTo, ChargeModel, InvoiceKind
from billing.models import Charge, Invoice, Plan, Promotion, Subscription, Tier
from billing.selectors.catalog import catalog_export, plan_def
from billing.selectors.plans import plan_spec, plans_with_charges
from billing.services.plan_overrides import (
    CURRENCY_FIXED,
    DUPLICATE_CHARGE,
    TERMINATED,
    TRIAL_NOT_WHOLE,
    UNKNOWN_CHARGE,
    PlanOverrideError,
    plan_override_create,
)
from billing.services.subscriptions import subscription_create, subscription_terminate, subscription_update
from tests.factories import (
    BillableMetricFactory,
    ChargeFactory,
    CustomerFactory,
    PlanFactory,
    SubscriptionFactory,
    add_tiers,
    scaled_team_plan,
)
from tests.helpers import at, load_catalog

pytestmark = pytest.mark.django_db

NOW = at(2026, 10, 20, 12)

# The scaled Team plan's tiers, replaced: 200 free users, then $0.50 each.
RANGES = [
    {"from_value": 0, "to_value": 200, "per_unit_amount": "0", "flat_amount": "0"},
    {"from_value": 201, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
]


def catalog_rows(plan: Plan) -> tuple[Any, ...]:
    """The catalog plan's row, its charges and its tiers, as stored."""
    return (
        Plan.objects.filter(pk=plan.pk).values().get(),
        list(Charge.objects.filter(plan=plan).values().order_by("id")),
        list(Tier.objects.filter(charge__plan=plan).values().order_by("id")),
    )


def mtu_charge(plan: Plan) -> Charge:
    return plan.charges.get()


def overrides(plan: Plan, **fields: Any) -> dict[str, Any]:
    """$100 base fee and the RANGES tiers on the plan's MTU charge, unless told otherwise."""
    return {
        "amount_cents": 10000,
        "charges": [{"id": str(mtu_charge(plan).pk), "properties": {"graduated_ranges": RANGES}}],
        **fields,
    }


def refused(call: Any) -> dict[str, list[str]]:
    with pytest.raises(PlanOverrideError) as caught:
        call()
    return caught.value.errors


def total_at(plan: Plan, users: int) -> Decimal:
    return quote_plan(plan_spec(plans_with_charges().get(pk=plan.pk)), {"mtu": Decimal(users)}).total


# --- the override plan -------------------------------------------------------------------------------


def test_an_override_plan_copies_the_catalog_plan_with_the_overrides_and_leaves_it_unchanged() -> None:
    team = scaled_team_plan()
    before = catalog_rows(team)
    override = plan_override_create(plan=team, overrides=overrides(team, name="Team (Acme)"))

    assert (override.parent, override.code, override.version, override.is_current) == (team, "team", 1, False)
    assert (override.currency, override.interval, override.promotion) == ("USD", "month", team.promotion)
    assert (override.name, override.base_fee) == ("Team (Acme)", Decimal("100"))
    charge = mtu_charge(override)
    assert (charge.metric, charge.model) == (mtu_charge(team).metric, ChargeModel.GRADUATED)
    assert [t.spec() for t in charge.tiers.all()] == [
        TierSpec(Decimal(200), Decimal(0), Decimal(0)),
        TierSpec(None, Decimal("0.5"), Decimal(0)),
    ]
    assert catalog_rows(team) == before
    # Priced by the same engine: 300 users are $100 + 100 × $0.50 at its own prices, $355 at the catalog's.
    assert (total_at(override, 300), total_at(team, 300)) == (Decimal("150.00"), Decimal("355.00"))


def test_what_is_not_overridden_is_the_catalog_plans() -> None:
    team = scaled_team_plan(description="For teams")
    override = plan_override_create(plan=team, overrides={"name": "Acme's Team"})
    assert plan_def(plans_with_charges().get(pk=override.pk)) == replace(plan_def(team), name="Acme's Team")


def test_every_charge_model_takes_lagos_properties() -> None:
    plan = PlanFactory(code="mixed")
    models = {
        "calls": (ChargeModel.STANDARD, {"amount": "0.02"}),
        "seats": (ChargeModel.PACKAGE, {"amount": "5", "package_size": 10, "free_units": 2}),
        "gb": (
            ChargeModel.VOLUME,
            {
                "volume_ranges": [
                    {"from_value": 0, "to_value": 100, "per_unit_amount": "1", "flat_amount": "2"},
                    {"from_value": 101, "per_unit_amount": "0.5", "flat_amount": "0"},
                ]
            },
        ),
    }
    charges = {}
    for position, (code, (model, _)) in enumerate(models.items()):
        metric = BillableMetricFactory(code=code, name=code, aggregation="count", field="")
        charges[code] = ChargeFactory(
            plan=plan, metric=metric, model=model, position=position, package_size=1, package_amount=Decimal(1)
        )
    add_tiers(charges["gb"], [(None, "1")])
    override = plan_override_create(
        plan=plan,
        overrides={
            "charges": [{"id": str(charges[code].pk), "properties": props} for code, (_, props) in models.items()]
        },
    )
    stored = {c.metric: lago_properties(c) for c in plan_def(plans_with_charges().get(pk=override.pk)).charges}
    assert stored == {
        "calls": {"amount": "0.02"},
        "seats": {"amount": "5", "package_size": 10, "free_units": 2},
        "gb": {
            "volume_ranges": [
                {"from_value": 0, "to_value": 100, "per_unit_amount": "1", "flat_amount": "2"},
                {"from_value": 101, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
            ]
        },
    }


def test_adjacent_ranges_are_read_as_lago_reads_them() -> None:
    team = scaled_team_plan()
    adjacent = [dict(RANGES[0]), {**RANGES[1], "from_value": 200}]
    override = plan_override_create(
        plan=team,
        overrides={"charges": [{"id": str(mtu_charge(team).pk), "properties": {"graduated_ranges": adjacent}}]},
    )
    assert total_at(override, 300) == Decimal("170.00")  # the catalog's $120 + 100 × $0.50


def test_display_names_are_what_invoices_show() -> None:
    team = scaled_team_plan()
    override = plan_override_create(
        plan=team,
        overrides={
            "invoice_display_name": "Acme platform",
            "charges": [{"id": str(mtu_charge(team).pk), "invoice_display_name": "Tracked users"}],
        },
    )
    spec = plan_spec(plans_with_charges().get(pk=override.pk))
    assert (spec.name, spec.charges[0].metric_name) == ("Acme platform", "Tracked users")
    assert override.name == "Team"


# --- trial_period: the base-fee promotion --------------------------------------------------------------


def test_a_trial_period_is_a_base_fee_promotion_reused_when_one_has_its_terms() -> None:
    team = scaled_team_plan()
    thirty = plan_override_create(plan=team, overrides={"trial_period": 30.0}).promotion
    assert thirty is not None
    assert (thirty.code, thirty.percent_off, thirty.duration_days, thirty.applies_to) == (
        "trial-30d-base",
        100,
        30,
        AppliesTo.BASE_FEE,
    )
    assert plan_override_create(plan=team, overrides={"trial_period": 30}).promotion == thirty
    assert plan_override_create(plan=team, overrides={"trial_period": 14}).promotion == team.promotion
    assert plan_override_create(plan=team, overrides={"trial_period": 0}).promotion is None
    assert Promotion.objects.count() == 2


def test_a_trial_promotion_code_taken_by_other_terms_gets_another_code() -> None:
    team = scaled_team_plan()
    Promotion.objects.create(code="trial-7d-base", name="Half off", percent_off=50, duration_days=7)
    promotion = plan_override_create(plan=team, overrides={"trial_period": 7}).promotion
    assert promotion is not None and promotion.code == "trial-7d-base-2"


# --- invalid overrides ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"amount_cents": -1}, "plan_overrides.amount_cents", "must not be negative"),
        ({"name": ""}, "plan_overrides.name", "must be a non-empty string"),
        ({"amount_currency": "EUR"}, "plan_overrides.amount_currency", CURRENCY_FIXED.format(currency="USD")),
        ({"trial_period": 1.5}, "plan_overrides.trial_period", TRIAL_NOT_WHOLE),
        ({"trial_period": 5000}, "plan_overrides.trial_period", "must be between 1 and 3660"),
        (
            {"ranges": [RANGES[0], {**RANGES[1], "per_unit_amount": "-0.5"}]},
            "plan_overrides.charges.0.properties.graduated_ranges.1.per_unit_amount",
            "must not be negative",
        ),
        (
            {"ranges": [{**RANGES[0], "to_value": 300}, {**RANGES[1], "from_value": 301}, RANGES[1]]},
            "plan_overrides.charges.0.properties.graduated_ranges.1.to_value",
            "only the last tier may be unbounded (null)",
        ),
        (
            {
                "ranges": [
                    {**RANGES[0], "to_value": 300},
                    {**RANGES[1], "from_value": 301, "to_value": 250},
                    {**RANGES[1], "from_value": 251},
                ]
            },
            "plan_overrides.charges.0.properties.graduated_ranges.1.to_value",
            TIER_NOT_ASCENDING.format(previous=300),
        ),
        (
            {"ranges": [RANGES[0], {**RANGES[1], "from_value": 150}]},
            "plan_overrides.charges.0.properties.graduated_ranges.1.from_value",
            "must be 200 or 201: where the previous range ends (its to_value) or the unit after",
        ),
        (
            {"ranges": [{**RANGES[0], "per_unit_amount": 0.5}, RANGES[1]]},
            "plan_overrides.charges.0.properties.graduated_ranges.0.per_unit_amount",
            'must be a decimal number (a JSON string such as "0.012" or a number)',
        ),
        ({"ranges": []}, "plan_overrides.charges.0.properties.graduated_ranges", "at least one tier is required"),
        (
            {"properties": {"graduated_ranges": RANGES, "amount": "1"}},
            "plan_overrides.charges.0.properties.amount",
            "is not supported",
        ),
        (
            {"properties": {"graduated_ranges": RANGES, "grouped_by": ["region"]}},
            "plan_overrides.charges.0.properties.grouped_by",
            "is not supported: charges are not grouped by event properties",
        ),
    ],
)
def test_invalid_overrides_name_the_request_field_and_store_nothing(
    change: dict[str, Any], field: str, message: str
) -> None:
    team = scaled_team_plan()
    before = (catalog_rows(team), Plan.objects.count(), Promotion.objects.count())
    body = overrides(team)
    if "ranges" in change:
        body["charges"][0]["properties"] = {"graduated_ranges": change.pop("ranges")}
    if "properties" in change:
        body["charges"][0]["properties"] = change.pop("properties")
    body.update(change)
    errors = refused(lambda: plan_override_create(plan=team, overrides=body))
    assert errors == {field: [message]}
    assert (catalog_rows(team), Plan.objects.count(), Promotion.objects.count()) == before


def test_a_charge_of_another_plan_or_an_unknown_id_is_refused_and_a_charge_is_overridden_once() -> None:
    team = scaled_team_plan()
    other = scaled_team_plan(code="other")
    theirs, ours = str(mtu_charge(other).pk), str(mtu_charge(team).pk)
    errors = refused(
        lambda: plan_override_create(
            plan=team,
            overrides={"charges": [{"id": theirs}, {"id": "nope"}, {"id": ours}, {"id": ours}]},
        )
    )
    assert errors == {
        "plan_overrides.charges.0.id": [UNKNOWN_CHARGE.format(id=theirs, plan="team")],
        "plan_overrides.charges.1.id": [UNKNOWN_CHARGE.format(id="nope", plan="team")],
        "plan_overrides.charges.3.id": [DUPLICATE_CHARGE.format(id=ours, index=2)],
    }
    assert not Plan.objects.overrides().exists()


# --- subscriptions ------------------------------------------------------------------------------------


def subscribe(plan: Plan, **kwargs: Any) -> Subscription:
    subscription, _ = subscription_create(
        customer=kwargs.pop("customer", None) or CustomerFactory(external_id="acme"),
        plan=plan,
        external_id=kwargs.pop("external_id", "acme-team"),
        subscription_at=at(2026, 10, 1),
        billing_time="calendar",
        now=NOW,
        **kwargs,
    )
    return subscription


def test_a_subscription_created_with_overrides_is_on_its_own_plan_with_its_trial() -> None:
    team = scaled_team_plan()
    subscription = subscribe(team, overrides=overrides(team, trial_period=30))
    plan = subscription.plan
    assert plan.parent == team and subscription.promotion == plan.promotion
    assert subscription.promotion is not None and subscription.promotion.duration_days == 30
    assert subscription.promotion_start == subscription.subscription_at


def test_invalid_overrides_at_creation_store_no_subscription() -> None:
    team = scaled_team_plan()
    with pytest.raises(PlanOverrideError):
        subscribe(team, overrides={"amount_cents": -5})
    assert not Subscription.objects.exists() and not Plan.objects.overrides().exists()


def test_a_second_override_before_any_invoice_changes_the_override_plan_in_place() -> None:
    team = scaled_team_plan()
    subscription = subscribe(team, overrides=overrides(team))
    first = subscription.plan
    charge_id = mtu_charge(first).pk
    # The override's own charge id works, as does the catalog plan's.
    subscription_update(
        subscription=subscription,
        plan_overrides={"amount_cents": 9000, "charges": [{"id": str(charge_id), "invoice_display_name": "Users"}]},
    )
    subscription.refresh_from_db()
    assert subscription.plan == first and Plan.objects.overrides().count() == 1
    first.refresh_from_db()
    assert first.base_fee == Decimal("90") and mtu_charge(first).pk == charge_id
    assert mtu_charge(first).invoice_display_name == "Users"
    assert total_at(first, 300) == Decimal("140.00")  # the first override's tiers stay


def test_a_second_override_after_an_invoice_makes_a_new_override_plan() -> None:
    team = scaled_team_plan()
    subscription = subscribe(team, overrides=overrides(team))
    first = subscription.plan
    first_rows = catalog_rows(first)
    Invoice.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        kind=InvoiceKind.PERIOD,
        period_start=at(2026, 10, 1),
        period_end=at(2026, 11, 1),
        currency="USD",
    )
    subscription_update(subscription=subscription, plan_overrides={"trial_period": 0, "amount_cents": 9000})
    subscription.refresh_from_db()
    second = subscription.plan
    assert second != first and (second.parent, second.version) == (team, team.version)
    assert (second.base_fee, second.promotion, subscription.promotion) == (Decimal("90"), None, None)
    assert total_at(second, 300) == Decimal("140.00")  # on top of its current prices
    assert catalog_rows(first) == first_rows  # what priced the invoice stays as it was


def test_a_subscription_on_the_catalog_plan_gets_its_own_prices_by_update() -> None:
    team = scaled_team_plan()
    before = catalog_rows(team)
    subscription = subscribe(team)
    subscription_update(subscription=subscription, name="Acme", plan_overrides=overrides(team))
    subscription.refresh_from_db()
    assert subscription.name == "Acme" and subscription.plan.parent == team
    assert subscription.promotion == team.promotion  # no trial_period: the trial stays
    assert catalog_rows(team) == before


def test_a_terminated_subscriptions_prices_cannot_change() -> None:
    team = scaled_team_plan()
    subscription = subscribe(team)
    subscription_terminate(subscription=subscription, at=NOW)
    errors = refused(lambda: subscription_update(subscription=subscription, plan_overrides={"amount_cents": 1}))
    assert errors == {"plan_overrides": [TERMINATED]}


# --- the catalog ---------------------------------------------------------------------------------------


def test_export_catalog_leaves_override_plans_out(tmp_path: Path) -> None:
    team = scaled_team_plan()
    subscribe(team, overrides=overrides(team, name="Acme's own"))
    plans = catalog_export()["plans"]
    assert [(p["code"], p["name"], p["base_fee"]) for p in plans] == [("team", "Team", "120")]


def test_load_catalog_ignores_override_plans(tmp_path: Path) -> None:
    team = scaled_team_plan()
    subscription = subscribe(team, overrides=overrides(team))
    override_rows = catalog_rows(subscription.plan)
    catalog = catalog_export()
    catalog["plans"][0]["base_fee"] = "130"
    load_catalog(tmp_path, json.loads(json.dumps(catalog)))
    # The catalog plan has no subscription of its own: repriced in place; the copy is untouched.
    team.refresh_from_db()
    assert (team.version, team.is_current, team.base_fee) == (1, True, Decimal("130"))
    assert catalog_rows(subscription.plan) == override_rows
    assert list(Plan.objects.catalog().values_list("code", "version")) == [("team", 1)]


def test_a_catalog_version_after_an_override_is_numbered_among_catalog_versions(tmp_path: Path) -> None:
    team = scaled_team_plan()
    SubscriptionFactory(plan=team)
    subscribe(team, overrides=overrides(team))
    catalog = catalog_export()
    catalog["plans"][0]["base_fee"] = "130"
    load_catalog(tmp_path, catalog)
    assert sorted(Plan.objects.catalog().values_list("version", "is_current")) == [(1, False), (2, True)]
    assert Plan.objects.overrides().get().version == 1


def test_lago_properties_of_a_package_with_fractional_free_units() -> None:
    charge = ChargeDef(
        metric="x", model=ChargeModel.PACKAGE, package_size=5, package_amount=Decimal("2"), free_units=Decimal("1.5")
    )
    assert lago_properties(charge) == {"amount": "2", "package_size": 5, "free_units": "1.5"}

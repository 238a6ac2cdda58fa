"""Lago's `plan_overrides` over the API: POST /api/v1/subscriptions and PUT
/api/v1/subscriptions/<external_id> (with Lago's SDK, unmodified, against the live server, and
with the test client), invoices at the subscription's own prices, errors named by request field
with nothing stored, and the subscription's answer showing its own prices."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.charge import ChargeOverrides, ChargesOverrides
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.plan import PlanOverrides
from lago_python_client.models.subscription import Subscription as LagoSubscription
from rest_framework.test import APIClient

from billing.api.subscription_inputs import NOT_YET, TAXES_NOT_YET
from billing.api.subscriptions import CANNOT_CHANGE
from billing.engine.periods import add_months, month_start
from billing.models import Charge, Invoice, Plan, Subscription, Tier
from billing.services.period_close import close_periods
from billing.services.plan_overrides import UNKNOWN_CHARGE
from billing.services.subscriptions import RETRY_OTHER_PRICES
from customers.models import Customer
from customers.services import api_key_create
from tests.factories import CustomerFactory, scaled_team_plan, store_users
from tests.helpers import at, errors, messages, post_subscription

NOW = at(2026, 10, 20, 12)

# 200 free users, then $0.50 each (the scaled Team plan: 100 free, then $1.20, $1.10, $1.00).
RANGES = [
    {"from_value": 0, "to_value": 200, "per_unit_amount": "0", "flat_amount": "0"},
    {"from_value": 201, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
]


def catalog_rows(plan: Plan) -> tuple[Any, ...]:
    return (
        Plan.objects.filter(pk=plan.pk).values().get(),
        list(Charge.objects.filter(plan=plan).values().order_by("id")),
        list(Tier.objects.filter(charge__plan=plan).values().order_by("id")),
    )


def moment(day: date, hours: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hours, tzinfo=UTC)


# --- with Lago's SDK against the live server ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_subscription_with_its_own_prices_is_invoiced_at_them_with_the_lago_sdk(live_server: Any) -> None:
    team = scaled_team_plan()
    before = catalog_rows(team)
    charge_id = str(team.charges.get().pk)
    _, raw_key = api_key_create(name="lago sdk")
    lago = Client(api_key=raw_key, api_url=live_server.url)
    m0 = add_months(month_start(timezone.now().date()), -2)
    m1, m2 = add_months(m0, 1), add_months(m0, 2)

    for external_id in ("acme", "globex"):
        lago.customers.create(LagoCustomer(external_id=external_id, name=external_id, currency="USD", timezone="UTC"))
    own = lago.subscriptions.create(
        LagoSubscription(
            external_customer_id="acme",
            plan_code="team",
            external_id="acme-team",
            subscription_at=f"{m0.isoformat()}T00:00:00Z",
            plan_overrides=PlanOverrides(
                amount_cents=10000,
                charges=ChargesOverrides(
                    __root__=[ChargeOverrides(id=charge_id, properties={"graduated_ranges": RANGES})]
                ),
            ),
        )
    )
    catalog = lago.subscriptions.create(
        LagoSubscription(
            external_customer_id="globex",
            plan_code="team",
            external_id="globex-team",
            subscription_at=f"{m0.isoformat()}T00:00:00Z",
        )
    )
    assert own is not None and catalog is not None
    assert (own.plan_code, own.plan_amount_cents, own.plan_amount_currency) == ("team", "10000", "USD")
    assert (catalog.plan_code, catalog.plan_amount_cents) == ("team", "12000")

    for external_id in ("acme", "globex"):
        store_users(Customer.objects.get(external_id=external_id), range(300), moment(m1 + timedelta(days=9)), "m1")
    close_periods(now=moment(m2, hours=9))  # M0 (the trial month) and M1 end: invoiced and finalized

    def m1_invoice(customer: str) -> Any:
        listed = lago.invoices.find_all({"external_customer_id": customer, "per_page": 100})["invoices"]
        starts = f"{m1.isoformat()}T00:00:00Z"
        (found,) = [i for i in listed if i.billing_periods.__root__[0].subscription_from_datetime == starts]
        return found

    # Its own prices: $100 + 100 × $0.50; the catalog's: $120 + 150 × $1.20 + 50 × $1.10.
    own_invoice, catalog_invoice = m1_invoice("acme"), m1_invoice("globex")
    assert (own_invoice.status, own_invoice.total_amount_cents) == ("finalized", 15000)
    assert (catalog_invoice.status, catalog_invoice.total_amount_cents) == ("finalized", 35500)
    own_fees = {fee.item.type: (fee.item.code, fee.amount_cents) for fee in own_invoice.fees.__root__}
    assert own_fees == {"subscription": ("team", 10000), "charge": ("mtu", 5000)}
    assert catalog_rows(team) == before

    # A second override through the SDK's update: the override plan already billed, so its prices
    # move to a new override plan; the finalized invoices keep their lines.
    updated = lago.subscriptions.update(LagoSubscription(plan_overrides=PlanOverrides(amount_cents=9000)), "acme-team")
    assert (updated.plan_code, updated.plan_amount_cents) == ("team", "9000")
    assert Plan.objects.overrides().count() == 2
    assert lago.invoices.find(own_invoice.lago_id).total_amount_cents == 15000
    assert catalog_rows(team) == before


@pytest.mark.django_db(transaction=True)
def test_invalid_overrides_are_refused_with_the_lago_sdk(live_server: Any) -> None:
    team = scaled_team_plan()
    _, raw_key = api_key_create(name="lago sdk")
    lago = Client(api_key=raw_key, api_url=live_server.url)
    lago.customers.create(LagoCustomer(external_id="acme", name="Acme", currency="USD", timezone="UTC"))
    with pytest.raises(LagoApiError) as caught:
        lago.subscriptions.create(
            LagoSubscription(
                external_customer_id="acme",
                plan_code="team",
                external_id="acme-team",
                plan_overrides=PlanOverrides(
                    charges=ChargesOverrides(
                        __root__=[ChargeOverrides(id=str(team.charges.get().pk), tax_codes=["vat"])]
                    )
                ),
            )
        )
    assert caught.value.status_code == 422
    assert messages(caught.value.response["error_details"]) == {
        "plan_overrides.charges.0.tax_codes": [f"is not supported: {TAXES_NOT_YET}"]
    }
    assert not Subscription.objects.exists()


# --- with the test client ------------------------------------------------------------------------------


@pytest.fixture
def team() -> Plan:
    plan = scaled_team_plan()
    CustomerFactory(external_id="acme")
    return plan


def create(api: APIClient, plan_overrides: Any, **fields: Any) -> Any:
    return post_subscription(
        api,
        **{
            "external_customer_id": "acme",
            "plan_code": "team",
            "external_id": "acme-team",
            "subscription_at": "2026-10-01T00:00:00Z",
            "plan_overrides": plan_overrides,
            **fields,
        },
    )


def own_prices(team: Plan, **fields: Any) -> dict[str, Any]:
    return {
        "amount_cents": 10000,
        "charges": [{"id": str(team.charges.get().pk), "properties": {"graduated_ranges": RANGES}}],
        **fields,
    }


@pytest.mark.django_db
@pytest.mark.frozen_clock(NOW)
def test_the_answer_shows_the_catalog_plan_code_and_its_own_prices(api: APIClient, team: Plan) -> None:
    response = create(api, own_prices(team, name="Team for Acme", trial_period=30.0), name="Acme's subscription")
    assert response.status_code == 200, response.content
    body = response.json()["subscription"]
    subscription = Subscription.objects.get()
    assert (body["name"], body["plan_code"], body["plan_version"]) == ("Acme's subscription", "team", 1)
    assert (body["plan_amount_cents"], body["plan_amount_currency"]) == (10000, "USD")
    assert (body["promotion"], body["trial_ended_at"]) == ("trial-30d-base", "2026-10-31T00:00:00Z")
    plan = body["plan"]
    assert (plan["lago_id"], plan["parent_id"], plan["code"], plan["name"]) == (
        str(subscription.plan_id),
        str(team.pk),
        "team",
        "Team for Acme",
    )
    assert (plan["amount_cents"], plan["interval"], plan["trial_period"]) == (10000, "monthly", 30.0)
    (charge,) = plan["charges"]
    assert (charge["lago_id"], charge["lago_parent_id"]) == (
        str(subscription.plan.charges.get().pk),
        str(team.charges.get().pk),
    )
    assert (charge["charge_model"], charge["billable_metric_code"]) == ("graduated", "mtu")
    assert charge["properties"] == {"graduated_ranges": RANGES}
    # The same answer when fetched; the catalog plan's own JSON says it is not an override.
    fetched = api.get("/api/v1/subscriptions/acme-team").json()["subscription"]
    assert fetched["plan"] == plan


@pytest.mark.django_db
@pytest.mark.frozen_clock(NOW)
@pytest.mark.parametrize(
    ("plan_overrides", "field", "message"),
    [
        ({"tax_codes": ["vat"]}, "plan_overrides.tax_codes", f"is not supported: {TAXES_NOT_YET}"),
        ({"amount_cents": "100"}, "plan_overrides.amount_cents", None),
        ({"amount_cents": -100}, "plan_overrides.amount_cents", "must not be negative"),
        ({"fixed_charges": [{"id": "x"}]}, "plan_overrides.fixed_charges", None),
        ({"minimum_commitment": {"amount_cents": 1}}, "plan_overrides.minimum_commitment", None),
        ({"charges": [{"id": "1", "charge_model": "standard"}]}, "plan_overrides.charges.0.charge_model", None),
        ({"charges": [{"id": "99999"}]}, "plan_overrides.charges.0.id", UNKNOWN_CHARGE.format(id="99999", plan="team")),
        ({"bogus": 1}, "plan_overrides.bogus", "is not supported"),
    ],
)
def test_invalid_overrides_are_refused_naming_the_field_and_store_nothing(
    api: APIClient, team: Plan, plan_overrides: dict[str, Any], field: str, message: str | None
) -> None:
    before = (catalog_rows(team), Plan.objects.count())
    details = errors(create(api, plan_overrides))
    assert list(details) == [field]
    if message is not None:
        assert details[field] == [message]
    assert not Subscription.objects.exists()
    assert (catalog_rows(team), Plan.objects.count()) == before


@pytest.mark.django_db
@pytest.mark.frozen_clock(NOW)
def test_invalid_ranges_name_the_range_and_field(api: APIClient, team: Plan) -> None:
    out_of_order = [{**RANGES[0], "to_value": 300}, {**RANGES[1], "from_value": 150}]
    body = own_prices(team)
    body["charges"][0]["properties"] = {"graduated_ranges": out_of_order}
    details = errors(create(api, body))
    assert details == {
        "plan_overrides.charges.0.properties.graduated_ranges.1.from_value": [
            "must be 300 or 301: where the previous range ends (its to_value) or the unit after"
        ]
    }
    assert not Subscription.objects.exists() and not Plan.objects.overrides().exists()


@pytest.mark.django_db
@pytest.mark.frozen_clock(NOW)
def test_min_amount_cents_and_filters_are_not_supported_but_zero_and_empty_are_nothing(
    api: APIClient, team: Plan
) -> None:
    charge = {"id": str(team.charges.get().pk), "min_amount_cents": 500}
    assert errors(create(api, {"charges": [charge]})) == {
        "plan_overrides.charges.0.min_amount_cents": [f"is not supported: {NOT_YET}"]
    }
    charge = {"id": str(team.charges.get().pk), "min_amount_cents": 0, "filters": [], "invoice_display_name": "Users"}
    assert create(api, {"charges": [charge]}).status_code == 200


@pytest.mark.django_db
@pytest.mark.frozen_clock(NOW)
def test_the_same_create_again_returns_the_subscription_and_other_prices_are_refused(
    api: APIClient, team: Plan
) -> None:
    first = create(api, own_prices(team)).json()["subscription"]
    again = create(api, own_prices(team))
    assert again.status_code == 200 and again.json()["subscription"]["lago_id"] == first["lago_id"]
    other = errors(create(api, own_prices(team, amount_cents=9000)))
    assert other == {"plan_overrides": [RETRY_OTHER_PRICES.format(external_id="acme-team")]}
    assert Subscription.objects.count() == 1 and Plan.objects.overrides().count() == 1


@pytest.mark.django_db
@pytest.mark.frozen_clock(NOW)
def test_put_renames_and_reprices_a_subscription(api: APIClient, team: Plan) -> None:
    create(api, None)
    assert Subscription.objects.get().plan == team
    response = api.put(
        "/api/v1/subscriptions/acme-team",
        {"subscription": {"name": "Acme", "external_id": "acme-team", "plan_overrides": own_prices(team)}},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()["subscription"]
    assert (body["name"], body["plan_code"], body["plan_amount_cents"]) == ("Acme", "team", 10000)
    subscription = Subscription.objects.get()
    assert subscription.plan.parent == team and body["plan"]["lago_id"] == str(subscription.plan_id)
    # A second override, before any invoice: the same override plan, repriced in place.
    own_charge = str(subscription.plan.charges.get().pk)
    again = api.put(
        "/api/v1/subscriptions/acme-team",
        {"subscription": {"plan_overrides": {"charges": [{"id": own_charge, "invoice_display_name": "Users"}]}}},
        format="json",
    )
    assert again.status_code == 200, again.content
    assert again.json()["subscription"]["plan"]["charges"][0]["invoice_display_name"] == "Users"
    assert Subscription.objects.get().plan == subscription.plan and not Invoice.objects.exists()


@pytest.mark.django_db
@pytest.mark.frozen_clock(NOW)
def test_put_refuses_what_it_cannot_do(api: APIClient, team: Plan) -> None:
    create(api, None)
    put = lambda body: api.put("/api/v1/subscriptions/acme-team", {"subscription": body}, format="json")  # noqa: E731
    assert errors(put({"consolidate_invoice": True})) == {"consolidate_invoice": [f"is not supported: {NOT_YET}"]}
    assert errors(put({"plan_code": "free"})) == {"plan_code": [CANNOT_CHANGE]}
    assert errors(put({"plan_overrides": {"amount_cents": -1}})) == {
        "plan_overrides.amount_cents": ["must not be negative"]
    }
    assert put({"plan_code": "team", "name": None}).status_code == 200
    assert api.put("/api/v1/subscriptions/nope", {"subscription": {}}, format="json").status_code == 404
    assert Subscription.objects.get().plan == team and not Plan.objects.overrides().exists()

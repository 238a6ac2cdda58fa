"""Quotes for one full period of a plan (DESIGN §1 worked examples): pure, no database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.engine.lines import PlanChargeSpec, PlanSpec
from billing.engine.pricing import ChargeSpec, TierSpec
from billing.engine.quotes import quote_dict, quote_plan
from billing.engine.vocabulary import ChargeModel

D = Decimal

TEAM = PlanSpec(
    code="team",
    name="Team",
    currency="USD",
    interval="month",
    base_fee=D("120"),
    charges=(
        PlanChargeSpec(
            metric_code="mtu",
            metric_name="Monthly tracked users",
            charge=ChargeSpec(
                model=ChargeModel.GRADUATED,
                tiers=(
                    TierSpec(up_to=D("10000"), unit_amount=D("0")),
                    TierSpec(up_to=D("25000"), unit_amount=D("0.012")),
                    TierSpec(up_to=D("100000"), unit_amount=D("0.011")),
                    TierSpec(up_to=None, unit_amount=D("0.010")),
                ),
            ),
        ),
    ),
)

FREE = PlanSpec(
    code="free",
    name="Free",
    currency="USD",
    interval="month",
    base_fee=D("0"),
    charges=(
        PlanChargeSpec(
            metric_code="mtu",
            metric_name="Monthly tracked users",
            charge=ChargeSpec(model=ChargeModel.STANDARD, unit_amount=D("0"), usage_limit=D("1000")),
        ),
    ),
)


def test_team_plan_at_30000_mtus_costs_355() -> None:
    data = quote_dict(quote_plan(TEAM, {"mtu": D("30000")}))

    assert data["plan"] == "team"
    assert data["currency"] == "USD"
    assert data["total"] == "355.00"
    assert [line["kind"] for line in data["lines"]] == ["base_fee", "usage"]
    assert [line["amount"] for line in data["lines"]] == ["120.00", "235.00"]


def test_team_plan_at_150000_mtus_costs_1625() -> None:
    data = quote_dict(quote_plan(TEAM, {"mtu": D("150000")}))

    assert data["total"] == "1625.00"
    assert [line["amount"] for line in data["lines"]] == ["120.00", "1505.00"]


@pytest.mark.parametrize(
    ("mtus", "total"),
    [
        ("0", "120.00"),
        ("10000", "120.00"),
        ("10001", "120.01"),  # 120.012
        ("25000", "300.00"),
        ("25001", "300.01"),  # 300.011
        ("100000", "1125.00"),
        ("100001", "1125.01"),  # 1125.010
    ],
)
def test_team_plan_total_at_tier_edges(mtus: str, total: str) -> None:
    assert quote_dict(quote_plan(TEAM, {"mtu": D(mtus)}))["total"] == total


def test_quote_total_is_the_sum_of_the_rounded_lines() -> None:
    quote = quote_plan(TEAM, {"mtu": D("10001")})

    assert quote.total == sum(line.amount for line in quote.lines)
    assert quote.total == D("120.01")


def test_usage_line_carries_the_tier_breakdown() -> None:
    usage = quote_dict(quote_plan(TEAM, {"mtu": D("30000")}))["lines"][1]

    assert usage["metric"] == "mtu"
    assert usage["description"] == "Monthly tracked users"
    assert usage["quantity"] == "30000"
    assert usage["billed_units"] == "30000"
    assert usage["limit_exceeded"] is False
    assert "packages" not in usage
    assert usage["tiers"] == [
        {"position": 1, "from": "1", "up_to": "10000", "units": "10000",
         "unit_amount": "0", "flat_amount": "0", "amount": "0"},
        {"position": 2, "from": "10001", "up_to": "25000", "units": "15000",
         "unit_amount": "0.012", "flat_amount": "0", "amount": "180"},
        {"position": 3, "from": "25001", "up_to": "100000", "units": "5000",
         "unit_amount": "0.011", "flat_amount": "0", "amount": "55"},
        {"position": 4, "from": "100001", "up_to": None, "units": "0",
         "unit_amount": "0.01", "flat_amount": "0", "amount": "0"},
    ]  # fmt: skip


def test_base_fee_line_names_plan_and_interval() -> None:
    base = quote_dict(quote_plan(TEAM, {}))["lines"][0]

    assert base["kind"] == "base_fee"
    assert base["description"] == "Team base fee (monthly)"
    assert base["quantity"] == "1"
    assert base["tiers"] == []
    assert "metric" not in base


def test_missing_usage_code_is_priced_as_zero_usage() -> None:
    quote = quote_plan(TEAM, {})

    assert quote.total == D("120.00")
    usage = quote.lines[1]
    assert usage.quantity == D("0")
    assert usage.amount == D("0.00")


def test_unknown_usage_code_is_rejected() -> None:
    with pytest.raises(KeyError, match="api_calls"):
        quote_plan(TEAM, {"mtu": D("10"), "api_calls": D("5")})


def test_free_plan_above_usage_limit_is_flagged_not_billed() -> None:
    data = quote_dict(quote_plan(FREE, {"mtu": D("1500")}))

    usage = data["lines"][1]
    assert usage["limit_exceeded"] is True
    assert usage["amount"] == "0.00"
    assert usage["quantity"] == "1500"
    assert usage["billed_units"] == "1000"
    assert data["total"] == "0.00"


def test_free_plan_at_usage_limit_is_not_flagged() -> None:
    usage = quote_dict(quote_plan(FREE, {"mtu": D("1000")}))["lines"][1]

    assert usage["limit_exceeded"] is False

"""load_catalog / export_catalog: validation by JSON path, atomicity, idempotency, versioning."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from billing.management.commands.load_catalog import SEGMENT_CATALOG
from billing.models import Charge, Plan, Promotion, Subscription, Tier
from billing.selectors.catalog import catalog_export
from billing.services.catalog import PROMOTION_IN_USE
from customers.models import Customer
from metering.models import BillableMetric
from tests.helpers import load_catalog

pytestmark = pytest.mark.django_db


def segment() -> dict[str, Any]:
    return json.loads(SEGMENT_CATALOG.read_text())


class _Buffer:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def snapshot() -> tuple[Any, ...]:
    return (
        list(BillableMetric.objects.values().order_by("id")),
        list(Promotion.objects.values().order_by("id")),
        list(Plan.objects.values().order_by("id")),
        list(Charge.objects.values().order_by("id")),
        list(Tier.objects.values().order_by("id")),
    )


def subscribe(plan_code: str) -> Subscription:
    customer = Customer.objects.create(external_id="cust-1", name="Acme")
    plan = Plan.objects.get(code=plan_code, is_current=True)
    return Subscription.objects.create(
        customer=customer,
        plan=plan,
        external_id="sub-1",
        subscription_at=datetime(2026, 9, 1, tzinfo=UTC),
        promotion=plan.promotion,
    )


def test_segment_catalog_creates_the_three_plans_with_their_tiers() -> None:
    call_command("load_catalog", stdout=_Buffer())
    assert sorted(Plan.objects.values_list("code", flat=True)) == ["free", "team", "team-annual"]
    team = Plan.objects.get(code="team")
    assert team.base_fee == Decimal(120)
    assert team.promotion.code == "trial-14d-base"
    tiers = list(Tier.objects.filter(charge__plan=team).values_list("up_to", "unit_amount"))
    assert tiers == [
        (Decimal(10000), Decimal(0)),
        (Decimal(25000), Decimal("0.012")),
        (Decimal(100000), Decimal("0.011")),
        (None, Decimal("0.010")),
    ]
    annual = Plan.objects.get(code="team-annual")
    assert (annual.commitment_amount, annual.commitment_months) == (Decimal(1440), 12)
    assert annual.commitment_covers == "base_fee" and annual.commitment_auto_renew
    assert Promotion.objects.get(code="trial-14d").applies_to == "plan"
    assert Charge.objects.get(plan__code="free").usage_limit == Decimal(1000)


def test_loading_the_same_catalog_twice_changes_nothing(tmp_path: Path) -> None:
    load_catalog(tmp_path, segment())
    before = snapshot()
    out = load_catalog(tmp_path, segment())
    assert snapshot() == before
    assert "0 changed" in out


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["plans"][1]["charges"][0]["tiers"][2].update(up_to=20000),
            "plans[1].charges[0].tiers[2].up_to: must be greater than 25000",
        ),
        (
            lambda c: c["plans"][1]["charges"][0]["tiers"][1].update(unit_amount="-0.012"),
            "plans[1].charges[0].tiers[1].unit_amount: must not be negative",
        ),
        (lambda c: c["plans"][1].update(base_fee="-1"), "plans[1].base_fee: must not be negative"),
        (
            lambda c: c["plans"][2]["charges"][0].update(metric="events"),
            "plans[2].charges[0].metric: unknown billable metric 'events'",
        ),
        (
            lambda c: c["plans"][1]["charges"][0].update(model="stairstep"),
            "plans[1].charges[0].model: must be one of standard, graduated, volume, package (got 'stairstep')",
        ),
        (
            lambda c: c["plans"][1]["charges"][0]["tiers"][3].update(up_to=200000),
            "plans[1].charges[0].tiers[3].up_to: the last tier must be unbounded (null)",
        ),
        (
            lambda c: c["plans"][1]["charges"][0]["tiers"][1].update(up_to=None),
            "plans[1].charges[0].tiers[1].up_to: only the last tier may be unbounded (null)",
        ),
        (lambda c: c["promotions"][0].update(percent_off="120"), "promotions[0].percent_off: must be at most 100"),
        (lambda c: c["plans"][0].update(currency="XXQ"), "plans[0].currency: 'XXQ' is not an ISO 4217 currency code"),
        (lambda c: c["plans"][1].update(promotion="nope"), "plans[1].promotion: unknown promotion 'nope'"),
        (lambda c: c["plans"][1].update(intervall="month"), "plans[1].intervall: unknown field"),
        (lambda c: c["billable_metrics"][0].update(aggregation="count"), "billable_metrics[0].field: a count"),
        (
            lambda c: c["plans"][1]["charges"][0].update(model="package"),
            "plans[1].charges[0].package_size: is required",
        ),
    ],
)
def test_invalid_catalog_names_the_path_and_changes_nothing(tmp_path: Path, mutate: Any, message: str) -> None:
    load_catalog(tmp_path, segment())
    before = snapshot()
    catalog = copy.deepcopy(segment())
    catalog["plans"][1]["name"] = "Team renamed"  # a valid change that must not land either
    mutate(catalog)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(catalog))
    err = _Buffer()
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("load_catalog", str(path), stdout=_Buffer(), stderr=err)
    assert message in err.text
    assert snapshot() == before


def test_invalid_json_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"plans": [')
    err = _Buffer()
    with pytest.raises(CommandError):
        call_command("load_catalog", str(path), stdout=_Buffer(), stderr=err)
    assert "not valid JSON" in err.text


def test_repricing_a_plan_without_subscriptions_updates_it_in_place(tmp_path: Path) -> None:
    load_catalog(tmp_path, segment())
    catalog = segment()
    catalog["plans"][1]["base_fee"] = "150"
    out = load_catalog(tmp_path, catalog)
    assert "updated" in out
    assert list(Plan.objects.filter(code="team").values_list("version", "base_fee")) == [(1, Decimal(150))]


def test_repricing_a_subscribed_plan_creates_a_new_version(tmp_path: Path) -> None:
    load_catalog(tmp_path, segment())
    sub = subscribe("team")
    catalog = segment()
    catalog["plans"][1]["charges"][0]["tiers"][1]["unit_amount"] = "0.013"
    out = load_catalog(tmp_path, catalog)
    assert "new version 2" in out
    old, new = Plan.objects.filter(code="team").order_by("version")
    assert (old.is_current, new.is_current) == (False, True)
    sub.refresh_from_db()
    assert sub.plan_id == old.pk  # the subscriber keeps the price it bought
    assert Tier.objects.get(charge__plan=old, position=1).unit_amount == Decimal("0.012")
    assert Tier.objects.get(charge__plan=new, position=1).unit_amount == Decimal("0.013")
    # and loading the same file again is a no-op
    before = snapshot()
    load_catalog(tmp_path, catalog)
    assert snapshot() == before


def test_renaming_a_subscribed_plan_does_not_version_it(tmp_path: Path) -> None:
    load_catalog(tmp_path, segment())
    subscribe("team")
    catalog = segment()
    catalog["plans"][1]["name"] = "Team (2026)"
    load_catalog(tmp_path, catalog)
    assert list(Plan.objects.filter(code="team").values_list("version", "name")) == [(1, "Team (2026)")]


def test_changing_terms_of_a_promotion_in_use_is_refused(tmp_path: Path) -> None:
    load_catalog(tmp_path, segment())
    subscribe("team")
    before = snapshot()
    catalog = segment()
    catalog["promotions"][0]["duration_days"] = 30
    path = tmp_path / "c.json"
    path.write_text(json.dumps(catalog))
    err = _Buffer()
    with pytest.raises(CommandError):
        call_command("load_catalog", str(path), stdout=_Buffer(), stderr=err)
    assert PROMOTION_IN_USE.format(code="trial-14d-base", count=1) in err.text
    assert snapshot() == before


def test_dry_run_reports_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(segment()))
    out = _Buffer()
    call_command("load_catalog", str(path), "--dry-run", stdout=out)
    assert "would change" in out.text
    assert not Plan.objects.exists()


def test_export_round_trips_the_catalog(tmp_path: Path) -> None:
    load_catalog(tmp_path, segment())
    exported = catalog_export()
    before = snapshot()
    load_catalog(tmp_path, exported)
    assert snapshot() == before
    team = next(p for p in exported["plans"] if p["code"] == "team")
    assert team["charges"][0]["tiers"][1] == {"up_to": 25000, "unit_amount": "0.012"}
    assert team["base_fee"] == "120"


def test_other_charge_models_load(tmp_path: Path) -> None:
    catalog = {
        "billable_metrics": [
            {"code": "api_calls", "name": "API calls", "aggregation": "count"},
            {"code": "storage", "name": "Storage GB", "aggregation": "max", "field": "gb"},
            {"code": "seats", "name": "Seats", "aggregation": "latest", "field": "seats"},
        ],
        "plans": [
            {
                "code": "pro",
                "name": "Pro",
                "interval": "year",
                "currency": "EUR",
                "base_fee": "1000",
                "pay_in_advance": True,
                "charges": [
                    {
                        "metric": "api_calls",
                        "model": "package",
                        "package_size": 1000,
                        "package_amount": "5",
                        "free_units": 10000,
                    },
                    {
                        "metric": "storage",
                        "model": "volume",
                        "tiers": [
                            {"up_to": 100, "unit_amount": "0.5", "flat_amount": "10"},
                            {"up_to": None, "unit_amount": "0.25"},
                        ],
                    },
                    {"metric": "seats", "model": "standard", "unit_amount": "12.5"},
                ],
            }
        ],
    }
    load_catalog(tmp_path, catalog)
    pro = Plan.objects.get(code="pro")
    assert pro.pay_in_advance and pro.interval == "year"
    exported = catalog_export()["plans"][0]
    assert exported["charges"] == catalog["plans"][0]["charges"]


@pytest.mark.parametrize(
    ("mtu", "total"),
    [
        (30000, "355.00"),
        (150000, "1625.00"),
        (10000, "120.00"),
        (10001, "120.01"),
        (25000, "300.00"),
        (25001, "300.01"),
        (100000, "1125.00"),
        (100001, "1125.01"),
    ],
)
def test_quote_command_gives_design_totals(mtu: int, total: str) -> None:
    call_command("load_catalog", stdout=_Buffer())
    out = _Buffer()
    call_command("quote", "team", "--usage", f"mtu={mtu}", "--json", stdout=out)
    quote = json.loads(out.text)
    assert quote["plan"] == "team" and quote["currency"] == "USD"
    assert quote["total"] == total
    assert [line["kind"] for line in quote["lines"]] == ["base_fee", "usage"]
    assert quote["lines"][0]["amount"] == "120.00"


def test_quote_30000_lines_and_tiers() -> None:
    call_command("load_catalog", stdout=_Buffer())
    out = _Buffer()
    call_command("quote", "team", "--usage", "mtu=30000", "--json", stdout=out)
    lines = json.loads(out.text)["lines"]
    assert [line["amount"] for line in lines] == ["120.00", "235.00"]
    assert [(t["units"], t["amount"]) for t in lines[1]["tiers"]] == [
        ("10000", "0"),
        ("15000", "180"),
        ("5000", "55"),
        ("0", "0"),
    ]


def test_quote_human_output_and_errors() -> None:
    call_command("load_catalog", stdout=_Buffer())
    out = _Buffer()
    call_command("quote", "team", "--usage", "mtu=30000", stdout=out)
    assert "355.00" in out.text and "15000 × 0.012 = 180" in out.text
    with pytest.raises(CommandError, match="'gold' does not exist"):
        call_command("quote", "gold", "--usage", "mtu=1")
    with pytest.raises(CommandError, match="has no charge for calls"):
        call_command("quote", "team", "--usage", "calls=1")
    with pytest.raises(CommandError, match="'lots' is not a number"):
        call_command("quote", "team", "--usage", "mtu=lots")

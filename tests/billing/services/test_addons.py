"""Add-ons (billing.services.addons) and add-ons in the catalog file (load_catalog, export_catalog)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from billing.models import AddOn, LineKind
from billing.selectors.catalog import catalog_export
from billing.services.addons import (
    AMOUNT_NEGATIVE,
    AMOUNT_PRECISION,
    CODE_TAKEN,
    REQUIRED,
    AddOnError,
    add_on_create,
    add_on_destroy,
    add_on_update,
)
from billing.services.one_off_invoices import OneOffFee, one_off_invoice_create
from customers.validators import INVALID_CURRENCY
from tests.factories import CustomerFactory
from tests.helpers import load_catalog

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 9, 15, 10, 30, tzinfo=UTC)


def add_ons() -> list[tuple[str, str, Decimal, str]]:
    return [(a.code, a.name, a.amount, a.currency) for a in AddOn.objects.order_by("code")]


def test_an_add_on_has_a_code_a_name_and_a_default_price() -> None:
    add_on = add_on_create(
        code="setup",
        name="Set-up fee",
        amount=Decimal("125.00"),
        currency="USD",
        invoice_display_name="Account set-up",
        description="One-time",
    )
    assert (add_on.code, add_on.name, add_on.amount, add_on.currency) == ("setup", "Set-up fee", Decimal(125), "USD")
    assert (add_on.invoice_display_name, add_on.description) == ("Account set-up", "One-time")
    assert add_on_create(code="free", name="Free kit", amount=Decimal(0), currency="JPY").amount == 0


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"amount": Decimal("-0.01")}, {"amount": [AMOUNT_NEGATIVE]}),
        ({"amount": Decimal("1.005")}, {"amount": [AMOUNT_PRECISION.format(currency="USD", digits=2)]}),
        (
            {"amount": Decimal("10.5"), "currency": "JPY"},
            {"amount": [AMOUNT_PRECISION.format(currency="JPY", digits=0)]},
        ),
        ({"amount": None}, {"amount": [REQUIRED]}),
        ({"currency": "XTS"}, {"currency": [INVALID_CURRENCY.format(value="XTS")]}),
        ({"currency": ""}, {"currency": [REQUIRED]}),
        ({"code": "setup", "name": ""}, {"code": [CODE_TAKEN], "name": [REQUIRED]}),
    ],
)
def test_an_invalid_add_on_is_refused_naming_each_field_and_nothing_is_stored(
    fields: dict[str, object], errors: dict[str, list[str]]
) -> None:
    add_on_create(code="setup", name="Set-up fee", amount=Decimal(125), currency="USD")
    before = add_ons()
    values: dict[str, object] = {"code": "training", "name": "Training", "amount": Decimal(80), "currency": "USD"}
    with pytest.raises(AddOnError) as refused:
        add_on_create(**{**values, **fields})
    assert refused.value.errors == errors
    assert add_ons() == before


def test_an_update_changes_what_is_given_and_leaves_invoices_as_issued() -> None:
    setup = add_on_create(code="setup", name="Set-up fee", amount=Decimal(125), currency="USD")
    customer = CustomerFactory(currency="USD")
    invoice = one_off_invoice_create(customer=customer, fees=[OneOffFee(add_on_code="setup")], now=NOW)

    updated = add_on_update(add_on=setup, amount=Decimal(150), name="Onboarding")
    assert (updated.code, updated.name, updated.amount) == ("setup", "Onboarding", Decimal(150))
    with pytest.raises(AddOnError) as refused:
        add_on_update(add_on=setup, currency="JPY", amount=Decimal("150.50"))
    assert list(refused.value.errors) == ["amount"]

    add_on_destroy(add_on=setup)
    assert not AddOn.objects.exists()
    line = invoice.lines.get(kind=LineKind.ADD_ON)
    assert (line.description, line.amount, line.details["add_on_code"]) == ("Set-up fee", Decimal(125), "setup")


# --- The catalog file ----------------------------------------------------------------------------

CATALOG = {
    "billable_metrics": [],
    "plans": [],
    "add_ons": [
        {"code": "setup", "name": "Set-up fee", "amount": "125", "currency": "USD", "description": "One-time"},
        {"code": "kit", "name": "Kit", "amount": "1235", "currency": "JPY", "invoice_display_name": "Starter kit"},
    ],
}


def test_the_catalog_loads_and_exports_add_ons(tmp_path: Path) -> None:
    out = load_catalog(tmp_path, CATALOG)
    assert "created" in out
    assert add_ons() == [("kit", "Kit", Decimal(1235), "JPY"), ("setup", "Set-up fee", Decimal(125), "USD")]
    exported = catalog_export()["add_ons"]
    assert exported == [
        {"code": "kit", "name": "Kit", "amount": "1235", "currency": "JPY", "invoice_display_name": "Starter kit"},
        {"code": "setup", "name": "Set-up fee", "amount": "125", "currency": "USD", "description": "One-time"},
    ]
    # Loading the export changes nothing; a new price updates the add-on in place.
    before = list(AddOn.objects.order_by("code").values())
    load_catalog(tmp_path, {"add_ons": exported})
    assert list(AddOn.objects.order_by("code").values()) == before
    load_catalog(tmp_path, {"add_ons": [{**exported[1], "amount": "150.50"}]})
    assert AddOn.objects.get(code="setup").amount == Decimal("150.50")


def test_a_catalog_without_add_ons_loads_as_before(tmp_path: Path) -> None:
    call_command("load_catalog", stdout=StringIO())  # the shipped Segment catalog
    assert not AddOn.objects.exists()
    assert catalog_export()["add_ons"] == []


@pytest.mark.parametrize(
    ("add_on", "message"),
    [
        ({"code": "setup", "name": "Set-up", "amount": "1.005", "currency": "USD"}, "add_ons[0].amount: USD amounts"),
        (
            {"code": "setup", "name": "Set-up", "amount": "-1", "currency": "USD"},
            "add_ons[0].amount: must not be negative",
        ),
        ({"code": "setup", "name": "Set-up", "amount": "1", "currency": "XTS"}, "add_ons[0].currency:"),
        ({"code": "setup", "amount": "1", "currency": "USD"}, "add_ons[0].name: is required"),
        (
            {"code": "setup", "name": "Set-up", "amount": "1", "currency": "USD", "tax_codes": []},
            "add_ons[0].tax_codes",
        ),
    ],
)
def test_an_invalid_add_on_in_the_catalog_is_named_by_its_path_and_nothing_loads(
    tmp_path: Path, add_on: dict[str, object], message: str
) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"add_ons": [add_on]}))
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("load_catalog", str(path), stdout=StringIO(), stderr=err)
    assert message in err.getvalue()
    assert not AddOn.objects.exists()

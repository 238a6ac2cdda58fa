"""Taxes (billing.services.taxes): what a tax may be, a customer's tax codes against the
organization's taxes, what changing or deleting a tax does (and does not do) to invoices; and a
prepaid commitment with tax: the prepayment is taxed, the monthly drawdown lowers the taxable
base of the period invoices (DESIGN §6 "Taxes"), through process_commitments and close_periods."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from billing.models import (
    Commitment,
    CommitmentStatus,
    CustomerTax,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    LedgerKind,
    LineKind,
    Plan,
    Tax,
)
from billing.selectors.adjustments import tax_rates
from billing.selectors.commitments import balance
from billing.services.addons import add_on_create
from billing.services.commitments import process_commitments
from billing.services.one_off_invoices import OneOffFee, one_off_invoice_create
from billing.services.period_close import close_periods
from billing.services.subscriptions import subscription_create
from billing.services.taxes import (
    CODE_TAKEN,
    RATE_NOT_A_PERCENTAGE,
    RATE_PRECISION,
    REQUIRED,
    UNKNOWN_TAX_CODES,
    TaxError,
    customer_taxes_set,
    tax_create,
    tax_destroy,
    tax_update,
)
from customers.models import Customer
from tests.factories import CustomerFactory, store_users
from tests.helpers import at, load_catalog, travel

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 9, 15, 10, 30, tzinfo=UTC)


def codes(customer: Customer) -> list[str]:
    return [tax.code for tax in tax_rates(customer.pk)]


def taxes_stored() -> list[tuple[str, str, Decimal, bool]]:
    return [(t.code, t.name, t.rate, t.applied_to_organization) for t in Tax.objects.order_by("code")]


# --- What a tax may be ------------------------------------------------------------------------


def test_a_tax_is_created_with_a_code_a_name_and_a_rate_in_percent() -> None:
    tax = tax_create(code="vat_fr", name="TVA", rate=Decimal("20"), description="France", applied_to_organization=True)
    assert (tax.code, tax.name, tax.rate, tax.description, tax.applied_to_organization) == (
        "vat_fr",
        "TVA",
        Decimal(20),
        "France",
        True,
    )
    assert tax_create(code="gst", name="GST", rate=Decimal("12.3456")).rate == Decimal("12.3456")
    assert tax_create(code="zero", name="Exempt", rate=Decimal(0)).rate == 0
    assert tax_create(code="all", name="All of it", rate=Decimal(100)).rate == 100


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"rate": Decimal("100.01")}, {"rate": [RATE_NOT_A_PERCENTAGE]}),
        ({"rate": Decimal(-1)}, {"rate": [RATE_NOT_A_PERCENTAGE]}),
        ({"rate": Decimal("20.00001")}, {"rate": [RATE_PRECISION]}),
        ({"rate": None}, {"rate": [REQUIRED]}),
        ({"name": "  "}, {"name": [REQUIRED]}),
        ({"code": ""}, {"code": [REQUIRED]}),
        (
            {"code": "vat", "name": "", "rate": Decimal(101)},
            {"code": [CODE_TAKEN], "name": [REQUIRED], "rate": [RATE_NOT_A_PERCENTAGE]},
        ),
    ],
)
def test_an_invalid_tax_is_refused_naming_each_field_and_nothing_is_stored(
    fields: dict[str, object], errors: dict[str, list[str]]
) -> None:
    tax_create(code="vat", name="VAT", rate=Decimal(20))
    before = taxes_stored()
    values: dict[str, object] = {"code": "gst", "name": "GST", "rate": Decimal(5), **fields}
    with pytest.raises(TaxError) as refused:
        tax_create(**values)
    assert refused.value.errors == errors
    assert taxes_stored() == before


def test_an_update_changes_what_is_given_and_checks_it_like_a_creation() -> None:
    vat = tax_create(code="vat", name="VAT", rate=Decimal(20))
    tax_create(code="gst", name="GST", rate=Decimal(5))
    updated = tax_update(tax=vat, rate=Decimal("19.6"), applied_to_organization=True)
    assert (updated.code, updated.name, updated.rate, updated.applied_to_organization) == (
        "vat",
        "VAT",
        Decimal("19.6"),
        True,
    )
    assert tax_update(tax=vat, code="vat_fr").code == "vat_fr"
    before = taxes_stored()
    with pytest.raises(TaxError) as refused:
        tax_update(tax=vat, code="gst", rate=Decimal(200))
    assert refused.value.errors == {"code": [CODE_TAKEN], "rate": [RATE_NOT_A_PERCENTAGE]}
    assert taxes_stored() == before


# --- Whose taxes apply ------------------------------------------------------------------------


def test_a_customers_tax_codes_replace_the_organizations_taxes() -> None:
    tax_create(code="vat", name="VAT", rate=Decimal(20), applied_to_organization=True)
    tax_create(code="eco", name="Eco levy", rate=Decimal(1), applied_to_organization=True)
    tax_create(code="gst", name="GST", rate=Decimal(5))
    acme: Customer = CustomerFactory(external_id="acme")
    globex: Customer = CustomerFactory(external_id="globex")
    assert codes(acme) == ["eco", "vat"]

    assert [t.code for t in customer_taxes_set(customer=acme, tax_codes=["gst"])] == ["gst"]
    assert codes(acme) == ["gst"]
    assert codes(globex) == ["eco", "vat"]  # the others keep the organization's

    customer_taxes_set(customer=acme, tax_codes=["vat", "gst", "vat"])  # each once
    assert codes(acme) == ["gst", "vat"]
    customer_taxes_set(customer=acme, tax_codes=[])  # none of its own: the organization's again
    assert codes(acme) == ["eco", "vat"]
    assert not CustomerTax.objects.exists()


def test_an_unknown_tax_code_is_refused_and_the_customers_codes_stay() -> None:
    tax_create(code="gst", name="GST", rate=Decimal(5))
    acme: Customer = CustomerFactory(external_id="acme")
    customer_taxes_set(customer=acme, tax_codes=["gst"])
    with pytest.raises(TaxError) as refused:
        customer_taxes_set(customer=acme, tax_codes=["gst", "vat", "pst"])
    assert refused.value.errors == {"tax_codes": [UNKNOWN_TAX_CODES.format(codes="vat, pst")]}
    assert codes(acme) == ["gst"]


# --- Changing or deleting a tax ------------------------------------------------------------------


@pytest.fixture
def billed() -> tuple[Customer, Invoice]:
    """Acme with its own 20 % VAT, and a one-off invoice of $100 taxed with it."""
    tax_create(code="vat", name="VAT", rate=Decimal(20))
    acme: Customer = CustomerFactory(external_id="acme", currency="USD")
    customer_taxes_set(customer=acme, tax_codes=["vat"])
    add_on_create(code="setup", name="Set-up", amount=Decimal(100), currency="USD")
    with travel(NOW):
        invoice = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="setup")], now=NOW)
    return acme, invoice


def tax_lines(invoice: Invoice) -> list[tuple[str, Decimal, dict[str, object]]]:
    return [(line.description, line.amount, line.details) for line in invoice.lines.filter(kind=LineKind.TAX)]


def test_a_new_rate_applies_to_invoices_made_afterwards_not_to_finalized_ones(billed: tuple[Customer, Invoice]) -> None:
    acme, first = billed
    before = tax_lines(first)
    assert [(d, a) for d, a, _ in before] == [("VAT (20 %)", Decimal("20.00"))]
    tax_update(tax=Tax.objects.get(code="vat"), rate=Decimal(25), name="VAT (new)")
    with travel(NOW):
        second = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="setup")], now=NOW)
    assert [(d, a) for d, a, _ in tax_lines(second)] == [("VAT (new) (25 %)", Decimal("25.00"))]
    first.refresh_from_db()
    assert tax_lines(first) == before and first.total == Decimal("120.00")


def test_deleting_a_tax_takes_it_off_its_customers_and_leaves_invoices_as_issued(
    billed: tuple[Customer, Invoice],
) -> None:
    acme, invoice = billed
    tax_create(code="eco", name="Eco levy", rate=Decimal(1), applied_to_organization=True)
    vat = Tax.objects.get(code="vat")
    gone = tax_destroy(tax=vat)
    assert gone.code == "vat" and gone.pk == vat.pk  # answered as it was
    assert not Tax.objects.filter(code="vat").exists()
    assert not CustomerTax.objects.exists()
    assert codes(acme) == ["eco"]  # no code of its own left: the organization's taxes
    invoice.refresh_from_db()
    [(description, amount, details)] = tax_lines(invoice)
    assert (description, amount, invoice.total) == ("VAT (20 %)", Decimal("20.00"), Decimal("120.00"))
    assert (details["tax_code"], details["tax_name"], Decimal(str(details["rate"]))) == ("vat", "VAT", Decimal(20))
    # The code may be used again, as in Lago.
    assert tax_create(code="vat", name="VAT", rate=Decimal("19.6")).pk != vat.pk


# --- A prepaid commitment with tax ---------------------------------------------------------------

CATALOG = {
    "billable_metrics": [
        {"code": "mtu", "name": "Monthly tracked users", "aggregation": "unique_count", "field": "user_id"}
    ],
    "plans": [
        {
            "code": "annual",
            "name": "Annual",
            "interval": "month",
            "currency": "USD",
            "base_fee": "120",
            "commitment": {"amount": "1440", "months": 12, "covers": "base_fee", "auto_renew": False},
            "charges": [{"metric": "mtu", "model": "standard", "unit_amount": "0.10"}],
        }
    ],
}


def test_the_prepayment_is_taxed_and_the_drawdown_lowers_the_next_invoices_taxable_base(tmp_path: Path) -> None:
    load_catalog(tmp_path, CATALOG)
    tax_create(code="vat", name="VAT", rate=Decimal(20), applied_to_organization=True)
    acme: Customer = CustomerFactory(external_id="acme", currency="USD", timezone="UTC")
    plan = Plan.objects.get(code="annual", is_current=True)
    # Subscribed in December for January 1st: the commitment waits for its term to start.
    with travel(at(2025, 12, 20)):
        subscription, _ = subscription_create(
            customer=acme,
            plan=plan,
            external_id="acme-annual",
            subscription_at=at(2026, 1, 1),
            billing_time="calendar",
            now=at(2025, 12, 20),
        )
    commitment = Commitment.objects.get(subscription=subscription)
    assert commitment.status == CommitmentStatus.PENDING

    # January 1st: process_commitments prepays the term: $1,440 + 20 % VAT.
    with travel(at(2026, 1, 1, 0, 10)):
        report = process_commitments(today=datetime(2026, 1, 1, tzinfo=UTC).date())
    assert not report.errors and len(report.prepaid) == 1
    prepayment = Invoice.objects.get(kind=InvoiceKind.COMMITMENT)
    assert [(line.kind, line.amount, line.tax_amount) for line in prepayment.lines.order_by("position")] == [
        (LineKind.COMMITMENT, Decimal("1440.00"), Decimal("288.00")),
        (LineKind.TAX, Decimal("288.00"), Decimal(0)),
    ]
    assert (prepayment.status, prepayment.total) == (InvoiceStatus.FINALIZED, Decimal("1728.00"))
    # The balance is what the base fees are drawn from, before tax: $1,440, not $1,728.
    commitment.refresh_from_db()
    assert [(e.kind, e.amount) for e in commitment.entries.all()] == [(LedgerKind.PURCHASE, Decimal("1440.00"))]
    assert balance(commitment) == Decimal("1440.00")

    # January: $120 base fee drawn from the balance, 300 users × $0.10 = $30 in cash; the VAT is
    # on what is left to pay ($30 → $6), not on the fees ($150 → $30): the base fee was taxed once,
    # with the prepayment.
    store_users(acme, range(300), at(2026, 1, 20), "jan")
    with travel(at(2026, 2, 1, 0, 5)):
        close = close_periods(now=at(2026, 2, 1, 0, 5))
    assert not close.errors
    january = Invoice.objects.get(subscription=subscription, kind=InvoiceKind.PERIOD, period_start=at(2026, 1, 1))
    assert [(line.kind, line.amount) for line in january.lines.order_by("position")] == [
        (LineKind.BASE_FEE, Decimal("120.00")),
        (LineKind.USAGE, Decimal("30.00")),
        (LineKind.COMMITMENT_DRAWDOWN, Decimal("-120.00")),
        (LineKind.TAX, Decimal("6.00")),
    ]
    assert january.total == Decimal("36.00")
    assert balance(commitment) == Decimal("1320.00")

"""The pure pricing engine (DESIGN §3, "Charge models" and "Money"): no database.

Table-driven cases pin the worked examples and each rule's edges; Hypothesis properties check
the invariants over generated tier tables.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.engine.money import quantize_money, to_cents
from billing.engine.pricing import (
    NEGATIVE_PRICE,
    TIER_LAST_BOUNDED,
    TIER_NOT_ASCENDING,
    TIER_NOT_POSITIVE,
    TIER_UNBOUNDED_NOT_LAST,
    TIERS_REQUIRED,
    ChargeSpec,
    TierSpec,
    price_charge,
    tier_errors,
)
from billing.engine.vocabulary import ChargeModel

D = Decimal

# Segment's Team plan usage tiers (DESIGN §1): 10,000 MTUs included, then 0.012 / 0.011 / 0.010.
TEAM_TIERS = (
    TierSpec(up_to=D("10000"), unit_amount=D("0")),
    TierSpec(up_to=D("25000"), unit_amount=D("0.012")),
    TierSpec(up_to=D("100000"), unit_amount=D("0.011")),
    TierSpec(up_to=None, unit_amount=D("0.010")),
)

# Small tables with flat fees, so that every flat-fee rule shows in the amount.
FLAT_TIERS = (
    TierSpec(up_to=D("10"), unit_amount=D("1"), flat_amount=D("5")),
    TierSpec(up_to=D("20"), unit_amount=D("2"), flat_amount=D("7")),
    TierSpec(up_to=None, unit_amount=D("3"), flat_amount=D("11")),
)
VOLUME_TIERS = (
    TierSpec(up_to=D("10"), unit_amount=D("1"), flat_amount=D("5")),
    TierSpec(up_to=D("20"), unit_amount=D("0.5"), flat_amount=D("7")),
    TierSpec(up_to=None, unit_amount=D("0.25"), flat_amount=D("11")),
)


def graduated(tiers: tuple[TierSpec, ...], usage_limit: Decimal | None = None) -> ChargeSpec:
    return ChargeSpec(model=ChargeModel.GRADUATED, tiers=tiers, usage_limit=usage_limit)


def volume(tiers: tuple[TierSpec, ...]) -> ChargeSpec:
    return ChargeSpec(model=ChargeModel.VOLUME, tiers=tiers)


def standard(unit_amount: str, usage_limit: str | None = None) -> ChargeSpec:
    limit = None if usage_limit is None else D(usage_limit)
    return ChargeSpec(model=ChargeModel.STANDARD, unit_amount=D(unit_amount), usage_limit=limit)


def package(size: int, amount: str, free_units: str = "0") -> ChargeSpec:
    return ChargeSpec(model=ChargeModel.PACKAGE, package_size=size, package_amount=D(amount), free_units=D(free_units))


# --- standard -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "unit_amount", "exact", "amount"),
    [
        ("0", "0.25", "0", "0.00"),
        ("1000", "0.0015", "1.5", "1.50"),
        ("3", "0.333", "0.999", "1.00"),
        ("2.5", "4", "10", "10.00"),
    ],
)
def test_standard_multiplies_quantity_by_unit_amount(quantity: str, unit_amount: str, exact: str, amount: str) -> None:
    priced = price_charge(standard(unit_amount), D(quantity), "USD")

    assert priced.exact_amount == D(exact)
    assert str(priced.amount) == amount
    assert priced.tiers == ()
    assert priced.packages is None


# --- graduated ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "exact", "amount"),
    [
        # DESIGN §1 worked examples, usage part only (the $120 base fee is in test_quotes).
        ("30000", "235", "235.00"),
        ("150000", "1505", "1505.00"),
        # Tier edges.
        ("0", "0", "0.00"),
        ("10000", "0", "0.00"),
        ("10001", "0.012", "0.01"),
        ("25000", "180", "180.00"),
        ("25001", "180.011", "180.01"),
        ("100000", "1005", "1005.00"),
        ("100001", "1005.010", "1005.01"),
    ],
)
def test_graduated_prices_each_tier_separately(quantity: str, exact: str, amount: str) -> None:
    priced = price_charge(graduated(TEAM_TIERS), D(quantity), "USD")

    assert priced.exact_amount == D(exact)
    assert str(priced.amount) == amount
    assert priced.billed_units == D(quantity)
    assert priced.limit_exceeded is False


def test_graduated_breakdown_lists_units_and_amount_per_tier() -> None:
    priced = price_charge(graduated(TEAM_TIERS), D("30000"), "USD")

    assert [(t.position, t.from_units, t.up_to) for t in priced.tiers] == [
        (1, D("0"), D("10000")),
        (2, D("10000"), D("25000")),
        (3, D("25000"), D("100000")),
        (4, D("100000"), None),
    ]
    assert [t.units for t in priced.tiers] == [D("10000"), D("15000"), D("5000"), D("0")]
    assert [t.amount for t in priced.tiers] == [D("0"), D("180"), D("55"), D("0")]
    assert sum(t.amount for t in priced.tiers) == priced.exact_amount


@pytest.mark.parametrize(
    ("quantity", "exact", "flats"),
    [
        # The first tier's flat fee is always charged, even for no usage.
        ("0", "5", ["5", "0", "0"]),
        ("5", "10", ["5", "0", "0"]),
        # A later tier's flat fee is due only when q > the previous tier's up_to.
        ("10", "15", ["5", "0", "0"]),
        ("10.5", "23", ["5", "7", "0"]),
        ("11", "24", ["5", "7", "0"]),
        ("20", "42", ["5", "7", "0"]),
        ("21", "56", ["5", "7", "11"]),
    ],
)
def test_graduated_charges_flat_amount_once_quantity_enters_tier(quantity: str, exact: str, flats: list[str]) -> None:
    priced = price_charge(graduated(FLAT_TIERS), D(quantity), "USD")

    assert priced.exact_amount == D(exact)
    assert [t.flat_amount for t in priced.tiers] == [D(f) for f in flats]


def test_graduated_single_unbounded_tier_is_standard_pricing() -> None:
    tiers = (TierSpec(up_to=None, unit_amount=D("0.02")),)

    priced = price_charge(graduated(tiers), D("1234"), "USD")

    assert priced.amount == D("24.68")
    assert len(priced.tiers) == 1
    assert priced.tiers[0].units == D("1234")


# --- volume -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "exact", "tier"),
    [
        ("0", "5", 1),  # q = 0 falls in the first tier, flat fee included
        ("4", "9", 1),
        ("10", "15", 1),  # exactly on an up_to: that tier
        ("10.5", "12.25", 2),
        ("11", "12.5", 2),
        ("20", "17", 2),
        ("21", "16.25", 3),
        ("100", "36", 3),
    ],
)
def test_volume_prices_all_units_at_the_tier_containing_quantity(quantity: str, exact: str, tier: int) -> None:
    priced = price_charge(volume(VOLUME_TIERS), D(quantity), "USD")

    assert priced.exact_amount == D(exact)
    charged = [t.position for t in priced.tiers if t.units or t.flat_amount]
    assert charged == [tier]
    assert priced.tiers[tier - 1].units == D(quantity)


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        ("0", "0.00"),
        ("10000", "0.00"),
        ("10001", "120.01"),  # 10,001 × 0.012 = 120.012
        ("25000", "300.00"),
        ("25001", "275.01"),  # 25,001 × 0.011 = 275.011
        ("30000", "330.00"),
        ("100001", "1000.01"),
    ],
)
def test_volume_team_tiers_price_whole_quantity_at_one_rate(quantity: str, amount: str) -> None:
    priced = price_charge(volume(TEAM_TIERS), D(quantity), "USD")

    assert str(priced.amount) == amount


# --- package ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "free_units", "packages", "amount"),
    [
        ("0", "0", 0, "0.00"),
        ("1", "0", 1, "5.00"),
        ("100", "0", 1, "5.00"),
        ("100.5", "0", 2, "10.00"),
        ("101", "0", 2, "10.00"),
        ("30", "50", 0, "0.00"),  # below the free units: nothing to pay
        ("50", "50", 0, "0.00"),
        ("51", "50", 1, "5.00"),
        ("150", "50", 1, "5.00"),
        ("151", "50", 2, "10.00"),
    ],
)
def test_package_charges_started_packages_after_free_units(
    quantity: str, free_units: str, packages: int, amount: str
) -> None:
    priced = price_charge(package(100, "5", free_units), D(quantity), "USD")

    assert priced.packages == packages
    assert str(priced.amount) == amount
    assert priced.tiers == ()


@pytest.mark.parametrize("size", [None, 0, -10])
def test_package_without_positive_size_is_rejected(size: int | None) -> None:
    charge = ChargeSpec(model=ChargeModel.PACKAGE, package_size=size, package_amount=D("5"))

    with pytest.raises(ValueError, match="package_size"):
        price_charge(charge, D("10"), "USD")


def test_unknown_charge_model_is_rejected() -> None:
    with pytest.raises(ValueError, match="percentage"):
        price_charge(ChargeSpec(model="percentage"), D("10"), "USD")


# --- usage limit and negative quantities --------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "billed", "exceeded"),
    [
        ("0", "0", False),
        ("999", "999", False),
        ("1000", "1000", False),  # reaching the limit is not exceeding it
        ("1000.5", "1000", True),
        ("1500", "1000", True),
    ],
)
def test_usage_limit_caps_billed_units_and_flags_only_above_it(quantity: str, billed: str, exceeded: bool) -> None:
    priced = price_charge(standard("0.01", usage_limit="1000"), D(quantity), "USD")

    assert priced.quantity == D(quantity)
    assert priced.billed_units == D(billed)
    assert priced.limit_exceeded is exceeded
    assert priced.exact_amount == D(billed) * D("0.01")


def test_usage_limit_applies_before_tiers() -> None:
    priced = price_charge(graduated(TEAM_TIERS, usage_limit=D("25000")), D("30000"), "USD")

    assert priced.billed_units == D("25000")
    assert priced.amount == D("180.00")
    assert priced.limit_exceeded is True


@pytest.mark.parametrize(
    "charge",
    [
        standard("0.5"),
        standard("0.5", usage_limit="10"),
        graduated(TEAM_TIERS),
        graduated(FLAT_TIERS),
        volume(VOLUME_TIERS),
        package(100, "5"),
    ],
    ids=["standard", "standard-limit", "graduated", "graduated-flat", "volume", "package"],
)
def test_negative_quantity_is_priced_as_zero(charge: ChargeSpec) -> None:
    at_zero = price_charge(charge, D("0"), "USD")

    priced = price_charge(charge, D("-5"), "USD")

    assert priced.quantity == D("-5")
    assert priced.billed_units == D("0")
    assert priced.exact_amount == at_zero.exact_amount
    assert priced.amount == at_zero.amount
    assert priced.limit_exceeded is False


# --- rounding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit_amount", "currency", "amount"),
    [
        ("0.005", "USD", "0.01"),  # half rounds up
        ("0.0049", "USD", "0.00"),
        ("0.025", "USD", "0.03"),  # not banker's rounding (which gives 0.02)
        ("0.5", "JPY", "1"),  # no minor unit
        ("2.5", "JPY", "3"),
        ("0.49", "JPY", "0"),
        ("0.0005", "KWD", "0.001"),  # three-digit minor unit
        ("1.2345", "KWD", "1.235"),
        ("0.00049", "KWD", "0.000"),
    ],
)
def test_amount_is_rounded_half_up_to_the_currency_minor_unit(unit_amount: str, currency: str, amount: str) -> None:
    priced = price_charge(standard(unit_amount), D("1"), currency)

    assert priced.exact_amount == D(unit_amount)
    assert str(priced.amount) == amount


@pytest.mark.parametrize(
    ("amount", "currency", "rounded", "cents"),
    [
        ("355", "USD", "355.00", 35500),
        ("120.012", "USD", "120.01", 12001),
        ("0.005", "EUR", "0.01", 1),
        ("1234.5", "JPY", "1235", 1235),
        ("1.0005", "KWD", "1.001", 1001),
    ],
)
def test_quantize_money_and_to_cents_use_the_minor_unit(amount: str, currency: str, rounded: str, cents: int) -> None:
    assert str(quantize_money(D(amount), currency)) == rounded
    assert to_cents(D(amount), currency) == cents


# --- tier validation ----------------------------------------------------------------------------


def tier(up_to: str | None, unit_amount: str = "1", flat_amount: str = "0") -> TierSpec:
    return TierSpec(up_to=None if up_to is None else D(up_to), unit_amount=D(unit_amount), flat_amount=D(flat_amount))


@pytest.mark.parametrize(
    ("tiers", "errors"),
    [
        (TEAM_TIERS, []),
        ((tier(None),), []),
        ((), [(0, "tiers", TIERS_REQUIRED)]),
        (
            (tier("25000"), tier("20000"), tier(None)),
            [(1, "up_to", TIER_NOT_ASCENDING.format(previous=25000))],
        ),
        (
            (tier("10"), tier("10"), tier(None)),
            [(1, "up_to", TIER_NOT_ASCENDING.format(previous=10))],
        ),
        (
            # After a bad tier, later tiers are still compared with the highest bound so far.
            (tier("25000"), tier("20000"), tier("22000"), tier(None)),
            [
                (1, "up_to", TIER_NOT_ASCENDING.format(previous=25000)),
                (2, "up_to", TIER_NOT_ASCENDING.format(previous=25000)),
            ],
        ),
        ((tier("0"), tier(None)), [(0, "up_to", TIER_NOT_POSITIVE)]),
        ((tier("-5"), tier(None)), [(0, "up_to", TIER_NOT_POSITIVE)]),
        (
            (tier(None), tier("10")),
            [(0, "up_to", TIER_UNBOUNDED_NOT_LAST), (1, "up_to", TIER_LAST_BOUNDED)],
        ),
        (
            (tier("10"), tier(None), tier(None)),
            [(1, "up_to", TIER_UNBOUNDED_NOT_LAST)],
        ),
        ((tier("10"), tier("20")), [(1, "up_to", TIER_LAST_BOUNDED)]),
        ((tier("10"),), [(0, "up_to", TIER_LAST_BOUNDED)]),
        ((tier("10", unit_amount="-0.01"), tier(None)), [(0, "unit_amount", NEGATIVE_PRICE)]),
        ((tier("10"), tier(None, flat_amount="-1")), [(1, "flat_amount", NEGATIVE_PRICE)]),
    ],
    ids=[
        "team-valid",
        "single-unbounded-valid",
        "empty",
        "descending",
        "equal",
        "descending-twice",
        "first-zero",
        "first-negative",
        "unbounded-first",
        "unbounded-twice",
        "last-bounded",
        "only-bounded",
        "negative-unit",
        "negative-flat",
    ],
)
def test_tier_errors_report_index_field_and_message(
    tiers: tuple[TierSpec, ...], errors: list[tuple[int, str, str]]
) -> None:
    assert tier_errors(tiers) == errors


def test_tier_errors_name_the_previous_bound() -> None:
    errors = tier_errors((tier("25000"), tier("20000"), tier(None)))

    assert errors[0][2] == "must be greater than 25000"


# --- properties ---------------------------------------------------------------------------------

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD"])
PRICES = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)
QUANTITIES = st.one_of(
    st.integers(min_value=0, max_value=2_000_000).map(Decimal),
    st.decimals(min_value=0, max_value=2_000_000, places=4, allow_nan=False, allow_infinity=False),
)
BOUNDS = st.one_of(
    st.integers(min_value=1, max_value=1_000_000).map(Decimal),
    st.decimals(min_value=D("0.01"), max_value=1_000_000, places=2, allow_nan=False, allow_infinity=False),
)


@st.composite
def tier_tables(draw: st.DrawFn) -> tuple[TierSpec, ...]:
    """Valid tables: 0–4 strictly ascending positive bounds, then the unbounded last tier."""
    bounds = sorted(draw(st.lists(BOUNDS, max_size=4, unique=True)))
    up_tos: list[Decimal | None] = [*bounds, None]
    return tuple(
        TierSpec(up_to=up_to, unit_amount=draw(PRICES), flat_amount=draw(st.just(D(0)) | PRICES)) for up_to in up_tos
    )


MODELS = st.sampled_from([ChargeModel.GRADUATED, ChargeModel.VOLUME])


@given(tiers=tier_tables())
def test_generated_tier_tables_are_valid(tiers: tuple[TierSpec, ...]) -> None:
    assert tier_errors(tiers) == []


@settings(max_examples=200)
@given(model=MODELS, tiers=tier_tables(), quantity=QUANTITIES, currency=CURRENCIES)
def test_tiered_amounts_are_never_negative(
    model: str, tiers: tuple[TierSpec, ...], quantity: Decimal, currency: str
) -> None:
    priced = price_charge(ChargeSpec(model=model, tiers=tiers), quantity, currency)

    assert priced.exact_amount >= 0
    assert priced.amount >= 0
    assert all(t.units >= 0 and t.amount >= 0 for t in priced.tiers)


@settings(max_examples=200)
@given(tiers=tier_tables(), a=QUANTITIES, b=QUANTITIES)
def test_graduated_amount_never_decreases_as_quantity_grows(
    tiers: tuple[TierSpec, ...], a: Decimal, b: Decimal
) -> None:
    low, high = sorted((a, b))
    charge = graduated(tiers)

    priced_low = price_charge(charge, low, "USD")
    priced_high = price_charge(charge, high, "USD")

    assert priced_low.exact_amount <= priced_high.exact_amount
    assert priced_low.amount <= priced_high.amount


@settings(max_examples=200)
@given(model=MODELS, tiers=tier_tables(), quantity=QUANTITIES, currency=CURRENCIES)
def test_breakdown_adds_up_to_exact_amount_rounded_once(
    model: str, tiers: tuple[TierSpec, ...], quantity: Decimal, currency: str
) -> None:
    priced = price_charge(ChargeSpec(model=model, tiers=tiers), quantity, currency)

    assert sum((t.amount for t in priced.tiers), D(0)) == priced.exact_amount
    assert priced.amount == quantize_money(priced.exact_amount, currency)
    assert priced.amount.as_tuple().exponent == quantize_money(D(1), currency).as_tuple().exponent


@settings(max_examples=200)
@given(tiers=tier_tables(), quantity=QUANTITIES)
def test_graduated_breakdown_units_add_up_to_quantity(tiers: tuple[TierSpec, ...], quantity: Decimal) -> None:
    priced = price_charge(graduated(tiers), quantity, "USD")

    assert sum((t.units for t in priced.tiers), D(0)) == quantity


@settings(max_examples=200)
@given(tiers=tier_tables(), quantity=QUANTITIES, unit_amount=PRICES)
def test_volume_equals_graduated_when_every_tier_has_the_same_price(
    tiers: tuple[TierSpec, ...], quantity: Decimal, unit_amount: Decimal
) -> None:
    flat_free = tuple(TierSpec(up_to=t.up_to, unit_amount=unit_amount) for t in tiers)

    by_volume = price_charge(volume(flat_free), quantity, "USD")
    by_graduated = price_charge(graduated(flat_free), quantity, "USD")

    assert by_volume.exact_amount == by_graduated.exact_amount == quantity * unit_amount


@settings(max_examples=200)
@given(
    quantity=QUANTITIES,
    size=st.integers(min_value=1, max_value=10_000),
    package_amount=st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False),
    free_units=st.integers(min_value=0, max_value=5_000).map(Decimal),
)
def test_package_count_is_rounded_up_and_amount_is_a_whole_multiple(
    quantity: Decimal, size: int, package_amount: Decimal, free_units: Decimal
) -> None:
    charge = ChargeSpec(
        model=ChargeModel.PACKAGE, package_size=size, package_amount=package_amount, free_units=free_units
    )

    priced = price_charge(charge, quantity, "USD")

    chargeable = max(D(0), quantity - free_units)
    packages = priced.packages
    assert packages is not None and packages >= 0
    assert packages * size >= chargeable > (packages - 1) * size
    assert priced.exact_amount == packages * package_amount
    assert priced.amount == priced.exact_amount
    if package_amount:
        assert priced.amount % package_amount == 0

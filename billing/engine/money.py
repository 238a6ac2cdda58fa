"""Money: the one place that sets decimal precision and rounds amounts (pure).

Unit prices keep up to 10 decimal places. Every fee line is rounded once, to the currency's
minor unit, with ROUND_HALF_UP; totals are sums of rounded lines and are never rounded again.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from babel.numbers import get_currency_precision

ROUNDING = ROUND_HALF_UP
PRICE_DECIMAL_PLACES = 10
ZERO = Decimal(0)


def price_field_kwargs() -> dict[str, Any]:
    """Column shape for unit prices, fees and quantities: 20 integer and 10 decimal digits."""
    return {"max_digits": 30, "decimal_places": PRICE_DECIMAL_PLACES}


def amount_field_kwargs() -> dict[str, Any]:
    """Column shape for rounded amounts; 4 places hold every ISO 4217 minor unit."""
    return {"max_digits": 20, "decimal_places": 4}


def currency_minor_digits(currency: str) -> int:
    """Digits after the decimal point of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(currency))


def minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-currency_minor_digits(currency))


def quantize_money(amount: Decimal, currency: str) -> Decimal:
    """Round an amount to the currency's minor unit (the only rounding of money)."""
    return amount.quantize(minor_unit(currency), rounding=ROUNDING)


def money_str(amount: Decimal, currency: str) -> str:
    """An amount rounded to the minor unit, as the API's decimal strings: "355.00"."""
    return str(quantize_money(amount, currency))


def format_decimal(value: Decimal) -> str:
    """A plain string without exponent or trailing zeros: 25000, 0.012, 0."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def quantity_str(value: Decimal) -> str:
    """A quantity as the API writes it: at the precision invoices store (PRICE_DECIMAL_PLACES),
    without trailing zeros; 1/30 of a period is "0.0333333333", not 29 digits."""
    return format_decimal(value.quantize(Decimal(10) ** -PRICE_DECIMAL_PLACES))


def from_cents(cents: int, currency: str) -> Decimal:
    """Lago's integer `amount_cents` as an amount: 35500 USD → 355.00, 1235 JPY → 1235."""
    return Decimal(cents).scaleb(-currency_minor_digits(currency))


def to_cents(amount: Decimal, currency: str) -> int:
    """An amount (already rounded) in the currency's minor unit, as Lago's `amount_cents`."""
    return int(quantize_money(amount, currency).scaleb(currency_minor_digits(currency)))


def split_proportionally(amount: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """`amount` (rounded) split over `weights` in proportion, in the currency's minor units,
    by the largest remainder: each part is floored, and the units left go to the largest
    remainders (the earliest first on a tie), so the parts add up to `amount` exactly.

    Weights below zero count as zero; with no positive weight every part is zero.
    """
    positive = [max(weight, ZERO) for weight in weights]
    whole = sum(positive, ZERO)
    if whole == 0 or amount == 0:
        return [ZERO for _ in weights]
    unit = minor_unit(currency)
    units = int(amount / unit)
    raw = [units * weight / whole for weight in positive]
    floors = [int(part) for part in raw]
    left = units - sum(floors)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [Decimal(n) * unit for n in floors]

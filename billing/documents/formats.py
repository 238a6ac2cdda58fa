"""How money, quantities, prices and days are shown: the one place the admin and the invoice
documents format them (en_US, with Babel).

- Amounts are rounded once to the currency's minor unit before they are shown (ROUND_HALF_UP,
  billing.engine.money); Babel then never gets to round anything (it rounds half-even).
  `format_money` gives "$1,440.00" (documents, dashboard); `format_amount` gives "1,440.00", the
  number alone, where a currency code stands beside it (admin lists).
- Unit prices and tier amounts are exact: "$0.012", never rounded away (`format_price`,
  `format_exact_amount`).
- Quantities are grouped and exact: "30,000", "10.5", "0.7096774194" (`format_quantity`).
- A tier's range reads from the previous tier's bound: "0 – 10,000", "10,001 – 25,000",
  "100,001 and above" (`tier_range_label`).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from babel.dates import format_date
from babel.numbers import format_currency
from babel.numbers import format_decimal as babel_format_decimal

from billing.engine.money import ZERO, currency_minor_digits, format_decimal, quantize_money
from metering.days import local_date

if TYPE_CHECKING:
    from billing.models import Commitment

LOCALE = "en_US"


def format_money(amount: Decimal, currency: str) -> str:
    """An amount rounded to the currency's minor unit: $355.00, -$56.00, €1,234.50, ¥1,235."""
    return format_currency(quantize_money(amount, currency), currency, locale=LOCALE)


def format_amount(amount: Decimal, currency: str) -> str:
    """The number of an amount rounded to the currency's minor unit, grouped: 1,625.00, 1,235 (JPY)."""
    digits = currency_minor_digits(currency)
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return babel_format_decimal(quantize_money(amount, currency), format=pattern, locale=LOCALE)


def format_price(amount: Decimal, currency: str) -> str:
    """A unit price or a tier amount, exact: $0.012, $180.00, ¥0.5 (never rounded away)."""
    return format_currency(Decimal(format_decimal(amount)), currency, locale=LOCALE, decimal_quantization=False)


def format_quantity(value: Decimal) -> str:
    """A quantity (or a unit price without currency), grouped and exact: 30,000, 10.5, 0.012."""
    return babel_format_decimal(Decimal(format_decimal(value)), locale=LOCALE, decimal_quantization=False)


def format_exact_amount(amount: Decimal, currency: str) -> str:
    """An unrounded tier amount: as money when that loses nothing (180.00), else exact (0.012)."""
    rounded = quantize_money(amount, currency)
    return format_amount(amount, currency) if rounded == amount else format_quantity(amount)


def format_day(day: date | None) -> str:
    """A day as finance reads it: November 30, 2026."""
    return format_date(day, format="long", locale=LOCALE) if day is not None else ""


def tier_range_label(lower: Decimal | None, up_to: Decimal | None) -> str:
    """The units a tier covers, from the previous tier's `up_to` (exclusive) to its own (inclusive).

    "0 – 10,000", "10,001 – 25,000", "100,001 and above". A whole-unit bound reads as the first
    unit of the next tier; a fractional one (a `sum` metric) cannot, so it reads "over 10.5 – 20".
    """
    lower = lower or ZERO
    if lower == 0:
        start = "0"
    elif lower == lower.to_integral_value():
        start = format_quantity(lower + 1)
    else:
        start = f"over {format_quantity(lower)}"
    if up_to is None:
        return f"{start} and above"
    return f"{start} – {format_quantity(up_to)}"


def commitment_label(commitment: Commitment) -> str:
    """A commitment as finance staff name it: 1,440.00 USD commitment of acme-annual from 2026-03-01."""
    tz = commitment.subscription.customer.timezone
    return (
        f"{format_amount(commitment.amount, commitment.currency)} {commitment.currency} commitment of "
        f"{commitment.subscription.external_id} from {local_date(commitment.term_start, tz):%Y-%m-%d}"
    )


def term_days(commitment: Commitment) -> str:
    """First and last day (inclusive) of the term; the stored end is the exclusive midnight after it."""
    tz = commitment.subscription.customer.timezone
    first = local_date(commitment.term_start, tz)
    last = local_date(commitment.term_end, tz) - timedelta(days=1)
    return f"{first:%b %-d, %Y} – {last:%b %-d, %Y} (days in {tz})"

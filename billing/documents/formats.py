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

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from babel.dates import format_date
from babel.numbers import format_currency
from babel.numbers import format_decimal as babel_format_decimal

from billing.engine.money import ZERO, currency_minor_digits, format_decimal, quantize_money
from billing.engine.vocabulary import LineKind
from metering.days import local_date, zone

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


def format_line_quantity(kind: str, quantity: Decimal, details: Mapping[str, Any]) -> str:
    """A line's quantity as finance reads it: a prorated base fee's fraction of the period in days
    ("5 of 31 days"), whole units without decimals (30,000), others exact to four places."""
    if kind == LineKind.BASE_FEE and details.get("days") is not None and details.get("full_days"):
        return f"{details['days']} of {details['full_days']} days"
    if quantity != quantity.to_integral_value():
        quantity = quantity.quantize(Decimal("0.0001")).normalize()
    return format_quantity(quantity)


def format_exact_amount(amount: Decimal, currency: str) -> str:
    """An unrounded tier amount: as money when that loses nothing (180.00), else exact (0.012)."""
    rounded = quantize_money(amount, currency)
    return format_amount(amount, currency) if rounded == amount else format_quantity(amount)


def format_day(day: date | None) -> str:
    """A day as finance reads it: November 30, 2026."""
    return format_date(day, format="long", locale=LOCALE) if day is not None else ""


def format_moment(moment: datetime, tz: str, *, named: bool = True) -> str:
    """An instant in the customer's time zone: November 30, 2026, 16:05 (Europe/Paris); without
    the zone's name where the page says it once (`named=False`)."""
    local = moment.astimezone(zone(tz))
    shown = f"{format_day(local.date())}, {local:%H:%M}"
    return f"{shown} ({tz})" if named else shown


def tier_range_label(lower: Decimal | None, up_to: Decimal | None) -> str:
    """The units a tier covers, from the previous tier's `up_to` (exclusive) to its own (inclusive).

    "Up to 10,000", "10,001 – 25,000", "100,001 and above": the same on the plan's page, in the
    price calculator, on the customer page and on invoices. A whole-unit bound reads as the first
    unit of the next tier; a fractional one (a `sum` metric) cannot, so it reads "over 10.5 – 20".
    """
    lower = lower or ZERO
    if lower == 0:
        return f"Up to {format_quantity(up_to)}" if up_to is not None else "Every unit"
    whole = lower == lower.to_integral_value()
    start = format_quantity(lower + 1) if whole else f"over {format_quantity(lower)}"
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
    return f"{format_day(first)} – {format_day(last)} (days in {tz})"

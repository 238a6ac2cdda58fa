"""The admin's price calculator and the number formats the catalog admin shows.

The calculator prices one full period of a plan at a usage typed in, with the same engine as the
`quote` command and invoices (billing.quotes.quote_plan); this module only reads the input and
turns the quote into display strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django import forms

from billing.money import ZERO, format_decimal, quantize_money
from billing.quotes import PlanChargeSpec, Quote

QUANTITY_INVALID = "{code}: enter a number of units, e.g. 30000."
QUANTITY_NEGATIVE = "{code}: the quantity cannot be negative."


def grouped(value: Decimal) -> str:
    """A quantity or unit price for people: 10,001 and 0.012, not 10001.0000000000."""
    return format(Decimal(format_decimal(value)), ",")


def money(amount: Decimal, currency: str) -> str:
    """An amount rounded once to the currency's minor unit, grouped: 1,625.00."""
    return format(quantize_money(amount, currency), ",")


def exact_money(amount: Decimal, currency: str) -> str:
    """An unrounded tier amount: as money when that loses nothing (180.00), else exact (0.012)."""
    rounded = quantize_money(amount, currency)
    return format(rounded, ",") if rounded == amount else grouped(amount)


def tier_range_label(lower: Decimal | None, up_to: Decimal | None) -> str:
    """The units a tier covers, from the previous tier's `up_to` (exclusive) to its own (inclusive).

    "0 – 10,000", "10,001 – 25,000", "100,001 and above". A whole-unit bound reads as the first
    unit of the next tier; a fractional one (a `sum` metric) cannot, so it reads "over 10.5 – 20".
    """
    lower = lower or ZERO
    if lower == 0:
        start = "0"
    elif lower == lower.to_integral_value():
        start = grouped(lower + 1)
    else:
        start = f"over {grouped(lower)}"
    if up_to is None:
        return f"{start} and above"
    return f"{start} – {grouped(up_to)}"


class PriceCalculatorForm(forms.Form):
    """One quantity per charge of the plan, named by the metric code; empty means 0."""

    def __init__(self, *args: Any, charges: Sequence[PlanChargeSpec], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for charge in charges:
            code = charge.metric_code
            self.fields[code] = forms.DecimalField(
                label=f"{charge.metric_name} ({code})",
                required=False,
                min_value=0,
                max_digits=30,
                decimal_places=10,
                widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
                error_messages={
                    "invalid": QUANTITY_INVALID.format(code=code),
                    "min_value": QUANTITY_NEGATIVE.format(code=code),
                },
            )

    def usage(self) -> dict[str, Decimal]:
        return {code: value if value is not None else ZERO for code, value in self.cleaned_data.items()}


def quote_rows(quote: Quote) -> dict[str, Any]:
    """The quote as display strings for the calculator template."""
    currency = quote.currency
    lines = []
    for line in quote.lines:
        priced = line.priced
        lines.append(
            {
                "kind": line.kind,
                "description": line.description,
                "metric_code": line.metric_code,
                "quantity": grouped(line.quantity),
                "amount": money(line.amount, currency),
                "billed_units": grouped(priced.billed_units) if priced else None,
                "limit_exceeded": priced.limit_exceeded if priced else False,
                "packages": priced.packages if priced else None,
                "tiers": [
                    {
                        "position": tier.position,
                        "range": tier_range_label(tier.from_units, tier.up_to),
                        "units": grouped(tier.units),
                        "unit_amount": grouped(tier.unit_amount),
                        "flat_amount": exact_money(tier.flat_amount, currency),
                        "amount": exact_money(tier.amount, currency),
                        "is_empty": tier.units == 0 and tier.flat_amount == 0,
                    }
                    for tier in (priced.tiers if priced else ())
                ],
            }
        )
    return {"currency": currency, "lines": lines, "total": money(quote.total, currency)}

"""The admin's price calculator: the input form and the quote as display strings.

The calculator prices one full period of a plan at a usage typed in, with the same line builders
as the `quote` command and invoices (billing.engine.quotes.quote_plan); this module only reads
the input and turns the quote into display strings (billing.documents.formats).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django import forms

from billing.documents.formats import format_amount, format_exact_amount, format_quantity, tier_range_label
from billing.engine.lines import PlanChargeSpec
from billing.engine.money import ZERO
from billing.engine.quotes import Quote

QUANTITY_INVALID = "{code}: enter a number of units, e.g. 30000."
QUANTITY_NEGATIVE = "{code}: the quantity cannot be negative."


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
                "quantity": format_quantity(line.quantity),
                "amount": format_amount(line.amount, currency),
                "billed_units": format_quantity(priced.billed_units) if priced else None,
                "limit_exceeded": priced.limit_exceeded if priced else False,
                "packages": priced.packages if priced else None,
                "tiers": [
                    {
                        "position": tier.position,
                        "range": tier_range_label(tier.from_units, tier.up_to),
                        "units": format_quantity(tier.units),
                        "unit_amount": format_quantity(tier.unit_amount),
                        "flat_amount": format_exact_amount(tier.flat_amount, currency),
                        "amount": format_exact_amount(tier.amount, currency),
                        "is_empty": tier.units == 0 and tier.flat_amount == 0,
                    }
                    for tier in (priced.tiers if priced else ())
                ],
            }
        )
    return {"currency": currency, "lines": lines, "total": format_amount(quote.total, currency)}

"""The admin's price calculator: the input form and the quote as display strings.

The calculator prices one full period of a plan at a usage typed in, with the same line builders
as the `quote` command and invoices (billing.engine.quotes.quote_plan); optionally with one of the
active coupons that could apply to the plan's currency (as if just applied) and with the
organization's taxes (on by default: what a new customer without tax codes would pay). This module
only reads the input and turns the quote into display strings (billing.documents.formats).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import Q

from billing.documents.formats import format_amount, format_exact_amount, format_quantity, tier_range_label
from billing.engine.adjustments import CouponCredit, TaxRate
from billing.engine.lines import PlanChargeSpec
from billing.engine.money import ZERO
from billing.engine.quotes import Quote
from billing.engine.vocabulary import CouponStatus, CouponType
from billing.models import Coupon
from billing.selectors.adjustments import coupon_credit, tax_rates

QUANTITY_INVALID = "{code}: enter a number of units, e.g. 30000."
QUANTITY_NEGATIVE = "{code}: the quantity cannot be negative."


NO_COUPON = "No coupon"


class PriceCalculatorForm(forms.Form):
    """One quantity per charge of the plan, named by the metric code (empty means 0), then a coupon
    and whether the organization's taxes apply."""

    def __init__(self, *args: Any, charges: Sequence[PlanChargeSpec], currency: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A percentage coupon fits any plan; a fixed amount one only a plan in its currency.
        coupons = Coupon.objects.filter(status=CouponStatus.ACTIVE).filter(
            Q(coupon_type=CouponType.PERCENTAGE) | Q(currency=currency)
        )
        self.fields["coupon"] = forms.ModelChoiceField(
            queryset=coupons.order_by("code"),
            required=False,
            empty_label=NO_COUPON,
            to_field_name="code",
            help_text="As if applied to a customer now (its limits to plans or metrics hold).",
            error_messages={"invalid_choice": "coupon: choose one of the active coupons listed."},
        )
        self.fields["organization_taxes"] = forms.BooleanField(
            required=False,
            initial=True,
            label="With the organization's taxes",
            help_text="What a customer without its own tax codes pays.",
        )
        self.charge_codes = [charge.metric_code for charge in charges]
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

    def usage_fields(self) -> list[forms.BoundField]:
        return [self[code] for code in self.charge_codes]

    def adjustment_fields(self) -> list[forms.BoundField]:
        return [self["coupon"], self["organization_taxes"]]

    def usage(self) -> dict[str, Decimal]:
        values = self.cleaned_data
        return {code: values[code] if values.get(code) is not None else ZERO for code in self.charge_codes}

    def coupons(self) -> tuple[CouponCredit, ...]:
        coupon = self.cleaned_data.get("coupon")
        return (coupon_credit(coupon),) if coupon is not None else ()

    def taxes(self) -> tuple[TaxRate, ...]:
        return tax_rates(None) if self.cleaned_data.get("organization_taxes") else ()


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

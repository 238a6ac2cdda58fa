"""The lines of one subscription period (pure): base fee, promotion discounts, usage (DESIGN §3).

Given the period, the plan's prices, the promotion window and the measured quantities, compute
each fee line rounded once. Used by current usage, the invoice preview and invoicing alike.

- Base fee of a period P: fee × days(P) / days(full period).
- Promotion window W (whole local days from the subscription's first day):
  base fee discount = −percent × fee × days(W ∩ P) / days(full period);
  usage discount (scope `plan` only) = −percent × (price(q_all) − price(q_out)), where q_out is
  the quantity of the events in P outside W. Prices here are the rounded line amounts, so at
  100 % the customer pays exactly the line price(q_out) would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from billing.money import ZERO, quantize_money
from billing.periods import Period
from billing.pricing import STANDARD, ChargeSpec, PricedCharge, price_charge

BASE_FEE = "base_fee"
USAGE = "usage"
PROMOTION = "promotion"
SCOPE_BASE_FEE = "base_fee"
SCOPE_PLAN = "plan"
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class PromotionWindow:
    code: str
    name: str
    percent_off: Decimal
    applies_to: str
    start_day: date  # local days [start_day, end_day)
    end_day: date

    def overlap_days(self, start: date, end: date) -> int:
        return max(0, (min(end, self.end_day) - max(start, self.start_day)).days)


@dataclass(frozen=True)
class LineDraft:
    kind: str
    description: str
    quantity: Decimal
    amount: Decimal  # rounded
    unit_amount: Decimal | None = None
    metric_code: str | None = None
    priced: PricedCharge | None = None


@dataclass(frozen=True)
class DraftLine:
    """A line as stored on an invoice: what it covers and its details (tiers, quantities)."""

    kind: str
    description: str
    quantity: Decimal
    amount: Decimal
    period_start: datetime
    period_end: datetime
    unit_amount: Decimal | None = None
    metric_code: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[Any, ...]:
        return (
            self.kind,
            self.description,
            self.quantity,
            self.unit_amount,
            self.amount,
            self.metric_code,
            self.period_start,
            self.period_end,
            self.details,
        )


@dataclass(frozen=True)
class MeasuredCharge:
    metric_code: str
    metric_name: str
    charge: ChargeSpec
    quantity: Decimal  # over the whole period
    quantity_outside_promotion: Decimal | None = None  # over the period minus the promotion window


def base_fee_lines(
    *, plan_name: str, base_fee: Decimal, currency: str, period: Period, promotion: PromotionWindow | None
) -> list[LineDraft]:
    full_days = Decimal(period.full_days)
    days = Decimal(period.days)
    description = f"{plan_name} base fee"
    if period.is_partial:
        description += f" ({period.days} of {period.full_days} days)"
    lines = [
        LineDraft(
            kind=BASE_FEE,
            description=description,
            quantity=days / full_days if period.is_partial else Decimal(1),
            unit_amount=base_fee,
            amount=quantize_money(base_fee * days / full_days, currency),
        )
    ]
    if promotion is not None and base_fee > 0:
        overlap = promotion.overlap_days(period.start_day, period.end_day)
        if overlap and promotion.percent_off > 0:
            discount = promotion.percent_off / HUNDRED * base_fee * Decimal(overlap) / full_days
            lines.append(
                LineDraft(
                    kind=PROMOTION,
                    description=f"{promotion.name}: {_percent(promotion.percent_off)} off the base fee "
                    f"for {overlap} of {period.full_days} days",
                    quantity=Decimal(overlap),
                    amount=-quantize_money(discount, currency),
                    metric_code=None,
                )
            )
    return lines


def promotion_touches(promotion: PromotionWindow | None, period: Period) -> bool:
    return promotion is not None and promotion.overlap_days(period.start_day, period.end_day) > 0


def usage_lines(
    *, charges: list[MeasuredCharge], currency: str, period: Period, promotion: PromotionWindow | None
) -> list[LineDraft]:
    lines: list[LineDraft] = []
    discounts_usage = (
        promotion is not None
        and promotion.applies_to == SCOPE_PLAN
        and promotion.percent_off > 0
        and promotion_touches(promotion, period)
    )
    for c in charges:
        priced = price_charge(c.charge, c.quantity, currency)
        lines.append(
            LineDraft(
                kind=USAGE,
                description=c.metric_name,
                quantity=c.quantity,
                unit_amount=c.charge.unit_amount if c.charge.model == STANDARD else None,
                amount=priced.amount,
                metric_code=c.metric_code,
                priced=priced,
            )
        )
        if not discounts_usage or priced.amount == 0:
            continue
        assert promotion is not None
        q_out = c.quantity_outside_promotion if c.quantity_outside_promotion is not None else c.quantity
        priced_out = price_charge(c.charge, q_out, currency)
        discount = quantize_money(promotion.percent_off / HUNDRED * (priced.amount - priced_out.amount), currency)
        if discount:
            lines.append(
                LineDraft(
                    kind=PROMOTION,
                    description=f"{promotion.name}: {_percent(promotion.percent_off)} off {c.metric_name} "
                    f"used only during the promotion",
                    quantity=c.quantity - q_out,
                    amount=-discount,
                    metric_code=c.metric_code,
                )
            )
    return lines


def total(lines: list[LineDraft]) -> Decimal:
    return sum((line.amount for line in lines), ZERO)


def _percent(value: Decimal) -> str:
    return f"{value.normalize():f} %"


"""Fee lines (pure): the base fee, usage charges and their promotion discounts (DESIGN §3).

Given a period, a plan's prices, the promotion window and the measured quantities, each line is
computed and rounded once. These are the builders every priced line comes from: invoices
(billing.engine.invoice), the current-usage preview and quotes (billing.engine.quotes).

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
from typing import Any, TypedDict

from billing.engine.money import ZERO, format_decimal, quantize_money
from billing.engine.periods import Period
from billing.engine.pricing import ChargeSpec, PricedCharge, TierLine, price_charge
from billing.engine.vocabulary import AppliesTo, ChargeModel, LineKind

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class PlanChargeSpec:
    metric_code: str
    metric_name: str
    charge: ChargeSpec


@dataclass(frozen=True)
class PlanSpec:
    """What pricing needs of a plan version."""

    code: str
    name: str
    currency: str
    interval: str
    base_fee: Decimal
    charges: tuple[PlanChargeSpec, ...]
    pay_in_advance: bool = False


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
class MeasuredCharge:
    metric_code: str
    metric_name: str
    charge: ChargeSpec
    quantity: Decimal  # over the whole period
    quantity_outside_promotion: Decimal | None = None  # over the period minus the promotion window


@dataclass(frozen=True)
class Line:
    """One line of an invoice, a preview or a quote, rounded once.

    `period_start`/`period_end`: what the line covers (a quote's lines cover no dates). `details`
    is stored with the line (tier breakdown, measured quantities); `priced` is the pricing
    engine's full result for a usage line, kept in memory only.
    """

    kind: str
    description: str
    quantity: Decimal
    amount: Decimal
    unit_amount: Decimal | None = None
    metric_code: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    priced: PricedCharge | None = field(default=None, compare=False)
    # A fee's share of the lines that reduce it (promotions, drawdown, coupons) and of the tax
    # lines: DESIGN §6.
    discount_amount: Decimal = ZERO
    tax_amount: Decimal = ZERO

    def key(self) -> tuple[Any, ...]:
        """What a stored line is compared by, to tell whether a recomputed draft changed."""
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
            self.discount_amount,
            self.tax_amount,
        )


def total(lines: list[Line]) -> Decimal:
    return sum((line.amount for line in lines), ZERO)


def tier_line_dict(tier: TierLine) -> dict[str, Any]:
    """A tier of a priced charge as stored on lines and shown by the API: decimal strings."""
    whole = tier.from_units == tier.from_units.to_integral_value()
    return {
        "position": tier.position,
        "from": format_decimal(tier.from_units + 1) if whole else format_decimal(tier.from_units),
        "up_to": None if tier.up_to is None else format_decimal(tier.up_to),
        "units": format_decimal(tier.units),
        "unit_amount": format_decimal(tier.unit_amount),
        "flat_amount": format_decimal(tier.flat_amount),
        "amount": format_decimal(tier.amount),
    }


def promotion_touches(promotion: PromotionWindow | None, period: Period) -> bool:
    return promotion is not None and promotion.overlap_days(period.start_day, period.end_day) > 0


def _percent(value: Decimal) -> str:
    return f"{value.normalize():f} %"


class _Covers(TypedDict, total=False):
    """The dates a line covers, as keyword arguments of `Line` (none for a quote's lines)."""

    period_start: datetime
    period_end: datetime


def _covers(period: Period | None) -> _Covers:
    return {} if period is None else {"period_start": period.start, "period_end": period.end}


def base_fee_lines(
    *,
    plan_name: str,
    base_fee: Decimal,
    currency: str,
    period: Period | None,
    promotion: PromotionWindow | None,
    interval: str = "",
) -> list[Line]:
    """The base fee of `period` (prorated by days) and its promotion discount.

    `period` None: one whole period of the plan's `interval` (a quote), never prorated.
    """
    if period is None:
        return [
            Line(
                kind=LineKind.BASE_FEE,
                description=f"{plan_name} base fee ({interval}ly)",
                quantity=Decimal(1),
                amount=quantize_money(base_fee, currency),
            )
        ]
    full_days = Decimal(period.full_days)
    days = Decimal(period.days)
    description = f"{plan_name} base fee"
    if period.is_partial:
        description += f" ({period.days} of {period.full_days} days)"
    lines = [
        Line(
            kind=LineKind.BASE_FEE,
            description=description,
            quantity=days / full_days if period.is_partial else Decimal(1),
            unit_amount=base_fee,
            amount=quantize_money(base_fee * days / full_days, currency),
            **_covers(period),
            # The quantity is a fraction of the period; these say it in days ("5 of 31 days").
            details={"days": period.days, "full_days": period.full_days} if period.is_partial else {},
        )
    ]
    if promotion is not None and base_fee > 0:
        overlap = promotion.overlap_days(period.start_day, period.end_day)
        if overlap and promotion.percent_off > 0:
            discount = promotion.percent_off / HUNDRED * base_fee * Decimal(overlap) / full_days
            lines.append(
                Line(
                    kind=LineKind.PROMOTION,
                    description=f"{promotion.name}: {_percent(promotion.percent_off)} off the base fee "
                    f"for {overlap} of {period.full_days} days",
                    quantity=Decimal(overlap),
                    amount=-quantize_money(discount, currency),
                    **_covers(period),
                )
            )
    return lines


def usage_details(measured: MeasuredCharge, priced: PricedCharge) -> dict[str, Any]:
    """What a usage line stores beside its amount: the measured quantities and the tiers."""
    details: dict[str, Any] = {
        "quantity": format_decimal(measured.quantity),
        "billed_units": format_decimal(priced.billed_units),
        "limit_exceeded": priced.limit_exceeded,
        "tiers": [tier_line_dict(t) for t in priced.tiers],
    }
    if priced.packages is not None:
        details["packages"] = priced.packages
    if measured.quantity_outside_promotion is not None:
        details["quantity_outside_promotion"] = format_decimal(measured.quantity_outside_promotion)
    return details


def usage_lines(
    *, charges: list[MeasuredCharge], currency: str, period: Period | None, promotion: PromotionWindow | None
) -> list[Line]:
    """A usage line per charge, each followed by its plan-scope promotion discount, if any."""
    lines: list[Line] = []
    discounts_usage = (
        period is not None
        and promotion is not None
        and promotion.applies_to == AppliesTo.PLAN
        and promotion.percent_off > 0
        and promotion_touches(promotion, period)
    )
    for c in charges:
        priced = price_charge(c.charge, c.quantity, currency)
        lines.append(
            Line(
                kind=LineKind.USAGE,
                description=c.metric_name,
                quantity=c.quantity,
                unit_amount=c.charge.unit_amount if c.charge.model == ChargeModel.STANDARD else None,
                amount=priced.amount,
                metric_code=c.metric_code,
                details=usage_details(c, priced) if period is not None else {},
                priced=priced,
                **_covers(period),
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
                Line(
                    kind=LineKind.PROMOTION,
                    description=f"{promotion.name}: {_percent(promotion.percent_off)} off {c.metric_name} "
                    f"used only during the promotion",
                    quantity=c.quantity - q_out,
                    amount=-discount,
                    metric_code=c.metric_code,
                    **_covers(period),
                )
            )
    return lines


def net_usage_by_metric(
    *,
    charges: tuple[PlanChargeSpec, ...],
    currency: str,
    period: Period,
    promotion: PromotionWindow | None,
    quantities: dict[str, tuple[Decimal, Decimal | None]],
) -> dict[str, Decimal]:
    """Usage minus its promotion discount per metric, for given (q_all, q_out) quantities."""
    measured = [
        MeasuredCharge(
            metric_code=c.metric_code,
            metric_name=c.metric_name,
            charge=c.charge,
            quantity=quantities.get(c.metric_code, (ZERO, None))[0],
            quantity_outside_promotion=quantities.get(c.metric_code, (ZERO, None))[1],
        )
        for c in charges
    ]
    net: dict[str, Decimal] = {}
    for line in usage_lines(charges=measured, currency=currency, period=period, promotion=promotion):
        code = line.metric_code or ""
        net[code] = net.get(code, ZERO) + line.amount
    return net

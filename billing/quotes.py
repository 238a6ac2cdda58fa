"""Quotes: the price of one full period of a plan at a given usage (pure, no ORM).

Used by the `quote` command, the admin's price calculator and, for its line shapes, by invoices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.money import ZERO, format_decimal, quantize_money
from billing.pricing import ChargeSpec, PricedCharge, TierLine, price_charge


@dataclass(frozen=True)
class PlanChargeSpec:
    metric_code: str
    metric_name: str
    charge: ChargeSpec


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    currency: str
    interval: str
    base_fee: Decimal
    charges: tuple[PlanChargeSpec, ...]


@dataclass(frozen=True)
class QuoteLine:
    kind: str  # "base_fee" or "usage"
    description: str
    quantity: Decimal
    amount: Decimal
    metric_code: str | None = None
    priced: PricedCharge | None = None


@dataclass(frozen=True)
class Quote:
    plan: str
    currency: str
    lines: tuple[QuoteLine, ...]
    total: Decimal


def quote_plan(plan: PlanSpec, usage: Mapping[str, Decimal]) -> Quote:
    """One full period of `plan` at `usage` (metric code → quantity; missing codes are 0)."""
    unknown = set(usage) - {c.metric_code for c in plan.charges}
    if unknown:
        raise KeyError(f"plan {plan.code!r} has no charge for {', '.join(sorted(unknown))}")
    lines = [
        QuoteLine(
            kind="base_fee",
            description=f"{plan.name} base fee ({plan.interval}ly)",
            quantity=Decimal(1),
            amount=quantize_money(plan.base_fee, plan.currency),
        )
    ]
    for charge in plan.charges:
        quantity = usage.get(charge.metric_code, ZERO)
        priced = price_charge(charge.charge, quantity, plan.currency)
        lines.append(
            QuoteLine(
                kind="usage",
                description=charge.metric_name,
                quantity=quantity,
                amount=priced.amount,
                metric_code=charge.metric_code,
                priced=priced,
            )
        )
    return Quote(
        plan=plan.code,
        currency=plan.currency,
        lines=tuple(lines),
        total=sum((line.amount for line in lines), ZERO),
    )


def money_str(amount: Decimal, currency: str) -> str:
    return str(quantize_money(amount, currency))


def tier_line_dict(tier: TierLine) -> dict[str, Any]:
    return {
        "position": tier.position,
        "from": format_decimal(tier.from_units + 1) if tier.from_units == tier.from_units.to_integral_value()
        else format_decimal(tier.from_units),
        "up_to": None if tier.up_to is None else format_decimal(tier.up_to),
        "units": format_decimal(tier.units),
        "unit_amount": format_decimal(tier.unit_amount),
        "flat_amount": format_decimal(tier.flat_amount),
        "amount": format_decimal(tier.amount),
    }


def quote_dict(quote: Quote) -> dict[str, Any]:
    lines = []
    for line in quote.lines:
        entry: dict[str, Any] = {
            "kind": line.kind,
            "description": line.description,
            "quantity": format_decimal(line.quantity),
            "amount": money_str(line.amount, quote.currency),
            "tiers": [],
        }
        if line.priced is not None:
            entry["metric"] = line.metric_code
            entry["tiers"] = [tier_line_dict(t) for t in line.priced.tiers]
            entry["billed_units"] = format_decimal(line.priced.billed_units)
            entry["limit_exceeded"] = line.priced.limit_exceeded
            if line.priced.packages is not None:
                entry["packages"] = line.priced.packages
        lines.append(entry)
    return {
        "plan": quote.plan,
        "currency": quote.currency,
        "lines": lines,
        "total": money_str(quote.total, quote.currency),
    }

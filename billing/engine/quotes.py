"""Quotes: the price of one full period of a plan at a given usage (pure, no ORM).

Used by the `quote` command and the admin's price calculator. The lines come from the same
builders as invoices and previews (billing.engine.lines), for one whole period without promotion;
coupons (step 4) and taxes (step 5) follow through the same adjustments as an invoice's
(billing.engine.adjustments.Shares), so a quote with a coupon and taxes prices what an invoice would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.engine.adjustments import CouponCredit, Shares, TaxRate
from billing.engine.lines import Line, MeasuredCharge, PlanSpec, base_fee_lines, tier_line_dict, total, usage_lines
from billing.engine.money import ZERO, format_decimal, money_str


@dataclass(frozen=True)
class Quote:
    plan: str
    currency: str
    lines: tuple[Line, ...]
    total: Decimal


def quote_plan(
    plan: PlanSpec,
    usage: Mapping[str, Decimal],
    *,
    coupons: Iterable[CouponCredit] = (),
    taxes: Iterable[TaxRate] = (),
) -> Quote:
    """One full period of `plan` at `usage` (metric code → quantity; missing codes are 0), with
    `coupons` and `taxes` applied as on an invoice."""
    unknown = set(usage) - {c.metric_code for c in plan.charges}
    if unknown:
        raise KeyError(f"plan {plan.code!r} has no charge for {', '.join(sorted(unknown))}")
    lines = base_fee_lines(
        plan_name=plan.name,
        base_fee=plan.base_fee,
        currency=plan.currency,
        period=None,
        promotion=None,
        interval=plan.interval,
    )
    lines += usage_lines(
        charges=[
            MeasuredCharge(c.metric_code, c.metric_name, c.charge, usage.get(c.metric_code, ZERO)) for c in plan.charges
        ],
        currency=plan.currency,
        period=None,
        promotion=None,
    )
    shares = Shares(lines, plan.currency)
    lines += shares.coupon_lines(coupons, plan.code, None)
    lines += shares.tax_lines(lines, taxes, None)
    lines = shares.apply(lines)
    return Quote(plan=plan.code, currency=plan.currency, lines=tuple(lines), total=total(lines))


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

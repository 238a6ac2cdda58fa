"""Reads of the catalog in the catalog file's shape: a stored plan as the parser's PlanDef, and
the whole catalog exported (`manage.py export_catalog`), add-ons included."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billing.engine.catalog import ChargeDef, CommitmentDef, PlanDef
from billing.engine.money import format_decimal
from billing.engine.pricing import TierSpec
from billing.engine.vocabulary import ChargeModel
from billing.models import AddOn, Plan, Promotion
from billing.selectors.plans import plans_with_charges
from metering.models import BillableMetric


def plan_def(plan: Plan) -> PlanDef:
    """The catalog form of a stored plan (charges and tiers prefetched by plans_with_charges)."""
    commitment = None
    if plan.commitment_amount is not None and plan.commitment_months is not None:
        commitment = CommitmentDef(
            amount=plan.commitment_amount,
            months=plan.commitment_months,
            covers=plan.commitment_covers,
            auto_renew=plan.commitment_auto_renew,
        )
    charges = tuple(
        ChargeDef(
            metric=c.metric.code,
            model=c.model,
            tiers=tuple(TierSpec(t.up_to, t.unit_amount, t.flat_amount) for t in c.tiers.all()),
            unit_amount=c.unit_amount,
            package_size=c.package_size,
            package_amount=c.package_amount,
            free_units=c.free_units,
            usage_limit=c.usage_limit,
        )
        for c in plan.charges.all()
    )
    return PlanDef(
        code=plan.code,
        name=plan.name,
        description=plan.description,
        interval=plan.interval,
        currency=plan.currency,
        base_fee=plan.base_fee,
        pay_in_advance=plan.pay_in_advance,
        promotion=plan.promotion.code if plan.promotion else None,
        commitment=commitment,
        charges=charges,
        metadata=dict(plan.metadata) or None,
    )


def _quantity(value: Decimal) -> int | str:
    """Quantities are JSON numbers when whole (as DESIGN writes them), strings otherwise."""
    return int(value) if value == value.to_integral_value() else format_decimal(value)


def charge_dict(c: ChargeDef) -> dict[str, Any]:
    """A charge in the catalog file's shape."""
    out: dict[str, Any] = {"metric": c.metric, "model": c.model}
    if c.model == ChargeModel.STANDARD:
        out["unit_amount"] = format_decimal(c.unit_amount)
    if c.model == ChargeModel.PACKAGE:
        out["package_size"] = c.package_size
        out["package_amount"] = format_decimal(c.package_amount or Decimal(0))
        if c.free_units:
            out["free_units"] = _quantity(c.free_units)
    if c.usage_limit is not None:
        out["usage_limit"] = _quantity(c.usage_limit)
    if c.tiers:
        out["tiers"] = []
        for t in c.tiers:
            tier: dict[str, Any] = {
                "up_to": None if t.up_to is None else _quantity(t.up_to),
                "unit_amount": format_decimal(t.unit_amount),
            }
            if t.flat_amount:
                tier["flat_amount"] = format_decimal(t.flat_amount)
            out["tiers"].append(tier)
    return out


def catalog_export() -> dict[str, Any]:
    """The stored catalog (current plan versions) in the catalog file's shape."""
    metrics = []
    for m in BillableMetric.objects.order_by("code"):
        entry: dict[str, Any] = {"code": m.code, "name": m.name, "aggregation": m.aggregation}
        if m.field:
            entry["field"] = m.field
        if m.description:
            entry["description"] = m.description
        metrics.append(entry)
    promotions = [
        {
            "code": p.code,
            "name": p.name,
            "percent_off": format_decimal(p.percent_off),
            "duration_days": p.duration_days,
            "applies_to": p.applies_to,
        }
        for p in Promotion.objects.order_by("code")
    ]
    # Current catalog versions only: a subscription's own prices (override plans) are not catalog.
    current = plans_with_charges().filter(parent__isnull=True, is_current=True).order_by("code")
    plans = [plan_dict(plan_def(stored)) for stored in current]
    return {"billable_metrics": metrics, "promotions": promotions, "plans": plans, "add_ons": add_ons_export()}


def add_ons_export() -> list[dict[str, Any]]:
    """The add-ons in the catalog file's shape (amounts in the currency's major unit)."""
    out = []
    for add_on in AddOn.objects.order_by("code"):
        entry: dict[str, Any] = {
            "code": add_on.code,
            "name": add_on.name,
            "amount": format_decimal(add_on.amount),
            "currency": add_on.currency,
        }
        if add_on.invoice_display_name:
            entry["invoice_display_name"] = add_on.invoice_display_name
        if add_on.description:
            entry["description"] = add_on.description
        out.append(entry)
    return out


def plan_dict(p: PlanDef) -> dict[str, Any]:
    """A plan in the catalog file's shape (what parse_catalog reads back as the same PlanDef)."""
    plan: dict[str, Any] = {
        "code": p.code,
        "name": p.name,
        "interval": p.interval,
        "currency": p.currency,
        "base_fee": format_decimal(p.base_fee),
    }
    if p.description:
        plan["description"] = p.description
    if p.pay_in_advance:
        plan["pay_in_advance"] = True
    if p.promotion:
        plan["promotion"] = p.promotion
    if p.commitment:
        plan["commitment"] = {
            "amount": format_decimal(p.commitment.amount),
            "months": p.commitment.months,
            "covers": p.commitment.covers,
            "auto_renew": p.commitment.auto_renew,
        }
    plan["charges"] = [charge_dict(c) for c in p.charges]
    if p.metadata:
        plan["metadata"] = dict(p.metadata)
    return plan

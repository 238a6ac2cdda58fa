"""Reads of the catalog: plans with their charges and tiers, as stored and as the engine's specs."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from billing.engine.lines import PlanChargeSpec, PlanSpec
from billing.engine.money import ZERO
from billing.engine.pricing import ChargeSpec, TierSpec
from billing.models import Charge, Plan, Tier


def charge_spec(charge: Charge) -> ChargeSpec:
    """The pure form of a charge; its tiers should be prefetched (`plans_with_charges`)."""
    return ChargeSpec(
        model=charge.model,
        tiers=tuple(
            TierSpec(up_to=t.up_to, unit_amount=t.unit_amount, flat_amount=t.flat_amount) for t in charge.tiers.all()
        ),
        unit_amount=charge.unit_amount,
        package_size=charge.package_size,
        package_amount=charge.package_amount if charge.package_amount is not None else ZERO,
        free_units=charge.free_units,
        usage_limit=charge.usage_limit,
    )


def charges_with_tiers(lookup: str = "charges") -> Prefetch[str, QuerySet[Charge]]:
    """The prefetch of a plan's charges (with their metrics) and tiers, in order, at `lookup`:
    "charges" from plans, "plan__charges" from subscriptions that select_related their plan (one
    query fewer than prefetching the plan)."""
    return Prefetch(
        lookup,
        queryset=Charge.objects.select_related("metric")
        .prefetch_related(Prefetch("tiers", queryset=Tier.objects.order_by("position", "id")))
        .order_by("position", "id"),
    )


def plans_with_charges() -> QuerySet[Plan]:
    return Plan.objects.select_related("promotion").prefetch_related(charges_with_tiers())


def plan_spec(plan: Plan) -> PlanSpec:
    """The pure form of a plan version; its charges should be prefetched (`plans_with_charges`).

    The names are the ones invoices show: a plan's or charge's `invoice_display_name` when it has
    one (Lago's, e.g. set by plan_overrides), else the plan's name and the metric's.
    """
    return PlanSpec(
        code=plan.code,
        name=plan.invoice_display_name or plan.name,
        currency=plan.currency,
        interval=plan.interval,
        base_fee=plan.base_fee,
        charges=tuple(
            PlanChargeSpec(
                metric_code=c.metric.code,
                metric_name=c.invoice_display_name or c.metric.name,
                charge=charge_spec(c),
            )
            for c in plan.charges.all()
        ),
        pay_in_advance=plan.pay_in_advance,
    )


def current_plan(code: str) -> Plan:
    """The current version of the plan `code`, with charges and tiers; Plan.DoesNotExist if none."""
    return plans_with_charges().get(code=code, is_current=True)

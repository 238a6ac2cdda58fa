"""A plan as Lago's API writes it (lago-python-client's PlanResponse, with ChargeResponse charges).

Shown inside a subscription's answer (`plan`, as Lago includes it) with the subscription's own
prices when it has them: an override plan has `parent_id` (Lago's name) set to the catalog plan
it copies, and each of its charges `lago_parent_id`. Lago's `trial_period` is a 100 % base-fee
promotion (DESIGN §6); any promotion is also in our own field `promotion`, beside it (a
plan-level promotion, which Lago has no field for, sits there with a null trial_period).
A charge's `code` (Lago's, which names it under /plans/<code>/charges) is its metric's code.
Also the answer of /api/v1/plans (billing.api.plans).
"""

from __future__ import annotations

from typing import Any

from billing.engine.charge_properties import lago_properties
from billing.engine.money import format_decimal, to_cents
from billing.engine.vocabulary import AppliesTo, Interval
from billing.models import Charge, Plan, Promotion
from billing.selectors.catalog import plan_def
from config.api import iso_datetime


def trial_period(promotion: Promotion | None) -> float | None:
    """Lago's trial_period (days) of a plan's promotion: only a 100 % promotion of the base fee."""
    if promotion is None or promotion.applies_to != AppliesTo.BASE_FEE or promotion.percent_off != 100:
        return None
    return float(promotion.duration_days)


def promotion_json(promotion: Promotion | None) -> dict[str, Any] | None:
    if promotion is None:
        return None
    return {
        "code": promotion.code,
        "name": promotion.name,
        "percent_off": format_decimal(promotion.percent_off),
        "duration_days": promotion.duration_days,
        "applies_to": promotion.applies_to,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan (charges, tiers and promotion prefetched: billing.selectors.plans.plans_with_charges)."""
    parents: dict[int, str] = {}
    if plan.parent_id is not None:  # the catalog charge each override charge copies, by metric
        copied = Charge.objects.filter(plan_id=plan.parent_id).values_list("metric_id", "pk")
        parents = {metric_id: str(pk) for metric_id, pk in copied}
    created_at = iso_datetime(plan.created_at)
    charges: list[dict[str, Any]] = [
        {
            "lago_id": str(charge.pk),
            "lago_billable_metric_id": str(charge.metric_id),
            "billable_metric_code": charge.metric.code,
            "code": charge.metric.code,  # a plan has one charge per metric (billing.api.plans)
            "created_at": created_at,
            "charge_model": charge.model,
            "pay_in_advance": False,
            "prorated": False,
            "invoiceable": True,
            "regroup_paid_fees": None,
            "invoice_display_name": charge.invoice_display_name or None,
            "min_amount_cents": 0,
            "properties": lago_properties(spec),
            "filters": [],
            "taxes": [],
            "accepts_target_wallet": False,
            "lago_parent_id": parents.get(charge.metric_id),
            "usage_limit": None if charge.usage_limit is None else format_decimal(charge.usage_limit),
        }
        for charge, spec in zip(plan.charges.all(), plan_def(plan).charges, strict=True)
    ]
    return {
        "lago_id": str(plan.pk),
        "name": plan.name,
        "invoice_display_name": plan.invoice_display_name or None,
        "created_at": created_at,
        "code": plan.code,
        "version": plan.version,
        "interval": f"{plan.interval}ly",
        "description": plan.description,
        "amount_cents": to_cents(plan.base_fee, plan.currency),
        "amount_currency": plan.currency,
        "trial_period": trial_period(plan.promotion),
        "promotion": promotion_json(plan.promotion),
        "pay_in_advance": plan.pay_in_advance,
        "bill_charges_monthly": plan.interval == Interval.YEAR or None,
        "bill_fixed_charges_monthly": None,
        "charges": charges,
        "fixed_charges": [],
        "minimum_commitment": None,
        "usage_thresholds": [],
        "taxes": [],
        "parent_id": None if plan.parent_id is None else str(plan.parent_id),
        "metadata": plan.metadata or {},
    }

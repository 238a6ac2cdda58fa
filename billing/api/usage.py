"""GET /api/v1/customers/<external_id>/current_usage?external_subscription_id=…

Lago's `customer_usage` envelope (amounts in cents, `amount_cents` = the usage charges) with our
own fields beside it: decimal amounts as strings, the tier breakdown, `limit_exceeded`, and
`invoice_preview`, the period's invoice so far (base fee, promotions, usage) from the same code
that invoices.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from billing.engine.lines import Line, tier_line_dict
from billing.engine.money import format_decimal, money_str, quantity_str, to_cents
from billing.models import Subscription, SubscriptionStatus
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import PeriodUsage, current_usage
from config.api import ApiView, iso_datetime, not_found, validation_error
from customers.models import Customer

SUBSCRIPTION_REQUIRED = "the customer has {n} active subscriptions; pass external_subscription_id"
NO_ACTIVE_SUBSCRIPTION = "the customer has no active subscription"
LAGO_AGGREGATIONS = {
    "count": "count_agg",
    "sum": "sum_agg",
    "max": "max_agg",
    "latest": "latest_agg",
    "unique_count": "unique_count_agg",
}


def line_json(line: Line, currency: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": line.kind,
        "description": line.description,
        "quantity": quantity_str(line.quantity),
        "amount": money_str(line.amount, currency),
        "amount_cents": to_cents(line.amount, currency),
    }
    if line.metric_code:
        out["metric"] = line.metric_code
    if line.priced is not None:
        out["tiers"] = [tier_line_dict(t) for t in line.priced.tiers]
    return out


def usage_json(usage: PeriodUsage) -> dict[str, Any]:
    cur = usage.currency
    plan = usage.subscription.plan
    charges = {c.pk: c for c in plan.charges.all()}
    charges_usage = []
    for c in usage.charges:
        charge = charges[c.charge_id]
        priced = c.line.priced
        assert priced is not None
        charges_usage.append(
            {
                "units": format_decimal(c.measured.quantity),
                "total_aggregated_units": format_decimal(c.measured.quantity),
                "events_count": c.events_count,
                "amount_cents": to_cents(c.line.amount, cur),
                "amount_currency": cur,
                "charge": {
                    "lago_id": str(charge.pk),
                    "charge_model": charge.model,
                    "invoice_display_name": charge.metric.name,
                },
                "billable_metric": {
                    "lago_id": str(charge.metric.pk),
                    "name": charge.metric.name,
                    "code": charge.metric.code,
                    "aggregation_type": LAGO_AGGREGATIONS[charge.metric.aggregation],
                },
                "filters": [],
                "grouped_usage": [],
                "amount": money_str(c.line.amount, cur),
                "billed_units": format_decimal(priced.billed_units),
                "limit_exceeded": priced.limit_exceeded,
                "usage_limit": None if charge.usage_limit is None else format_decimal(charge.usage_limit),
                "tiers": [tier_line_dict(t) for t in priced.tiers],
            }
        )
    usage_cents = to_cents(usage.usage_amount, cur)
    taxes_cents = to_cents(usage.usage_taxes, cur)
    return {
        "from_datetime": iso_datetime(usage.period.start),
        "to_datetime": iso_datetime(usage.period.end),
        "issuing_date": usage.period.end_day.isoformat(),
        "lago_invoice_id": None,
        "currency": cur,
        "amount_cents": usage_cents,
        "taxes_amount_cents": taxes_cents,
        "total_amount_cents": usage_cents + taxes_cents,
        "amount": money_str(usage.usage_amount, cur),
        "external_subscription_id": usage.subscription.external_id,
        "plan_code": plan.code,
        "charges_usage": charges_usage,
        "invoice_preview": {
            "lines": [line_json(line, cur) for line in usage.lines],
            "total": money_str(usage.total, cur),
            "total_cents": to_cents(usage.total, cur),
        },
    }


def subscription_for_usage(
    customer: Customer, external_subscription_id: str | None
) -> Subscription | dict[str, list[str]]:
    subs = Subscription.objects.filter(customer=customer).select_related("customer", "promotion")
    subs = subs.prefetch_related(Prefetch("plan", queryset=plans_with_charges()))
    if external_subscription_id:
        found = subs.filter(external_id=external_subscription_id).first()
        if found is None:
            return {
                "external_subscription_id": [f"unknown subscription {external_subscription_id!r} for this customer"]
            }
        return found
    active = list(subs.filter(status=SubscriptionStatus.ACTIVE)[:2])
    if not active:
        return {"external_subscription_id": [NO_ACTIVE_SUBSCRIPTION]}
    if len(active) > 1:
        count = subs.filter(status=SubscriptionStatus.ACTIVE).count()
        return {"external_subscription_id": [SUBSCRIPTION_REQUIRED.format(n=count)]}
    return active[0]


class CurrentUsageView(ApiView):
    @extend_schema(
        operation_id="find_customer_current_usage",
        summary="Usage of the open billing period so far, priced, with the invoice preview",
        parameters=[OpenApiParameter("external_subscription_id", str, description="Optional when only one is active.")],
        responses={200: dict},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer")
        found = subscription_for_usage(customer, request.query_params.get("external_subscription_id"))
        if isinstance(found, dict):
            return validation_error(found)
        return Response({"customer_usage": usage_json(current_usage(subscription=found, at=timezone.now()))})

"""GET /api/v1/customers/<external_id>/current_usage?external_subscription_id=…

Lago's `customer_usage` envelope (amounts in cents, `amount_cents` = the usage charges) with our
own fields beside it: decimal amounts as strings, the tier breakdown, `limit_exceeded`, and
`invoice_preview`, the period's invoice so far (base fee, promotions, usage) from the same code
that invoices.

Also Lago's two other views of a subscription's usage:
- `…/projected_usage?external_subscription_id=` (`customer_projected_usage`): the current usage,
  and per charge `projected_units` / `projected_amount_cents`, the usage at the pace so far
  through the end of the period, priced (billing.selectors.usage.projected_charges);
- `…/past_usage?external_subscription_id=&billable_metric_code=&periods_count=` (`usage_periods`,
  paginated, newest first): each past period as invoiced, from its invoice's fees: `amount_cents`
  is the invoice's fees (base fee too, as Lago's), `charges_usage` its usage fees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils import timezone
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.list_params import BAD_CHOICE, BOOLEANS
from billing.engine.lines import Line, tier_line_dict
from billing.engine.money import ZERO, format_decimal, money_str, quantity_str, to_cents
from billing.engine.vocabulary import FEE_KINDS, LineKind
from billing.models import Invoice, InvoiceLine, Subscription, SubscriptionStatus
from billing.selectors.invoices import issuing_date
from billing.selectors.plans import charges_with_tiers
from billing.selectors.usage import PeriodUsage, current_usage, past_usage_invoices, projected_charges
from billing.selectors.usage_subscription import usage_subscription
from config.api import (
    ApiView,
    ascii_int,
    iso_datetime,
    not_found,
    page_numbers,
    paginated,
    unknown_filters,
    validation_error,
)
from customers.models import Customer
from metering.models import BillableMetric
from metering.selectors import events_count

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
    customer_external_id: str, external_subscription_id: str | None
) -> Subscription | dict[str, list[str]] | None:
    """The subscription whose usage is asked for, with its customer, promotion, plan, charges and
    tiers; an error by field; or None when there is no such customer.

    The usual answer (one subscription) is one statement (`usage_subscription`); the ORM's
    queries below only tell the errors apart. The customer is found through the subscription's
    join; the customer alone is looked up only to tell a missing customer (404) from a missing
    subscription (422).
    """
    found = usage_subscription(customer_external_id, external_subscription_id)
    if found is not None:
        return found
    subs = (
        Subscription.objects.filter(customer__external_id=customer_external_id, customer__deleted_at__isnull=True)
        .select_related("customer", "promotion", "plan")
        .prefetch_related(charges_with_tiers("plan__charges"))
    )
    if external_subscription_id:
        found = subs.filter(external_id=external_subscription_id).first()
        if found is not None:
            return found
        if not Customer.objects.filter(external_id=customer_external_id).exists():
            return None
        return {"external_subscription_id": [f"unknown subscription {external_subscription_id!r} for this customer"]}
    active = list(subs.filter(status=SubscriptionStatus.ACTIVE)[:2])
    if len(active) == 1:
        return active[0]
    if active:
        count = subs.filter(status=SubscriptionStatus.ACTIVE).count()
        return {"external_subscription_id": [SUBSCRIPTION_REQUIRED.format(n=count)]}
    if not Customer.objects.filter(external_id=customer_external_id).exists():
        return None
    return {"external_subscription_id": [NO_ACTIVE_SUBSCRIPTION]}


class CurrentUsageView(ApiView):
    """The endpoint polled most after ingestion: orjson renders it (about a fifth of the standard
    library json's cost), as the events endpoints' answers (billing.api.events.FastJsonMixin)."""

    renderer_classes: Sequence[type[BaseRenderer]] = [ORJSONRenderer]

    @extend_schema(
        operation_id="find_customer_current_usage",
        summary="Usage of the open billing period so far, priced, with the invoice preview",
        parameters=[OpenApiParameter("external_subscription_id", str, description="Optional when only one is active.")],
        responses={200: dict},
    )
    def get(self, request: Request, external_id: str) -> Response:
        found = subscription_for_usage(external_id, request.query_params.get("external_subscription_id"))
        if found is None:
            return not_found("customer")
        if isinstance(found, dict):
            return validation_error(found)
        return Response({"customer_usage": usage_json(current_usage(subscription=found, at=timezone.now()))})


# --- projected usage -------------------------------------------------------------------------

PROJECTED_PARAMS = ("external_subscription_id", "apply_taxes")


def projected_usage_json(usage: PeriodUsage, *, at: Any, apply_taxes: bool = True) -> dict[str, Any]:
    """Lago's customer_projected_usage: usage_json's current usage with each charge's projection
    (no invoice preview: that is the period so far, not projected)."""
    out = usage_json(usage)
    del out["invoice_preview"]
    cur = usage.currency
    total_projected = 0
    for item, projection in zip(out["charges_usage"], projected_charges(usage, at=at), strict=True):
        cents = to_cents(projection.amount, cur)
        item["projected_units"] = format_decimal(projection.units)
        item["projected_amount_cents"] = cents
        item["projected_amount"] = money_str(projection.amount, cur)
        total_projected += cents
    if not apply_taxes:
        out["taxes_amount_cents"] = 0
        out["total_amount_cents"] = out["amount_cents"]
    return {**out, "projected_amount_cents": total_projected, "invoice_id": None}


class ProjectedUsageView(ApiView):
    @extend_schema(
        operation_id="find_customer_projected_usage",
        summary="Usage of the open period so far, and projected to its end at the pace so far",
        parameters=[
            OpenApiParameter("external_subscription_id", str, description="Optional when only one is active."),
            OpenApiParameter("apply_taxes", str, enum=["true", "false"], description="Default true."),
        ],
        responses={200: dict},
    )
    def get(self, request: Request, external_id: str) -> Response:
        params = request.query_params
        errors = unknown_filters(params, PROJECTED_PARAMS)
        apply_taxes = params.get("apply_taxes") or "true"
        if apply_taxes not in BOOLEANS:
            errors["apply_taxes"] = [BAD_CHOICE.format(choices="true, false")]
        if errors:
            return validation_error(errors)
        found = subscription_for_usage(external_id, params.get("external_subscription_id"))
        if found is None:
            return not_found("customer")
        if isinstance(found, dict):
            return validation_error(found)
        now = timezone.now()
        usage = current_usage(subscription=found, at=now)
        body = projected_usage_json(usage, at=now, apply_taxes=BOOLEANS[apply_taxes])
        return Response({"customer_projected_usage": body})


# --- past usage --------------------------------------------------------------------------------

PAST_PARAMS = ("external_subscription_id", "billable_metric_code", "periods_count")
REQUIRED = "is required"
BAD_PERIODS_COUNT = "must be a whole number from 1 to 1000"


def past_period_json(invoice: Invoice, metric: BillableMetric | None) -> dict[str, Any]:
    """One past period as Lago's usage_periods item: the invoice's fees, its usage fees by charge."""
    cur = invoice.currency
    lines = list(invoice.lines.all())  # prefetched, with their metrics
    fees = [line for line in lines if line.kind in FEE_KINDS]
    amount = sum((line.amount for line in fees), ZERO)
    taxes = sum((line.tax_amount for line in fees), ZERO)
    usage = [
        line
        for line in fees
        if line.kind == LineKind.USAGE and line.metric is not None and (metric is None or line.metric_id == metric.pk)
    ]
    return {
        "from_datetime": iso_datetime(invoice.period_start),
        "to_datetime": iso_datetime(invoice.period_end),
        "issuing_date": issuing_date(invoice).isoformat(),
        "lago_invoice_id": str(invoice.pk),
        "currency": cur,
        "amount_cents": to_cents(amount, cur),
        "taxes_amount_cents": to_cents(taxes, cur),
        "total_amount_cents": to_cents(amount, cur) + to_cents(taxes, cur),
        "charges_usage": [_past_charge_json(line, invoice) for line in usage],
        # our own
        "external_subscription_id": invoice.subscription.external_id if invoice.subscription else None,
        "plan_code": invoice.subscription.plan.code if invoice.subscription else None,
        "invoice_status": invoice.status,
    }


def _past_charge_json(line: InvoiceLine, invoice: Invoice) -> dict[str, Any]:
    cur, metric = invoice.currency, line.metric
    assert metric is not None and invoice.subscription is not None
    charge = next((c for c in invoice.subscription.plan.charges.all() if c.metric_id == metric.pk), None)
    details = line.details or {}
    return {
        "units": format_decimal(line.quantity),
        "total_aggregated_units": format_decimal(line.quantity),
        "events_count": events_count(
            customer=invoice.customer, metric=metric, start=line.period_start, end=line.period_end
        ),
        "amount_cents": to_cents(line.amount, cur),
        "amount_currency": cur,
        "charge": {
            "lago_id": str(charge.pk) if charge is not None else "",
            "charge_model": charge.model if charge is not None else "",
            "invoice_display_name": line.description,
        },
        "billable_metric": {
            "lago_id": str(metric.pk),
            "name": metric.name,
            "code": metric.code,
            "aggregation_type": LAGO_AGGREGATIONS[metric.aggregation],
        },
        "filters": [],
        "grouped_usage": [],
        # our own
        "lago_fee_id": str(line.pk),
        "amount": money_str(line.amount, cur),
        "billed_units": details.get("billed_units"),
        "tiers": details.get("tiers", []),
    }


class PastUsageView(ApiView):
    @extend_schema(
        operation_id="find_all_customer_past_usage",
        summary="Usage of the subscription's past periods as invoiced, newest first (paginated)",
        parameters=[
            OpenApiParameter("external_subscription_id", str, required=True),
            OpenApiParameter("billable_metric_code", str, description="Only this metric's usage."),
            OpenApiParameter("periods_count", int, description="Only the newest n periods."),
        ],
        responses={200: dict},
    )
    def get(self, request: Request, external_id: str) -> Response:
        params = request.query_params
        paging = page_numbers(params)
        errors = (paging if isinstance(paging, dict) else {}) | unknown_filters(params, PAST_PARAMS)
        if not params.get("external_subscription_id"):
            errors["external_subscription_id"] = [REQUIRED]
        periods = None
        if params.get("periods_count"):
            periods = ascii_int(params["periods_count"], minimum=1, maximum=1000)
            if periods is None:
                errors["periods_count"] = [BAD_PERIODS_COUNT]
        if errors or isinstance(paging, dict):
            return validation_error(errors)
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer")
        metric = None
        if params.get("billable_metric_code"):
            metric = BillableMetric.objects.filter(code=params["billable_metric_code"]).first()
            if metric is None:
                return not_found("billable_metric")
        rows = past_usage_invoices(customer=customer, external_subscription_id=params["external_subscription_id"])
        if periods is not None:
            rows = rows[:periods]
        page, per_page = paging
        return Response(paginated("usage_periods", rows, page, per_page, lambda inv: past_period_json(inv, metric)))

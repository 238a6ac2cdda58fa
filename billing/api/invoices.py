"""GET /api/v1/invoices (filtered, paginated) and GET /api/v1/invoices/<lago_id>.

Lago's invoice envelope ({"invoice": {...}}, {"invoices": [...], "meta": {...}}) with Lago's field
names where Lago has them, so `lago-python-client` parses the responses, and our own fields
beside them: `total` as a decimal string, the period, our `invoice_type`, and the `lines` with
their tier breakdown.

How our invoice maps onto Lago's amounts (all in the currency's minor unit, integers):
- `fees_amount_cents`: the charges (base fee, usage, late usage, commitment prepayment);
- `coupons_amount_cents`: the promotion discounts (a trial), as a positive number;
- `prepaid_credit_amount_cents`: what the commitment balance covered (drawdown lines);
- `total_amount_cents` = fees − coupons − prepaid credit = `total`; there are no taxes.
Our `status` is the invoice's own (draft, finalized, paid, void); Lago's `payment_status` is
derived from it. A draft has no number yet; like Lago, it shows a placeholder (`DRAFT-<id>`).

Filters (query parameters, all optional, combined with AND):
- `external_customer_id`, `status`, `invoice_type`;
- `period=YYYY-MM`: the issuing month. A finalized invoice's issuing date is the day it was
  finalized (in the customer's time zone); a draft's is the day it is due: the day its period
  ends for a period invoice, the day it starts for an advance or commitment invoice;
- `issuing_date_from` / `issuing_date_to` (YYYY-MM-DD, inclusive; Lago's names): the same date,
  as a range;
- `period_from` / `period_to` (YYYY-MM-DD, inclusive): invoices whose billing period covers at
  least one day of that range, in the customer's time zone.
Dates are the customer's calendar days: the filters are built per time zone in use, so a Paris
customer's October invoice starts on 2026-10-01 there although it is 2026-09-30T22:00Z.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.customers import customer_json
from billing.api.subscriptions import subscription_json
from billing.engine.money import ZERO, format_decimal, money_str, to_cents
from billing.engine.periods import add_months
from billing.models import Invoice, InvoiceLine, InvoiceStatus, InvoiceType, LineKind
from billing.selectors.invoices import invoices_with_relations, issuing_date
from config.api import (
    DEFAULT_PER_PAGE,
    ApiView,
    iso_datetime,
    not_found,
    object_id,
    page_numbers,
    paginated,
    validation_error,
)
from customers.models import Customer
from metering.days import day_start
from metering.validation import EARLIEST, LATEST

BAD_MONTH = "must be a month as YYYY-MM from 2000-01 to 2099-12, e.g. 2026-09"
BAD_DATE = "must be a date as YYYY-MM-DD from 2000-01-01 to 2099-12-31, e.g. 2026-09-30"
BAD_CHOICE = "must be one of: {choices}"
RANGE_REVERSED = "must not be before {other}"

FEE_KINDS = {LineKind.BASE_FEE, LineKind.USAGE, LineKind.LATE_USAGE, LineKind.COMMITMENT}


# --- output ---------------------------------------------------------------------------------


def line_json(line: InvoiceLine, currency: str) -> dict[str, Any]:
    details = line.details or {}
    out: dict[str, Any] = {
        "lago_id": str(line.pk),
        "kind": line.kind,
        "description": line.description,
        "quantity": format_decimal(line.quantity),
        "unit_amount": None if line.unit_amount is None else format_decimal(line.unit_amount),
        "amount": money_str(line.amount, currency),
        "amount_cents": to_cents(line.amount, currency),
        "amount_currency": currency,
        "metric": line.metric.code if line.metric is not None else None,
        "period_start": iso_datetime(line.period_start),
        "period_end": iso_datetime(line.period_end),
        "tiers": details.get("tiers", []),
    }
    for key in ("billed_units", "limit_exceeded", "previously_billed_quantity"):
        if key in details:
            out[key] = details[key]
    return out


def invoice_json(invoice: Invoice) -> dict[str, Any]:
    """One invoice; its lines, customer and subscription (with plan) should be loaded already."""
    cur = invoice.currency
    lines = list(invoice.lines.all())
    fees = sum((ln.amount for ln in lines if ln.kind in FEE_KINDS), ZERO)
    coupons = -sum((ln.amount for ln in lines if ln.kind == LineKind.PROMOTION), ZERO)
    prepaid = -sum((ln.amount for ln in lines if ln.kind == LineKind.COMMITMENT_DRAWDOWN), ZERO)
    total_cents = to_cents(invoice.total, cur)
    paid = invoice.status == InvoiceStatus.PAID
    owed = invoice.status in {InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED}
    subscription = invoice.subscription
    return {
        "lago_id": str(invoice.pk),
        "sequential_id": None,
        "number": invoice.number or f"DRAFT-{invoice.pk}",
        "issuing_date": issuing_date(invoice).isoformat(),
        "payment_due_date": None,
        "payment_overdue": False,
        "net_payment_term": 0,
        "invoice_type": invoice.invoice_type,
        "version_number": 4,
        "status": invoice.status,
        "payment_status": "succeeded" if paid else "pending",
        "currency": cur,
        "fees_amount_cents": to_cents(fees, cur),
        "coupons_amount_cents": to_cents(coupons, cur),
        "taxes_amount_cents": 0,
        "credit_notes_amount_cents": 0,
        "progressive_billing_credit_amount_cents": 0,
        "sub_total_excluding_taxes_amount_cents": to_cents(fees - coupons, cur),
        "sub_total_including_taxes_amount_cents": to_cents(fees - coupons, cur),
        "prepaid_credit_amount_cents": to_cents(prepaid, cur),
        "total_amount_cents": total_cents,
        "total_due_amount_cents": total_cents if owed else 0,
        "total_paid_amount_cents": total_cents if paid else 0,
        "voided_at": iso_datetime(invoice.voided_at),
        "finalized_at": iso_datetime(invoice.finalized_at),
        "paid_at": iso_datetime(invoice.paid_at),
        "created_at": iso_datetime(invoice.created_at),
        "updated_at": iso_datetime(invoice.updated_at),
        "file_url": None,
        "customer": customer_json(invoice.customer),
        "subscriptions": [subscription_json(subscription)],
        "billing_periods": [
            {
                "lago_subscription_id": str(subscription.pk),
                "external_subscription_id": subscription.external_id,
                "lago_plan_id": str(subscription.plan_id),
                "subscription_from_datetime": iso_datetime(invoice.period_start),
                "subscription_to_datetime": iso_datetime(invoice.period_end),
                "charges_from_datetime": iso_datetime(invoice.period_start),
                "charges_to_datetime": iso_datetime(invoice.period_end),
                "invoicing_reason": "subscription_periodic",
            }
        ],
        # our own fields
        "total": money_str(invoice.total, cur),
        "period_start": iso_datetime(invoice.period_start),
        "period_end": iso_datetime(invoice.period_end),
        "external_subscription_id": subscription.external_id,
        "plan_code": subscription.plan.code,
        "void_reason": invoice.void_reason or None,
        "lines": [line_json(ln, cur) for ln in lines],
    }


# --- filters --------------------------------------------------------------------------------


def _in_window(day: date) -> bool:
    """Dates read from a query lie in the API's one window (metering.validation), so a bound
    plus a day or a month never leaves the calendar."""
    return EARLIEST.date() <= day < LATEST.date()


def _parse_month(value: str) -> tuple[date, date] | None:
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", value)
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        return None
    first = date(int(match.group(1)), int(match.group(2)), 1)
    return (first, add_months(first, 1)) if _in_window(first) else None


def _parse_date(value: str) -> date | None:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if _in_window(day) else None


def _per_zone(qs: QuerySet[Invoice], build: Any) -> Q:
    """OR over the customers' time zones in play of build(tz): day bounds are local midnights."""
    zones = Customer.objects.filter(pk__in=qs.values("customer_id")).values_list("timezone", flat=True).distinct()
    condition = Q(pk__in=[])
    for tz in zones:
        condition |= Q(customer__timezone=tz) & build(tz)
    return condition


def _issued_between(qs: QuerySet[Invoice], start: date | None, end: date | None) -> QuerySet[Invoice]:
    """Invoices whose issuing date is in [start, end) (either bound optional)."""
    issued = Q(issued_on__isnull=False)
    if start is not None:
        issued &= Q(issued_on__gte=start)
    if end is not None:
        issued &= Q(issued_on__lt=end)

    def due_between(tz: str) -> Q:
        period_due, other_due = Q(invoice_type=InvoiceType.PERIOD), ~Q(invoice_type=InvoiceType.PERIOD)
        if start is not None:
            period_due &= Q(period_end__gte=day_start(start, tz))
            other_due &= Q(period_start__gte=day_start(start, tz))
        if end is not None:
            period_due &= Q(period_end__lt=day_start(end, tz))
            other_due &= Q(period_start__lt=day_start(end, tz))
        return period_due | other_due

    return qs.filter(issued | (Q(issued_on__isnull=True) & _per_zone(qs, due_between)))


def _covering(qs: QuerySet[Invoice], start: date | None, end: date | None) -> QuerySet[Invoice]:
    """Invoices whose period [period_start, period_end) overlaps the local days [start, end)."""

    def overlaps(tz: str) -> Q:
        condition = Q()
        if start is not None:
            condition &= Q(period_end__gt=day_start(start, tz))
        if end is not None:
            condition &= Q(period_start__lt=day_start(end, tz))
        return condition

    return qs.filter(_per_zone(qs, overlaps))


def filter_invoices(qs: QuerySet[Invoice], params: Any) -> QuerySet[Invoice] | dict[str, list[str]]:
    """Apply the query parameters; returns the filtered queryset or the errors by parameter."""
    errors: dict[str, list[str]] = {}
    if params.get("external_customer_id"):
        qs = qs.filter(customer__external_id=params["external_customer_id"])
    for name, choices in (("status", InvoiceStatus.values), ("invoice_type", InvoiceType.values)):
        value = params.get(name)
        if value:
            if value not in choices:
                errors[name] = [BAD_CHOICE.format(choices=", ".join(choices))]
            else:
                qs = qs.filter(**{name: value})
    dates: dict[str, date] = {}
    for name in ("issuing_date_from", "issuing_date_to", "period_from", "period_to"):
        if params.get(name):
            parsed = _parse_date(params[name])
            if parsed is None:
                errors[name] = [BAD_DATE]
            else:
                dates[name] = parsed
    for low, high in (("issuing_date_from", "issuing_date_to"), ("period_from", "period_to")):
        if low in dates and high in dates and dates[high] < dates[low]:
            errors[high] = [RANGE_REVERSED.format(other=low)]
    month = None
    if params.get("period"):
        month = _parse_month(params["period"])
        if month is None:
            errors["period"] = [BAD_MONTH]
    if errors:
        return errors
    one_day = timedelta(days=1)
    if month is not None:
        qs = _issued_between(qs, *month)
    if "issuing_date_from" in dates or "issuing_date_to" in dates:
        to = dates.get("issuing_date_to")
        qs = _issued_between(qs, dates.get("issuing_date_from"), to + one_day if to else None)
    if "period_from" in dates or "period_to" in dates:
        to = dates.get("period_to")
        qs = _covering(qs, dates.get("period_from"), to + one_day if to else None)
    return qs


# --- schema ---------------------------------------------------------------------------------


class TierOutput(serializers.Serializer[Any]):
    position = serializers.IntegerField()
    up_to = serializers.CharField(allow_null=True)
    units = serializers.CharField()
    unit_amount = serializers.CharField()
    flat_amount = serializers.CharField()
    amount = serializers.CharField()


class InvoiceLineOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    kind = serializers.ChoiceField(choices=LineKind.choices)
    description = serializers.CharField()
    quantity = serializers.CharField(help_text="A decimal string.")
    unit_amount = serializers.CharField(allow_null=True, help_text="A decimal string (base fee lines).")
    amount = serializers.CharField(help_text='Rounded to the minor unit, a decimal string: "235.00".')
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField()
    metric = serializers.CharField(allow_null=True, help_text="Billable metric code (usage lines).")
    period_start = serializers.DateTimeField(help_text="What the line covers; a late_usage line: its old period.")
    period_end = serializers.DateTimeField()
    tiers = TierOutput(many=True)


class InvoiceOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    number = serializers.CharField(help_text="INV-YYYY-NNNNNN once finalized; DRAFT-<id> before.")
    issuing_date = serializers.DateField()
    invoice_type = serializers.ChoiceField(choices=InvoiceType.choices)
    status = serializers.ChoiceField(choices=InvoiceStatus.choices)
    payment_status = serializers.CharField()
    currency = serializers.CharField()
    fees_amount_cents = serializers.IntegerField()
    coupons_amount_cents = serializers.IntegerField()
    taxes_amount_cents = serializers.IntegerField()
    prepaid_credit_amount_cents = serializers.IntegerField()
    total_amount_cents = serializers.IntegerField()
    total_due_amount_cents = serializers.IntegerField()
    customer = serializers.DictField(help_text="The customer, as GET /api/v1/customers/<external_id> shows it.")
    subscriptions = serializers.ListField(child=serializers.DictField())
    total = serializers.CharField(help_text='A decimal string: "355.00".')
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    external_subscription_id = serializers.CharField()
    plan_code = serializers.CharField()
    lines = InvoiceLineOutput(many=True)


class InvoiceEnvelope(serializers.Serializer[Any]):
    invoice = InvoiceOutput()


class PageMeta(serializers.Serializer[Any]):
    current_page = serializers.IntegerField()
    next_page = serializers.IntegerField(allow_null=True)
    prev_page = serializers.IntegerField(allow_null=True)
    total_pages = serializers.IntegerField()
    total_count = serializers.IntegerField()


class InvoiceListEnvelope(serializers.Serializer[Any]):
    invoices = InvoiceOutput(many=True)
    meta = PageMeta()


LIST_PARAMETERS = [
    OpenApiParameter("external_customer_id", str, description="Only this customer's invoices."),
    OpenApiParameter("status", str, enum=InvoiceStatus.values),
    OpenApiParameter("invoice_type", str, enum=InvoiceType.values),
    OpenApiParameter("period", str, description="Issuing month, YYYY-MM."),
    OpenApiParameter("issuing_date_from", OpenApiTypes.DATE, description="Issued on or after (inclusive)."),
    OpenApiParameter("issuing_date_to", OpenApiTypes.DATE, description="Issued on or before (inclusive)."),
    OpenApiParameter("period_from", OpenApiTypes.DATE, description="Billing period covers a day on or after this one."),
    OpenApiParameter("period_to", OpenApiTypes.DATE, description="Billing period covers a day on or before this one."),
    OpenApiParameter("page", int, description="1-based page number (default 1)."),
    OpenApiParameter("per_page", int, description=f"Invoices per page (default {DEFAULT_PER_PAGE}, at most 100)."),
]


# --- views ----------------------------------------------------------------------------------


class InvoicesView(ApiView):
    @extend_schema(
        operation_id="list_invoices",
        summary="List invoices, newest period first, with their lines",
        description="Filters combine with AND; dates are the customer's calendar days. Paginated as Lago: "
        "`page`, `per_page` and `meta`.",
        parameters=LIST_PARAMETERS,
        responses={200: InvoiceListEnvelope},
    )
    def get(self, request: Request) -> Response:
        paging = page_numbers(request.query_params)
        filtered = filter_invoices(invoices_with_relations(), request.query_params)
        errors = (paging if isinstance(paging, dict) else {}) | (filtered if isinstance(filtered, dict) else {})
        if errors:
            return validation_error(errors)
        assert not isinstance(paging, dict) and not isinstance(filtered, dict)
        page, per_page = paging
        rows = filtered.order_by("-period_start", "-id")
        return Response(paginated("invoices", rows, page, per_page, invoice_json))


class InvoiceDetailView(ApiView):
    @extend_schema(
        operation_id="find_invoice",
        summary="Fetch one invoice with its lines",
        description="Amounts as Lago's integer `*_amount_cents` and as decimal strings (`total`, line `amount`).",
        parameters=[OpenApiParameter("lago_id", str, OpenApiParameter.PATH, description="The invoice's lago_id.")],
        responses={200: InvoiceEnvelope},
    )
    def get(self, request: Request, lago_id: str) -> Response:
        # Ids are positive bigints; anything else is simply not found.
        pk = object_id(lago_id)
        invoice = invoices_with_relations().filter(pk=pk).first() if pk is not None else None
        if invoice is None:
            return not_found("invoice")
        return Response({"invoice": invoice_json(invoice)})

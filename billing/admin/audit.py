"""MTU audit: the distinct values behind a unique_count quantity, page by page or as CSV.

"Which 30,000 users did we bill in October?" A usage or late_usage invoice line of a
unique_count metric (the MTUs) links to a page listing the values counted in the line's period
(billing.selectors.audit, over metering's maintained sets: the same sets invoicing counts), with their count beside
the quantity the line billed, and a CSV download of all of them. The open period of a
subscription has the same page (linked from the customer page).

- The count must equal the line's quantity: a usage line bills the period's count; a late_usage
  line bills the growth, and its details keep the count it was computed from ("quantity").
  When they differ the page says why it may: a draft counts events stored after it was last
  computed; a finalized period counts late events, which a later late_usage line bills (listed).
- Values are listed sorted by code point, PAGE_SIZE per page. A page reads the values before it
  too (the sorted stream is skipped through), so deep pages of very large sets cost more; the
  CSV streams the whole set in one pass (StreamingHttpResponse), whatever its size.
- The customer page also shows, per unique_count metric of its active subscriptions, two charts
  of the open period drawn on the server (billing.documents.charts): the values seen each day, and the
  count so far (what the period bills). Both come from one query over the maintained sets.

The pages live under the invoice admin's URLs (billing.admin.invoices.InvoiceAdmin.get_urls).
Line audits need view permission on invoices; open-period audits on subscriptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from billing.admin.shared import admin_page, admin_url, csv_response, may_view
from billing.documents.charts import bar_chart, line_chart
from billing.documents.formats import format_day, format_quantity
from billing.models import Invoice, InvoiceLine, LineKind, Subscription
from billing.selectors.audit import WindowValues, billed_count, daily_distinct, is_auditable, later_late_lines
from billing.selectors.usage import period_of
from customers.models import Customer
from metering.days import local_date
from metering.models import Aggregation, BillableMetric

PAGE_SIZE = 500

# Messages are constants so tests can match them.
NOT_AUDITABLE = "Only usage and late usage lines of a unique_count metric list the values they count."
COUNT_MATCHES = "The count equals the quantity billed."
COUNT_DIFFERS = "The count differs from the quantity billed ({quantity})."
DRAFT_NOTE = (
    "This invoice is a draft: it was last computed at {computed} UTC, and events stored since are "
    "counted here. “Recompute selected drafts” brings it up to date."
)
LATE_NOTE = "Values from events that arrived after this period was invoiced are billed as late usage:"
UNBILLED_LATE_NOTE = (
    "Events that arrived after this period was invoiced are counted here and not billed yet: the "
    "customer's next invoice bills them as late usage."
)
OPEN_PERIOD_NOTE = "The open period so far: this count is what its invoice bills if no more values arrive."


# --- What is audited ----------------------------------------------------------------------------


def audit_link(line: InvoiceLine) -> str:
    """The link from an invoice line to its audit page, or "—" (for the invoice lines inline)."""
    if not is_auditable(line):
        return "—"
    url = admin_url("billing_invoiceline_audit", line.pk)
    if url is None:
        return "—"
    return format_html('<a href="{}" class="audit-link">Values counted</a>', url)


def _days(start: datetime, end: datetime, tz: str) -> tuple[date, date]:
    """First and last local day (inclusive) of [start, end)."""
    return local_date(start, tz), local_date(end - timedelta(microseconds=1), tz)


def _late_lines(line: InvoiceLine) -> list[dict[str, Any]]:
    """The late_usage lines billed after `line` for the same customer, metric and period."""
    return [
        {
            "invoice": late.invoice,
            "url": admin_url("billing_invoiceline_audit", late.pk),
            "quantity": format_quantity(late.quantity),
            "count": format_quantity(billed_count(late)),
        }
        for late in later_late_lines(line)
    ]


# --- Pages --------------------------------------------------------------------------------------


def _page(request: HttpRequest, values: WindowValues) -> tuple[Page[str], list[str | int]]:
    # The stub asks for len() and int indexes; Paginator reads count() and slices, as WindowValues offers.
    paginator: Paginator[str] = Paginator(values, PAGE_SIZE)  # type: ignore[arg-type]
    page = paginator.get_page(request.GET.get("page"))
    return page, list(paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1))


def _render(request: HttpRequest, model_admin: admin.ModelAdmin[Any], context: dict[str, Any]) -> HttpResponse:
    return admin_page(model_admin, request, "admin/billing/audit/values.html", **context)


def _line(request: HttpRequest, model_admin: admin.ModelAdmin[Any], line_id: int) -> InvoiceLine:
    if not may_view(request, model_admin, Invoice):
        raise PermissionDenied
    line = get_object_or_404(
        InvoiceLine.objects.select_related("invoice__customer", "invoice__subscription", "metric"), pk=line_id
    )
    if not is_auditable(line):
        raise Http404(NOT_AUDITABLE)
    return line


def line_audit_view(request: HttpRequest, line_id: int, model_admin: admin.ModelAdmin[Any]) -> HttpResponse:
    """The values counted for an invoice line, paginated, with the count beside the quantity."""
    line = _line(request, model_admin, line_id)
    invoice = line.invoice
    customer = invoice.customer
    metric = line.metric
    assert metric is not None
    values = WindowValues(customer=customer, metric=metric, start=line.period_start, end=line.period_end)
    page, page_range = _page(request, values)
    counted = values.count()
    billed = billed_count(line)
    notes = []
    late = []
    if counted != billed:
        if invoice.is_draft:
            notes.append(DRAFT_NOTE.format(computed=f"{invoice.updated_at:%Y-%m-%d %H:%M}"))
        else:
            late = _late_lines(line)
            notes.append(LATE_NOTE if late else UNBILLED_LATE_NOTE)
    first, last = _days(line.period_start, line.period_end, customer.timezone)
    return _render(
        request,
        model_admin,
        {
            "title": f"Values counted: {line.description}",
            "invoice": invoice,
            "invoice_url": admin_url("billing_invoice_change", invoice.pk),
            "line": line,
            "customer": customer,
            "metric": metric,
            "first_day": format_day(first),
            "last_day": format_day(last),
            "start": line.period_start,
            "end": line.period_end,
            "timezone": customer.timezone,
            "counted": format_quantity(Decimal(counted)),
            "billed": format_quantity(billed),
            "billed_label": "Count the late usage was computed from"
            if line.kind == LineKind.LATE_USAGE
            else "Quantity billed",
            "matches": counted == billed,
            "match_message": COUNT_MATCHES
            if counted == billed
            else COUNT_DIFFERS.format(quantity=format_quantity(billed)),
            "notes": notes,
            "late_lines": late,
            "page": page,
            "page_range": page_range,
            "csv_url": admin_url("billing_invoiceline_audit_csv", line.pk),
        },
    )


def line_audit_csv_view(
    request: HttpRequest, line_id: int, model_admin: admin.ModelAdmin[Any]
) -> StreamingHttpResponse:
    """Every value counted for an invoice line, as CSV."""
    line = _line(request, model_admin, line_id)
    metric = line.metric
    assert metric is not None
    customer = line.invoice.customer
    first, _last = _days(line.period_start, line.period_end, customer.timezone)
    number = line.invoice.number or f"draft-{line.invoice.pk}"
    values = WindowValues(customer=customer, metric=metric, start=line.period_start, end=line.period_end)
    return csv_response(
        f"{number}-{metric.code}-{first:%Y-%m}-line-{line.pk}.csv", [metric.field or "value"], ([v] for v in values)
    )


def _open_period(
    request: HttpRequest, model_admin: admin.ModelAdmin[Any], subscription_id: int
) -> tuple[Subscription, BillableMetric, Any, datetime]:
    if not may_view(request, model_admin, Subscription):
        raise PermissionDenied
    subscription = get_object_or_404(Subscription.objects.select_related("customer", "plan"), pk=subscription_id)
    metrics = BillableMetric.objects.filter(charges__plan=subscription.plan_id, aggregation=Aggregation.UNIQUE_COUNT)
    code = request.GET.get("metric")
    metric = (metrics.filter(code=code) if code else metrics.order_by("charges__position", "code")).first()
    if metric is None:
        raise Http404(NOT_AUDITABLE)
    now = timezone.now()
    return subscription, metric, period_of(subscription, at=now), now


def open_period_audit_view(
    request: HttpRequest, subscription_id: int, model_admin: admin.ModelAdmin[Any]
) -> HttpResponse:
    """The values counted so far in a subscription's open period (for ?metric=CODE, default its first)."""
    subscription, metric, period, _now = _open_period(request, model_admin, subscription_id)
    customer = subscription.customer
    values = WindowValues(customer=customer, metric=metric, start=period.start, end=period.end)
    page, page_range = _page(request, values)
    counted = values.count()
    first, last = _days(period.start, period.end, customer.timezone)
    return _render(
        request,
        model_admin,
        {
            "title": f"Values counted so far: {subscription.external_id}, {metric.code}",
            "subscription": subscription,
            "subscription_url": admin_url("billing_subscription_change", subscription.pk),
            "customer": customer,
            "customer_url": admin_url("customers_customer_change", customer.pk),
            "metric": metric,
            "first_day": format_day(first),
            "last_day": format_day(last),
            "start": period.start,
            "end": period.end,
            "timezone": customer.timezone,
            "counted": format_quantity(Decimal(counted)),
            "notes": [OPEN_PERIOD_NOTE],
            "page": page,
            "page_range": page_range,
            "metric_query": f"metric={metric.code}",
            "csv_url": f"{admin_url('billing_subscription_audit_csv', subscription.pk)}?metric={metric.code}",
        },
    )


def open_period_audit_csv_view(
    request: HttpRequest, subscription_id: int, model_admin: admin.ModelAdmin[Any]
) -> StreamingHttpResponse:
    subscription, metric, period, _now = _open_period(request, model_admin, subscription_id)
    values = WindowValues(customer=subscription.customer, metric=metric, start=period.start, end=period.end)
    return csv_response(
        f"{subscription.external_id}-{metric.code}-{period.start_day:%Y-%m-%d}-open.csv",
        [metric.field or "value"],
        ([v] for v in values),
    )


def audit_urls(model_admin: admin.ModelAdmin[Any]) -> list[URLPattern]:
    """The audit pages, under the invoice admin's URLs."""
    wrap = model_admin.admin_site.admin_view
    kwargs = {"model_admin": model_admin}
    return [
        path("lines/<int:line_id>/values/", wrap(line_audit_view), kwargs, name="billing_invoiceline_audit"),
        path("lines/<int:line_id>/values.csv", wrap(line_audit_csv_view), kwargs, name="billing_invoiceline_audit_csv"),
        path(
            "open-period/<int:subscription_id>/values/",
            wrap(open_period_audit_view),
            kwargs,
            name="billing_subscription_audit",
        ),
        path(
            "open-period/<int:subscription_id>/values.csv",
            wrap(open_period_audit_csv_view),
            kwargs,
            name="billing_subscription_audit_csv",
        ),
    ]


# --- Distinct values per day (the customer page's charts) -------------------------------------


def customer_usage_charts(
    customer: Customer, subscriptions: Sequence[Subscription], now: datetime
) -> list[dict[str, Any]]:
    """The open period's charts and audit link per unique_count metric of the active subscriptions.

    `subscriptions` come with their plans' charges prefetched (the customer page's usage panels
    load them), so the charts cost one query per metric: metering counts per customer, so
    subscriptions billing the same metric share a chart, over the days from the earliest start
    of their open periods to today (the same days for one subscription, or calendar billing).
    """
    windows: dict[int, dict[str, Any]] = {}
    today = local_date(now, customer.timezone)
    for subscription in subscriptions:
        period = period_of(subscription, at=now)
        stop = min(period.end_day, today + timedelta(days=1))
        for charge in subscription.plan.charges.all():
            metric = charge.metric
            if metric.aggregation != Aggregation.UNIQUE_COUNT:
                continue
            window = windows.setdefault(
                metric.pk, {"metric": metric, "first": period.start_day, "stop": stop, "subscriptions": []}
            )
            window["first"] = min(window["first"], period.start_day)
            window["stop"] = max(window["stop"], stop)
            window["subscriptions"].append(subscription)
    charts = []
    for window in windows.values():
        metric = window["metric"]
        daily = daily_distinct(customer=customer, metric=metric, first=window["first"], stop=window["stop"])
        labels = [f"{day:%b} {day.day}" for day, _, _ in daily]
        audit = admin_url("billing_subscription_audit", window["subscriptions"][0].pk)
        charts.append(
            {
                "subscriptions": window["subscriptions"],
                "key": f"{window['subscriptions'][0].external_id}-{metric.code}",
                "metric": metric,
                "first_day": window["first"],
                "last_day": window["stop"] - timedelta(days=1),
                "so_far": format_quantity(Decimal(daily[-1][2] if daily else 0)),
                # The chart functions escape every label (billing.documents.charts).
                "per_day": mark_safe(
                    bar_chart(
                        [(label, seen) for label, (_, seen, _) in zip(labels, daily, strict=True)],
                        title=f"{metric.name}: distinct values seen each day",
                        height=200,
                    )
                ),
                "cumulative": mark_safe(
                    line_chart(
                        [(label, so_far) for label, (_, _, so_far) in zip(labels, daily, strict=True)],
                        title=f"{metric.name}: distinct values so far this period",
                        height=200,
                    )
                ),
                "audit_url": f"{audit}?metric={metric.code}" if audit else None,
            }
        )
    return charts

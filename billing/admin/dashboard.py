"""The billing dashboard: what finance looks at first, on one admin page.

Linked from the top of the admin index for staff who may view invoices, at
admin/billing/invoice/dashboard/ (registered by billing.admin.invoices.InvoiceAdmin.get_urls).

- Revenue invoiced: finalized and paid invoice totals by the month of their issue date
  (`issued_on`, the finalization day in the customer's zone), per currency; this month, last
  month, and a bar chart of the last 12 months. "This month" is the site's (TIME_ZONE) month.
- Open period so far: the invoice preview total of billing.selectors.usage.current_usage (the same
  measurement and pricing as the API and invoices) summed per currency. Its cost is a few queries
  per subscription, one of them counting the period's events, so it is bounded: with more than
  PREVIEWED_SUBSCRIPTIONS active subscriptions only that many are previewed, those of the
  customers with the most distinct values (MTUs) this month first, then those with the highest
  base fee; the page then says how many it left out. At the default of 50 the figure costs
  about 150 small queries (≈0.1–0.3 s on PostgreSQL), whatever the number of subscriptions.
- Drafts waiting for finalization and finalized invoices not paid: counts, amounts per currency,
  and links to the invoice list filtered on them.
- Overdue: finalized invoices with something due past their due date (in each customer's time
  zone), their count and the amount due per currency, linking to the receivables aging report
  (billing.selectors.receivables.aging_report: three queries).
- Upgrade list: customers whose distinct values this month pass a usage limit of their active
  plan (Free customers above 1,000 MTUs), with their count.
- Top customers by distinct values (MTUs) this month.
- Commitments whose term ends in the next EXPIRING_DAYS days with a balance left (it expires).
- Failed webhook deliveries (every attempt failed), shown only when there are any, linking to
  the deliveries log (billing.admin.webhook_deliveries) filtered on them, for staff who may view
  it: one COUNT.

"This month" for distinct values is each customer's calendar month in their own time zone: the
maintained sets are kept per local month, with their sizes beside them (metering.models.DistinctCount,
one row per customer, metric and month), so these figures share one query over the month's sizes:
no event scan, and no scan of the values (which cost ≈0.1 s per 300,000). For calendar billing
(the default) the month is the open period; for anniversary billing it is an approximation of
it, which the page states.

Every figure is a fixed number of queries, independent of the number of invoices, customers or
events (tests/billing/admin/test_dashboard.py checks it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.safestring import mark_safe

from billing.admin.invoice_filters import UNPAID
from billing.admin.shared import admin_page, admin_url, may_view
from billing.documents.charts import Number, bar_chart
from billing.documents.formats import format_money, format_quantity
from billing.engine.money import ZERO
from billing.engine.periods import add_months, month_start
from billing.models import (
    DeliveryStatus,
    Invoice,
    InvoiceStatus,
    WebhookDelivery,
)
from billing.selectors.dashboard import (
    EXPIRING_DAYS,
    TOP_CUSTOMERS,
    CustomerCount,
    Revenue,
    UpgradeList,
    expiring_commitments,
    failed_webhook_deliveries,
    month_condition,
    month_counts,
    open_invoices,
    open_period_revenue,
    over_limit,
    revenue_by_month,
    top_customers,
)
from billing.selectors.receivables import aging_report
from customers.models import Customer
from metering.days import local_date
from metering.models import Aggregation, BillableMetric

# Messages are constants so tests can match them.
PREVIEW_PARTIAL_NOTE = (
    "Previewed {previewed} of {active} active subscriptions (those of the customers with the most "
    "distinct values this month first): the others are not in this figure."
)
PREVIEW_ERRORS_NOTE = "{count} subscription(s) could not be priced and are left out: {names}."


# --- The page -----------------------------------------------------------------------------------


def money_by_currency(totals: dict[str, Decimal]) -> list[str]:
    """["$1,200.00", "€30.00"]: one formatted amount per currency, in currency order."""
    return [format_money(amount, currency) for currency, amount in sorted(totals.items())]


def _changelist(query: str) -> str | None:
    url = admin_url("billing_invoice_changelist")
    return f"{url}?{query}" if url else None


def _customer_row(row: CustomerCount) -> dict[str, Any]:
    return {
        "customer": row.customer,
        "url": admin_url("customers_customer_change", row.customer.pk),
        "metric": row.metric,
        "count": format_quantity(Decimal(row.count)),
        "plan": row.plan,
        "limit": format_quantity(row.limit) if row.limit is not None else "",
        "excess": format_quantity(row.count - row.limit) if row.limit is not None else "",
    }


def revenue_charts(revenue: Revenue) -> list[dict[str, Any]]:
    charts = []
    for currency in sorted(revenue.by_currency):
        by_month = revenue.by_currency[currency]
        points = [(f"{month:%b %Y}", by_month.get(month, ZERO)) for month in revenue.months]

        def money(value: Number, cur: str = currency) -> str:
            return format_money(Decimal(value), cur)

        svg = bar_chart(points, title=f"Revenue invoiced per month ({currency})", value_format=money)
        # The chart escapes every label itself (billing.documents.charts).
        charts.append({"currency": currency, "svg": mark_safe(svg)})
    return charts


def dashboard_context(now: datetime) -> dict[str, Any]:
    today = timezone.localdate(now)
    this_month = month_start(today)
    last_month = add_months(this_month, -1)
    revenue = revenue_by_month(today)
    invoices = open_invoices()
    metrics = {m.pk: m for m in BillableMetric.objects.filter(aggregation=Aggregation.UNIQUE_COUNT)}
    counts = month_counts(month_condition(now), metrics) if metrics else {}
    preview = open_period_revenue(now, counts)
    upgrades = over_limit(counts, metrics) if metrics else UpgradeList([], 0, False)
    expiring = expiring_commitments(now)
    aging = aging_report(now=now)
    return {
        # Nothing invoiced reads as money too, in the currency customers get by default.
        "zero_money": format_money(ZERO, Customer._meta.get_field("currency").get_default()),
        "now": now,
        "this_month": this_month,
        "last_month": last_month,
        "revenue_this_month": money_by_currency(revenue.month_totals(this_month)),
        "revenue_last_month": money_by_currency(revenue.month_totals(last_month)),
        "revenue_charts": revenue_charts(revenue),
        "open_period": money_by_currency(preview.totals),
        "open_period_note": PREVIEW_PARTIAL_NOTE.format(previewed=preview.previewed, active=preview.active)
        if preview.previewed < preview.active
        else "",
        "open_period_active": preview.active,
        "open_period_errors": PREVIEW_ERRORS_NOTE.format(count=len(preview.errors), names=", ".join(preview.errors))
        if preview.errors
        else "",
        "drafts": invoices.drafts,
        "drafts_amount": money_by_currency(invoices.draft_totals),
        "drafts_url": _changelist(f"status__exact={InvoiceStatus.DRAFT}"),
        "unpaid": invoices.unpaid,
        "unpaid_amount": money_by_currency(invoices.unpaid_totals),
        "unpaid_url": _changelist(f"settlement={UNPAID}"),
        "overdue": sum(total.overdue_invoices for total in aging.totals.values()),
        "overdue_amount": money_by_currency(
            {currency: total.overdue for currency, total in aging.totals.items() if total.overdue}
        ),
        "receivables_url": admin_url("billing_receivables"),
        "upgrades": [_customer_row(row) for row in upgrades.rows],
        "upgrades_total": upgrades.total,
        "upgrades_more": upgrades.more,
        "top_customers": [_customer_row(row) for row in top_customers(counts, metrics)],
        "expiring": [
            {
                "commitment": row.commitment,
                "url": admin_url("billing_commitment_change", row.commitment.pk),
                "customer": row.commitment.subscription.customer,
                "subscription": row.commitment.subscription.external_id,
                "term_end": local_date(
                    row.commitment.term_end - timedelta(microseconds=1), row.commitment.subscription.customer.timezone
                ),
                "auto_renew": row.commitment.auto_renew,
                "balance": format_money(row.balance, row.commitment.currency),
            }
            for row in expiring
        ],
        "expiring_days": EXPIRING_DAYS,
        "top_count": TOP_CUSTOMERS,
    }


def webhooks_context(request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> dict[str, Any]:
    """Failed webhook deliveries, for staff who may view the deliveries log (others are not told)."""
    url = admin_url("billing_webhookdelivery_changelist")
    if url is None or not may_view(request, model_admin, WebhookDelivery):
        return {"webhooks_failed": 0}
    return {
        "webhooks_failed": failed_webhook_deliveries(),
        "webhooks_failed_url": f"{url}?status__exact={DeliveryStatus.FAILED}",
    }


def dashboard_view(request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> HttpResponse:
    """The dashboard page, for staff who may view invoices."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    return admin_page(
        model_admin,
        request,
        "admin/billing/dashboard/dashboard.html",
        title="Billing dashboard",
        **dashboard_context(timezone.now()),
        **webhooks_context(request, model_admin),
    )


def home_context(request: HttpRequest, site: admin.AdminSite) -> dict[str, Any]:
    """The dashboard's figures for the admin's home page (config.admin.BackOfficeSite.index), for
    staff who may view invoices; nothing for the others."""
    model_admin = site._registry.get(Invoice)
    if model_admin is None or not model_admin.has_view_permission(request):
        return {}
    return {"dashboard": True, **dashboard_context(timezone.now()), **webhooks_context(request, model_admin)}


def dashboard_urls(model_admin: admin.ModelAdmin[Any]) -> list[URLPattern]:
    """The dashboard's URL, under the invoice admin (whose view permission it asks)."""
    return [
        path(
            "dashboard/",
            model_admin.admin_site.admin_view(dashboard_view),
            {"model_admin": model_admin},
            name="billing_dashboard",
        )
    ]

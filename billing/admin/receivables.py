"""The receivables aging report: who owes what, and how late (DESIGN §6 "Payment terms and payments").

At admin/billing/invoice/receivables/ (linked from the invoice list and the billing dashboard),
for staff who may view invoices; …/receivables/csv/ downloads the same table.

- One row per customer and currency with what is still due on its finalized invoices (total −
  payments − credit-note offsets), spread over "Not yet due", "1–30", "31–60", "61–90" and
  "Over 90" days past the payment due date, counted in the customer's time zone (overdue from
  the customer-local day after the due date); then a total row per currency. Currencies are
  never added together.
- The figures are billing.selectors.receivables.aging_report: three queries whatever the number
  of invoices, and exact Decimal sums.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import URLPattern, path
from django.utils import timezone

from billing.admin.invoice_filters import OVERDUE, UNPAID
from billing.admin.shared import admin_page, admin_url, csv_response
from billing.documents.formats import format_amount
from billing.engine.money import quantize_money
from billing.selectors.receivables import BUCKETS, AgingReport, AgingRow, AgingTotal, aging_report

CSV_HEADER = (
    "currency",
    "customer external id",
    "customer name",
    "invoices due",
    *(bucket.label for bucket in BUCKETS),
    "total due",
)
TOTAL_LABEL = "Total"


def invoice_list_url(query: str) -> str | None:
    url = admin_url("billing_invoice_changelist")
    return f"{url}?{query}" if url else None


def _row(row: AgingRow) -> dict[str, Any]:
    currency = row.currency
    return {
        "customer": row.name or row.external_id,
        "external_id": row.external_id,
        "customer_url": admin_url("customers_customer_change", row.customer_id),
        "invoices": row.invoices,
        "invoices_url": invoice_list_url(f"customer={row.external_id}&settlement={UNPAID}"),
        "amounts": [format_amount(amount, currency) if amount else "" for amount in row.amounts],
        "total": format_amount(row.total, currency),
        "overdue": row.overdue > 0,
    }


def _total(total: AgingTotal) -> dict[str, Any]:
    currency = total.currency
    return {
        "currency": currency,
        "customers": total.customers,
        "invoices": total.invoices,
        "amounts": [format_amount(amount, currency) for amount in total.amounts],
        "total": format_amount(total.total, currency),
        "overdue": format_amount(total.overdue, currency),
        "overdue_invoices": total.overdue_invoices,
    }


def aging_context(report: AgingReport) -> dict[str, Any]:
    return {
        "buckets": BUCKETS,
        "as_of": timezone.localtime(report.as_of),
        "currencies": [
            {**_total(total), "rows": [_row(row) for row in report.rows_in(currency)]}
            for currency, total in report.totals.items()
        ],
        "csv_url": admin_url("billing_receivables_csv"),
        "overdue_url": invoice_list_url(f"settlement={OVERDUE}"),
        "unpaid_url": invoice_list_url(f"settlement={UNPAID}"),
    }


def _check(request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def aging_view(request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> HttpResponse:
    """The aging report page, for staff who may view invoices."""
    _check(request, model_admin)
    report = aging_report(now=timezone.now())
    return admin_page(
        model_admin,
        request,
        "admin/billing/receivables/aging.html",
        title="Receivables aging",
        **aging_context(report),
    )


def csv_rows(report: AgingReport) -> Iterator[tuple[Any, ...]]:
    """The page's table: each customer's row, then its currency's total row."""

    def amounts(values: list[Any], currency: str) -> list[str]:
        return [str(quantize_money(value, currency)) for value in values]

    for currency, total in report.totals.items():
        for row in report.rows_in(currency):
            yield (
                currency,
                row.external_id,
                row.name,
                row.invoices,
                *amounts(row.amounts, currency),
                str(quantize_money(row.total, currency)),
            )
        yield (
            currency,
            "",
            TOTAL_LABEL,
            total.invoices,
            *amounts(total.amounts, currency),
            str(quantize_money(total.total, currency)),
        )


def aging_csv_view(request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> StreamingHttpResponse:
    """The aging report as CSV: amounts rounded to each currency's minor unit, without grouping."""
    _check(request, model_admin)
    now = timezone.now()
    report = aging_report(now=now)
    return csv_response(f"receivables-aging-{timezone.localdate(now):%Y-%m-%d}.csv", CSV_HEADER, csv_rows(report))


def receivables_urls(model_admin: admin.ModelAdmin[Any]) -> list[URLPattern]:
    """The aging report's URLs, under the invoice admin (whose view permission they ask)."""
    site = model_admin.admin_site
    return [
        path("receivables/", site.admin_view(aging_view), {"model_admin": model_admin}, name="billing_receivables"),
        path(
            "receivables/csv/",
            site.admin_view(aging_csv_view),
            {"model_admin": model_admin},
            name="billing_receivables_csv",
        ),
    ]

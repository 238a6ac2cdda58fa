"""The invoice list's filters: by plan family, by the month a period starts in (in each
customer's own time zone), by customer, and by what is due (not paid, overdue); and the local
days of an invoice's period, which the list shows."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from billing.admin.shared import CustomerFilter
from billing.admin.subscriptions import PlanCodeFilter
from billing.engine.periods import add_months, month_start
from billing.models import Invoice
from billing.selectors.receivables import overdue_condition, unsettled_invoices
from customers.models import Customer
from metering.days import day_start, local_date

# The values of the payment filter (SettlementFilter), which the dashboard links to.
UNPAID = "unpaid"
OVERDUE = "overdue"
# Months offered by the period filter, newest first.
MONTHS_LISTED = 36


def period_days(invoice: Invoice) -> tuple[date, date]:
    """The first and last day (inclusive) of the invoice's period, in the customer's time zone;
    a dated invoice (one-off, wallet purchase: no period) has its day for both."""
    tz = invoice.customer.timezone
    if invoice.period_start == invoice.period_end:
        day = local_date(invoice.period_start, tz)
        return day, day
    return local_date(invoice.period_start, tz), local_date(invoice.period_end, tz) - timedelta(days=1)


class InvoicePlanFilter(PlanCodeFilter):
    """By the plan family (code) of the invoice's subscription, whatever the version."""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(subscription__plan__code=self.value())
        return queryset


class PeriodMonthFilter(admin.SimpleListFilter):
    """Invoices whose period starts in a month, in each customer's own time zone.

    A period starts at local midnight, so the October period of a customer in Tokyo starts on
    September 30 in UTC: comparing UTC months would file it under September. The filter instead
    compares each customer's period start with that month's bounds in the customer's zone (one
    condition per time zone in use, which are few).
    """

    title = "period"
    parameter_name = "period"

    def _month(self) -> date | None:
        value = self.value()
        if not value:
            return None
        try:
            year, month = (int(part) for part in value.split("-"))
            if not 1 < year < 9999:  # keeps the month after it a valid date too
                raise ValueError(value)
            return date(year, month, 1)
        except ValueError as exc:
            raise IncorrectLookupParameters(f"period must be YYYY-MM, not {value!r}") from exc

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        ordered = Invoice.objects.values_list("period_start", "customer__timezone")
        first = ordered.order_by("period_start").first()
        last = ordered.order_by("-period_start").first()
        if first is None or last is None:
            return []
        month = month_start(local_date(last[0], last[1]))
        stop = month_start(local_date(first[0], first[1]))
        choices: list[tuple[str, str]] = []
        while month >= stop and len(choices) < MONTHS_LISTED:
            choices.append((f"{month:%Y-%m}", f"{month:%B %Y}"))
            month = month_start(month - timedelta(days=1))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        month = self._month()
        if month is None:
            return queryset
        following = add_months(month, 1)
        zones = Customer.all_objects.order_by().values_list("timezone", flat=True).distinct()
        condition = Q(pk__in=[])
        for tz in zones:
            condition |= Q(
                customer__timezone=tz,
                period_start__gte=day_start(month, tz),
                period_start__lt=day_start(following, tz),
            )
        return queryset.filter(condition)


class InvoiceCustomerFilter(CustomerFilter):
    """By customer (external id); see CustomerFilter."""

    path = "customer"


class SettlementFilter(admin.SimpleListFilter):
    """Finalized invoices with something still due ("not paid"), and those of them past their due
    date in their customer's time zone ("overdue", DESIGN §6: from the day after the due date)."""

    title = "payment"
    parameter_name = "settlement"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(UNPAID, "Not paid (finalized)"), (OVERDUE, "Overdue")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        if self.value() == UNPAID:
            return unsettled_invoices(queryset)
        if self.value() == OVERDUE:
            return queryset.filter(overdue_condition(timezone.now()))
        return queryset

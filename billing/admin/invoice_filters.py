"""The invoice list's filters: by plan family, by the month a period starts in (in each
customer's own time zone), and by customer."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest

from billing.admin.subscriptions import PlanCodeFilter
from billing.engine.periods import add_months, month_start
from billing.models import Invoice
from customers.models import Customer
from metering.days import day_start, local_date

# Customers with invoices listed in the customer filter; with more, search by name or id.
CUSTOMERS_LISTED = 30
# Months offered by the period filter, newest first.
MONTHS_LISTED = 36


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
        zones = Customer.objects.order_by().values_list("timezone", flat=True).distinct()
        condition = Q(pk__in=[])
        for tz in zones:
            condition |= Q(
                customer__timezone=tz,
                period_start__gte=day_start(month, tz),
                period_start__lt=day_start(following, tz),
            )
        return queryset.filter(condition)


class InvoiceCustomerFilter(admin.SimpleListFilter):
    """By customer (external id). Lists the invoiced customers while they are few; past
    CUSTOMERS_LISTED only the chosen one is shown, and search finds the others by name or id."""

    title = "customer"
    parameter_name = "customer"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        invoiced = (
            Customer.objects.filter(Exists(Invoice.objects.filter(customer=OuterRef("pk"))))
            .order_by("external_id")
            .only("external_id", "name")
        )
        customers = list(invoiced[: CUSTOMERS_LISTED + 1])
        if len(customers) > CUSTOMERS_LISTED:
            customers = list(invoiced.filter(external_id=self.value())) if self.value() else []
        return [(c.external_id, str(c)) for c in customers]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        if self.value():
            return queryset.filter(customer__external_id=self.value())
        return queryset

"""The invoice list's filters (query parameters, all optional, combined with AND).

- `external_customer_id`; `status` (draft, finalized, voided); `payment_status` (pending,
  succeeded, failed); `invoice_type` (Lago's: subscription, one_off, credit); `kind` (ours:
  period, advance, commitment); `payment_overdue` (true or false);
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
from django.utils import timezone

from billing.engine.periods import add_months
from billing.engine.vocabulary import INVOICE_TYPE, InvoiceKind, InvoiceStatus, InvoiceType, PaymentStatus
from billing.models import Invoice
from customers.models import Customer
from metering.days import day_start, local_date
from metering.validation import EARLIEST, LATEST

BAD_MONTH = "must be a month as YYYY-MM from 2000-01 to 2099-12, e.g. 2026-09"
BAD_DATE = "must be a date as YYYY-MM-DD from 2000-01-01 to 2099-12-31, e.g. 2026-09-30"
BAD_CHOICE = "must be one of: {choices}"
RANGE_REVERSED = "must not be before {other}"


def _overdue(qs: QuerySet[Invoice], overdue: bool) -> QuerySet[Invoice]:
    """Finalized, not settled, and past its due date in the customer's time zone (per zone)."""
    unsettled = Q(status=InvoiceStatus.FINALIZED) & ~Q(payment_status=PaymentStatus.SUCCEEDED)

    def past_due(tz: str) -> Q:
        return Q(payment_due_date__lt=local_date(timezone.now(), tz))

    condition = unsettled & _per_zone(qs, past_due)
    return qs.filter(condition) if overdue else qs.exclude(condition)


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


def parse_date(value: str) -> date | None:
    """A YYYY-MM-DD query parameter within the API's window, or None."""
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
        period_due, other_due = Q(kind=InvoiceKind.PERIOD), ~Q(kind=InvoiceKind.PERIOD)
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
    for name, choices, lookup in (
        ("status", InvoiceStatus.values, "status"),
        ("payment_status", PaymentStatus.values, "payment_status"),
        ("invoice_type", InvoiceType.values, "kind__in"),
        ("kind", InvoiceKind.values, "kind"),
    ):
        value = params.get(name)
        if value:
            if value not in choices:
                errors[name] = [BAD_CHOICE.format(choices=", ".join(choices))]
            elif name == "invoice_type":  # Lago's type is ours, coarser
                qs = qs.filter(kind__in=[kind for kind, lago in INVOICE_TYPE.items() if lago == value])
            else:
                qs = qs.filter(**{lookup: value})
    overdue = params.get("payment_overdue")
    if overdue:
        if overdue not in ("true", "false"):
            errors["payment_overdue"] = [BAD_CHOICE.format(choices="true, false")]
        else:
            qs = _overdue(qs, overdue == "true")
    dates: dict[str, date] = {}
    for name in ("issuing_date_from", "issuing_date_to", "period_from", "period_to"):
        if params.get(name):
            parsed = parse_date(params[name])
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

"""The invoice list's filters (query parameters, all optional, combined with AND): Lago's
(InvoiceIndex, InvoicesQuery) and a few of our own. Any other parameter is 422 naming it.

Lago's:
- `external_customer_id` (or Lago's alias `customer_external_id`); `currency`;
- `status` / `statuses`, `payment_status` / `payment_statuses`, `invoice_type` (subscription,
  one_off, credit): one value or several (`status[]=draft&status[]=finalized`, or repeated);
- `payment_overdue`, `partially_paid` (something paid, something left), `self_billed` and
  `payment_dispute_lost` (true or false; there are no self-billed invoices and no payment
  disputes here, so true finds none);
- `issuing_date_from` / `issuing_date_to` (YYYY-MM-DD, inclusive);
- `amount_from` / `amount_to` (integer cents, inclusive): `total_amount_cents`;
- `search_term`: a part of the number, or of the customer's name, first or last name, external
  id or email (case-insensitive), or the invoice's lago_id;
- `metadata[key]=value`: invoices with that metadata pair (every pair given); an empty value:
  invoices without that key;
- `purchase_order_number`: invoices have none here, so it finds none;
- `billing_entity_codes[]`: billing entities are not part of this app: 422.
Ours:
- `kind` (period, advance, commitment);
- `period=YYYY-MM`: the issuing month. A finalized invoice's issuing date is the day it was
  finalized (in the customer's time zone); a draft's is the day it is due: the day its period
  ends for a period invoice, the day it starts for an advance or commitment invoice (the issuing
  date filters read the same date);
- `period_from` / `period_to` (YYYY-MM-DD, inclusive): invoices whose billing period covers at
  least one day of that range, in the customer's time zone.
Dates are the customer's calendar days: the filters are built per time zone in use, so a Paris
customer's October invoice starts on 2026-10-01 there although it is 2026-09-30T22:00Z.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.api.list_params import (
    BAD_CHOICE,
    NO_BILLING_ENTITIES,
    RANGE_REVERSED,
    amount_between,
    customer_search,
    list_params_errors,
    metadata_pairs,
    parse_amounts,
    parse_booleans,
    values_of,
    with_metadata,
)
from billing.engine.periods import add_months
from billing.engine.vocabulary import INVOICE_TYPE, InvoiceKind, InvoiceStatus, InvoiceType, PaymentStatus
from billing.models import Invoice, Payment
from config.api import object_id
from customers.models import Customer
from metering.days import day_start, local_date
from metering.validation import EARLIEST, LATEST

BAD_MONTH = "must be a month as YYYY-MM from 2000-01 to 2099-12, e.g. 2026-09"
BAD_DATE = "must be a date as YYYY-MM-DD from 2000-01-01 to 2099-12-31, e.g. 2026-09-30"
FILTERS = (
    "external_customer_id",
    "customer_external_id",
    "currency",
    "status",
    "statuses",
    "payment_status",
    "payment_statuses",
    "invoice_type",
    "kind",
    "payment_overdue",
    "partially_paid",
    "self_billed",
    "payment_dispute_lost",
    "issuing_date_from",
    "issuing_date_to",
    "amount_from",
    "amount_to",
    "search_term",
    "purchase_order_number",
    "billing_entity_codes",
    "period",
    "period_from",
    "period_to",
    "metadata[key]",
)


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
    zones = Customer.all_objects.filter(pk__in=qs.values("customer_id")).values_list("timezone", flat=True).distinct()
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


# --- the invoice list ----------------------------------------------------------------------------


def _with_paid(qs: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """Each invoice with `paid_amount`: what its payments add up to (a subquery, not a join, so the
    other filters' joins do not multiply it)."""
    paid = (
        Payment.objects.filter(invoice=OuterRef("pk"))
        .order_by()
        .values("invoice")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    money = DecimalField(max_digits=24, decimal_places=5)
    return qs.annotate(paid_amount=Coalesce(Subquery(paid, output_field=money), Value(Decimal(0)), output_field=money))


def filter_invoices(qs: QuerySet[Invoice], params: Any) -> QuerySet[Invoice] | dict[str, list[str]]:
    """Apply the query parameters; returns the filtered queryset or the errors by parameter."""
    errors = list_params_errors(params, FILTERS)
    if values_of(params, "billing_entity_codes"):
        errors["billing_entity_codes"] = [NO_BILLING_ENTITIES]
    customer = params.get("external_customer_id") or params.get("customer_external_id")
    if customer:
        qs = qs.filter(customer__external_id=customer, customer__deleted_at__isnull=True)
    if params.get("currency"):
        qs = qs.filter(currency=params["currency"].upper())
    for names, choices in (
        (("status", "statuses"), InvoiceStatus.values),
        (("payment_status", "payment_statuses"), PaymentStatus.values),
        (("invoice_type",), InvoiceType.values),
        (("kind",), InvoiceKind.values),
    ):
        values = values_of(params, *names)
        if not values:
            continue
        if any(value not in choices for value in values):
            sent = next(name for name in names if values_of(params, name))
            errors[sent] = [BAD_CHOICE.format(choices=", ".join(choices))]
        elif names[0] == "invoice_type":  # Lago's type is ours, coarser
            qs = qs.filter(kind__in=[kind for kind, lago in INVOICE_TYPE.items() if lago in values])
        else:
            qs = qs.filter(**{f"{names[0]}__in": values})
    flags = parse_booleans(params, ("payment_overdue", "partially_paid", "self_billed", "payment_dispute_lost"), errors)
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
    amounts = parse_amounts(params, errors)
    month = None
    if params.get("period"):
        month = _parse_month(params["period"])
        if month is None:
            errors["period"] = [BAD_MONTH]
    if errors:
        return errors
    if "payment_overdue" in flags:
        qs = _overdue(qs, flags["payment_overdue"])
    if flags.get("self_billed") or flags.get("payment_dispute_lost") or params.get("purchase_order_number"):
        qs = qs.none()  # none of these exists here: asking for them finds nothing
    if "partially_paid" in flags:
        qs = _with_paid(qs)
        partly = Q(paid_amount__gt=0) & Q(total__gt=F("paid_amount"))
        qs = qs.filter(partly) if flags["partially_paid"] else qs.exclude(partly)
    one_day = timedelta(days=1)
    if month is not None:
        qs = _issued_between(qs, *month)
    if "issuing_date_from" in dates or "issuing_date_to" in dates:
        to = dates.get("issuing_date_to")
        qs = _issued_between(qs, dates.get("issuing_date_from"), to + one_day if to else None)
    if "period_from" in dates or "period_to" in dates:
        to = dates.get("period_to")
        qs = _covering(qs, dates.get("period_from"), to + one_day if to else None)
    if amounts:
        qs = qs.filter(amount_between(qs, "total", amounts.get("amount_from"), amounts.get("amount_to")))
    term = (params.get("search_term") or "").strip()
    if term:
        pk = object_id(term)
        by_id = Q(pk=pk) if pk is not None else Q(pk__in=[])
        qs = qs.filter(Q(number__icontains=term) | customer_search(term) | by_id)
    return with_metadata(qs, metadata_pairs(params))

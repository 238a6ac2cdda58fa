"""The credit note list's filters: Lago's (CreditNotesQuery), as query parameters, all optional,
combined with AND.

- `external_customer_id`; `invoice_id` (ours: the invoice's lago_id); `invoice_number`; `currency`;
- `reason`, `credit_status`, `refund_status` and `types` (credit, refund, offset: a note with a
  part of that kind): one value, or several as Lago's clients send them (`types[]=credit&types[]=
  refund`, or the name repeated); a note matching any of them is kept;
- `issuing_date_from` / `issuing_date_to` (YYYY-MM-DD, inclusive): the note's issuing date;
- `amount_from` / `amount_to` (integer cents, inclusive): its `total_amount_cents`;
- `search_term`: a part of its number, or of its customer's name, first or last name, external
  id or email (case-insensitive), or its lago_id;
- `self_billed` (true or false): there are no self-billed invoices here, so true finds none.
A value that is not one of these is 422 naming the parameter, never ignored.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from billing.api.invoice_filters import BAD_CHOICE, BAD_DATE, RANGE_REVERSED, parse_date
from billing.engine.money import from_cents
from billing.engine.vocabulary import CreditNoteReason, CreditStatus, RefundStatus
from billing.models import CreditNote
from config.api import ascii_int, object_id

BAD_INVOICE = "must be an invoice's lago_id"
BAD_AMOUNT = "must be a whole number of cents from 0 to {maximum}"
MAX_AMOUNT_CENTS = 10**15
BOOLEANS = {"true": True, "false": False}
TYPES = {"credit": "credit_amount__gt", "refund": "refund_amount__gt", "offset": "offset_amount__gt"}
CHOICES = {
    "reason": CreditNoteReason.values,
    "credit_status": CreditStatus.values,
    "refund_status": RefundStatus.values,
    "types": list(TYPES),
}


def _values(params: Any, name: str) -> list[str]:
    """Every value of a parameter that may be a list: `name`, `name[]`, repeated or not."""
    getlist = getattr(params, "getlist", None)
    if getlist is None:  # a plain dict
        value = params.get(name)
        return [value] if value else []
    return [value for key in (name, f"{name}[]") for value in getlist(key) if value]


def filter_credit_notes(qs: QuerySet[CreditNote], params: Any) -> QuerySet[CreditNote] | dict[str, list[str]]:
    """Apply the query parameters; returns the filtered queryset or the errors by parameter."""
    errors: dict[str, list[str]] = {}
    if params.get("external_customer_id"):
        qs = qs.filter(customer__external_id=params["external_customer_id"])
    if params.get("invoice_id"):
        pk = object_id(params["invoice_id"])
        if pk is None:
            errors["invoice_id"] = [BAD_INVOICE]
        else:
            qs = qs.filter(invoice_id=pk)
    if params.get("invoice_number"):
        qs = qs.filter(invoice__number=params["invoice_number"])
    if params.get("currency"):
        qs = qs.filter(currency=params["currency"].upper())
    for name, choices in CHOICES.items():
        values = _values(params, name)
        if not values:
            continue
        if any(value not in choices for value in values):
            errors[name] = [BAD_CHOICE.format(choices=", ".join(choices))]
        elif name == "types":
            any_part = Q(pk__in=[])
            for value in values:
                any_part |= Q(**{TYPES[value]: 0})
            qs = qs.filter(any_part)
        else:
            qs = qs.filter(**{f"{name}__in": values})
    days = {}
    for name in ("issuing_date_from", "issuing_date_to"):
        if params.get(name):
            day = parse_date(params[name])
            if day is None:
                errors[name] = [BAD_DATE]
            else:
                days[name] = day
    if len(days) == 2 and days["issuing_date_to"] < days["issuing_date_from"]:
        errors["issuing_date_to"] = [RANGE_REVERSED.format(other="issuing_date_from")]
    amounts = {}
    for name in ("amount_from", "amount_to"):
        if params.get(name):
            cents = ascii_int(params[name], minimum=0, maximum=MAX_AMOUNT_CENTS)
            if cents is None:
                errors[name] = [BAD_AMOUNT.format(maximum=MAX_AMOUNT_CENTS)]
            else:
                amounts[name] = cents
    if len(amounts) == 2 and amounts["amount_to"] < amounts["amount_from"]:
        errors["amount_to"] = [RANGE_REVERSED.format(other="amount_from")]
    self_billed = params.get("self_billed")
    if self_billed and self_billed not in BOOLEANS:
        errors["self_billed"] = [BAD_CHOICE.format(choices="true, false")]
    if errors:
        return errors
    if "issuing_date_from" in days:
        qs = qs.filter(issued_on__gte=days["issuing_date_from"])
    if "issuing_date_to" in days:
        qs = qs.filter(issued_on__lte=days["issuing_date_to"])
    if amounts:
        qs = qs.filter(_amount_between(qs, amounts.get("amount_from"), amounts.get("amount_to")))
    if self_billed and BOOLEANS[self_billed]:
        qs = qs.none()
    term = (params.get("search_term") or "").strip()
    if term:
        qs = qs.filter(_search(term))
    return qs


def _amount_between(qs: QuerySet[CreditNote], low: int | None, high: int | None) -> Q:
    """Notes whose total in cents is within [low, high], per currency (cents differ by currency)."""
    condition = Q(pk__in=[])
    for currency in qs.order_by().values_list("currency", flat=True).distinct():
        per_currency = Q(currency=currency)
        if low is not None:
            per_currency &= Q(total_amount__gte=from_cents(low, currency))
        if high is not None:
            per_currency &= Q(total_amount__lte=from_cents(high, currency))
        condition |= per_currency
    return condition


def _search(term: str) -> Q:
    condition = Q(number__icontains=term)
    for field in ("name", "firstname", "lastname", "external_id", "email"):
        condition |= Q(**{f"customer__{field}__icontains": term})
    pk = object_id(term)
    if pk is not None:
        condition |= Q(pk=pk)
    return condition

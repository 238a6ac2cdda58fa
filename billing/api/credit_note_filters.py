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
- `self_billed` (true or false): there are no self-billed invoices here, so true finds none;
- `purchase_order_number`: invoices have none here, so it finds none;
- `billing_entity_codes[]`: billing entities are not part of this app: 422.
A value that is not one of these, or any other parameter, is 422 naming the parameter, never
ignored.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from billing.api.invoice_filters import BAD_DATE, parse_date
from billing.api.list_params import (
    BAD_CHOICE,
    NO_BILLING_ENTITIES,
    RANGE_REVERSED,
    amount_between,
    customer_search,
    list_params_errors,
    parse_amounts,
    parse_booleans,
    values_of,
)
from billing.engine.vocabulary import CreditNoteReason, CreditStatus, RefundStatus
from billing.models import CreditNote
from config.api import object_id

BAD_INVOICE = "must be an invoice's lago_id"
TYPES = {"credit": "credit_amount__gt", "refund": "refund_amount__gt", "offset": "offset_amount__gt"}
CHOICES = {
    "reason": CreditNoteReason.values,
    "credit_status": CreditStatus.values,
    "refund_status": RefundStatus.values,
    "types": list(TYPES),
}
FILTERS = (
    "external_customer_id",
    "invoice_id",
    "invoice_number",
    "currency",
    *CHOICES,
    "issuing_date_from",
    "issuing_date_to",
    "amount_from",
    "amount_to",
    "search_term",
    "self_billed",
    "purchase_order_number",
    "billing_entity_codes",
)


def filter_credit_notes(qs: QuerySet[CreditNote], params: Any) -> QuerySet[CreditNote] | dict[str, list[str]]:
    """Apply the query parameters; returns the filtered queryset or the errors by parameter."""
    errors = list_params_errors(params, FILTERS)
    if values_of(params, "billing_entity_codes"):
        errors["billing_entity_codes"] = [NO_BILLING_ENTITIES]
    if params.get("external_customer_id"):
        qs = qs.filter(customer__external_id=params["external_customer_id"], customer__deleted_at__isnull=True)
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
        values = values_of(params, name)
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
    amounts = parse_amounts(params, errors)
    flags = parse_booleans(params, ("self_billed",), errors)
    if errors:
        return errors
    if "issuing_date_from" in days:
        qs = qs.filter(issued_on__gte=days["issuing_date_from"])
    if "issuing_date_to" in days:
        qs = qs.filter(issued_on__lte=days["issuing_date_to"])
    if amounts:
        qs = qs.filter(amount_between(qs, "total_amount", amounts.get("amount_from"), amounts.get("amount_to")))
    if flags.get("self_billed") or params.get("purchase_order_number"):
        qs = qs.none()  # neither exists here: asking for them finds nothing
    term = (params.get("search_term") or "").strip()
    if term:
        qs = qs.filter(_search(term))
    return qs


def _search(term: str) -> Q:
    condition = Q(number__icontains=term) | customer_search(term)
    pk = object_id(term)
    if pk is not None:
        condition |= Q(pk=pk)
    return condition

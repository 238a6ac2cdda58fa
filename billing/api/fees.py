"""GET /api/v1/fees (Lago's filters, paginated) and GET /api/v1/fees/<lago_id>: the invoices'
fee lines in Lago's FeeResponse shape, rendered by the one fee renderer the invoices use
(billing.api.invoice_json.fee_json; what maps onto what: billing.selectors.fees).

Filters (all optional, combined with AND; any other parameter is 422 naming it):
`external_customer_id`, `external_subscription_id`, `currency`, `billable_metric_code`,
`fee_type` (subscription, charge, commitment, add_on, credit, fixed_charge), `payment_status`
(pending, succeeded, failed, refunded), `event_transaction_id`, `created_at_from` / `_to`,
`succeeded_at_from` / `_to`, `refunded_at_from` / `_to` (ISO 8601 moments, or dates meaning
midnight UTC; inclusive). Nothing here is a fee of one event or refunded, so those filters find
none; `failed_at_from` / `_to` are 422: when a payment failed is not recorded.

Editing or deleting a fee (Lago's PUT and DELETE /fees/<id>, for pay-in-advance fees) is not
offered: fees here are lines of invoices, changed by credit notes and voids.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.invoice_json import fee_json, invoices_for_json
from billing.api.list_params import BAD_CHOICE
from billing.engine.vocabulary import PaymentStatus
from billing.models import Invoice, InvoiceLine
from billing.selectors.fees import FEE_TYPES, PAYMENT_STATUSES, FeeFilters, fee_find, fees_filtered
from config.api import (
    ApiView,
    iso_datetime,
    not_found,
    object_id,
    page_numbers,
    paginated,
    unknown_filters,
    validation_error,
)

TEXT_FILTERS = (
    "external_customer_id",
    "external_subscription_id",
    "currency",
    "billable_metric_code",
    "fee_type",
    "payment_status",
    "event_transaction_id",
)
RANGES = ("created_at", "succeeded_at", "refunded_at", "failed_at")
FILTERS = (*TEXT_FILTERS, *(f"{name}_{end}" for name in RANGES for end in ("from", "to")))
BAD_MOMENT = "must be an ISO 8601 date-time (e.g. 2026-10-01T00:00:00Z) or date (2026-10-01)"
NO_FAILURE_TIMES = "is not supported: the time a payment failed is not recorded"
RANGE_REVERSED = "must not be before {other}"


def parse_moment(value: str) -> datetime | None:
    """An ISO 8601 moment (naive: UTC) or date (its midnight UTC), or None."""
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            return None if day is None else datetime.combine(day, time(), tzinfo=UTC)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def fee_filters(params: Any) -> FeeFilters | dict[str, list[str]]:
    """The query's filters, or the errors by parameter."""
    errors = unknown_filters(params, FILTERS)
    for name in ("failed_at_from", "failed_at_to"):
        if params.get(name):
            errors[name] = [NO_FAILURE_TIMES]
    fee_type = params.get("fee_type") or None
    if fee_type is not None and fee_type not in FEE_TYPES:
        errors["fee_type"] = [BAD_CHOICE.format(choices=", ".join(FEE_TYPES))]
    payment_status = params.get("payment_status") or None
    if payment_status is not None and payment_status not in PAYMENT_STATUSES:
        errors["payment_status"] = [BAD_CHOICE.format(choices=", ".join(PAYMENT_STATUSES))]
    ranges: dict[str, tuple[datetime | None, datetime | None]] = {}
    for name in ("created_at", "succeeded_at", "refunded_at"):
        bounds: list[datetime | None] = []
        for end in ("from", "to"):
            raw = params.get(f"{name}_{end}")
            moment = parse_moment(raw) if raw else None
            if raw and moment is None:
                errors[f"{name}_{end}"] = [BAD_MOMENT]
            bounds.append(moment)
        low, high = bounds
        if low is not None and high is not None and high < low:
            errors[f"{name}_to"] = [RANGE_REVERSED.format(other=f"{name}_from")]
        ranges[name] = (low, high)
    if errors:
        return errors
    return FeeFilters(
        **{name: params.get(name) or None for name in TEXT_FILTERS},
        created_at=ranges["created_at"],
        succeeded_at=ranges["succeeded_at"],
        refunded_at=ranges["refunded_at"],
    )


def fee_answer(line: InvoiceLine, invoice: Invoice) -> dict[str, Any]:
    """fee_json (as in an invoice's fees[]) with the fee's own dates Lago's /fees shows."""
    paid = invoice.payment_status == PaymentStatus.SUCCEEDED
    return {
        **fee_json(line, invoice),
        "self_billed": False,
        "event_transaction_id": None,
        "succeeded_at": iso_datetime(invoice.paid_at) if paid else None,
        "failed_at": None,
        "refunded_at": None,
    }


class FeesView(ApiView):
    @extend_schema(
        operation_id="list_fees",
        summary="List fees (the invoices' fee lines), oldest first, with Lago's filters",
        parameters=[OpenApiParameter(name, str) for name in FILTERS],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        paging = page_numbers(request.query_params)
        filters = fee_filters(request.query_params)
        if isinstance(paging, dict) or isinstance(filters, dict):
            errors = (paging if isinstance(paging, dict) else {}) | (filters if isinstance(filters, dict) else {})
            return validation_error(errors)
        page, per_page = paging
        rows = fees_filtered(filters)
        invoice_ids = set(rows.values_list("invoice_id", flat=True)[(page - 1) * per_page : page * per_page])
        invoices = {invoice.pk: invoice for invoice in invoices_for_json().filter(pk__in=invoice_ids)}
        return Response(
            paginated("fees", rows, page, per_page, lambda line: fee_answer(line, invoices[line.invoice_id]))
        )


class FeeDetailView(ApiView):
    @extend_schema(operation_id="find_fee", summary="Fetch a fee by its lago_id", responses={200: dict})
    def get(self, request: Request, lago_id: str) -> Response:
        pk = object_id(lago_id)
        line = fee_find(pk) if pk is not None else None
        if line is None:
            return not_found("fee")
        invoice = invoices_for_json().get(pk=line.invoice_id)
        return Response({"fee": fee_answer(line, invoice)})

"""Fees (Lago's /api/v1/fees): the fee lines of invoices (base fee, usage, late usage, commitment
prepayment, add-on, wallet credit purchase), whatever the invoice's status, as the invoices show
them in `fees[]` (billing.api.invoice_json.fee_json).

Lago's fee vocabulary onto our lines: `fee_type` subscription → base fee, charge → usage and late
usage, commitment → commitment prepayment, add_on → add-on, credit → wallet purchase;
fixed_charge: none here. A fee's `payment_status` is its invoice's (pending, succeeded, failed;
`refunded`: none here), its `created_at` its invoice's, `succeeded_at` when its invoice was paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from billing.engine.vocabulary import FEE_KINDS, LineKind, PaymentStatus
from billing.models import InvoiceLine
from customers.models import Customer

FEE_TYPES: dict[str, tuple[str, ...]] = {
    "subscription": (LineKind.BASE_FEE,),
    "charge": (LineKind.USAGE, LineKind.LATE_USAGE),
    "commitment": (LineKind.COMMITMENT,),
    "add_on": (LineKind.ADD_ON,),
    "credit": (LineKind.CREDIT_PURCHASE,),
    "fixed_charge": (),
}
PAYMENT_STATUSES = (*PaymentStatus.values, "refunded")


@dataclass(frozen=True)
class FeeFilters:
    """Lago's fee filters, parsed (None or empty: not given); bounds are inclusive, as Lago's."""

    external_customer_id: str | None = None
    external_subscription_id: str | None = None
    currency: str | None = None
    billable_metric_code: str | None = None
    fee_type: str | None = None
    payment_status: str | None = None
    event_transaction_id: str | None = None
    created_at: tuple[datetime | None, datetime | None] = (None, None)
    succeeded_at: tuple[datetime | None, datetime | None] = (None, None)
    refunded_at: tuple[datetime | None, datetime | None] = (None, None)


def fee_lines() -> QuerySet[InvoiceLine]:
    """Every fee line, with what its JSON reads of the line itself."""
    return InvoiceLine.objects.filter(kind__in=FEE_KINDS).select_related("metric")


def fee_find(pk: int) -> InvoiceLine | None:
    return fee_lines().filter(pk=pk).first()


def _between(name: str, bounds: tuple[datetime | None, datetime | None]) -> Q:
    low, high = bounds
    condition = Q()
    if low is not None:
        condition &= Q(**{f"{name}__gte": low})
    if high is not None:
        condition &= Q(**{f"{name}__lte": high})
    return condition


def fees_filtered(filters: FeeFilters) -> QuerySet[InvoiceLine]:
    """The fees matching every filter, oldest first (a stable order for pagination)."""
    qs = fee_lines()
    if filters.external_customer_id:
        # The customer with this id now (a deleted one's fees stay with the deleted row).
        customer = Customer.objects.filter(external_id=filters.external_customer_id).first()
        qs = qs.filter(invoice__customer=customer) if customer is not None else qs.none()
    if filters.external_subscription_id:
        qs = qs.filter(invoice__subscription__external_id=filters.external_subscription_id)
    if filters.currency:
        qs = qs.filter(invoice__currency=filters.currency.upper())
    if filters.billable_metric_code:
        qs = qs.filter(metric__code=filters.billable_metric_code)
    if filters.fee_type:
        qs = qs.filter(kind__in=FEE_TYPES[filters.fee_type])
    if filters.payment_status:
        qs = qs.filter(invoice__payment_status=filters.payment_status)
    if filters.event_transaction_id or any(filters.refunded_at) or filters.payment_status == "refunded":
        # Fees of one event (pay-in-advance charges) and refunded fees do not exist here.
        qs = qs.none()
    qs = qs.filter(_between("invoice__created_at", filters.created_at))
    if any(filters.succeeded_at):
        qs = qs.filter(
            Q(invoice__payment_status=PaymentStatus.SUCCEEDED) & _between("invoice__paid_at", filters.succeeded_at)
        )
    return qs.order_by("id")

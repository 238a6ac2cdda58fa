"""Invoices: write their lines, recompute drafts, finalize, void and mark paid (DESIGN §3).

A period invoice of subscription S for usage period P holds:
- the usage of P, priced per charge, and plan-scope promotion discounts;
- the base fee in arrears for the fee period that ends with P (monthly plans: every period;
  yearly plans: the last month of the year; a termination: the prorated final part);
- `late_usage` lines for earlier finalized periods whose usage grew since they were billed;
- the commitment drawdown.
Plans with `pay_in_advance` get their base fee on an `advance` invoice at the start of each fee
period instead. The lines are computed by one pure function (billing.engine.invoice) from inputs
gathered once (billing.selectors.invoice_inputs); this module writes them.

Invoices are drafts until the grace period (BILLING_GRACE_PERIOD_HOURS) after their period has
passed; drafts are recomputed on every close run, finalized ones never change.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from django.db import connections, router, transaction

from billing.engine.invoice import invoice_lines
from billing.engine.lines import Line, total
from billing.engine.periods import Period
from billing.engine.vocabulary import Interval
from billing.models import Invoice, InvoiceLine, InvoiceStatus, InvoiceType, Subscription
from billing.selectors.invoice_inputs import advance_invoice_inputs, period_invoice_inputs
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import period_of
from billing.services.commitments import drawdown_record, drawdown_reverse, prepayment_reverse
from billing.services.numbering import assign_number
from metering.models import BillableMetric

NOT_A_DRAFT = "invoice {invoice} is {status}; only drafts can change"
CANNOT_VOID = "invoice {invoice} is {status}; only finalized invoices can be voided"
CANNOT_PAY = "invoice {invoice} is {status}; only finalized invoices can be marked paid"
VOID_REASON_REQUIRED = "a reason is required to void an invoice"


class InvoiceError(Exception):
    pass


def metric_ids_for(lines: list[Line], known: dict[str, int] | None = None) -> dict[str, int]:
    """Metric ids by code for the lines' metrics: from `known` (which learns the codes it lacked)
    when given, from the database otherwise."""
    codes = {ln.metric_code for ln in lines if ln.metric_code}
    if known is None:
        return dict(BillableMetric.objects.filter(code__in=codes).values_list("code", "id"))
    missing = codes - known.keys()
    if missing:
        known.update(BillableMetric.objects.filter(code__in=missing).values_list("code", "id"))
    return known


def insert_lines(invoice: Invoice, lines: list[Line], metric_ids: dict[str, int]) -> None:
    """Store the lines of an invoice that has none, in one INSERT.

    The values are prepared by the fields themselves, exactly as bulk_create prepares them; the
    statement is a plain multi-row VALUES, which costs a fraction of bulk_create's (on
    PostgreSQL an UNNEST of arrays that the driver quotes in Python): this runs once per
    invoice of a close.
    """
    if not lines:
        return
    rows = [
        InvoiceLine(
            invoice=invoice,
            position=i,
            kind=ln.kind,
            description=ln.description[:255],
            metric_id=metric_ids.get(ln.metric_code) if ln.metric_code else None,
            quantity=ln.quantity,
            unit_amount=ln.unit_amount,
            amount=ln.amount,
            currency=invoice.currency,
            # An invoice's lines cover dates (only a quote's lines have none).
            period_start=cast(datetime, ln.period_start),
            period_end=cast(datetime, ln.period_end),
            details=ln.details,
        )
        for i, ln in enumerate(lines)
    ]
    fields = [f for f in InvoiceLine._meta.concrete_fields if not f.primary_key]
    connection = connections[router.db_for_write(InvoiceLine)]
    quote = connection.ops.quote_name
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    columns = [cast(str, f.column) for f in fields]  # a concrete field has a column
    sql = (
        f"INSERT INTO {quote(InvoiceLine._meta.db_table)} ({', '.join(quote(column) for column in columns)}) "
        f"VALUES {', '.join([placeholders] * len(rows))}"
    )
    params = [f.get_db_prep_save(f.pre_save(row, True), connection) for row in rows for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def write_draft_lines(invoice: Invoice, lines: list[Line], metric_ids: dict[str, int] | None = None) -> bool:
    """Replace the draft's lines; returns whether anything changed. `metric_ids`: a run's cache
    of metric ids by code (see metric_ids_for)."""
    existing = [
        Line(
            kind=ln.kind,
            description=ln.description,
            quantity=ln.quantity,
            amount=ln.amount,
            unit_amount=ln.unit_amount,
            metric_code=ln.metric.code if ln.metric else None,
            period_start=ln.period_start,
            period_end=ln.period_end,
            details=ln.details,
        ).key()
        for ln in invoice.lines.select_related("metric").order_by("position", "id")
    ]
    if existing == [ln.key() for ln in lines] and invoice.total == total(lines):
        return False
    invoice.lines.all().delete()
    insert_lines(invoice, lines, metric_ids_for(lines, metric_ids))
    invoice.total = total(lines)
    invoice.save(update_fields=["total", "updated_at"])
    return True


def _lock(invoice: Invoice) -> Invoice:
    return Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)


@transaction.atomic
def invoice_finalize(*, invoice: Invoice, now: datetime, recompute: bool = True) -> Invoice:
    """Make a draft final: recompute it from the events now stored (unless the caller just did,
    in this transaction), give it its gap-free number and the customer's billing details, and
    record its commitment drawdown in the ledger.

    Lock order is subscription, then invoice (as in period close). With recompute=False the
    caller holds the subscription's lock already and has just written the lines.
    """
    subscription = None
    if recompute and invoice.invoice_type != InvoiceType.COMMITMENT:
        subscription = subscription_with_plan(invoice.subscription_id, lock=True)
    invoice = _lock(invoice)
    if invoice.status != InvoiceStatus.DRAFT:
        raise InvoiceError(NOT_A_DRAFT.format(invoice=invoice, status=invoice.status))
    if subscription is not None:
        write_draft_lines(invoice, fresh_lines(subscription, invoice))
    assign_number(invoice=invoice, now=now)
    drawdown_record(invoice=invoice)
    return invoice


@transaction.atomic
def invoice_void(*, invoice: Invoice, reason: str, now: datetime) -> Invoice:
    invoice = _lock(invoice)
    if invoice.status != InvoiceStatus.FINALIZED:
        raise InvoiceError(CANNOT_VOID.format(invoice=invoice, status=invoice.status))
    if not reason.strip():
        raise InvoiceError(VOID_REASON_REQUIRED)
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = now
    invoice.void_reason = reason.strip()
    invoice.save(update_fields=["status", "voided_at", "void_reason", "updated_at"])
    drawdown_reverse(invoice=invoice)
    if invoice.invoice_type == InvoiceType.COMMITMENT:
        prepayment_reverse(invoice=invoice)
    return invoice


@transaction.atomic
def invoice_mark_paid(*, invoice: Invoice, now: datetime) -> Invoice:
    invoice = _lock(invoice)
    if invoice.status != InvoiceStatus.FINALIZED:
        raise InvoiceError(CANNOT_PAY.format(invoice=invoice, status=invoice.status))
    invoice.status = InvoiceStatus.PAID
    invoice.paid_at = now
    invoice.save(update_fields=["status", "paid_at", "updated_at"])
    return invoice


def subscription_with_plan(subscription_id: int, *, lock: bool) -> Subscription:
    qs = Subscription.objects.select_related("customer", "promotion")
    if lock:
        qs = qs.select_for_update(of=("self",))
    subscription = qs.get(pk=subscription_id)
    subscription.plan = plans_with_charges().get(pk=subscription.plan_id)
    return subscription


def _period_of(subscription: Subscription, invoice: Invoice) -> Period:
    interval = subscription.plan.interval if invoice.invoice_type == InvoiceType.ADVANCE else Interval.MONTH
    return period_of(subscription, at=invoice.period_start, interval=interval)


@transaction.atomic
def invoice_recompute(*, invoice: Invoice) -> bool:
    """Recompute a draft from the events now stored; returns whether it changed."""
    subscription = subscription_with_plan(invoice.subscription_id, lock=True)
    invoice = _lock(invoice)
    if invoice.status != InvoiceStatus.DRAFT:
        raise InvoiceError(NOT_A_DRAFT.format(invoice=invoice, status=invoice.status))
    if invoice.invoice_type == InvoiceType.COMMITMENT:
        return False  # a prepayment's amount is fixed at creation
    return write_draft_lines(invoice, fresh_lines(subscription, invoice))


def fresh_lines(subscription: Subscription, invoice: Invoice) -> list[Line]:
    """The draft's lines computed again from what is stored now."""
    period = _period_of(subscription, invoice)
    if invoice.invoice_type == InvoiceType.ADVANCE:
        return invoice_lines(advance_invoice_inputs(subscription, subscription.plan, period))
    return invoice_lines(period_invoice_inputs(subscription, subscription.plan, period, exclude_invoice=invoice.pk))

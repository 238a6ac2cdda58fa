"""Invoices: write their lines, recompute drafts, finalize, void and regenerate (DESIGN §3, §6).

A period invoice of subscription S for usage period P holds:
- the usage of P, priced per charge, and plan-scope promotion discounts;
- the base fee in arrears for the fee period that ends with P (monthly plans: every period;
  yearly plans: the last month of the year; a termination: the prorated final part);
- `late_usage` lines for earlier finalized periods whose usage grew since they were billed;
- the commitment drawdown.
Plans with `pay_in_advance` get their base fee on an `advance` invoice at the start of each fee
period instead. The lines are computed by one pure function (billing.engine.invoice) from inputs
gathered once (billing.selectors.invoice_inputs); this module writes them.

Invoices are drafts until the grace period (BILLING_GRACE_PERIOD_HOURS, or the customer's) after
their period has passed; drafts are recomputed on every close run, finalized ones never change.
Finalizing happens under the subscription's and the customer's row locks: the credit a
subscription invoice consumes (step 6) is recomputed then, against the balances available then,
and moves with it (`_finalize_stored`).

Voiding (DESIGN §6 "Void and regenerate") takes back what the invoice consumed: its commitment
drawdown, the credit-note credit it drew (our choice; Lago keeps it consumed), a prepayment's
commitment. An invoice with money paid or a live credit note is voided only with a credit note
for those amounts (`generate_credit_note`, as Lago's void_invoice). Regenerating makes a new
invoice for the same subscription and period from the data stored now; one live invoice per
subscription, kind and period stays a database constraint.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from django.contrib.auth.models import User
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from billing.engine.invoice import invoice_lines
from billing.engine.lines import Line, total
from billing.engine.money import ZERO, quantize_money, split_proportionally
from billing.engine.periods import Period
from billing.engine.vocabulary import CreditNoteReason, CreditStatus, Interval, WebhookType
from billing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, LineKind, Subscription
from billing.selectors.credit_notes import creditable, fee_lines
from billing.selectors.invoice_inputs import advance_invoice_inputs, period_invoice_inputs
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import period_of
from billing.services.commitments import drawdown_record, drawdown_reverse, prepayment_reverse
from billing.services.coupons import coupon_applications_record, coupon_applications_reverse
from billing.services.credit_notes import (
    credit_applications_record,
    credit_applications_reverse,
    credit_note_create,
    note_amounts,
)
from billing.services.invoice_events import invoice_announce, invoice_finalizing, invoice_numbered
from billing.services.numbering import assign_number
from billing.services.outbox import insert_rows
from billing.services.wallets import wallet_consumption_record, wallet_consumption_reverse
from customers.models import Customer
from metering.models import BillableMetric

NOT_A_DRAFT = "invoice {invoice} is {status}; only drafts can change"
CANNOT_VOID = "invoice {invoice} is {status}; only finalized invoices can be voided"
VOID_REASON_REQUIRED = "a reason is required to void an invoice"
VOID_PAID = (
    "invoice {invoice} has payments or a credit note: void it with a credit note for what was paid "
    "(generate_credit_note), or credit it instead"
)
VOID_CREDIT_TOO_LARGE = "credit_amount and refund_amount add up to more than can be credited ({left})"
CANNOT_REGENERATE = "invoice {invoice} is a {kind} invoice; only period and advance invoices are regenerated"
ALREADY_REGENERATED = "the period of invoice {invoice} is already billed by invoice {live}"
LATE_USAGE_BILLED_ELSEWHERE = (
    "late usage of this period is billed on invoice(s) {invoices}: void those first, or credit instead "
    "(a new invoice would bill that usage again)"
)

# Invoices computed from a subscription's usage and prices (drafts recomputed, finalized afresh).
RECOMPUTED_KINDS = frozenset({InvoiceKind.PERIOD, InvoiceKind.ADVANCE})
NO_SUBSCRIPTION = "invoice {invoice} is a {kind} invoice: it belongs to no subscription"


class InvoiceError(Exception):
    """The change is refused; `field` names the input at fault when one is."""

    def __init__(self, message: str, *, field: str = "invoice") -> None:
        self.message = message
        self.field = field
        super().__init__(message)


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
    """Store the lines of an invoice that has none, in one INSERT (insert_lines_of)."""
    insert_lines_of([(invoice, lines)], metric_ids)


def insert_lines_of(invoices: list[tuple[Invoice, list[Line]]], metric_ids: dict[str, int]) -> None:
    """Store the lines of invoices that have none, in one INSERT.

    The values are prepared by the fields themselves, exactly as bulk_create prepares them; the
    statement is a plain multi-row VALUES, which costs a fraction of bulk_create's (on
    PostgreSQL an UNNEST of arrays that the driver quotes in Python): this runs once per
    invoice of a close (once per group of invoices on the close's batched path).
    """
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
            discount_amount=ln.discount_amount,
            tax_amount=ln.tax_amount,
            currency=invoice.currency,
            # An invoice's lines cover dates (only a quote's lines have none).
            period_start=cast(datetime, ln.period_start),
            period_end=cast(datetime, ln.period_end),
            details=ln.details,
        )
        for invoice, lines in invoices
        for i, ln in enumerate(lines)
    ]
    insert_rows(rows)


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
            discount_amount=ln.discount_amount,
            tax_amount=ln.tax_amount,
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


def _finalize_stored(invoice: Invoice, lines: list[Line] | None, now: datetime) -> None:
    """Finalize a draft whose lines are written (stored, or only its id reserved: invoice_create),
    taking the number as late as it can: the invoice counter stays locked from the number until
    the commit, and every finalization in the database waits for it. What does not need the
    number goes first (the coupons, credit notes and wallet it consumes, its email's row); after
    the number come one write of the invoice (its UPDATE, or its INSERT), the commitment's
    drawdown when there is one (its ledger entry names the number) and the webhook (its body
    shows the number), which writes nothing when no endpoint listens."""
    coupon_applications_record(invoice=invoice, lines=lines)
    credit_applications_record(invoice=invoice, lines=lines)
    wallet_consumption_record(invoice=invoice, lines=lines)
    if lines is not None:
        draws = any(ln.kind == LineKind.COMMITMENT_DRAWDOWN for ln in lines)
    else:
        draws = invoice.lines.filter(kind=LineKind.COMMITMENT_DRAWDOWN).exists()
    invoice_finalizing(invoice=invoice)
    assign_number(invoice=invoice, now=now)
    if draws:
        drawdown_record(invoice=invoice, lines=lines)
    invoice_numbered(invoice=invoice)


def _reserved_id(connection: BaseDatabaseWrapper) -> int:
    """A new invoice's id from its identity sequence (PostgreSQL), before the invoice is stored."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s))", [Invoice._meta.db_table, Invoice._meta.pk.column]
        )
        return int(cursor.fetchone()[0])


def invoice_create(
    *,
    subscription: Subscription,
    kind: str,
    period: Period,
    lines: list[Line],
    finalize: bool,
    now: datetime,
    metric_ids: dict[str, int] | None = None,
) -> Invoice:
    """Store a new invoice with its lines, in one INSERT each (numbered and made final at once
    when `finalize`). The caller holds the subscription's lock (and the customer's, to finalize)."""
    invoice = Invoice(
        customer=subscription.customer,
        subscription=subscription,
        kind=kind,
        period_start=period.start,
        period_end=period.end,
        currency=subscription.plan.currency,
        total=total(lines),
    )
    # Numbered last (_finalize_stored): the invoice counter is not locked while the lines are
    # written. On PostgreSQL, which checks foreign keys at the commit (Django makes them
    # deferrable), the invoice's id is reserved and the invoice itself INSERTed right after its
    # number, final at once; elsewhere it is stored as a draft first, then made final by an UPDATE.
    connection = connections[router.db_for_write(Invoice)]
    if finalize and connection.vendor == "postgresql":
        invoice.pk = _reserved_id(connection)
    else:
        invoice.save()
    insert_lines(invoice, lines, metric_ids_for(lines, metric_ids))
    if finalize:
        _finalize_stored(invoice, lines, now)
    return invoice


@transaction.atomic
def invoice_finalize(*, invoice: Invoice, now: datetime, recompute: bool = True) -> Invoice:
    """Make a draft final: recompute it from the events now stored and the credit available now
    (unless the caller just did, in this transaction), give it its gap-free number, payment terms
    and the customer's billing details, and move what it consumes.

    Lock order is subscription and customer, then invoice (as in period close). With
    recompute=False the caller holds those locks already and has just written the lines.
    """
    subscription = None
    if recompute and invoice.kind in RECOMPUTED_KINDS:
        subscription = subscription_with_plan(_subscription_id(invoice), lock=True)
    invoice = _lock(invoice)
    if invoice.status != InvoiceStatus.DRAFT:
        raise InvoiceError(NOT_A_DRAFT.format(invoice=invoice, status=invoice.status))
    if subscription is not None:
        write_draft_lines(invoice, fresh_lines(subscription, invoice, finalizing=True))
    _finalize_stored(invoice, None, now)
    return invoice


@transaction.atomic
def invoice_void(
    *,
    invoice: Invoice,
    reason: str,
    now: datetime,
    generate_credit_note: bool = False,
    credit_amount: Decimal = ZERO,
    refund_amount: Decimal = ZERO,
    user: User | None = None,
) -> Invoice:
    """Void a finalized invoice; with `generate_credit_note`, first issue a credit note of
    `credit_amount` (the customer's credit) and `refund_amount` (money to pay back) over its fees."""
    # The customer first, as finalization and regeneration lock it: the applied coupons and the
    # wallet this gives back are then locked in the same order as a close would lock them.
    Customer.all_objects.select_for_update().filter(pk=invoice.customer_id).first()
    invoice = _lock(invoice)
    if invoice.status != InvoiceStatus.FINALIZED:
        raise InvoiceError(CANNOT_VOID.format(invoice=invoice, status=invoice.status), field="status")
    if not reason.strip():
        raise InvoiceError(VOID_REASON_REQUIRED, field="reason")
    if generate_credit_note and credit_amount + refund_amount > 0:
        _void_credit_note(invoice, credit_amount, refund_amount, now, user)
    elif invoice.payments.exists() or invoice.credit_notes.exclude(credit_status=CreditStatus.VOIDED).exists():
        raise InvoiceError(VOID_PAID.format(invoice=invoice), field="invoice")
    invoice.status = InvoiceStatus.VOIDED
    invoice.voided_at = now
    invoice.void_reason = reason.strip()
    invoice.save(update_fields=["status", "voided_at", "void_reason", "updated_at"])
    drawdown_reverse(invoice=invoice)
    coupon_applications_reverse(invoice=invoice, now=now)
    credit_applications_reverse(invoice=invoice, now=now)
    wallet_consumption_reverse(invoice=invoice, now=now)
    if invoice.kind == InvoiceKind.COMMITMENT:
        prepayment_reverse(invoice=invoice)
    invoice_announce(invoice=invoice, webhook_type=WebhookType.INVOICE_VOIDED)
    return invoice


def _void_credit_note(
    invoice: Invoice, credit_amount: Decimal, refund_amount: Decimal, now: datetime, user: User | None
) -> None:
    """The credit note of a void: its items take the requested amount from the fees in proportion
    to what is left of them, so its total (items less their discounts) is what was asked."""
    left = creditable(invoice)
    wanted = credit_amount + refund_amount
    fees = [line for line in fee_lines(invoice) if left.fees.get(line.pk, ZERO) > 0]
    # What each fee can still give, net of its discounts: the most a note on it can total.
    net = [left.fees[f.pk] * (f.amount - f.discount_amount) / f.amount for f in fees]
    most = quantize_money(sum(net, ZERO), invoice.currency)
    if wanted > most:
        raise InvoiceError(VOID_CREDIT_TOO_LARGE.format(left=most), field="credit_amount")
    shares = split_proportionally(wanted, net, invoice.currency)
    items = []
    for fee, share in zip(fees, shares, strict=True):
        if share > 0:  # back from net to the fee's amount before its discounts, as items are
            gross = quantize_money(share * fee.amount / (fee.amount - fee.discount_amount), invoice.currency)
            items.append((fee.pk, min(left.fees[fee.pk], gross)))
    # Rounding the items to cents can move the note's total by a cent from what was asked:
    # the credit part (else the refund) takes the difference, so the parts add up.
    delta = note_amounts(invoice, items, left).total - wanted
    credit, refund = (
        (credit_amount + delta, refund_amount) if credit_amount > 0 else (credit_amount, refund_amount + delta)
    )
    credit_note_create(
        invoice=invoice,
        items=items,
        reason=CreditNoteReason.OTHER,
        description=f"Credit note issued as invoice {invoice.number} was voided",
        credit_amount=credit,
        refund_amount=refund,
        offset_amount=ZERO,
        user=user,
        now=now,
    )


@transaction.atomic
def invoice_regenerate(*, invoice: Invoice, reason: str, now: datetime) -> Invoice:
    """Void the invoice (if it is not voided yet) and make a new one for the same subscription
    and period from the data stored now, finalized at once (its period is over)."""
    if invoice.kind not in (InvoiceKind.PERIOD, InvoiceKind.ADVANCE):
        raise InvoiceError(CANNOT_REGENERATE.format(invoice=invoice, kind=invoice.kind))
    subscription = subscription_with_plan(_subscription_id(invoice), lock=True)
    live = (
        Invoice.objects.filter(subscription=subscription, kind=invoice.kind, period_start=invoice.period_start)
        .exclude(status=InvoiceStatus.VOIDED)
        .exclude(pk=invoice.pk)
        .first()
    )
    if live is not None:  # one live invoice per subscription and period (a database rule too)
        raise InvoiceError(ALREADY_REGENERATED.format(invoice=invoice, live=live))
    elsewhere = _late_usage_billed_elsewhere(invoice)
    if elsewhere:
        raise InvoiceError(LATE_USAGE_BILLED_ELSEWHERE.format(invoices=", ".join(elsewhere)))
    voided = (
        invoice_void(invoice=invoice, reason=reason, now=now) if invoice.status != InvoiceStatus.VOIDED else invoice
    )
    period = _period_of(subscription, voided)
    return invoice_create(
        subscription=subscription,
        kind=voided.kind,
        period=period,
        lines=fresh_lines(subscription, voided, finalizing=True),
        finalize=True,
        now=now,
    )


def _late_usage_billed_elsewhere(invoice: Invoice) -> list[str]:
    """Numbers of the finalized invoices (of the subscription or those that replaced it) that bill
    late usage of this invoice's period: a regenerated invoice measures the whole period again.
    (A draft's late lines are recomputed against the regenerated invoice when it is finalized.)"""
    chain = {invoice.subscription_id}
    newer = set(Subscription.objects.filter(previous_id__in=chain).values_list("pk", flat=True))
    while newer - chain:
        chain |= newer
        newer = set(Subscription.objects.filter(previous_id__in=chain).values_list("pk", flat=True))
    numbers = (
        InvoiceLine.objects.filter(
            invoice__subscription__in=chain,
            invoice__status=InvoiceStatus.FINALIZED,
            kind=LineKind.LATE_USAGE,
            period_start=invoice.period_start,
        )
        .exclude(invoice=invoice)
        .values_list("invoice__number", flat=True)
    )
    return sorted({number for number in numbers if number})


def _subscription_id(invoice: Invoice) -> int:
    if invoice.subscription_id is None:
        raise InvoiceError(NO_SUBSCRIPTION.format(invoice=invoice, kind=invoice.kind))
    return invoice.subscription_id


def subscription_with_plan(subscription_id: int, *, lock: bool) -> Subscription:
    """The subscription with its customer, promotion and plan; `lock`: with the subscription's
    and the customer's row locks (finalizing consumes the customer's credit)."""
    qs = Subscription.objects.select_related("customer", "promotion")
    if lock:
        qs = qs.select_for_update(of=("self", "customer"))
    subscription = qs.get(pk=subscription_id)
    subscription.plan = plans_with_charges().get(pk=subscription.plan_id)
    return subscription


def _period_of(subscription: Subscription, invoice: Invoice) -> Period:
    interval = subscription.plan.interval if invoice.kind == InvoiceKind.ADVANCE else Interval.MONTH
    return period_of(subscription, at=invoice.period_start, interval=interval)


@transaction.atomic
def invoice_recompute(*, invoice: Invoice) -> bool:
    """Recompute a draft from the events now stored; returns whether it changed."""
    if invoice.kind not in RECOMPUTED_KINDS:
        return False  # a prepayment's, a one-off's or a credit purchase's amount is fixed at creation
    subscription = subscription_with_plan(_subscription_id(invoice), lock=True)
    invoice = _lock(invoice)
    if invoice.status != InvoiceStatus.DRAFT:
        raise InvoiceError(NOT_A_DRAFT.format(invoice=invoice, status=invoice.status))
    return write_draft_lines(invoice, fresh_lines(subscription, invoice))


def fresh_lines(subscription: Subscription, invoice: Invoice, *, finalizing: bool = False) -> list[Line]:
    """The draft's lines computed again from what is stored now (`finalizing`: the credit it
    consumes read under lock)."""
    period = _period_of(subscription, invoice)
    plan = subscription.plan
    if invoice.kind == InvoiceKind.ADVANCE:
        return invoice_lines(advance_invoice_inputs(subscription, plan, period, lock_credits=finalizing))
    return invoice_lines(
        period_invoice_inputs(subscription, plan, period, exclude_invoice=invoice.pk, lock_credits=finalizing)
    )


@transaction.atomic
def invoice_metadata_set(*, invoice: Invoice, metadata: list[dict[str, Any]]) -> Invoice:
    """Replace the invoice's metadata (Lago's key/value pairs; each gets an id). Not part of its
    amounts: it may change once the invoice is final."""
    invoice = _lock(invoice)
    invoice.metadata = [
        {"id": str(item.get("id") or i + 1), "key": item["key"], "value": item.get("value")}
        for i, item in enumerate(metadata)
    ]
    invoice.save(update_fields=["metadata", "updated_at"])
    return invoice

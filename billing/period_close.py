"""Closing periods: invoice every ended period of every subscription, idempotently.

Each subscription is locked while it is closed, so closers running at once (two processes,
several django-q2 clusters) produce each invoice once; the unique constraint on
(subscription, type, period) backs the lock up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from billing.invoice_lines import DraftLine, compute_advance_lines, compute_period_lines
from billing.invoicing import _write_lines, invoice_finalize, subscription_with_plan
from billing.models import (
    Invoice,
    InvoiceStatus,
    InvoiceType,
    Subscription,
)
from billing.money import ZERO
from billing.periods import MONTH, Period, period_containing

# --- closing periods ------------------------------------------------------------------------


@dataclass
class CloseReport:
    """What a close did, by invoice id: ids, not Invoice objects, so memory stays flat however
    many customers a run closes (10,000 invoices kept as objects with their customers cost
    ~150 MB)."""

    created: list[int] = field(default_factory=list)
    recomputed: list[int] = field(default_factory=list)
    finalized: list[int] = field(default_factory=list)
    unchanged: int = 0
    would_create: list[tuple[str, Period, Decimal, str]] = field(default_factory=list)  # (subscription, …, currency)
    errors: list[str] = field(default_factory=list)


def grace() -> timedelta:
    return timedelta(hours=settings.BILLING_GRACE_PERIOD_HOURS)


def _ended_periods(subscription: Subscription, after: datetime | None, now: datetime) -> list[Period]:
    """Usage periods of the subscription that have ended by `now`, from `after` (or its start) on."""
    periods: list[Period] = []
    cursor = after or subscription.subscription_at
    while True:
        period = period_containing(
            subscription_at=subscription.subscription_at,
            terminated_at=subscription.terminated_at,
            billing_time=subscription.billing_time,
            interval=MONTH,
            tz=subscription.customer.timezone,
            at=cursor,
        )
        # Past the end (after a termination the clipped last period comes back, or an empty
        # one), or not over yet.
        if period.end <= cursor or period.start >= period.end or period.end > now:
            return periods
        if after is None or period.start >= after:
            periods.append(period)
        cursor = period.end


def _advance_periods(subscription: Subscription, after: datetime | None, now: datetime) -> list[Period]:
    """Base-fee periods (pay in advance) that have started by `now`, starting at or after `after`."""
    periods: list[Period] = []
    cursor = after or subscription.subscription_at
    while cursor <= now:
        period = period_containing(
            subscription_at=subscription.subscription_at,
            terminated_at=subscription.terminated_at,
            billing_time=subscription.billing_time,
            interval=subscription.plan.interval,
            tz=subscription.customer.timezone,
            at=cursor,
        )
        if period.end <= cursor or period.start > now or period.start >= period.end:
            break
        if after is None or period.start >= after:
            periods.append(period)
        if subscription.terminated_at is not None and period.end >= subscription.terminated_at:
            break
        cursor = period.end
    return periods


def _in_month(period: Period, month: tuple[int, int] | None) -> bool:
    return month is None or (period.start_day.year, period.start_day.month) == month


def _create_or_recompute(
    subscription: Subscription,
    invoice_type: str,
    period: Period,
    compute: Callable[[int | None], list[DraftLine]],
    now: datetime,
    report: CloseReport,
    dry_run: bool,
) -> None:
    invoice = Invoice.objects.filter(
        subscription=subscription, invoice_type=invoice_type, period_start=period.start
    ).first()
    if dry_run:
        if invoice is None:
            lines = compute(None)
            total = sum((ln.amount for ln in lines), ZERO)
            report.would_create.append((subscription.external_id, period, total, subscription.plan.currency))
        return
    if invoice is None:
        invoice = Invoice.objects.create(
            customer=subscription.customer,
            subscription=subscription,
            invoice_type=invoice_type,
            period_start=period.start,
            period_end=period.end,
            currency=subscription.plan.currency,
        )
        _write_lines(invoice, compute(invoice.pk))
        report.created.append(invoice.pk)
    elif invoice.status == InvoiceStatus.DRAFT:
        if _write_lines(invoice, compute(invoice.pk)):
            report.recomputed.append(invoice.pk)
        else:
            report.unchanged += 1
    else:
        report.unchanged += 1
        return
    due = period.end if invoice_type == InvoiceType.PERIOD else period.start
    if now >= due + grace():
        # Lines were computed a moment ago in this transaction, under the subscription's lock.
        report.finalized.append(invoice_finalize(invoice=invoice, now=now, recompute=False).pk)


def _invoiced_period_starts(subscription: Subscription, invoice_type: str) -> tuple[set[datetime], set[datetime]]:
    """Starts of the periods that have a draft invoice, and of those whose invoice is final."""
    drafts: set[datetime] = set()
    done: set[datetime] = set()
    rows = Invoice.objects.filter(subscription=subscription, invoice_type=invoice_type).values_list(
        "period_start", "status"
    )
    for start, status in rows:
        (drafts if status == InvoiceStatus.DRAFT else done).add(start)
    return drafts, done


def close_subscription(
    *,
    subscription_id: int,
    now: datetime,
    month: tuple[int, int] | None = None,
    dry_run: bool = False,
    report: CloseReport | None = None,
) -> CloseReport:
    """Invoice every ended period of one subscription (catching up missed ones); idempotent.

    The subscription row is locked for the whole run, so two closers at once (processes or
    cluster workers) serialize here and the second finds the invoices already made; the unique
    constraint on (subscription, type, period) backs this up.
    """
    report = report if report is not None else CloseReport()
    with transaction.atomic():
        subscription = subscription_with_plan(subscription_id, lock=True)
        plan = subscription.plan
        # Skip the periods whose invoice is final, not everything before the latest final one:
        # a run with --period may have closed a later month first, and the months before it
        # still need their invoices. (Walking a subscription's periods is cheap, pure date math.)
        drafts, done = _invoiced_period_starts(subscription, InvoiceType.PERIOD)
        for period in _ended_periods(subscription, None, now):
            if period.start in done:
                continue
            if not _in_month(period, month) and period.start not in drafts:
                continue
            _create_or_recompute(
                subscription,
                InvoiceType.PERIOD,
                period,
                lambda invoice_id, p=period: compute_period_lines(subscription, plan, p, exclude_invoice=invoice_id),
                now,
                report,
                dry_run,
            )
        if plan.pay_in_advance:
            advance_drafts, advance_done = _invoiced_period_starts(subscription, InvoiceType.ADVANCE)
            for period in _advance_periods(subscription, None, now):
                if period.start in advance_done:
                    continue
                if not _in_month(period, month) and period.start not in advance_drafts:
                    continue
                _create_or_recompute(
                    subscription,
                    InvoiceType.ADVANCE,
                    period,
                    lambda _invoice_id, p=period: compute_advance_lines(subscription, plan, p),
                    now,
                    report,
                    dry_run,
                )
        if dry_run:
            transaction.set_rollback(True)
    return report


def subscriptions_to_close(*, customer_external_id: str | None = None) -> Iterable[int]:
    """Ids of subscriptions that may have periods to invoice: all but terminated ones whose
    final period has a finalized invoice."""
    # The last period ends at the local start of the termination day: within a day (26 hours,
    # with a DST change) before terminated_at, and no earlier period ends that close to it.
    final_invoiced = Invoice.objects.filter(
        subscription=OuterRef("pk"),
        invoice_type=InvoiceType.PERIOD,
        period_end__gt=OuterRef("terminated_at") - timedelta(hours=26),
    ).exclude(status=InvoiceStatus.DRAFT)
    # Live subscriptions have no terminated_at, so the comparison is never true for them.
    qs = Subscription.objects.exclude(Exists(final_invoiced))
    if customer_external_id:
        qs = qs.filter(customer__external_id=customer_external_id)
    return qs.order_by("id").values_list("id", flat=True)


def close_periods(
    *,
    now: datetime,
    month: tuple[int, int] | None = None,
    customer_external_id: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int, CloseReport], None] | None = None,
) -> CloseReport:
    """Invoice every ended period of every subscription (or one customer's), idempotently.

    Each subscription is closed in its own transaction: one failure is reported and the
    others go on. Memory stays flat: subscriptions are read by id, one at a time.
    """
    report = CloseReport()
    ids = list(subscriptions_to_close(customer_external_id=customer_external_id))
    for done, subscription_id in enumerate(ids, start=1):
        try:
            close_subscription(subscription_id=subscription_id, now=now, month=month, dry_run=dry_run, report=report)
        except Exception as exc:  # report and continue: one bad subscription must not stop the run
            report.errors.append(f"subscription {subscription_id}: {exc}")
        if progress is not None:
            progress(done, len(ids), report)
    return report

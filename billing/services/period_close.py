"""Closing periods: invoice every ended period of every subscription, idempotently.

Each subscription is locked while it is closed, so closers running at once (two processes,
several django-q2 clusters, the workers of one run: billing.services.period_close_workers)
produce each invoice once; the unique constraint on (subscription, type, period) backs the lock
up. A chunk passes over the subscriptions another closer holds, then comes back for them
(close_chunk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from billing.engine.invoice import invoice_lines
from billing.engine.lines import Line, total
from billing.engine.periods import Period
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Subscription,
)
from billing.selectors.invoice_inputs import advance_invoice_inputs, period_invoice_inputs
from billing.services.invoices import (
    invoice_create,
    invoice_finalize,
    write_draft_lines,
)
from billing.services.period_close_due import (
    CHUNK_SIZE,
    advance_periods,
    ended_periods,
    in_month,
    skipped,
    subscriptions_to_close,
)
from billing.services.period_close_state import (
    Known,
    RunCache,
    SubscriptionBusy,
    known_invoices,
    locked_subscription,
)
from customers.models import Customer


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

    def add(self, other: CloseReport) -> None:
        """Count what another (committed) close did."""
        self.created += other.created
        self.recomputed += other.recomputed
        self.finalized += other.finalized
        self.unchanged += other.unchanged
        self.would_create += other.would_create
        self.errors += other.errors


def grace(customer: Customer) -> timedelta:
    """How long after its period an invoice stays a draft: the customer's grace period (days,
    Lago's billing_configuration.invoice_grace_period) or BILLING_GRACE_PERIOD_HOURS."""
    if customer.invoice_grace_period is not None:
        return timedelta(days=customer.invoice_grace_period)
    return timedelta(hours=settings.BILLING_GRACE_PERIOD_HOURS)


def _create_or_recompute(
    subscription: Subscription,
    kind: str,
    period: Period,
    compute: Callable[[int | None, bool], list[Line]],
    now: datetime,
    report: CloseReport,
    dry_run: bool,
    known: Known,
    cache: RunCache,
) -> None:
    """`compute(invoice id, finalizing)`: the invoice's lines; when finalizing, the credit it
    consumes is read under lock (the customer's row is locked already, with the subscription)."""
    existing = known.invoices.get((kind, period.start))
    if dry_run:
        if existing is None:
            lines = compute(None, False)
            report.would_create.append((subscription.external_id, period, total(lines), subscription.plan.currency))
        return
    due = period.end if kind == InvoiceKind.PERIOD else period.start
    finalize = now >= due + grace(subscription.customer)
    if existing is None:
        # A new invoice has no lines to exclude or compare: compute them, then store the
        # invoice with its total (numbered and final at once when its grace period is over)
        # and its lines, in one INSERT each. The subscription's lock keeps other closers out;
        # the unique constraint on (subscription, kind, period) for live invoices backs it up.
        lines = compute(None, finalize)
        invoice = invoice_create(
            subscription=subscription,
            kind=kind,
            period=period,
            lines=lines,
            finalize=finalize,
            now=now,
            metric_ids=cache.metric_ids,
        )
        report.created.append(invoice.pk)
        if finalize:
            report.finalized.append(invoice.pk)
        known.record(invoice)
        return
    invoice_id, status = existing
    if status != InvoiceStatus.DRAFT:
        report.unchanged += 1
        return
    invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
    if write_draft_lines(invoice, compute(invoice.pk, finalize), cache.metric_ids):
        report.recomputed.append(invoice.pk)
    else:
        report.unchanged += 1
    if finalize:
        # Lines were computed a moment ago in this transaction, under the subscription's and
        # the customer's locks.
        invoice = invoice_finalize(invoice=invoice, now=now, recompute=False)
        report.finalized.append(invoice.pk)
        known.record(invoice)


def close_subscription(
    *,
    subscription_id: int,
    now: datetime,
    month: tuple[int, int] | None = None,
    dry_run: bool = False,
    report: CloseReport | None = None,
    cache: RunCache | None = None,
    read: Subscription | None = None,
    skip_locked: bool = False,
) -> CloseReport:
    """Invoice every ended period of one subscription (catching up missed ones); idempotent.

    The subscription row is locked for the whole run, so two closers at once (processes or
    cluster workers) serialize here and the second finds the invoices already made; the unique
    constraint on (subscription, type, period) backs this up. Its invoices are read once, under
    the lock, and kept up to date as this close makes and finalizes them. `read`: the
    subscription with its customer and promotion, read beforehand (used unless either changed
    before the lock was taken). `skip_locked`: if another transaction holds the subscription's
    or its customer's lock, raise SubscriptionBusy at once, having done nothing.
    """
    report = report if report is not None else CloseReport()
    cache = cache if cache is not None else RunCache()
    # What this subscription's close did counts only once its transaction has committed: a
    # failure (or a connection lost at COMMIT) raises out of the block and it is never added.
    done = CloseReport()
    with transaction.atomic():
        subscription = locked_subscription(subscription_id, cache, read, skip_locked)
        plan = subscription.plan
        known = known_invoices(subscription)

        def period_lines(invoice_id: int | None, period: Period, finalizing: bool) -> list[Line]:
            return invoice_lines(
                period_invoice_inputs(
                    subscription,
                    plan,
                    period,
                    exclude_invoice=invoice_id,
                    finalized_periods=list(known.finalized_periods),
                    may_draw_commitment=known.has_commitment,
                    may_use_credit=known.has_credit,
                    lock_credits=finalizing,
                    taxes=cache.taxes(subscription),
                    plans=cache.plan,
                )
            )

        def advance_lines(period: Period, finalizing: bool) -> list[Line]:
            return invoice_lines(
                advance_invoice_inputs(
                    subscription,
                    plan,
                    period,
                    may_draw_commitment=known.has_commitment,
                    may_use_credit=known.has_credit,
                    lock_credits=finalizing,
                    taxes=cache.taxes(subscription),
                )
            )

        # Skip the periods whose invoice is final, not everything before the latest final one:
        # a run with --period may have closed a later month first, and the months before it
        # still need their invoices. (Walking a subscription's periods is cheap, pure date math.)
        for period in ended_periods(subscription, None, now):
            if known.done(InvoiceKind.PERIOD, period.start):
                continue
            # A draft is always taken to its end (recomputed, finalized after its grace period),
            # whatever the month asked or the termination's choice: it is never left behind.
            if not known.draft(InvoiceKind.PERIOD, period.start) and (
                skipped(subscription, period) or not in_month(period, month)
            ):
                continue

            def period_compute(invoice_id: int | None, finalizing: bool, p: Period = period) -> list[Line]:
                return period_lines(invoice_id, p, finalizing)

            _create_or_recompute(
                subscription,
                InvoiceKind.PERIOD,
                period,
                period_compute,
                now,
                done,
                dry_run,
                known,
                cache,
            )
        if plan.pay_in_advance:
            for period in advance_periods(subscription, None, now):
                if known.done(InvoiceKind.ADVANCE, period.start):
                    continue
                if not in_month(period, month) and not known.draft(InvoiceKind.ADVANCE, period.start):
                    continue

                def advance_compute(_invoice_id: int | None, finalizing: bool, p: Period = period) -> list[Line]:
                    return advance_lines(p, finalizing)

                _create_or_recompute(
                    subscription,
                    InvoiceKind.ADVANCE,
                    period,
                    advance_compute,
                    now,
                    done,
                    dry_run,
                    known,
                    cache,
                )
        if dry_run:
            transaction.set_rollback(True)
    report.add(done)
    return report


def close_chunk(
    subscription_ids: list[int],
    *,
    now: datetime,
    month: tuple[int, int] | None = None,
    dry_run: bool = False,
    report: CloseReport | None = None,
    cache: RunCache | None = None,
    step: Callable[[CloseReport], None] | None = None,
) -> CloseReport:
    """Close a chunk of subscriptions, each in its own transaction; one failure is reported and
    the others go on.

    Two passes, so closers running at once (workers of one run, another run, an API call that
    locked a customer) do not queue behind each other: the first takes each subscription with
    SKIP LOCKED and passes over the ones another transaction holds; the second waits for those,
    so none is left behind, and finds their invoices already made if another closer made them.
    Rows are read with their customers in one query (checked again under each one's lock).
    What it did is added to `report` (a new one if None), which it returns; `step(report)` is
    called once each subscription is done.
    """
    report = report if report is not None else CloseReport()
    cache = cache if cache is not None else RunCache()
    read = Subscription.objects.select_related("customer", "promotion").in_bulk(subscription_ids)
    busy: list[int] = []

    def close_one(subscription_id: int, skip_locked: bool) -> None:
        try:
            close_subscription(
                subscription_id=subscription_id,
                now=now,
                month=month,
                dry_run=dry_run,
                report=report,
                cache=cache,
                read=read.pop(subscription_id, None),
                skip_locked=skip_locked,
            )
        except SubscriptionBusy:
            busy.append(subscription_id)
            return
        except Exception as exc:  # report and continue: one bad subscription must not stop the run
            report.errors.append(f"subscription {subscription_id}: {exc}")
        if step is not None:
            step(report)

    for subscription_id in subscription_ids:
        close_one(subscription_id, skip_locked=True)
    for subscription_id in busy:
        close_one(subscription_id, skip_locked=False)
    return report


def close_periods(
    *,
    now: datetime,
    month: tuple[int, int] | None = None,
    customer_external_id: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int, CloseReport], None] | None = None,
) -> CloseReport:
    """Invoice every ended period of every subscription (or one customer's), idempotently, in
    this process (billing.services.period_close_workers fans a close out over processes).

    Memory stays flat: subscriptions are read with their customers a chunk at a time, and the
    report keeps only invoice ids.
    """
    report = CloseReport()
    cache = RunCache()
    ids = list(subscriptions_to_close(customer_external_id=customer_external_id, now=now))
    done = 0

    def step(so_far: CloseReport) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(ids), so_far)

    for first in range(0, len(ids), CHUNK_SIZE):
        chunk = ids[first : first + CHUNK_SIZE]
        close_chunk(chunk, now=now, month=month, dry_run=dry_run, report=report, cache=cache, step=step)
    return report

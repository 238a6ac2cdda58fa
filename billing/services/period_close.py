"""Closing periods: invoice every ended period of every subscription, idempotently.

Each subscription is locked while it is closed, so closers running at once (two processes,
several django-q2 clusters, the workers of one run: billing.services.period_close_workers)
produce each invoice once; the unique constraint on (subscription, type, period) backs the lock
up. A chunk passes over the subscriptions another closer holds, then comes back for them
(close_chunk). On PostgreSQL most subscriptions (one new period invoice, final at once, no
credit or commitment to consume) are closed in groups (close_group): locked together with SKIP
LOCKED, their invoices made in one statement per step and one commit, numbered in order; what a
group cannot take is closed one by one in its place, and a group that fails is closed one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction

from billing.engine.invoice import invoice_lines
from billing.engine.lines import Line, total
from billing.engine.periods import Period
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Subscription,
)
from billing.selectors.invoice_inputs import ReadAhead, advance_invoice_inputs, period_invoice_inputs, read_ahead
from billing.services.invoice_finalization import NewInvoice, invoices_create_final
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
    known_invoices_of,
    lock_group,
    locked_subscription,
)
from customers.models import Customer

logger = logging.getLogger(__name__)


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


GROUP_SIZE = 25  # subscriptions a batched transaction closes: few statements each, a short lock


def _simple_close(
    subscription: Subscription, known: Known, now: datetime, month: tuple[int, int] | None
) -> tuple[bool, Period | None]:
    """Whether the batched path can close a locked subscription, and the one period it then
    invoices (None: nothing to invoice): its close makes at most one period invoice, new and
    final at once, and consumes no credit or commitment. Not simple — an advance fee, a draft to
    recompute or to make (grace period not over), several periods to catch up, a replaced plan's
    late usage, credit or a commitment to consume — goes the one-by-one path (close_subscription),
    whose loop this follows."""
    if (
        subscription.plan.pay_in_advance
        or subscription.previous_id is not None
        or known.has_commitment
        or known.has_credit
    ):
        return False, None
    periods = []
    for period in ended_periods(subscription, None, now):
        if known.done(InvoiceKind.PERIOD, period.start):
            continue
        if known.draft(InvoiceKind.PERIOD, period.start):
            return False, None
        if not skipped(subscription, period) and in_month(period, month):
            periods.append(period)
    if not periods:
        return True, None
    if len(periods) > 1 or now < periods[0].end + grace(subscription.customer):
        return False, None
    return True, periods[0]


@dataclass
class GroupClose:
    """What close_group did: the subscriptions it closed, in order, each with the id of the
    invoice it made (None: nothing was due), and how many of the group's ids that is: it stops
    at the first it cannot close (held elsewhere, changed since read, not simple), which the
    caller then closes one by one, so subscriptions are still closed in the order given."""

    closed: list[tuple[int, int | None]] = field(default_factory=list)
    failed: bool = False  # rolled back: the whole group goes one by one

    @property
    def taken(self) -> int:
        return len(self.closed)


_DUE = -1  # in GroupClose.closed while close_group builds it: an invoice is to be made


def _simple_leading(
    leading: list[Subscription],
    known: dict[int, Known],
    now: datetime,
    month: tuple[int, int] | None,
    cache: RunCache,
    result: GroupClose,
) -> list[tuple[Subscription, Period]]:
    """Of the locked leading subscriptions, those up to the first that is not simple
    (_simple_close) go into `result.closed` (_DUE for those that make an invoice); returns
    these with the period each invoices."""
    due = []
    for subscription in leading:
        subscription.plan = cache.plan(subscription.plan_id)
        simple, period = _simple_close(subscription, known[subscription.pk], now, month)
        if not simple:
            break
        result.closed.append((subscription.pk, None if period is None else _DUE))
        if period is not None:
            due.append((subscription, period))
    return due


def _group_lines(
    subscription: Subscription,
    period: Period,
    known: Known,
    cache: RunCache,
    ahead: ReadAhead,
) -> list[Line]:
    """The lines of a simple subscription's period invoice (no credit or commitment to consume),
    its usage and late usage read beforehand with the group's."""
    return invoice_lines(
        period_invoice_inputs(
            subscription,
            subscription.plan,
            period,
            finalized_periods=list(known.finalized_periods),
            may_draw_commitment=False,
            may_use_credit=False,
            lock_credits=True,
            taxes=cache.taxes(subscription),
            plans=cache.plan,
            read_ahead=ahead,
        )
    )


def close_group(
    subscription_ids: list[int],
    read: dict[int, Subscription],
    *,
    now: datetime,
    month: tuple[int, int] | None,
    cache: RunCache,
) -> GroupClose:
    """Close the leading simple subscriptions of a group in one transaction and a few statements
    for them all (PostgreSQL): one lock (SKIP LOCKED: never waits, so cannot deadlock), one read
    of their invoices (after the lock), their usage and late usage in two (read_ahead, under the
    lock), then their invoices made final together (invoices_create_final: numbers in this order,
    gap-free, taken last), one COMMIT. If anything fails the group is rolled back (`failed`): the
    one-by-one path then closes them all and reports the failing subscription alone."""
    result = GroupClose()
    try:
        with transaction.atomic():
            locked = lock_group(subscription_ids, read)
            leading = []
            for subscription_id in subscription_ids:
                if subscription_id not in locked:
                    break
                leading.append(locked[subscription_id])
            known = known_invoices_of(leading)
            due = _simple_leading(leading, known, now, month, cache, result)
            # The group's usage and late usage in two statements (under its lock, as one by one).
            ahead = read_ahead([(s, s.plan, period, known[s.pk].finalized_periods) for s, period in due])
            new = [
                NewInvoice(
                    subscription,
                    InvoiceKind.PERIOD,
                    period,
                    _group_lines(subscription, period, known[subscription.pk], cache, ahead),
                )
                for subscription, period in due
            ]
            positions = [position for position, (_, invoice_id) in enumerate(result.closed) if invoice_id == _DUE]
            for position, invoice in zip(positions, invoices_create_final(new, now, cache.metric_ids), strict=True):
                result.closed[position] = (result.closed[position][0], invoice.pk)
    except Exception:  # rolled back: the one-by-one path closes them and reports a failure alone
        logger.warning(
            "period close: a group of %d subscriptions failed; closing them one by one",
            len(subscription_ids),
            exc_info=True,
        )
        return GroupClose(failed=True)
    return result


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
    """Close a chunk of subscriptions; one failure is reported and the others go on. On PostgreSQL
    the simple ones (most of a run) are closed in groups, a transaction and a few statements a
    group (close_group); the others each in its own transaction (close_subscription).

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

    # Batched (close_group) on PostgreSQL, in order: a group closes its leading simple
    # subscriptions, the first it cannot is closed one by one, and the next group starts after it.
    # Elsewhere, and in a dry run, one by one.
    batched = not dry_run and connection.vendor == "postgresql"
    position = 0
    while position < len(subscription_ids):
        if batched:
            group = close_group(
                subscription_ids[position : position + GROUP_SIZE], read, now=now, month=month, cache=cache
            )
            for subscription_id, invoice_id in group.closed:
                read.pop(subscription_id, None)
                if invoice_id is not None:
                    report.created.append(invoice_id)
                    report.finalized.append(invoice_id)
                if step is not None:
                    step(report)
            position += group.taken
            if group.failed:
                for subscription_id in subscription_ids[position : position + GROUP_SIZE]:
                    close_one(subscription_id, skip_locked=True)
                position += GROUP_SIZE
                continue
            if group.taken == GROUP_SIZE or position >= len(subscription_ids):
                continue
        close_one(subscription_ids[position], skip_locked=True)
        position += 1
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

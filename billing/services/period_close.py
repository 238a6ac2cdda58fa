"""Closing periods: invoice every ended period of every subscription, idempotently.

Each subscription is locked while it is closed, so closers running at once (two processes,
several django-q2 clusters, the workers of one run: billing.services.period_close_workers)
produce each invoice once; the unique constraint on (subscription, type, period) backs the lock
up. A chunk passes over the subscriptions another closer holds, then comes back for them
(close_chunk).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from billing.engine.adjustments import TaxRate
from billing.engine.invoice import invoice_lines
from billing.engine.lines import Line, total
from billing.engine.periods import Period
from billing.engine.vocabulary import OnTerminationInvoice
from billing.models import (
    AppliedCoupon,
    Commitment,
    CommitmentStatus,
    CouponStatus,
    CreditNote,
    CreditStatus,
    CustomerTax,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Plan,
    Subscription,
    SubscriptionStatus,
    Wallet,
    WalletStatus,
)
from billing.selectors.adjustments import tax_rates
from billing.selectors.invoice_inputs import advance_invoice_inputs, period_invoice_inputs
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import period_of
from billing.services.invoices import (
    invoice_create,
    invoice_finalize,
    write_draft_lines,
)
from customers.models import Customer

CHUNK_SIZE = 500  # subscriptions read (with their customers) per query


class SubscriptionBusy(Exception):
    """Raised by a close asked to skip locked rows when another transaction holds the
    subscription's or its customer's lock (or the row is gone: the blocking retry tells)."""


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


def _ended_periods(subscription: Subscription, after: datetime | None, now: datetime) -> list[Period]:
    """Usage periods of the subscription that have ended by `now`, from `after` (or its start) on."""
    periods: list[Period] = []
    cursor = after or subscription.subscription_at
    while True:
        period = period_of(subscription, at=cursor)
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
        period = period_of(subscription, at=cursor, interval=subscription.plan.interval)
        if period.end <= cursor or period.start > now or period.start >= period.end:
            break
        if after is None or period.start >= after:
            periods.append(period)
        if subscription.terminated_at is not None and period.end >= subscription.terminated_at:
            break
        cursor = period.end
    return periods


def _skipped(subscription: Subscription, period: Period) -> bool:
    """Cut short by a termination that skips its closing invoice (Lago's
    on_termination_invoice=skip): the final part of the period is not billed. (A plan change
    always bills it: it resets the choice, billing.services.subscriptions.switch_plan.)"""
    return period.end < period.full_end and subscription.on_termination_invoice == OnTerminationInvoice.SKIP


def _in_month(period: Period, month: tuple[int, int] | None) -> bool:
    return month is None or (period.start_day.year, period.start_day.month) == month


class RunCache:
    """What a close run reads once rather than once per subscription: plans with their charges
    and tiers, by id, and metric ids by code. Its size follows the catalog, not the customer
    count. A plan's prices never change in place once it has subscribers (the catalog makes a
    new version), so a run sees each plan as it was when first needed."""

    def __init__(self) -> None:
        self.plans: dict[int, Plan] = {}
        self.metric_ids: dict[str, int] = {}
        self._org_taxes: tuple[TaxRate, ...] | None = None

    def taxes(self, subscription: Subscription) -> tuple[TaxRate, ...]:
        """The customer's taxes: its own codes if it has any, else the organization's (read once
        a run: taxes are catalog, not per customer)."""
        if getattr(subscription, "has_own_taxes", True):
            return tax_rates(subscription.customer_id)
        if self._org_taxes is None:
            self._org_taxes = tax_rates(None)
        return self._org_taxes

    def plan(self, plan_id: int) -> Plan:
        plan = self.plans.get(plan_id)
        if plan is None:
            plan = self.plans[plan_id] = plans_with_charges().get(pk=plan_id)
            for charge in plan.charges.all():
                self.metric_ids.setdefault(charge.metric.code, charge.metric_id)
        return plan


@dataclass
class _Known:
    """The invoices of the locked subscription (one read, then kept up to date by this close)."""

    invoices: dict[tuple[str, datetime], tuple[int, str]]  # (kind, period start) → (id, status)
    finalized_periods: list[tuple[datetime, datetime]]  # (start, end) of finalized period invoices
    has_commitment: bool  # an active commitment, which period and advance invoices may draw from
    has_credit: bool  # credit the customer's invoices may consume: credit notes, coupons, a wallet

    def done(self, kind: str, start: datetime) -> bool:
        """Finalized, or voided: a voided period is rebuilt only by an explicit regenerate."""
        found = self.invoices.get((kind, start))
        return found is not None and found[1] != InvoiceStatus.DRAFT

    def draft(self, kind: str, start: datetime) -> bool:
        found = self.invoices.get((kind, start))
        return found is not None and found[1] == InvoiceStatus.DRAFT

    def add(self, pk: int, kind: str, start: datetime, end: datetime, status: str) -> None:
        current = self.invoices.get((kind, start))
        if current is None or current[1] == InvoiceStatus.VOIDED:  # the live one wins
            self.invoices[(kind, start)] = (pk, status)
        if kind == InvoiceKind.PERIOD and status == InvoiceStatus.FINALIZED:
            self.finalized_periods.append((start, end))

    def record(self, invoice: Invoice) -> None:
        self.invoices[(invoice.kind, invoice.period_start)] = (invoice.pk, invoice.status)
        if invoice.kind == InvoiceKind.PERIOD and invoice.status == InvoiceStatus.FINALIZED:
            self.finalized_periods.append((invoice.period_start, invoice.period_end))


def _lock_unchanged(
    subscription_id: int, read: Subscription, skip_locked: bool = False
) -> tuple[bool, bool, bool, bool]:
    """Lock the subscription's and its customer's rows; return whether they are as in `read` (by
    their updated_at, which every save() sets), whether the subscription has an active
    commitment, whether the customer has credit to consume (credit notes, coupons, a wallet),
    and whether it has tax codes of its own.

    The customer is locked as well because finalizing consumes the customer's credit (DESIGN §6:
    under the customer's lock). One lean statement instead of the ORM's locking read with joins:
    the rows themselves were read beforehand, in a chunk (close_periods). `skip_locked`: a row
    another transaction holds is not waited for (SubscriptionBusy).
    """
    subscriptions, customers = Subscription._meta.db_table, Customer._meta.db_table
    commitments, notes = Commitment._meta.db_table, CreditNote._meta.db_table
    coupons, wallets = AppliedCoupon._meta.db_table, Wallet._meta.db_table
    own_taxes = CustomerTax._meta.db_table
    lock = " FOR UPDATE OF s, c" if connection.features.has_select_for_update_of else ""
    if lock and skip_locked and connection.features.has_select_for_update_skip_locked:
        lock += " SKIP LOCKED"
    stamp = Subscription._meta.get_field("updated_at")
    customer_stamp = Customer._meta.get_field("updated_at")
    with connection.cursor() as cursor:
        cursor.execute(  # table names from _meta, values as parameters
            f"SELECT s.updated_at = %s AND c.updated_at = %s, "
            f"EXISTS (SELECT 1 FROM {commitments} m WHERE m.subscription_id = s.id AND m.status = %s), "
            f"EXISTS (SELECT 1 FROM {notes} n WHERE n.customer_id = c.id AND n.credit_status = %s "
            f"AND n.balance_amount > 0) "
            f"OR EXISTS (SELECT 1 FROM {coupons} a WHERE a.customer_id = c.id AND a.status = %s) "
            f"OR EXISTS (SELECT 1 FROM {wallets} w WHERE w.customer_id = c.id AND w.status = %s "
            f"AND w.balance > 0), "
            f"EXISTS (SELECT 1 FROM {own_taxes} t WHERE t.customer_id = c.id) "
            f"FROM {subscriptions} s INNER JOIN {customers} c ON c.id = s.customer_id WHERE s.id = %s{lock}",
            [
                stamp.get_db_prep_value(read.updated_at, connection),
                customer_stamp.get_db_prep_value(read.customer.updated_at, connection),
                CommitmentStatus.ACTIVE,
                CreditStatus.AVAILABLE,
                CouponStatus.ACTIVE,
                WalletStatus.ACTIVE,
                subscription_id,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        if skip_locked:
            raise SubscriptionBusy(subscription_id)
        raise Subscription.DoesNotExist(f"subscription {subscription_id} does not exist")
    return bool(row[0]), bool(row[1]), bool(row[2]), bool(row[3])


def _locked_subscription(
    subscription_id: int, cache: RunCache, read: Subscription | None = None, skip_locked: bool = False
) -> Subscription:
    """The subscription, locked with its customer, with its promotion and plan (from the run's
    cache), whether it has an active commitment (`has_commitment`) and whether the customer has
    credit to consume (`has_credit`).

    `read`: the subscription with its customer and promotion as read shortly before, outside
    the lock; used if neither row has changed since (checked under the lock), else read again.
    `skip_locked`: raise SubscriptionBusy rather than wait for another transaction's lock.
    """
    if read is not None:
        unchanged, has_commitment, has_credit, has_own_taxes = _lock_unchanged(subscription_id, read, skip_locked)
        if unchanged:
            read.has_commitment = has_commitment  # type: ignore[attr-defined]
            read.has_credit = has_credit  # type: ignore[attr-defined]
            read.has_own_taxes = has_own_taxes  # type: ignore[attr-defined]
            read.plan = cache.plan(read.plan_id)
            return read
    active = Commitment.objects.filter(subscription=OuterRef("pk"), status=CommitmentStatus.ACTIVE)
    credit = CreditNote.objects.filter(
        customer=OuterRef("customer_id"), credit_status=CreditStatus.AVAILABLE, balance_amount__gt=0
    )
    coupon = AppliedCoupon.objects.filter(customer=OuterRef("customer_id"), status=CouponStatus.ACTIVE)
    wallet = Wallet.objects.filter(customer=OuterRef("customer_id"), status=WalletStatus.ACTIVE, balance__gt=0)
    own_tax = CustomerTax.objects.filter(customer=OuterRef("customer_id"))
    locked = (
        # of=self and customer: the promotion join is nullable, and PostgreSQL cannot lock an
        # outer join's side.
        Subscription.objects.select_related("customer", "promotion")
        .select_for_update(of=("self", "customer"), skip_locked=skip_locked)
        .annotate(
            has_commitment=Exists(active),
            has_credit=Exists(credit) | Exists(coupon) | Exists(wallet),
            has_own_taxes=Exists(own_tax),
        )
        .filter(pk=subscription_id)
        .first()
    )
    if locked is None:
        if skip_locked:
            raise SubscriptionBusy(subscription_id)
        raise Subscription.DoesNotExist(f"subscription {subscription_id} does not exist")
    subscription = locked
    subscription.plan = cache.plan(subscription.plan_id)
    return subscription


def _moment(value: datetime | str) -> datetime:
    """A timestamp from a raw cursor as the ORM would give it: aware (SQLite returns naive UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, connection.timezone)


def _known_invoices(subscription: Subscription) -> _Known:
    """The subscription's period and advance invoices, read after its lock was taken (so a
    closer that held it before has committed its invoices). Raw SQL: on the hot path of a run,
    the ORM's query building cost several times the query."""
    known = _Known(
        invoices={},
        finalized_periods=[],
        has_commitment=subscription.has_commitment,  # type: ignore[attr-defined]
        has_credit=subscription.has_credit,  # type: ignore[attr-defined]
    )
    with connection.cursor() as cursor:
        cursor.execute(  # table name from _meta, values as parameters
            f"SELECT id, kind, period_start, period_end, status FROM {Invoice._meta.db_table} "
            "WHERE subscription_id = %s AND kind IN (%s, %s)",
            [subscription.pk, InvoiceKind.PERIOD, InvoiceKind.ADVANCE],
        )
        rows = cursor.fetchall()
    for pk, kind, start, end, status in rows:
        known.add(pk, kind, _moment(start), _moment(end), status)
    return known


def _create_or_recompute(
    subscription: Subscription,
    kind: str,
    period: Period,
    compute: Callable[[int | None, bool], list[Line]],
    now: datetime,
    report: CloseReport,
    dry_run: bool,
    known: _Known,
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
        subscription = _locked_subscription(subscription_id, cache, read, skip_locked)
        plan = subscription.plan
        known = _known_invoices(subscription)

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
        for period in _ended_periods(subscription, None, now):
            if known.done(InvoiceKind.PERIOD, period.start):
                continue
            # A draft is always taken to its end (recomputed, finalized after its grace period),
            # whatever the month asked or the termination's choice: it is never left behind.
            if not known.draft(InvoiceKind.PERIOD, period.start) and (
                _skipped(subscription, period) or not _in_month(period, month)
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
            for period in _advance_periods(subscription, None, now):
                if known.done(InvoiceKind.ADVANCE, period.start):
                    continue
                if not _in_month(period, month) and not known.draft(InvoiceKind.ADVANCE, period.start):
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


def subscriptions_to_close(
    *, customer_external_id: str | None = None, customer_id: int | None = None, now: datetime | None = None
) -> Iterable[int]:
    """Ids of subscriptions that may have periods to invoice: all but those with none left.

    Left out (unless they have a draft invoice, which is always taken to its end): canceled
    ones (ended before they started: their life is empty, no period of theirs is ever billed),
    terminated ones whose final period has a finalized invoice, and terminated ones that skip
    their closing invoice (on_termination_invoice=skip) once every period but that skipped final
    one is invoiced (checked period by period, as close_subscription walks them)."""
    now = now or timezone.now()
    # The last period ends at the local start of the termination day: within a day (26 hours,
    # with a DST change) before terminated_at, and no earlier period ends that close to it.
    final_invoiced = Invoice.objects.filter(
        subscription=OuterRef("pk"),
        kind=InvoiceKind.PERIOD,
        period_end__gt=OuterRef("terminated_at") - timedelta(hours=26),
    ).exclude(status=InvoiceStatus.DRAFT)
    has_draft = Invoice.objects.filter(subscription=OuterRef("pk"), status=InvoiceStatus.DRAFT)
    # Live subscriptions have no terminated_at, so the comparison is never true for them.
    qs = Subscription.objects.exclude(Exists(final_invoiced)).exclude(
        Q(status=SubscriptionStatus.CANCELED) & ~Exists(has_draft)
    )
    if customer_external_id:
        qs = qs.filter(customer__external_id=customer_external_id)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    skipping = qs.filter(
        status=SubscriptionStatus.TERMINATED,
        on_termination_invoice=OnTerminationInvoice.SKIP,
        terminated_at__lte=now,
    ).exclude(Exists(has_draft))
    done = set(_all_billed(skipping, now))
    return [pk for pk in qs.order_by("id").values_list("id", flat=True) if pk not in done]


def _all_billed(subscriptions: QuerySet[Subscription], now: datetime) -> Iterable[int]:
    """The subscriptions (terminated, by now) each of whose periods is invoiced (not a draft) or
    skipped, as close_subscription sees them: read a chunk at a time with their invoices."""
    ids = list(subscriptions.order_by("id").values_list("id", flat=True))
    for first in range(0, len(ids), CHUNK_SIZE):
        chunk = Subscription.objects.select_related("customer", "plan").in_bulk(ids[first : first + CHUNK_SIZE])
        billed: dict[int, set[tuple[str, datetime]]] = {pk: set() for pk in chunk}
        rows = Invoice.objects.filter(subscription_id__in=chunk, kind__in=[InvoiceKind.PERIOD, InvoiceKind.ADVANCE])
        for subscription_id, kind, start in rows.exclude(status=InvoiceStatus.DRAFT).values_list(
            "subscription_id", "kind", "period_start"
        ):
            billed[subscription_id].add((kind, start))
        for pk, subscription in chunk.items():
            # Every period of its life, ended by `now` or not (its last ends the day after its
            # termination day starts, at the latest): one not over yet keeps it in.
            after_life = max(now, (subscription.terminated_at or now) + timedelta(days=2))
            periods = [
                (InvoiceKind.PERIOD, period)
                for period in _ended_periods(subscription, None, after_life)
                if not _skipped(subscription, period)
            ]
            if subscription.plan.pay_in_advance:
                periods += [
                    (InvoiceKind.ADVANCE, period) for period in _advance_periods(subscription, None, after_life)
                ]
            if all((kind, period.start) in billed[pk] for kind, period in periods):
                yield pk


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

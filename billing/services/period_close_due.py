"""Which subscriptions and periods a close has to invoice: the date walk over a subscription's
periods (pure), and the subscriptions with something left to invoice (one read, then a chunked
check of the terminated ones). billing.services.period_close closes them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from billing.engine.periods import Period
from billing.engine.vocabulary import OnTerminationInvoice
from billing.models import Invoice, InvoiceKind, InvoiceStatus, Subscription, SubscriptionStatus
from billing.selectors.usage import period_of

CHUNK_SIZE = 500  # subscriptions read (with their customers) per query


def ended_periods(subscription: Subscription, after: datetime | None, now: datetime) -> list[Period]:
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


def advance_periods(subscription: Subscription, after: datetime | None, now: datetime) -> list[Period]:
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


def skipped(subscription: Subscription, period: Period) -> bool:
    """Cut short by a termination that skips its closing invoice (Lago's
    on_termination_invoice=skip): the final part of the period is not billed. (A plan change
    always bills it: it resets the choice, billing.services.subscriptions.switch_plan.)"""
    return period.end < period.full_end and subscription.on_termination_invoice == OnTerminationInvoice.SKIP


def in_month(period: Period, month: tuple[int, int] | None) -> bool:
    return month is None or (period.start_day.year, period.start_day.month) == month


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
                for period in ended_periods(subscription, None, after_life)
                if not skipped(subscription, period)
            ]
            if subscription.plan.pay_in_advance:
                periods += [(InvoiceKind.ADVANCE, period) for period in advance_periods(subscription, None, after_life)]
            if all((kind, period.start) in billed[pk] for kind, period in periods):
                yield pk

"""The subscriptions' clock (subscriptions_watch, run every minute): start pending subscriptions
whose start has come, apply staged downgrades whose date has come, terminate those whose
ending_at has come, and announce ended trials (subscription.trial_ended); each in its own
transaction, through billing.services.subscriptions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction

from billing.engine.vocabulary import WebhookType
from billing.models import Subscription, SubscriptionStatus
from billing.selectors.usage import trial_end
from billing.services.subscriptions import subscription_announce, subscription_terminate, switch_plan
from customers.models import Customer

TRIAL_END_ANNOUNCE_WINDOW = timedelta(days=7)  # older trial ends are marked, not announced


@dataclass
class WatchReport:
    started: list[int] = field(default_factory=list)
    trials_ended: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    downgraded: list[int] = field(default_factory=list)  # the new subscriptions
    errors: list[str] = field(default_factory=list)  # one per subscription that failed (the others go on)


def subscriptions_watch(*, now: datetime) -> WatchReport:
    """What happens to subscriptions by the clock (run every minute), each once, in its own
    transaction: pending subscriptions whose start has come become active (subscription.started);
    staged downgrades whose date has come are applied (the old plan ends there, the new one starts
    there); those whose ending_at has come are terminated at that moment; ended trials are
    announced (subscription.trial_ended). After an outage, what was due first happens first: a
    downgrade due before the subscription's ending_at is applied, and the new subscription (which
    carries that ending_at, or the one staged with the downgrade) then ends; an ending_at due
    before (or at) the downgrade terminates the subscription, and the staged downgrade is dropped.
    A subscription that fails (e.g. a staged plan no longer in the customer's currency) is
    reported in `errors` and retried at the next run; it does not stop the others. The customer's
    row is locked before the subscription's, as subscription_create does."""
    report = WatchReport()
    due = Subscription.objects.filter(status=SubscriptionStatus.PENDING, subscription_at__lte=now)
    for pk in due.order_by("subscription_at", "id").values_list("pk", flat=True):
        _watch_one(pk, now, report, report.started, _start)
    downgrades = Subscription.objects.filter(status=SubscriptionStatus.ACTIVE, downgrade_at__lte=now)
    for pk in downgrades.order_by("downgrade_at", "id").values_list("pk", flat=True):
        _watch_one(pk, now, report, report.downgraded, _apply_downgrade)
    ending = Subscription.objects.filter(status=SubscriptionStatus.ACTIVE, ending_at__lte=now)
    for pk in ending.order_by("ending_at", "id").values_list("pk", flat=True):
        _watch_one(pk, now, report, report.ended, _end)
    _announce_trial_ends(now, report)
    return report


def _watch_one(
    pk: int, now: datetime, report: WatchReport, done: list[int], apply: Callable[[int, datetime], int | None]
) -> None:
    """Apply one subscription's due change in its own transaction: the id it reports (None:
    nothing was due any more) goes to `done`; a failure is reported and rolled back."""
    try:
        with transaction.atomic():
            result = apply(pk, now)
    except Exception as exc:  # report and go on: one bad row must not stop the clock every minute
        report.errors.append(f"subscription {pk}: {exc}")
        return
    if result is not None:
        done.append(result)


def _lock(pk: int) -> Subscription | None:
    """The subscription locked after its customer (subscription_create's order: no deadlock with
    a concurrent create or plan change); None if it is gone."""
    customer_id = Subscription.objects.filter(pk=pk).values_list("customer_id", flat=True).first()
    if customer_id is None:
        return None
    Customer.all_objects.select_for_update().filter(pk=customer_id).first()
    return (
        # of=self: the promotion join is nullable, and PostgreSQL cannot lock an outer join's side.
        Subscription.objects.select_for_update(of=("self",))
        .select_related("customer", "plan", "promotion", "next_plan")
        .filter(pk=pk)
        .first()
    )


def _start(pk: int, now: datetime) -> int | None:
    subscription = Subscription.objects.select_for_update().filter(pk=pk).first()
    if subscription is None or subscription.status != SubscriptionStatus.PENDING or subscription.subscription_at > now:
        return None
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.save(update_fields=["status", "updated_at"])
    subscription_announce(subscription, WebhookType.SUBSCRIPTION_STARTED)
    return pk


def _end(pk: int, now: datetime) -> int | None:
    subscription = _lock(pk)
    if subscription is None or subscription.status != SubscriptionStatus.ACTIVE:
        return None
    ends = subscription.ending_at
    if ends is None or ends > now:
        return None
    subscription_terminate(subscription=subscription, at=ends)
    return pk


def _apply_downgrade(pk: int, now: datetime) -> int | None:
    """Apply a staged downgrade whose date has come, once: under the subscription's lock a
    second clock finds it terminated; the one-to-one `previous` link and the one live
    subscription per external_id back that up. The new subscription's id, or None."""
    existing = _lock(pk)
    if existing is None or existing.status != SubscriptionStatus.ACTIVE:
        return None
    at, plan = existing.downgrade_at, existing.next_plan
    if at is None or plan is None or at > now:
        return None
    if existing.ending_at is not None and existing.ending_at <= at:
        return None  # it ends first (the endings below): the downgrade is dropped then
    # The ending_at staged with it, else the subscription's own (a later one set since).
    ending_at = (
        existing.next_ending_at if existing.next_ending_at is not None and existing.next_ending_at > at else None
    )
    new = switch_plan(
        existing, plan=plan, switch=at, subscription_at=at, now=now, name=existing.next_name, ending_at=ending_at
    )
    return new.pk


def _announce_trial_ends(now: datetime, report: WatchReport) -> None:
    in_trial = Subscription.objects.filter(
        promotion__percent_off=100,
        trial_end_announced_at__isnull=True,
        status__in=[SubscriptionStatus.ACTIVE, SubscriptionStatus.TERMINATED],
        subscription_at__lte=now,
    )
    for pk in in_trial.order_by("id").values_list("pk", flat=True):
        _watch_one(pk, now, report, report.trials_ended, _announce_trial_end)


def _announce_trial_end(pk: int, now: datetime) -> int | None:
    subscription = (
        Subscription.objects.select_for_update(of=("self",)).select_related("customer", "promotion").get(pk=pk)
    )
    ended = trial_end(subscription)
    if subscription.trial_end_announced_at is not None or ended is None or ended > now:
        return None
    # Terminated during its trial: the subscription ended, not its trial.
    ended_early = subscription.terminated_at is not None and subscription.terminated_at <= ended
    subscription.trial_end_announced_at = now
    subscription.save(update_fields=["trial_end_announced_at", "updated_at"])
    # A trial that ended long ago (the schedule was off, or a back-dated subscription) is
    # marked without a webhook: announcing it now would be news of old times.
    if not ended_early and now - ended <= TRIAL_END_ANNOUNCE_WINDOW:
        subscription_announce(subscription, WebhookType.SUBSCRIPTION_TRIAL_ENDED)
        return pk
    return None

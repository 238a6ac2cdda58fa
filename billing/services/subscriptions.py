"""Subscription services: create (with the plan's promotion and commitment, and its own prices:
plan_overrides), update (its name, its own prices), terminate, and what the clock does to them
(start pending ones, announce ended trials); each change is announced (subscription.started,
.terminated, .trial_ended) in its transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

from django.conf import settings
from django.db import transaction

from billing.engine.vocabulary import WebhookType
from billing.models import Alert, Plan, Promotion, Subscription, SubscriptionStatus
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import trial_end
from billing.services.commitments import CommitmentError, commitment_from_plan
from billing.services.plan_overrides import overridden_prices, plan_override_create, same_prices
from billing.services.webhooks import announce
from customers.models import Customer
from metering.days import day_start, local_date

CURRENCY_MISMATCH = "plan {plan!r} is priced in {plan_currency}, customer {customer!r} is billed in {currency}"
EXTERNAL_ID_TAKEN = "already used by subscription of customer {customer!r} on plan {plan!r}"
PLAN_CHANGE_BEFORE_START = "a plan change cannot take effect before the current subscription started"
STARTS_TOO_EARLY = (
    "must not be more than {days} days in the past (BILLING_SUBSCRIPTION_MAX_PAST_DAYS): "
    "every period since would be invoiced"
)
TRIAL_END_ANNOUNCE_WINDOW = timedelta(days=7)  # older trial ends are marked, not announced
STARTS_TOO_LATE = "must not be more than {days} days in the future (BILLING_SUBSCRIPTION_MAX_FUTURE_DAYS)"
# The same request again returns the subscription it made; one that would change it is refused.
RETRY_OTHER_NAME = (
    "subscription {external_id!r} exists with another name: rename it with PUT /api/v1/subscriptions/{external_id}"
)
RETRY_OTHER_PRICES = (
    "subscription {external_id!r} exists with other prices: change them with plan_overrides in "
    "PUT /api/v1/subscriptions/{external_id}"
)


class _Default(Enum):
    PROMOTION = "the plan's promotion"


PLAN_PROMOTION = _Default.PROMOTION  # subscription_create's default: the plan's (or the replaced one's)


class SubscriptionError(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def check_subscription_at(subscription_at: datetime, *, now: datetime) -> None:
    """Refuse (SubscriptionError) a start outside the window a new subscription may start in."""
    past, future = settings.BILLING_SUBSCRIPTION_MAX_PAST_DAYS, settings.BILLING_SUBSCRIPTION_MAX_FUTURE_DAYS
    if subscription_at < now - timedelta(days=past):
        raise SubscriptionError("subscription_at", STARTS_TOO_EARLY.format(days=past))
    if subscription_at > now + timedelta(days=future):
        raise SubscriptionError("subscription_at", STARTS_TOO_LATE.format(days=future))


@transaction.atomic
def subscription_create(
    *,
    customer: Customer,
    plan: Plan,
    external_id: str,
    subscription_at: datetime,
    billing_time: str,
    now: datetime,
    promotion: Promotion | Literal[_Default.PROMOTION] | None = PLAN_PROMOTION,
    name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Subscription, bool]:
    """Subscribe the customer to the plan's current version; the plan's promotion is attached,
    unless `promotion` names another one, or None for none (its window starts with the
    subscription). With `overrides` (Lago's plan_overrides) the subscription gets its own prices:
    an override plan copying the plan (billing.services.plan_overrides), whose promotion (its
    trial_period) is the plan's; PlanOverrideError when they are invalid, with nothing stored.

    Idempotent: the same external_id for the same customer and plan returns the existing
    subscription (created = False); if the request would change it (another name, other prices),
    it is refused (SubscriptionError): that is PUT's work. The same external_id with another plan is a plan change
    (as in Lago): the live subscription is terminated at the start of `subscription_at`'s local
    day (or at its own start, if that is later: it then never ran) and a new one starts at
    `subscription_at`, carrying the promotion window of the first one, so a trial is given once.
    """
    existing = (
        # of=self: the promotion join is nullable, and PostgreSQL cannot lock an outer join's side.
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan", "customer", "promotion")
        .exclude(status=SubscriptionStatus.TERMINATED)
        .filter(external_id=external_id)
        .first()
    )
    if existing is None or existing.plan.code != plan.code:  # a new subscription starts
        check_subscription_at(subscription_at, now=now)
    previous = None
    attached, promotion_start = plan.promotion, subscription_at
    if existing is not None:
        if existing.customer_id != customer.pk:
            raise SubscriptionError(
                "external_id", EXTERNAL_ID_TAKEN.format(customer=existing.customer.external_id, plan=existing.plan.code)
            )
        if existing.plan.code == plan.code:
            _check_retry(existing, name=name, overrides=overrides)
            return existing, False
        if subscription_at < existing.subscription_at:
            raise SubscriptionError("subscription_at", PLAN_CHANGE_BEFORE_START)
        # Days are billed whole, and the day a subscription starts counts whole: so the old plan
        # ends at the start of the change's local day (a termination at midnight does not count
        # that day) and the day of the change is billed once, on the new plan. Ending it at the
        # change's instant would bill that day (its base fee and its events) on both plans.
        tz = existing.customer.timezone
        switch = max(day_start(local_date(subscription_at, tz), tz), existing.subscription_at)
        previous = subscription_terminate(subscription=existing, at=switch)
        attached = existing.promotion
        promotion_start = existing.promotion_start or existing.subscription_at
        if name is None:
            name = existing.name
    if overrides is not None:
        plan = plan_override_create(plan=plan, overrides=overrides)
        if previous is None:  # on a plan change the first subscription's promotion carries on
            attached = plan.promotion
    if plan.currency != customer.currency:
        raise SubscriptionError(
            "plan_code",
            CURRENCY_MISMATCH.format(
                plan=plan.code, plan_currency=plan.currency, customer=customer.external_id, currency=customer.currency
            ),
        )
    if promotion is not PLAN_PROMOTION:
        attached, promotion_start = promotion, subscription_at
    subscription = Subscription.objects.create(
        customer=customer,
        plan=plan,
        external_id=external_id,
        name=name or "",
        subscription_at=subscription_at,
        billing_time=billing_time,
        status=SubscriptionStatus.ACTIVE if subscription_at <= now else SubscriptionStatus.PENDING,
        promotion=attached,
        promotion_start=promotion_start if attached is not None else None,
        previous=previous,
    )
    if previous is not None:
        # Alerts follow the subscription's external id across plan changes, as in Lago.
        Alert.objects.filter(subscription=previous).update(subscription=subscription)
    try:
        commitment_from_plan(subscription=subscription, today=local_date(now, customer.timezone), now=now)
    except CommitmentError as exc:  # the plan's default terms cannot be taken (e.g. its amount's precision)
        raise SubscriptionError("plan_code", exc.message) from exc
    if subscription.status == SubscriptionStatus.ACTIVE:  # also when back-dated; a pending one when it starts
        _announce(subscription, WebhookType.SUBSCRIPTION_STARTED)
    return subscription, True


def _check_retry(existing: Subscription, *, name: str | None, overrides: Mapping[str, Any] | None) -> None:
    """Refuse (SubscriptionError) a repeated create that would change the existing subscription."""
    if name is not None and name != existing.name:
        raise SubscriptionError("name", RETRY_OTHER_NAME.format(external_id=existing.external_id))
    if overrides is None:
        return
    stored = plans_with_charges().get(pk=existing.plan_id)
    # The overrides as they applied then: to the catalog plan version the subscription copies.
    base = plans_with_charges().get(pk=stored.parent_id) if stored.parent_id is not None else stored
    if not same_prices(stored, overridden_prices(plan=base, overrides=overrides)):
        raise SubscriptionError("plan_overrides", RETRY_OTHER_PRICES.format(external_id=existing.external_id))


@transaction.atomic
def subscription_update(
    *, subscription: Subscription, name: str | None = None, plan_overrides: Mapping[str, Any] | None = None
) -> Subscription:
    """Lago's update of a subscription: its own name, and its own prices (plan_overrides: see
    billing.services.plan_overrides; PlanOverrideError when invalid, with nothing changed)."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if plan_overrides is not None:
        plan_override_create(subscription=subscription, overrides=plan_overrides)
        subscription.refresh_from_db()
    if name is not None and name != subscription.name:
        subscription.name = name
        subscription.save(update_fields=["name", "updated_at"])
    return subscription


@transaction.atomic
def subscription_terminate(*, subscription: Subscription, at: datetime) -> Subscription:
    """End the subscription at `at` (idempotent: a terminated subscription is returned unchanged)."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status == SubscriptionStatus.TERMINATED:
        return subscription
    subscription.status = SubscriptionStatus.TERMINATED
    subscription.terminated_at = max(at, subscription.subscription_at)
    subscription.save(update_fields=["status", "terminated_at", "updated_at"])
    _announce(subscription, WebhookType.SUBSCRIPTION_TERMINATED)
    return subscription


def _announce(subscription: Subscription, webhook_type: WebhookType) -> None:
    announce(webhook_type=webhook_type, object_type="subscription", obj=subscription, object_id=subscription.pk)


@dataclass
class WatchReport:
    started: list[int] = field(default_factory=list)
    trials_ended: list[int] = field(default_factory=list)


def subscriptions_watch(*, now: datetime) -> WatchReport:
    """What happens to subscriptions by the clock (run every minute): pending subscriptions whose
    start has come become active (subscription.started), and ended trials are announced
    (subscription.trial_ended), each once, under the subscription's row lock."""
    report = WatchReport()
    due = Subscription.objects.filter(status=SubscriptionStatus.PENDING, subscription_at__lte=now)
    for pk in due.order_by("subscription_at", "id").values_list("pk", flat=True):
        with transaction.atomic():
            subscription = Subscription.objects.select_for_update().get(pk=pk)
            if subscription.status == SubscriptionStatus.PENDING and subscription.subscription_at <= now:
                subscription.status = SubscriptionStatus.ACTIVE
                subscription.save(update_fields=["status", "updated_at"])
                _announce(subscription, WebhookType.SUBSCRIPTION_STARTED)
                report.started.append(pk)
    in_trial = Subscription.objects.filter(
        promotion__percent_off=100,
        trial_end_announced_at__isnull=True,
        status__in=[SubscriptionStatus.ACTIVE, SubscriptionStatus.TERMINATED],
        subscription_at__lte=now,
    )
    for pk in in_trial.order_by("id").values_list("pk", flat=True):
        with transaction.atomic():
            subscription = (
                Subscription.objects.select_for_update(of=("self",)).select_related("customer", "promotion").get(pk=pk)
            )
            ended = trial_end(subscription)
            if subscription.trial_end_announced_at is not None or ended is None or ended > now:
                continue
            # Terminated during its trial: the subscription ended, not its trial.
            ended_early = subscription.terminated_at is not None and subscription.terminated_at <= ended
            subscription.trial_end_announced_at = now
            subscription.save(update_fields=["trial_end_announced_at", "updated_at"])
            # A trial that ended long ago (the schedule was off, or a back-dated subscription) is
            # marked without a webhook: announcing it now would be news of old times.
            if not ended_early and now - ended <= TRIAL_END_ANNOUNCE_WINDOW:
                _announce(subscription, WebhookType.SUBSCRIPTION_TRIAL_ENDED)
                report.trials_ended.append(pk)
    return report

"""Subscription services: create (with the plan's promotion and commitment) and terminate."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from django.conf import settings
from django.db import transaction

from billing.models import Plan, Promotion, Subscription, SubscriptionStatus
from billing.services.commitments import CommitmentError, commitment_from_plan
from customers.models import Customer
from metering.days import day_start, local_date

CURRENCY_MISMATCH = "plan {plan!r} is priced in {plan_currency}, customer {customer!r} is billed in {currency}"
EXTERNAL_ID_TAKEN = "already used by subscription of customer {customer!r} on plan {plan!r}"
PLAN_CHANGE_BEFORE_START = "a plan change cannot take effect before the current subscription started"
STARTS_TOO_EARLY = (
    "must not be more than {days} days in the past (BILLING_SUBSCRIPTION_MAX_PAST_DAYS): "
    "every period since would be invoiced"
)
STARTS_TOO_LATE = "must not be more than {days} days in the future (BILLING_SUBSCRIPTION_MAX_FUTURE_DAYS)"


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
) -> tuple[Subscription, bool]:
    """Subscribe the customer to the plan's current version; the plan's promotion is attached,
    unless `promotion` names another one, or None for none (its window starts with the
    subscription).

    Idempotent: the same external_id for the same customer and plan returns the existing
    subscription (created = False). The same external_id with another plan is a plan change
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
        subscription_at=subscription_at,
        billing_time=billing_time,
        status=SubscriptionStatus.ACTIVE if subscription_at <= now else SubscriptionStatus.PENDING,
        promotion=attached,
        promotion_start=promotion_start if attached is not None else None,
        previous=previous,
    )
    try:
        commitment_from_plan(subscription=subscription, today=local_date(now, customer.timezone))
    except CommitmentError as exc:  # the plan's default terms cannot be taken (e.g. its amount's precision)
        raise SubscriptionError("plan_code", exc.message) from exc
    return subscription, True


@transaction.atomic
def subscription_terminate(*, subscription: Subscription, at: datetime) -> Subscription:
    """End the subscription at `at` (idempotent: a terminated subscription is returned unchanged)."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status == SubscriptionStatus.TERMINATED:
        return subscription
    subscription.status = SubscriptionStatus.TERMINATED
    subscription.terminated_at = max(at, subscription.subscription_at)
    subscription.save(update_fields=["status", "terminated_at", "updated_at"])
    return subscription

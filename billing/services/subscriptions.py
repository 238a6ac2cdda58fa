"""Subscription services: create (with the plan's promotion and commitment, and its own prices:
plan_overrides), a plan change (an upgrade at once, a downgrade staged to the end of the current
period, as Lago), update (its name, its own prices, its end, the start of a pending one, what its
termination bills) and terminate (a pending one is canceled, as Lago); each change is announced
(subscription.started, .terminated) in its transaction. What the clock does to them is
billing.services.subscription_clock's."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.engine.vocabulary import Interval, OnTerminationInvoice, WebhookType
from billing.models import Alert, Commitment, Plan, Promotion, Subscription, SubscriptionStatus
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import period_of
from billing.services.commitments import CommitmentError, commitment_from_plan
from billing.services.plan_overrides import overridden_prices, plan_override_create, same_prices
from billing.services.webhooks import announce
from customers.models import Customer
from metering.days import day_start, local_date

CUSTOMER_DELETED = "unknown customer {ref!r} (deleted)"
PLAN_RETIRED = "plan {code!r} was deleted or retired"
CURRENCY_MISMATCH = "plan {plan!r} is priced in {plan_currency}, customer {customer!r} is billed in {currency}"
EXTERNAL_ID_TAKEN = "already used by subscription of customer {customer!r} on plan {plan!r}"
PLAN_CHANGE_BEFORE_START = "a plan change cannot take effect before the current subscription started"
STARTS_TOO_EARLY = (
    "must not be more than {days} days in the past (BILLING_SUBSCRIPTION_MAX_PAST_DAYS): "
    "every period since would be invoiced"
)
STARTS_TOO_LATE = "must not be more than {days} days in the future (BILLING_SUBSCRIPTION_MAX_FUTURE_DAYS)"
# The same request again returns the subscription it made; one that would change it is refused.
RETRY_OTHER_NAME = (
    "subscription {external_id!r} exists with another name: rename it with PUT /api/v1/subscriptions/{external_id}"
)
RETRY_OTHER_PRICES = (
    "subscription {external_id!r} exists with other prices: change them with plan_overrides in "
    "PUT /api/v1/subscriptions/{external_id}"
)


RETRY_OTHER_END = (
    "subscription {external_id!r} exists with another ending_at: change it with PUT /api/v1/subscriptions/{external_id}"
)
ENDS_TOO_EARLY = "must be a day after today and after the subscription's start day (as Lago)"
ENDS_BEFORE_SWITCH = "must be after {at}, when the new plan starts"
ONLY_WHILE_PENDING = "can only change while the subscription is pending (it has started)"
START_HAS_COMMITMENT = "cannot change: the subscription's commitment starts on its start day"
NOT_LIVE = "the subscription is {status}: it can no longer change"
STARTS_WITH_PLAN_CHANGE = (
    "cannot change: this subscription is a plan change, it starts when the previous plan ends ({at}); "
    "change the plan again instead (POST /api/v1/subscriptions)"
)
BAD_CHOICE = "must be one of: {choices}"
CREDIT_NOTE_SKIP_ONLY = (
    "only 'skip' is supported: no credit note is issued on termination (an advance base fee is not refunded)"
)
# Lago's values of on_termination_credit_note; this app issues no termination credit note.
CREDIT_NOTE_CHOICES = ("credit", "refund", "offset", "skip")
LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)
ENDED = (SubscriptionStatus.TERMINATED, SubscriptionStatus.CANCELED)


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


def check_ending_at(ending_at: datetime, *, subscription_at: datetime, now: datetime) -> None:
    """Lago's rule (its dates in UTC): the end falls on a day after today and after the start's."""
    if ending_at.astimezone(UTC).date() <= max(now.astimezone(UTC).date(), subscription_at.astimezone(UTC).date()):
        raise SubscriptionError("ending_at", ENDS_TOO_EARLY)


def check_on_termination(*, invoice: str | None, credit_note: str | None) -> None:
    """Lago's on_termination_invoice (generate, skip) and on_termination_credit_note (only skip here)."""
    if invoice is not None and invoice not in OnTerminationInvoice.values:
        raise SubscriptionError(
            "on_termination_invoice", BAD_CHOICE.format(choices=", ".join(OnTerminationInvoice.values))
        )
    if credit_note is not None:
        if credit_note not in CREDIT_NOTE_CHOICES:
            raise SubscriptionError(
                "on_termination_credit_note", BAD_CHOICE.format(choices=", ".join(CREDIT_NOTE_CHOICES))
            )
        if credit_note != "skip":
            raise SubscriptionError("on_termination_credit_note", CREDIT_NOTE_SKIP_ONLY)


def yearly_base_fee(plan: Plan) -> Decimal:
    """The plan's base fee over a year: what Lago compares to tell an upgrade from a downgrade."""
    return plan.base_fee * 12 if plan.interval == Interval.MONTH else plan.base_fee


def is_downgrade(*, current: Plan, new: Plan) -> bool:
    """Lago's downgrade: the new plan's yearly base fee is lower (equal is an upgrade)."""
    return yearly_base_fee(new) < yearly_base_fee(current)


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
    ending_at: datetime | None = None,
) -> tuple[Subscription, bool]:
    """Subscribe the customer to the plan's current version; the plan's promotion is attached,
    unless `promotion` names another one, or None for none (its window starts with the
    subscription). With `overrides` (Lago's plan_overrides) the subscription gets its own prices:
    an override plan copying the plan (billing.services.plan_overrides), whose promotion (its
    trial_period) is the plan's; PlanOverrideError when they are invalid, with nothing stored.
    `ending_at`: the clock terminates it then (Lago's rule: a day after today and its start's).

    Idempotent: the same external_id for the same customer and plan returns the existing
    subscription (created = False); if the request would change it (another name, other prices,
    another end), it is refused (SubscriptionError): that is PUT's work. The same external_id with
    another plan is a plan change (as in Lago). A downgrade (a lower yearly base fee, Lago's
    test) of an active subscription is staged: the subscription is returned with its next plan,
    which the clock applies at the end of its current billing period (subscriptions_watch). An
    upgrade (or any change of a pending one) applies at once: the live subscription is terminated
    at the start of `subscription_at`'s local day (or at its own start, if that is later: it then
    never ran, and is canceled) and a new one starts at `subscription_at`, carrying the promotion
    window of the first one, so a trial is given once, and its ending_at unless one is given.
    """
    # The customer's row lock first, as customer_destroy takes it: a delete either sees this
    # subscription (and is refused) or has committed, and then the customer is gone here.
    if Customer.objects.select_for_update().filter(pk=customer.pk).first() is None:
        raise SubscriptionError("external_customer_id", CUSTOMER_DELETED.format(ref=customer.external_id))
    # Then the plan's, as plan_destroy takes it: a plan deleted or retired meanwhile sells nothing.
    # (An older version of a plan still sold, e.g. a staged downgrade's, is fine.)
    if (
        Plan.objects.select_for_update().filter(pk=plan.pk).first() is None
        or not Plan.objects.catalog().filter(code=plan.code, is_current=True).exists()
    ):
        raise SubscriptionError("plan_code", PLAN_RETIRED.format(code=plan.code))
    existing = (
        # of=self: the promotion join is nullable, and PostgreSQL cannot lock an outer join's side.
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan", "customer", "promotion")
        .exclude(status__in=ENDED)
        .filter(external_id=external_id)
        .first()
    )
    if existing is None or existing.plan.code != plan.code:  # a new subscription starts
        check_subscription_at(subscription_at, now=now)
    if ending_at is not None:
        check_ending_at(ending_at, subscription_at=subscription_at, now=now)
    if existing is None:
        if overrides is not None:
            plan = plan_override_create(plan=plan, overrides=overrides)
        attached = plan.promotion if promotion is PLAN_PROMOTION else promotion
        return _subscribe(
            customer=customer,
            plan=plan,
            external_id=external_id,
            name=name or "",
            subscription_at=subscription_at,
            billing_time=billing_time,
            now=now,
            promotion=attached,
            promotion_start=subscription_at,
            ending_at=ending_at,
        ), True
    if existing.customer_id != customer.pk:
        raise SubscriptionError(
            "external_id", EXTERNAL_ID_TAKEN.format(customer=existing.customer.external_id, plan=existing.plan.code)
        )
    if existing.plan.code == plan.code:
        _check_retry(existing, name=name, overrides=overrides, ending_at=ending_at)
        return existing, False
    if subscription_at < existing.subscription_at:
        raise SubscriptionError("subscription_at", PLAN_CHANGE_BEFORE_START)
    if overrides is not None:
        plan = plan_override_create(plan=plan, overrides=overrides)
    _check_currency(customer, plan)
    if existing.status == SubscriptionStatus.ACTIVE and is_downgrade(current=existing.plan, new=plan):
        return _stage_downgrade(existing, plan=plan, name=name, ending_at=ending_at, now=now), False
    # Days are billed whole, and the day a subscription starts counts whole: so the old plan
    # ends at the start of the change's local day (a termination at midnight does not count
    # that day) and the day of the change is billed once, on the new plan. Ending it at the
    # change's instant would bill that day (its base fee and its events) on both plans.
    tz = existing.customer.timezone
    switch = max(day_start(local_date(subscription_at, tz), tz), existing.subscription_at)
    return switch_plan(
        existing,
        plan=plan,
        switch=switch,
        subscription_at=subscription_at,
        now=now,
        name=name,
        ending_at=ending_at,
        promotion=promotion,
    ), True


def _check_currency(customer: Customer, plan: Plan) -> None:
    if plan.currency != customer.currency:
        raise SubscriptionError(
            "plan_code",
            CURRENCY_MISMATCH.format(
                plan=plan.code, plan_currency=plan.currency, customer=customer.external_id, currency=customer.currency
            ),
        )


def _subscribe(
    *,
    customer: Customer,
    plan: Plan,
    external_id: str,
    name: str,
    subscription_at: datetime,
    billing_time: str,
    now: datetime,
    promotion: Promotion | None,
    promotion_start: datetime,
    ending_at: datetime | None,
    previous: Subscription | None = None,
) -> Subscription:
    """Store a new subscription: its commitment (the plan's), its alerts (the replaced one's), and
    subscription.started when it has started."""
    _check_currency(customer, plan)
    subscription = Subscription.objects.create(
        customer=customer,
        plan=plan,
        external_id=external_id,
        name=name,
        subscription_at=subscription_at,
        billing_time=billing_time,
        status=SubscriptionStatus.ACTIVE if subscription_at <= now else SubscriptionStatus.PENDING,
        promotion=promotion,
        promotion_start=promotion_start if promotion is not None else None,
        previous=previous,
        ending_at=ending_at,
    )
    if previous is not None:
        # Alerts follow the subscription's external id across plan changes, as in Lago.
        Alert.objects.filter(subscription=previous).update(subscription=subscription)
    try:
        commitment_from_plan(subscription=subscription, today=local_date(now, customer.timezone), now=now)
    except CommitmentError as exc:  # the plan's default terms cannot be taken (e.g. its amount's precision)
        raise SubscriptionError("plan_code", exc.message) from exc
    if subscription.status == SubscriptionStatus.ACTIVE:  # also when back-dated; a pending one when it starts
        subscription_announce(subscription, WebhookType.SUBSCRIPTION_STARTED)
    return subscription


def switch_plan(
    existing: Subscription,
    *,
    plan: Plan,
    switch: datetime,
    subscription_at: datetime,
    now: datetime,
    name: str | None,
    ending_at: datetime | None,
    promotion: Promotion | Literal[_Default.PROMOTION] | None = PLAN_PROMOTION,
) -> Subscription:
    """A plan change now (the existing subscription locked): it ends at `switch` (canceled if it
    never started) and a new one on `plan` starts at `subscription_at`, the first one's promotion
    window and ending_at carried on."""
    # A plan change always bills the old plan's part period: its on_termination_invoice (skip)
    # is for a termination, not for a change of plan (as Lago bills an upgraded subscription).
    previous = subscription_terminate(
        subscription=existing, at=switch, on_termination_invoice=OnTerminationInvoice.GENERATE
    )
    attached, promotion_start = existing.promotion, existing.promotion_start or existing.subscription_at
    if promotion is not PLAN_PROMOTION:
        attached, promotion_start = promotion, subscription_at
    if ending_at is None and existing.ending_at is not None:
        ending_at = existing.ending_at
        if ending_at <= subscription_at:
            raise SubscriptionError("ending_at", ENDS_BEFORE_SWITCH.format(at=subscription_at.isoformat()))
    return _subscribe(
        customer=existing.customer,
        plan=plan,
        external_id=existing.external_id,
        name=existing.name if name is None else name,
        subscription_at=subscription_at,
        billing_time=existing.billing_time,
        now=now,
        promotion=attached,
        promotion_start=promotion_start,
        ending_at=ending_at,
        previous=previous,
    )


def _stage_downgrade(
    existing: Subscription, *, plan: Plan, name: str | None, ending_at: datetime | None, now: datetime
) -> Subscription:
    """Lago's downgrade: the subscription stays on its plan to the end of its current billing
    period (its plan's interval: a yearly plan's year), then the clock moves it to `plan`. A
    downgrade staged before is replaced."""
    at = period_of(existing, at=now, interval=existing.plan.interval).end
    if ending_at is not None and ending_at <= at:
        raise SubscriptionError("ending_at", ENDS_BEFORE_SWITCH.format(at=at.isoformat()))
    existing.next_plan, existing.downgrade_at = plan, at
    existing.next_name = existing.name if name is None else name
    existing.next_ending_at = ending_at if ending_at is not None else existing.ending_at
    existing.save(update_fields=["next_plan", "downgrade_at", "next_name", "next_ending_at", "updated_at"])
    return existing


def _check_retry(
    existing: Subscription,
    *,
    name: str | None,
    overrides: Mapping[str, Any] | None,
    ending_at: datetime | None,
) -> None:
    """Refuse (SubscriptionError) a repeated create that would change the existing subscription."""
    if name is not None and name != existing.name:
        raise SubscriptionError("name", RETRY_OTHER_NAME.format(external_id=existing.external_id))
    if ending_at is not None and ending_at != existing.ending_at:
        raise SubscriptionError("ending_at", RETRY_OTHER_END.format(external_id=existing.external_id))
    if overrides is None:
        return
    stored = plans_with_charges().get(pk=existing.plan_id)
    # The overrides as they applied then: to the catalog plan version the subscription copies.
    base = plans_with_charges().get(pk=stored.parent_id) if stored.parent_id is not None else stored
    if not same_prices(stored, overridden_prices(plan=base, overrides=overrides)):
        raise SubscriptionError("plan_overrides", RETRY_OTHER_PRICES.format(external_id=existing.external_id))


@transaction.atomic
def subscription_update(
    *,
    subscription: Subscription,
    name: str | None = None,
    plan_overrides: Mapping[str, Any] | None = None,
    ending_at: datetime | None = None,
    subscription_at: datetime | None = None,
    on_termination_invoice: str | None = None,
    on_termination_credit_note: str | None = None,
    now: datetime | None = None,
) -> Subscription:
    """Lago's update of a subscription, under its row lock: its own name, its own prices
    (plan_overrides: see billing.services.plan_overrides; PlanOverrideError when invalid, with
    nothing changed), its end (`ending_at`, Lago's rule), the start of a pending one (a start
    that has come activates it at once), and what its termination bills. None: unchanged.
    SubscriptionError when a value cannot be taken, with nothing changed."""
    now = now or timezone.now()
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    check_on_termination(invoice=on_termination_invoice, credit_note=on_termination_credit_note)
    # (a terminated subscription's plan_overrides are refused by plan_override_create)
    if subscription.status in ENDED:
        for name_, value in (("ending_at", ending_at), ("subscription_at", subscription_at)):
            if value is not None:
                raise SubscriptionError(name_, NOT_LIVE.format(status=subscription.status))
        if plan_overrides is not None and subscription.status == SubscriptionStatus.CANCELED:
            raise SubscriptionError("plan_overrides", NOT_LIVE.format(status=subscription.status))
        # What its termination bills was decided when it ended (the closer may have billed it).
        for choice, chosen, stored in (
            ("on_termination_invoice", on_termination_invoice, subscription.on_termination_invoice),
            ("on_termination_credit_note", on_termination_credit_note, _credit_note_shown(subscription)),
        ):
            if chosen is not None and chosen != stored:
                raise SubscriptionError(choice, NOT_LIVE.format(status=subscription.status))
    if plan_overrides is not None:
        plan_override_create(subscription=subscription, overrides=plan_overrides)
        subscription.refresh_from_db()
    fields = ["updated_at"]
    started = False
    if subscription_at is not None and subscription_at != subscription.subscription_at:
        if subscription.status != SubscriptionStatus.PENDING:
            raise SubscriptionError("subscription_at", ONLY_WHILE_PENDING)
        if subscription.previous_id is not None:  # moving it would leave a gap, or an overlap
            raise SubscriptionError(
                "subscription_at", STARTS_WITH_PLAN_CHANGE.format(at=subscription.subscription_at.isoformat())
            )
        if Commitment.objects.filter(subscription=subscription).exists():
            raise SubscriptionError("subscription_at", START_HAS_COMMITMENT)
        check_subscription_at(subscription_at, now=now)
        if subscription.promotion_start == subscription.subscription_at:  # its own window moves with it
            subscription.promotion_start = subscription_at
        subscription.subscription_at = subscription_at
        fields += ["subscription_at", "promotion_start"]
        if subscription_at <= now:
            subscription.status, started = SubscriptionStatus.ACTIVE, True
            fields.append("status")
    if ending_at is not None:
        check_ending_at(ending_at, subscription_at=subscription.subscription_at, now=now)
        subscription.ending_at = ending_at
        fields.append("ending_at")
    elif subscription.ending_at is not None and subscription.ending_at <= subscription.subscription_at:
        raise SubscriptionError(
            "subscription_at", ENDS_BEFORE_SWITCH.format(at=subscription.subscription_at.isoformat())
        )
    if name is not None and name != subscription.name:
        subscription.name = name
        fields.append("name")
    if on_termination_invoice is not None:
        subscription.on_termination_invoice = on_termination_invoice
        fields.append("on_termination_invoice")
    if on_termination_credit_note is not None:
        subscription.on_termination_credit_note = on_termination_credit_note
        fields.append("on_termination_credit_note")
    if len(fields) > 1:
        subscription.save(update_fields=fields)
    if started:
        subscription_announce(subscription, WebhookType.SUBSCRIPTION_STARTED)
    return subscription


def _credit_note_shown(subscription: Subscription) -> str | None:
    """on_termination_credit_note as the API shows it: as set, else `skip` for an advance fee."""
    return subscription.on_termination_credit_note or ("skip" if subscription.plan.pay_in_advance else None)


@transaction.atomic
def subscription_terminate(
    *,
    subscription: Subscription,
    at: datetime,
    on_termination_invoice: str | None = None,
    on_termination_credit_note: str | None = None,
) -> Subscription:
    """End the subscription at `at`: a pending one (it has not started) is canceled, as Lago; it
    never runs (its terminated_at is its start, so no period of it is ever billed). A staged
    downgrade is dropped. `on_termination_invoice` (Lago's; stored): `skip` bills no closing
    invoice for the final part of its period. Idempotent: an ended subscription is returned
    unchanged."""
    check_on_termination(invoice=on_termination_invoice, credit_note=on_termination_credit_note)
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status in ENDED:
        return subscription
    if on_termination_invoice is not None:
        subscription.on_termination_invoice = on_termination_invoice
    if on_termination_credit_note is not None:
        subscription.on_termination_credit_note = on_termination_credit_note
    if subscription.status == SubscriptionStatus.PENDING:
        subscription.status, subscription.canceled_at = SubscriptionStatus.CANCELED, at
        subscription.terminated_at = subscription.subscription_at
    else:
        subscription.status = SubscriptionStatus.TERMINATED
        subscription.terminated_at = max(at, subscription.subscription_at)
    subscription.next_plan, subscription.downgrade_at = None, None
    subscription.next_name, subscription.next_ending_at = "", None
    subscription.save(
        update_fields=[
            "status",
            "terminated_at",
            "canceled_at",
            "on_termination_invoice",
            "on_termination_credit_note",
            "next_plan",
            "downgrade_at",
            "next_name",
            "next_ending_at",
            "updated_at",
        ]
    )
    subscription_announce(subscription, WebhookType.SUBSCRIPTION_TERMINATED)
    return subscription


@transaction.atomic
def lifetime_usage_update(*, subscription: Subscription, historical_amount_cents: int) -> Subscription:
    """Lago's external_historical_usage_amount_cents: usage billed elsewhere before, as set."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    subscription.historical_usage_amount_cents = historical_amount_cents
    subscription.save(update_fields=["historical_usage_amount_cents", "updated_at"])
    return subscription


def subscription_announce(subscription: Subscription, webhook_type: WebhookType) -> None:
    """Queue the subscription's webhook in the current transaction (also the clock's)."""
    announce(webhook_type=webhook_type, object_type="subscription", obj=subscription, object_id=subscription.pk)

"""Usage of a subscription's open period: measured quantities, priced, and the invoice preview.

The same functions measure a period for invoicing; `current_usage` is that measurement for the
period containing a given moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from billing.lines import (
    SCOPE_PLAN,
    LineDraft,
    MeasuredCharge,
    PromotionWindow,
    base_fee_lines,
    promotion_touches,
    total,
    usage_lines,
)
from billing.models import Plan, Subscription
from billing.periods import MONTH, Period, period_containing
from billing.selectors import charge_spec
from metering.days import day_start, local_date
from metering.selectors import aggregate


@dataclass(frozen=True)
class ChargeUsage:
    charge_id: int
    measured: MeasuredCharge
    events_count: int
    line: LineDraft


@dataclass(frozen=True)
class PeriodUsage:
    subscription: Subscription
    period: Period
    currency: str
    charges: list[ChargeUsage]
    lines: list[LineDraft]  # the invoice preview: base fee (when due this period), promotions, usage

    @property
    def usage_amount(self) -> Decimal:
        return sum((c.line.amount for c in self.charges), Decimal(0))

    @property
    def total(self) -> Decimal:
        return total(self.lines)


def promotion_window(subscription: Subscription) -> PromotionWindow | None:
    promotion = subscription.promotion
    if promotion is None:
        return None
    first_day = local_date(subscription.promotion_start or subscription.subscription_at, subscription.customer.timezone)
    return PromotionWindow(
        code=promotion.code,
        name=promotion.name,
        percent_off=promotion.percent_off,
        applies_to=promotion.applies_to,
        start_day=first_day,
        end_day=first_day + timedelta(days=promotion.duration_days),
    )


def usage_period(subscription: Subscription, at: datetime) -> Period:
    return period_containing(
        subscription_at=subscription.subscription_at,
        terminated_at=subscription.terminated_at,
        billing_time=subscription.billing_time,
        interval=MONTH,
        tz=subscription.customer.timezone,
        at=at,
    )


def measure_period(
    subscription: Subscription, plan: Plan, period: Period, *, count_events: bool = True
) -> list[tuple[int, MeasuredCharge, int]]:
    """(charge id, measured quantities, events count) for each charge of the plan over the period.

    Invoicing passes count_events=False: counting a large period's events costs a scan.
    """
    customer = subscription.customer
    tz = customer.timezone
    promotion = promotion_window(subscription)
    outside: tuple[datetime, datetime] | None = None
    if promotion is not None and promotion.applies_to == SCOPE_PLAN and promotion_touches(promotion, period):
        outside = (day_start(promotion.start_day, tz), day_start(promotion.end_day, tz))
    measured = []
    for charge in plan.charges.all():
        usage = aggregate(
            customer=customer, metric=charge.metric, start=period.start, end=period.end, count_events=count_events
        )
        q_out = None
        if outside is not None:
            q_out = aggregate(
                customer=customer,
                metric=charge.metric,
                start=period.start,
                end=period.end,
                exclude=outside,
                count_events=False,
            ).quantity
        measured.append(
            (
                charge.pk,
                MeasuredCharge(
                    metric_code=charge.metric.code,
                    metric_name=charge.metric.name,
                    charge=charge_spec(charge),
                    quantity=usage.quantity,
                    quantity_outside_promotion=q_out,
                ),
                usage.events_count,
            )
        )
    return measured


def current_usage(*, subscription: Subscription, at: datetime, count_events: bool = True) -> PeriodUsage:
    """The open usage period containing `at`, measured and priced so far, with the invoice preview.

    The preview has the base fee when this period bills it: in arrears when the fee's period
    ends with this one, in advance when it starts with it. count_events=False skips counting
    the period's events (a scan of them) where only amounts are wanted.
    """
    plan = subscription.plan
    period = usage_period(subscription, at)
    promotion = promotion_window(subscription)
    measured = measure_period(subscription, plan, period, count_events=count_events)
    charge_lines = usage_lines(
        charges=[m for _, m, _ in measured], currency=plan.currency, period=period, promotion=promotion
    )
    usage_by_metric = {line.metric_code: line for line in charge_lines if line.kind == "usage"}
    charges = [
        ChargeUsage(charge_id=charge_id, measured=m, events_count=n, line=usage_by_metric[m.metric_code])
        for charge_id, m, n in measured
    ]
    fee_period = period_containing(
        subscription_at=subscription.subscription_at,
        terminated_at=subscription.terminated_at,
        billing_time=subscription.billing_time,
        interval=plan.interval,
        tz=subscription.customer.timezone,
        at=at,
    )
    due = fee_period.start == period.start if plan.pay_in_advance else fee_period.end == period.end
    lines: list[LineDraft] = []
    if due:
        lines += base_fee_lines(
            plan_name=plan.name, base_fee=plan.base_fee, currency=plan.currency, period=fee_period, promotion=promotion
        )
    lines += charge_lines
    return PeriodUsage(subscription=subscription, period=period, currency=plan.currency, charges=charges, lines=lines)

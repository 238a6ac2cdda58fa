"""Usage of a subscription's periods: measured quantities, and the open period priced so far.

`measure_period` is what invoicing measures a period with (billing.selectors.invoice_inputs);
`current_usage` is the period containing a given moment, measured and priced by the same pure
function as invoices (billing.engine.invoice.invoice_lines), with the base fee when that period
bills it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from billing.engine.invoice import InvoiceInputs, due_fee_period, invoice_lines
from billing.engine.lines import Line, MeasuredCharge, PlanSpec, PromotionWindow, promotion_touches, total
from billing.engine.periods import Period, subscription_period
from billing.engine.vocabulary import AppliesTo, Interval, LineKind
from billing.models import Plan, Subscription
from billing.selectors.adjustments import PreviewAdjustments, preview_adjustments
from billing.selectors.plans import plan_spec
from metering.days import day_start, local_date
from metering.selectors import aggregate


@dataclass(frozen=True)
class ChargeUsage:
    charge_id: int
    measured: MeasuredCharge
    events_count: int
    line: Line


@dataclass(frozen=True)
class PeriodUsage:
    subscription: Subscription
    period: Period
    currency: str
    charges: list[ChargeUsage]
    lines: list[Line]  # the invoice preview: base fee (when due), promotions, usage, coupons, taxes

    @property
    def usage_amount(self) -> Decimal:
        return sum((c.line.amount for c in self.charges), Decimal(0))

    @property
    def usage_taxes(self) -> Decimal:
        """The usage charges' share of the preview's taxes."""
        return sum((c.line.tax_amount for c in self.charges), Decimal(0))

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


def trial_end(subscription: Subscription) -> datetime | None:
    """When the subscription's free trial (a 100 % promotion, Lago's trial_period) ends: the
    customer's midnight after its last day; None without one."""
    window = promotion_window(subscription)
    if window is None or subscription.promotion is None or subscription.promotion.percent_off != 100:
        return None
    return day_start(window.end_day, subscription.customer.timezone)


def period_of(subscription: Subscription, *, at: datetime, interval: str = Interval.MONTH) -> Period:
    """The subscription's period containing `at`: its usage period (monthly), or its fee period."""
    return subscription_period(subscription, tz=subscription.customer.timezone, interval=interval, at=at)


def plan_spec_of(plan: Plan) -> PlanSpec:
    """The plan's spec, computed once per Plan instance (a close run shares one per plan version;
    a sold plan's prices never change in place)."""
    spec: PlanSpec | None = plan.__dict__.get("_billing_spec")
    if spec is None:
        spec = plan.__dict__["_billing_spec"] = plan_spec(plan)
    return spec


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
    if promotion is not None and promotion.applies_to == AppliesTo.PLAN and promotion_touches(promotion, period):
        outside = (day_start(promotion.start_day, tz), day_start(promotion.end_day, tz))
    measured = []
    for charge, spec in zip(plan.charges.all(), plan_spec_of(plan).charges, strict=True):
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
                    metric_code=spec.metric_code,
                    metric_name=spec.metric_name,
                    charge=spec.charge,
                    quantity=usage.quantity,
                    quantity_outside_promotion=q_out,
                ),
                usage.events_count,
            )
        )
    return measured


def current_usage(
    *,
    subscription: Subscription,
    at: datetime,
    count_events: bool = True,
    adjustments: bool | PreviewAdjustments = True,
) -> PeriodUsage:
    """The open usage period containing `at`, measured and priced so far, with the invoice preview.

    The preview has the base fee when this period bills it: in arrears when the fee's period
    ends with this one, in advance when it starts with it; and, with `adjustments`, the
    customer's coupons and taxes as they stand now (not its credit notes or wallet: what they
    will cover depends on the other invoices finalized first); `adjustments` may be them, read once
    for several subscriptions of the customer (preview_adjustments). count_events=False skips counting
    the period's events (a scan of them) where only amounts are wanted.
    """
    plan = subscription.plan
    period = period_of(subscription, at=at)
    measured = measure_period(subscription, plan, period, count_events=count_events)
    spec = plan_spec_of(plan)
    chosen: PreviewAdjustments | None
    if isinstance(adjustments, PreviewAdjustments):
        chosen = adjustments
    else:
        chosen = preview_adjustments(subscription.customer_id, currency=plan.currency) if adjustments else None
    inputs = InvoiceInputs(
        plan=spec,
        period=period,
        fee_period=due_fee_period(
            usage_period=period,
            fee_period=period_of(subscription, at=at, interval=plan.interval),
            pay_in_advance=plan.pay_in_advance,
        ),
        promotion=promotion_window(subscription),
        usage=tuple(m for _, m, _ in measured),
        coupons=chosen.coupons if chosen else (),
        taxes=chosen.taxes if chosen else (),
    )
    lines = invoice_lines(inputs, keep_unmeasured=True)
    usage_by_metric = {line.metric_code: line for line in lines if line.kind == LineKind.USAGE}
    charges = [
        ChargeUsage(charge_id=charge_id, measured=m, events_count=n, line=usage_by_metric[m.metric_code])
        for charge_id, m, n in measured
    ]
    return PeriodUsage(subscription=subscription, period=period, currency=plan.currency, charges=charges, lines=lines)

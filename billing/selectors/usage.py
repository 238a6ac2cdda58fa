"""Usage of a subscription's periods: measured quantities, and the open period priced so far.

`measure_period` is what invoicing measures a period with (billing.selectors.invoice_inputs);
`current_usage` is the period containing a given moment, measured and priced by the same pure
function as invoices (billing.engine.invoice.invoice_lines), with the base fee when that period
bills it; `projected_charges` projects it to the period's end (Lago's projected usage).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Prefetch, QuerySet

from billing.engine.invoice import InvoiceInputs, due_fee_period, invoice_lines
from billing.engine.lines import Line, MeasuredCharge, PlanSpec, PromotionWindow, promotion_touches, total
from billing.engine.periods import Period, subscription_period
from billing.engine.pricing import price_charge
from billing.engine.vocabulary import AppliesTo, Interval, InvoiceKind, InvoiceStatus, LineKind
from billing.models import Charge, Invoice, InvoiceLine, Plan, Subscription
from billing.selectors.adjustments import PreviewAdjustments, preview_adjustments
from billing.selectors.plans import plan_spec
from customers.models import Customer
from metering.days import day_start, local_date
from metering.models import Aggregation, BillableMetric
from metering.selectors import Request, Usage, Window, WindowKey, aggregate, window_key


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
    subscription: Subscription,
    plan: Plan,
    period: Period,
    *,
    count_events: bool = True,
    quantities: Mapping[WindowKey, Decimal] | None = None,
) -> list[tuple[int, MeasuredCharge, int]]:
    """(charge id, measured quantities, events count) for each charge of the plan over the period.

    Invoicing passes count_events=False: counting a large period's events costs a scan. With it,
    `quantities` may hold windows read beforehand for several subscriptions at once
    (period_usage_requests, metering.selectors.quantities_of); the others are read here.
    """
    customer = subscription.customer
    outside = _outside_promotion(subscription, period)
    known = quantities if quantities is not None and not count_events else {}
    measured = []
    for charge, spec in zip(plan.charges.all(), plan_spec_of(plan).charges, strict=True):
        usage = _usage(known, customer, charge.metric, period, None, count_events)
        q_out = None
        if outside is not None:
            q_out = _usage(known, customer, charge.metric, period, outside, False).quantity
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


# --- projected usage (Lago's projected_usage) ---------------------------------------------------

PROJECTED_UNITS_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class ChargeProjection:
    """A charge's usage projected to the end of its period: the units at the pace so far, priced."""

    units: Decimal
    amount: Decimal  # rounded once, as every priced line


def period_ratio(period: Period, *, at: datetime, tz: str) -> Decimal:
    """Lago's share of the period gone by at `at`: the local days passed, today counted whole, over
    the period's days (0 before it starts, 1 once it has ended)."""
    if at >= period.end or period.days <= 0:
        return Decimal(1)
    if at < period.start:
        return Decimal(0)
    passed = (local_date(at, tz) - period.start_day).days + 1
    return min(Decimal(1), Decimal(passed) / Decimal(period.days))


def projected_charges(usage: PeriodUsage, *, at: datetime) -> list[ChargeProjection]:
    """Each charge of `usage` (current_usage at `at`) projected as Lago does
    (Fees::ProjectionService): units / period ratio, rounded to 2 places (half up), priced by the
    charge's model over the whole period; nothing when no day has passed."""
    ratio = period_ratio(usage.period, at=at, tz=usage.subscription.customer.timezone)
    projections = []
    for charge in usage.charges:
        quantity = charge.measured.quantity
        if ratio <= 0 or quantity <= 0:
            projections.append(ChargeProjection(units=Decimal(0), amount=Decimal(0)))
            continue
        units = (quantity / ratio).quantize(PROJECTED_UNITS_PLACES, rounding=ROUND_HALF_UP)
        priced = price_charge(charge.measured.charge, units, usage.currency)
        projections.append(ChargeProjection(units=units, amount=max(priced.amount, Decimal(0))))
    return projections


# --- past usage (Lago's past_usage) --------------------------------------------------------------


def past_usage_invoices(*, customer: Customer, external_subscription_id: str) -> QuerySet[Invoice]:
    """The subscription's period invoices, newest period first: its usage as invoiced (Lago's
    past usage, read from the invoices' fees). Voided invoices are left out (a regenerated one
    replaces them); drafts are in, as Lago's. Across plan changes: every subscription row with
    this external id."""
    return (
        Invoice.objects.filter(
            customer=customer,
            kind=InvoiceKind.PERIOD,
            subscription__external_id=external_subscription_id,
        )
        .exclude(status=InvoiceStatus.VOIDED)
        .select_related("customer", "subscription", "subscription__plan")
        .prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.select_related("metric").order_by("position", "id")),
            Prefetch("subscription__plan__charges", queryset=Charge.objects.select_related("metric")),
        )
        .order_by("-period_start", "-id")
    )


# --- a period's usage, read for several subscriptions at once (measure_period) ----------------


def _outside_promotion(subscription: Subscription, period: Period) -> Window | None:
    """The window of a plan-wide promotion within the period (its usage is measured without it
    too), or None."""
    promotion = promotion_window(subscription)
    if promotion is None or promotion.applies_to != AppliesTo.PLAN or not promotion_touches(promotion, period):
        return None
    tz = subscription.customer.timezone
    return (day_start(promotion.start_day, tz), day_start(promotion.end_day, tz))


def _usage(
    known: Mapping[WindowKey, Decimal],
    customer: Customer,
    metric: BillableMetric,
    period: Period,
    exclude: Window | None,
    count_events: bool,
) -> Usage:
    """A window's usage: read beforehand (quantities only: count_events is False then; a count
    metric's events are its quantity) or now."""
    quantity = known.get(window_key(customer, metric, period.start, period.end, exclude))
    if quantity is not None:
        return Usage(quantity, int(quantity) if metric.aggregation == Aggregation.COUNT else 0)
    return aggregate(
        customer=customer,
        metric=metric,
        start=period.start,
        end=period.end,
        exclude=exclude,
        count_events=count_events,
    )


def period_usage_requests(subscription: Subscription, plan: Plan, period: Period) -> list[Request]:
    """The windows measure_period reads for the subscription's period, to read them beforehand
    with other subscriptions' in one round trip (metering.selectors.quantities_of)."""
    customer = subscription.customer
    outside = _outside_promotion(subscription, period)
    requests: list[Request] = []
    for charge in plan.charges.all():
        requests.append((customer, charge.metric, period.start, period.end, None))
        if outside is not None:
            requests.append((customer, charge.metric, period.start, period.end, outside))
    return requests

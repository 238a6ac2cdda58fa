"""The lines of an invoice, computed from stored events (no writes). See billing/invoicing.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings

from billing.commitments import drawdown_lines
from billing.lines import DraftLine, LineDraft, MeasuredCharge, base_fee_lines, usage_lines
from billing.models import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceType,
    LineKind,
    Plan,
    Subscription,
)
from billing.money import ZERO, format_decimal
from billing.periods import MONTH, Period, period_containing
from billing.quotes import tier_line_dict
from billing.selectors import charge_spec, plans_with_charges
from billing.usage import measure_period, promotion_window

ONE_MICROSECOND = timedelta(microseconds=1)


# --- computing lines ------------------------------------------------------------------------


def _to_draft(line: LineDraft, period: Period, measured: dict[str, MeasuredCharge]) -> DraftLine:
    details: dict[str, Any] = {}
    if line.priced is not None:
        m = measured[line.metric_code or ""]
        details = {
            "quantity": format_decimal(m.quantity),
            "billed_units": format_decimal(line.priced.billed_units),
            "limit_exceeded": line.priced.limit_exceeded,
            "tiers": [tier_line_dict(t) for t in line.priced.tiers],
        }
        if line.priced.packages is not None:
            details["packages"] = line.priced.packages
        if m.quantity_outside_promotion is not None:
            details["quantity_outside_promotion"] = format_decimal(m.quantity_outside_promotion)
    return DraftLine(
        kind=line.kind,
        description=line.description,
        quantity=line.quantity,
        amount=line.amount,
        unit_amount=line.unit_amount,
        metric_code=line.metric_code,
        period_start=period.start,
        period_end=period.end,
        details=details,
    )


def fee_period_ending_with(subscription: Subscription, plan: Plan, period: Period) -> Period | None:
    """The base-fee period that ends when `period` ends, if any (arrears billing)."""
    fee_period = period_containing(
        subscription_at=subscription.subscription_at,
        terminated_at=subscription.terminated_at,
        billing_time=subscription.billing_time,
        interval=plan.interval,
        tz=subscription.customer.timezone,
        at=period.end - ONE_MICROSECOND,
    )
    return fee_period if fee_period.end == period.end else None


def _usage_drafts(subscription: Subscription, plan: Plan, period: Period) -> list[DraftLine]:
    measured_rows = measure_period(subscription, plan, period, count_events=False)
    measured = {m.metric_code: m for _, m, _ in measured_rows}
    lines = usage_lines(
        charges=[m for _, m, _ in measured_rows],
        currency=plan.currency,
        period=period,
        promotion=promotion_window(subscription),
    )
    # A charge nothing was measured for prints no line ("no usage"); included usage does (0.00).
    return [_to_draft(line, period, measured) for line in lines if line.quantity != 0 or line.amount != 0]


def _net_usage_by_metric(
    subscription: Subscription, plan: Plan, period: Period, quantities: dict[str, tuple[Decimal, Decimal | None]]
) -> dict[str, Decimal]:
    """Usage minus its promotion discount per metric, for given (q_all, q_out) quantities."""
    charges = [
        MeasuredCharge(
            metric_code=c.metric.code,
            metric_name=c.metric.name,
            charge=charge_spec(c),
            quantity=quantities.get(c.metric.code, (ZERO, None))[0],
            quantity_outside_promotion=quantities.get(c.metric.code, (ZERO, None))[1],
        )
        for c in plan.charges.all()
    ]
    net: dict[str, Decimal] = {}
    for line in usage_lines(
        charges=charges, currency=plan.currency, period=period, promotion=promotion_window(subscription)
    ):
        net[line.metric_code or ""] = net.get(line.metric_code or "", ZERO) + line.amount
    return net


def _quantities(details: dict[str, Any]) -> tuple[Decimal, Decimal | None]:
    q_out = details.get("quantity_outside_promotion")
    return Decimal(details.get("quantity", "0")), (Decimal(q_out) if q_out is not None else None)


PlanGetter = Callable[[int], Plan]


def _plan_by_id(plan_id: int) -> Plan:
    return plans_with_charges().get(pk=plan_id)


def _replaced_chain(
    subscription: Subscription, plan: Plan, horizon: datetime, plans: PlanGetter = _plan_by_id
) -> list[tuple[Subscription, Plan]]:
    """The subscription and those it replaced by plan changes that ended after `horizon`, with plans.

    Late events for a replaced plan's last periods are billed on the new plan's invoices: the
    replaced subscription is terminated and gets no more invoices of its own.
    """
    chain = [(subscription, plan)]
    previous_id = subscription.previous_id
    while previous_id is not None:
        previous = Subscription.objects.select_related("customer", "promotion").get(pk=previous_id)
        if previous.terminated_at is not None and previous.terminated_at <= horizon:
            break
        chain.append((previous, plans(previous.plan_id)))
        previous_id = previous.previous_id
    return chain


def _late_drafts(
    subscription: Subscription,
    plan: Plan,
    period: Period,
    exclude_invoice: int | None,
    *,
    finalized_periods: Sequence[tuple[datetime, datetime]] | None = None,
    plans: PlanGetter = _plan_by_id,
) -> list[DraftLine]:
    """late_usage lines for earlier finalized periods whose usage grew after they were invoiced."""
    horizon = period.start - timedelta(days=settings.BILLING_EVENT_MAX_AGE_DAYS + 1)
    chain = _replaced_chain(subscription, plan, horizon, plans)
    # Lines for an old period may sit on any invoice of the chain (late lines go on the newest).
    chain_ids = [owner.pk for owner, _ in chain]
    drafts: list[DraftLine] = []
    for owner, owner_plan in reversed(chain):  # oldest first, as the lines of one invoice read
        known = finalized_periods if owner is subscription else None
        drafts += _late_drafts_of(owner, owner_plan, chain_ids, period, horizon, exclude_invoice, known)
    return drafts


def _earlier_finalized_starts(
    subscription: Subscription,
    period: Period,
    horizon: datetime,
    known: Sequence[tuple[datetime, datetime]] | None,
) -> list[datetime]:
    """Starts of the subscription's finalized (or paid) period invoices that ended in (horizon,
    period.start], in order; from `known` (every such invoice's (start, end), as a caller holding
    the subscription's lock has them) when given, else from the database."""
    if known is not None:
        return sorted(start for start, end in known if horizon < end <= period.start)
    return list(
        Invoice.objects.filter(
            subscription=subscription,
            invoice_type=InvoiceType.PERIOD,
            status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.PAID],
            period_end__lte=period.start,
            period_end__gt=horizon,
        )
        .order_by("period_start")
        .values_list("period_start", flat=True)
    )


def _late_drafts_of(
    subscription: Subscription,
    plan: Plan,
    chain_ids: list[int],
    period: Period,
    horizon: datetime,
    exclude_invoice: int | None,
    known: Sequence[tuple[datetime, datetime]] | None = None,
) -> list[DraftLine]:
    """late_usage lines for the finalized periods of `subscription` (one of the chain) before `period`."""
    drafts: list[DraftLine] = []
    for old_start in _earlier_finalized_starts(subscription, period, horizon, known):
        old_period = period_containing(
            subscription_at=subscription.subscription_at,
            terminated_at=subscription.terminated_at,
            billing_time=subscription.billing_time,
            interval=MONTH,
            tz=subscription.customer.timezone,
            at=old_start,
        )
        billed_lines = (
            InvoiceLine.objects.filter(
                invoice__subscription__in=chain_ids,
                kind__in=[LineKind.USAGE, LineKind.LATE_USAGE],
                period_start=old_start,
            )
            .exclude(invoice__status=InvoiceStatus.VOID)
            .exclude(invoice_id=exclude_invoice)
            .select_related("metric")
            .order_by("invoice__created_at", "invoice_id", "position")
        )
        billed: dict[str, tuple[Decimal, Decimal | None]] = {}
        for line in billed_lines:
            if line.metric is not None:
                billed[line.metric.code] = _quantities(line.details)  # the latest wins
        now_measured = {
            m.metric_code: (m.quantity, m.quantity_outside_promotion)
            for _, m, _ in measure_period(subscription, plan, old_period, count_events=False)
        }
        if now_measured == {k: billed.get(k, (ZERO, None)) for k in now_measured}:
            continue
        net_now = _net_usage_by_metric(subscription, plan, old_period, now_measured)
        net_billed = _net_usage_by_metric(subscription, plan, old_period, billed)
        names = {c.metric.code: c.metric.name for c in plan.charges.all()}
        label = f"{old_period.start_day:%b %-d} – {old_period.end_day - timedelta(days=1):%b %-d, %Y}"
        for code, (q_now, q_out_now) in now_measured.items():
            delta = net_now.get(code, ZERO) - net_billed.get(code, ZERO)
            q_billed = billed.get(code, (ZERO, None))[0]
            if q_now == q_billed and delta == 0:
                continue
            details: dict[str, Any] = {
                "quantity": format_decimal(q_now),
                "previously_billed_quantity": format_decimal(q_billed),
            }
            if q_out_now is not None:
                details["quantity_outside_promotion"] = format_decimal(q_out_now)
            drafts.append(
                DraftLine(
                    kind=LineKind.LATE_USAGE,
                    description=f"Late {names.get(code, code)} for {label}: "
                    f"{format_decimal(q_billed)} → {format_decimal(q_now)}",
                    quantity=q_now - q_billed,
                    amount=delta,
                    metric_code=code,
                    period_start=old_period.start,
                    period_end=old_period.end,
                    details=details,
                )
            )
    return drafts


def compute_period_lines(
    subscription: Subscription,
    plan: Plan,
    period: Period,
    *,
    exclude_invoice: int | None = None,
    finalized_periods: Sequence[tuple[datetime, datetime]] | None = None,
    may_draw_commitment: bool = True,
    plans: PlanGetter = _plan_by_id,
) -> list[DraftLine]:
    """The lines of the period invoice for `period`.

    A caller holding the subscription's lock may pass what it already read, to save queries:
    `finalized_periods`, the (start, end) of every finalized or paid period invoice of the
    subscription; `may_draw_commitment=False` when it has no active commitment; `plans`, plans
    with their charges by id (a run's cache).
    """
    lines: list[DraftLine] = []
    if not plan.pay_in_advance:
        fee_period = fee_period_ending_with(subscription, plan, period)
        if fee_period is not None:
            lines += [
                _to_draft(line, fee_period, {})
                for line in base_fee_lines(
                    plan_name=plan.name,
                    base_fee=plan.base_fee,
                    currency=plan.currency,
                    period=fee_period,
                    promotion=promotion_window(subscription),
                )
            ]
    lines += _usage_drafts(subscription, plan, period)
    lines += _late_drafts(subscription, plan, period, exclude_invoice, finalized_periods=finalized_periods, plans=plans)
    if may_draw_commitment:
        lines += drawdown_lines(
            subscription=subscription, lines=lines, period_start=period.start, period_end=period.end
        )
    return lines


def compute_advance_lines(
    subscription: Subscription, plan: Plan, fee_period: Period, *, may_draw_commitment: bool = True
) -> list[DraftLine]:
    lines = [
        _to_draft(line, fee_period, {})
        for line in base_fee_lines(
            plan_name=plan.name,
            base_fee=plan.base_fee,
            currency=plan.currency,
            period=fee_period,
            promotion=promotion_window(subscription),
        )
    ]
    if may_draw_commitment:
        lines += drawdown_lines(
            subscription=subscription, lines=lines, period_start=fee_period.start, period_end=fee_period.end
        )
    return lines

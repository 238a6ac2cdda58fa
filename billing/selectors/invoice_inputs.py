"""What an invoice's lines are computed from, gathered once (reads only).

`period_invoice_inputs` and `advance_invoice_inputs` read what one invoice needs into the pure
`InvoiceInputs` (billing.engine.invoice): the plan's prices, the period's measured quantities,
for late usage what each earlier finalized period measures now and what was billed for it, and
the commitment balance it may draw from. The engine then computes every line from that.

A caller holding the subscription's lock (the period close) passes what it already read, to save
queries: `finalized_periods`, the (start, end) of every finalized period invoice of the
subscription; `may_draw_commitment=False` when it has no active commitment; `may_use_credit=False`
when the customer has no credit to use (credit notes, applied coupons, a wallet); `taxes`, the
customer's taxes when the caller knows them; `plans`, plans with their charges by id (a run's
cache). `lock_credits`: the invoice is being finalized, under the customer's lock: the credit
notes, applied coupons and wallet it may consume are locked too (their balances move with it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypedDict

from django.conf import settings
from django.db import connections, router

from billing.engine.adjustments import CouponCredit, TaxRate, WalletCredit
from billing.engine.invoice import AvailableCredit, InvoiceInputs, LatePeriod, Quantities
from billing.engine.periods import ONE_MICROSECOND, Period
from billing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, LineKind, Plan, Subscription
from billing.selectors.adjustments import coupon_credits, tax_rates, wallet_credit
from billing.selectors.commitments import commitment_balance
from billing.selectors.credit_notes import available_credits
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import (
    measure_period,
    period_of,
    period_usage_requests,
    plan_spec_of,
    promotion_window,
)
from config.db import raw_timestamp
from metering.models import BillableMetric
from metering.selectors import Request, WindowKey, quantities_of

PlanGetter = Callable[[int], Plan]


def _plan_by_id(plan_id: int) -> Plan:
    return plans_with_charges().get(pk=plan_id)


def fee_period_ending_with(subscription: Subscription, plan: Plan, period: Period) -> Period | None:
    """The base-fee period that ends when `period` ends, if any (arrears billing)."""
    fee_period = period_of(subscription, at=period.end - ONE_MICROSECOND, interval=plan.interval)
    return fee_period if fee_period.end == period.end else None


def period_invoice_inputs(
    subscription: Subscription,
    plan: Plan,
    period: Period,
    *,
    exclude_invoice: int | None = None,
    finalized_periods: Sequence[tuple[datetime, datetime]] | None = None,
    may_draw_commitment: bool = True,
    may_use_credit: bool = True,
    lock_credits: bool = False,
    taxes: tuple[TaxRate, ...] | None = None,
    plans: PlanGetter = _plan_by_id,
    read_ahead: ReadAhead | None = None,
) -> InvoiceInputs:
    """Inputs of the period invoice of `period`: base fee in arrears, usage, late usage, drawdown,
    credit-note credit. `read_ahead`: what was read beforehand for several subscriptions at once
    (read_ahead: a period close's group)."""
    quantities = read_ahead.quantities if read_ahead is not None else None
    measured = measure_period(subscription, plan, period, count_events=False, quantities=quantities)
    return InvoiceInputs(
        plan=plan_spec_of(plan),
        period=period,
        fee_period=None if plan.pay_in_advance else fee_period_ending_with(subscription, plan, period),
        promotion=promotion_window(subscription),
        usage=tuple(m for _, m, _ in measured),
        late=tuple(late_periods(subscription, plan, period, exclude_invoice, finalized_periods, plans, read_ahead)),
        commitment=commitment_balance(subscription, period.start) if may_draw_commitment else None,
        taxes=taxes if taxes is not None else tax_rates(subscription.customer_id),
        **_customer_credit(subscription, plan, may_use_credit, lock_credits),
    )


def advance_invoice_inputs(
    subscription: Subscription,
    plan: Plan,
    fee_period: Period,
    *,
    may_draw_commitment: bool = True,
    may_use_credit: bool = True,
    lock_credits: bool = False,
    taxes: tuple[TaxRate, ...] | None = None,
) -> InvoiceInputs:
    """Inputs of an advance invoice: the base fee of `fee_period`, its drawdown, credit."""
    return InvoiceInputs(
        plan=plan_spec_of(plan),
        period=fee_period,
        fee_period=fee_period,
        promotion=promotion_window(subscription),
        commitment=commitment_balance(subscription, fee_period.start) if may_draw_commitment else None,
        taxes=taxes if taxes is not None else tax_rates(subscription.customer_id),
        **_customer_credit(subscription, plan, may_use_credit, lock_credits),
    )


class CustomerCredit(TypedDict):
    credits: tuple[AvailableCredit, ...]
    coupons: tuple[CouponCredit, ...]
    wallet: WalletCredit | None


def _customer_credit(subscription: Subscription, plan: Plan, may: bool, lock: bool) -> CustomerCredit:
    """Steps 4, 6 and 7: the customer's applied coupons, credit-note credit and wallet (`may`:
    False when the caller knows it has none of them)."""
    if not may:
        return {"credits": (), "coupons": (), "wallet": None}
    customer, currency = subscription.customer_id, plan.currency
    return {
        "credits": available_credits(customer, currency=currency, lock=lock),
        "coupons": coupon_credits(customer, currency=currency, lock=lock),
        "wallet": wallet_credit(customer, currency=currency, lock=lock),
    }


# --- late usage -----------------------------------------------------------------------------


def _replaced_chain(
    subscription: Subscription, plan: Plan, horizon: datetime, plans: PlanGetter
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


def _earlier_finalized_starts(
    subscription: Subscription,
    period: Period,
    horizon: datetime,
    known: Sequence[tuple[datetime, datetime]] | None,
) -> list[datetime]:
    """Starts of the subscription's finalized period invoices that ended in (horizon,
    period.start], in order; from `known` when given, else from the database."""
    if known is not None:
        return sorted(start for start, end in known if horizon < end <= period.start)
    return list(
        Invoice.objects.filter(
            subscription=subscription,
            kind=InvoiceKind.PERIOD,
            status=InvoiceStatus.FINALIZED,
            period_end__lte=period.start,
            period_end__gt=horizon,
        )
        .order_by("period_start")
        .values_list("period_start", flat=True)
    )


def _quantities(details: dict[str, Any]) -> tuple[Decimal, Decimal | None]:
    q_out = details.get("quantity_outside_promotion")
    return Decimal(details.get("quantity", "0")), (Decimal(q_out) if q_out is not None else None)


def billed_quantities(chain_ids: list[int], period_start: datetime, exclude_invoice: int | None) -> Quantities:
    """What the live invoices of the chain billed for the period starting at `period_start`, per
    metric: the quantities of its latest usage or late_usage line.

    Raw SQL (the details decoded by their field, as the ORM decodes them): a close reads this for
    every earlier period of every subscription, and the ORM's query building with its two joins
    cost several times the statement."""
    connection = connections[router.db_for_read(InvoiceLine)]
    lines, invoices = InvoiceLine._meta.db_table, Invoice._meta.db_table
    metrics = BillableMetric._meta.db_table
    owners = ", ".join(["%s"] * len(chain_ids))
    start = InvoiceLine._meta.get_field("period_start").get_db_prep_value(period_start, connection)
    params: list[Any] = [*chain_ids, LineKind.USAGE, LineKind.LATE_USAGE, start, InvoiceStatus.VOIDED]
    excluded = ""
    if exclude_invoice is not None:
        excluded = " AND l.invoice_id <> %s"
        params.append(exclude_invoice)
    with connection.cursor() as cursor:
        cursor.execute(  # table names from _meta, values as parameters
            f"SELECT m.code, l.details FROM {lines} l INNER JOIN {invoices} i ON i.id = l.invoice_id "
            f"INNER JOIN {metrics} m ON m.id = l.metric_id "
            f"WHERE i.subscription_id IN ({owners}) AND l.kind IN (%s, %s) AND l.period_start = %s "
            f"AND i.status <> %s{excluded} ORDER BY i.created_at, l.invoice_id, l.position",
            params,
        )
        rows = cursor.fetchall()
    details = InvoiceLine._meta.get_field("details")
    billed: Quantities = {}
    for code, raw in rows:  # the latest wins
        billed[code] = _quantities(details.from_db_value(raw, None, connection))  # type: ignore[arg-type]
    return billed


def late_periods(
    subscription: Subscription,
    plan: Plan,
    period: Period,
    exclude_invoice: int | None,
    finalized_periods: Sequence[tuple[datetime, datetime]] | None,
    plans: PlanGetter,
    read_ahead: ReadAhead | None = None,
) -> list[LatePeriod]:
    """Earlier finalized periods (of the subscription and those it replaced) that can still
    receive events, oldest first, as the lines of one invoice read; what `read_ahead` holds of
    them is not read again."""
    horizon = _horizon(period)
    chain = _replaced_chain(subscription, plan, horizon, plans)
    # Lines for an old period may sit on any invoice of the chain (late lines go on the newest).
    chain_ids = [owner.pk for owner, _ in chain]
    found: list[LatePeriod] = []
    for owner, owner_plan in reversed(chain):
        known = finalized_periods if owner is subscription else None
        for old_start in _earlier_finalized_starts(owner, period, horizon, known):
            old_period = period_of(owner, at=old_start)
            found.append(
                LatePeriod(
                    period=old_period,
                    charges=plan_spec_of(owner_plan).charges,
                    currency=owner_plan.currency,
                    promotion=promotion_window(owner),
                    measured={
                        m.metric_code: (m.quantity, m.quantity_outside_promotion)
                        for _, m, _ in measure_period(
                            owner,
                            owner_plan,
                            old_period,
                            count_events=False,
                            quantities=read_ahead.quantities if read_ahead is not None else None,
                        )
                    },
                    billed=_billed(read_ahead, chain_ids, old_start, exclude_invoice),
                )
            )
    return found


def _horizon(period: Period) -> datetime:
    """Periods that ended after this can still receive events when `period` is invoiced."""
    return period.start - timedelta(days=settings.BILLING_EVENT_MAX_AGE_DAYS + 1)


# --- read ahead for a group of subscriptions (a period close's close_group) -------------------

LateKey = tuple[int, datetime]  # a subscription's id, the start of one of its earlier periods


@dataclass(frozen=True)
class ReadAhead:
    """What the period invoices of several subscriptions read, read beforehand in a few statements
    for them all: their periods' and earlier periods' usage (quantities), and what was billed for
    those earlier periods (billed, by subscription and period start; every key read is present,
    empty when nothing was billed). Whatever is missing is read as usual."""

    quantities: Mapping[WindowKey, Decimal]
    billed: Mapping[LateKey, Quantities]


def _billed(read_ahead: ReadAhead | None, chain_ids: list[int], start: datetime, exclude: int | None) -> Quantities:
    if read_ahead is not None and exclude is None and len(chain_ids) == 1:
        found = read_ahead.billed.get((chain_ids[0], start))
        if found is not None:
            return found
    return billed_quantities(chain_ids, start, exclude)


def read_ahead(items: Sequence[tuple[Subscription, Plan, Period, Sequence[tuple[datetime, datetime]]]]) -> ReadAhead:
    """Read ahead for the new period invoices of several locked subscriptions (subscription, plan,
    period, its finalized periods): their usage in one statement, and what was billed for their
    earlier periods that can still receive events in another (none when there are none). A
    subscription that replaced another is left to read its chain's late usage itself.

    A close's group made two or three statements per subscription here, one round trip each."""
    requests: list[Request] = []
    late: list[LateKey] = []
    for subscription, plan, period, finalized in items:
        requests += period_usage_requests(subscription, plan, period)
        if subscription.previous_id is not None:
            continue
        for old_start in _earlier_finalized_starts(subscription, period, _horizon(period), finalized):
            requests += period_usage_requests(subscription, plan, period_of(subscription, at=old_start))
            late.append((subscription.pk, old_start))
    return ReadAhead(quantities=quantities_of(requests), billed=billed_quantities_of(late))


def billed_quantities_of(keys: list[LateKey]) -> dict[LateKey, Quantities]:
    """billed_quantities of several subscriptions' earlier periods, none of them excluding an
    invoice and each its own chain (it replaced no other), in one statement: every key is in
    the result. Rows beyond the keys (another subscription's period start) are left out."""
    if not keys:
        return {}
    billed: dict[LateKey, Quantities] = {key: {} for key in keys}
    connection = connections[router.db_for_read(InvoiceLine)]
    lines, invoices = InvoiceLine._meta.db_table, Invoice._meta.db_table
    metrics = BillableMetric._meta.db_table
    owners = sorted({owner for owner, _ in keys})
    starts = sorted({start for _, start in keys})
    start_field = InvoiceLine._meta.get_field("period_start")
    params: list[Any] = [
        *owners,
        LineKind.USAGE,
        LineKind.LATE_USAGE,
        *(start_field.get_db_prep_value(start, connection) for start in starts),
        InvoiceStatus.VOIDED,
    ]
    with connection.cursor() as cursor:
        cursor.execute(  # table names from _meta, values as parameters
            f"SELECT i.subscription_id, l.period_start, m.code, l.details FROM {lines} l "
            f"INNER JOIN {invoices} i ON i.id = l.invoice_id INNER JOIN {metrics} m ON m.id = l.metric_id "
            f"WHERE i.subscription_id IN ({', '.join(['%s'] * len(owners))}) AND l.kind IN (%s, %s) "
            f"AND l.period_start IN ({', '.join(['%s'] * len(starts))}) AND i.status <> %s "
            "ORDER BY i.created_at, l.invoice_id, l.position",
            params,
        )
        rows = cursor.fetchall()
    details = InvoiceLine._meta.get_field("details")
    for owner, start, code, raw in rows:  # the latest wins, as in billed_quantities
        found = billed.get((owner, raw_timestamp(start, connection.alias)))
        if found is not None:
            found[code] = _quantities(details.from_db_value(raw, None, connection))  # type: ignore[arg-type]
    return billed

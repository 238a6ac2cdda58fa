"""The period close's read-ahead (billing.selectors.invoice_inputs.read_ahead): a group's usage,
its earlier periods' usage and what was billed for them, read in two statements for all its
subscriptions, give each one's invoice exactly the inputs it reads alone; and the batched close
no longer makes statements per subscription for them (PostgreSQL). Both databases: the reads
themselves are plain SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.engine.invoice import InvoiceInputs
from billing.engine.periods import Period
from billing.engine.vocabulary import AppliesTo
from billing.models import Plan, Subscription
from billing.selectors.invoice_inputs import ReadAhead, billed_quantities, period_invoice_inputs, read_ahead
from billing.selectors.usage import period_of
from billing.services.period_close import close_chunk
from billing.services.period_close_state import RunCache, known_invoices
from metering.models import Aggregation, BillableMetric
from metering.selectors import Request, aggregate, quantities_of
from tests.factories import (
    BillableMetricFactory,
    ChargeFactory,
    CustomerFactory,
    PlanFactory,
    PromotionFactory,
    SubscriptionFactory,
    store_users,
)

pytestmark = pytest.mark.django_db

SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
OCTOBER_CLOSE = datetime(2026, 10, 1, 0, 5, tzinfo=UTC)
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo")


@pytest.fixture
def calls() -> BillableMetric:
    metric: BillableMetric = BillableMetricFactory(code="calls", name="Calls", aggregation=Aggregation.COUNT, field="")
    return metric


@pytest.fixture
def plan(calls: BillableMetric) -> Plan:
    """Two charges (unique_count and count) and a plan-wide trial: usage is measured without the
    trial's days too (windows with an excluded part, partial months)."""
    trial = PromotionFactory(code="trial-plan", applies_to=AppliesTo.PLAN)
    plan: Plan = PlanFactory(code="metered", base_fee=Decimal("10"), promotion=trial)
    ChargeFactory(plan=plan, metric=BillableMetricFactory(), unit_amount=Decimal("0.10"), position=0)
    ChargeFactory(plan=plan, metric=calls, unit_amount=Decimal("0.01"), position=1)
    return plan


def subscriptions(plan: Plan, calls: BillableMetric) -> list[Subscription]:
    """Customers in several time zones with September usage, invoiced; then late events for
    September and October usage."""
    made = []
    for i, tz in enumerate(ZONES):
        customer = CustomerFactory(external_id=f"r-{i}", timezone=tz)
        made.append(SubscriptionFactory(customer=customer, plan=plan, subscription_at=SEPTEMBER))
        store_users(customer, range(3 + i), datetime(2026, 9, 5, 12, tzinfo=UTC), "sep")
        store_users(customer, range(2), datetime(2026, 9, 20, 12, tzinfo=UTC), "sep-calls", metric=calls)
    report = close_chunk([s.pk for s in made], now=OCTOBER_CLOSE)
    assert not report.errors and len(report.finalized) == len(made)
    for i, subscription in enumerate(made):
        customer = subscription.customer
        store_users(customer, range(10, 12 + i), datetime(2026, 9, 25, 12, tzinfo=UTC), "late")  # late
        store_users(customer, range(5 * i), datetime(2026, 10, 10, 12, tzinfo=UTC), "oct")
        store_users(customer, range(i), datetime(2026, 10, 11, 12, tzinfo=UTC), "oct-calls", metric=calls)
    return made


def october(subscription: Subscription) -> Period:
    return period_of(subscription, at=datetime(2026, 10, 15, tzinfo=UTC))


def inputs(
    subscription: Subscription,
    plan: Plan,
    period: Period,
    finalized: list[tuple[datetime, datetime]],
    cache: RunCache,
    ahead: ReadAhead | None,
) -> InvoiceInputs:
    """The inputs of a simple subscription's invoice, as the batched close reads them."""
    return period_invoice_inputs(
        subscription,
        plan,
        period,
        finalized_periods=finalized,
        may_draw_commitment=False,
        may_use_credit=False,
        taxes=(),
        plans=cache.plan,
        read_ahead=ahead,
    )


def test_read_ahead_gives_each_invoice_the_inputs_it_reads_alone(plan: Plan, calls: BillableMetric) -> None:
    made = subscriptions(plan, calls)
    cache = RunCache()
    items = []
    for subscription in Subscription.objects.select_related("customer", "promotion").filter(
        pk__in=[s.pk for s in made]
    ):
        subscription.has_commitment = subscription.has_credit = False  # type: ignore[attr-defined]
        subscription.plan = cache.plan(subscription.plan_id)
        items.append((subscription, subscription.plan, october(subscription), known_invoices(subscription)))
    with CaptureQueriesContext(connection) as queries:
        ahead = read_ahead([(s, p, period, known.finalized_periods) for s, p, period, known in items])
    assert len(queries) == 2  # the group's usage, and what was billed for its earlier periods
    assert len(ahead.billed) == len(made)  # each one's September
    for subscription, p, period, known in items:
        finalized = list(known.finalized_periods)
        assert len(finalized) == 1

        with CaptureQueriesContext(connection) as queries:
            batched = inputs(subscription, p, period, finalized, cache, ahead)
        assert len(queries) == 0  # all read ahead
        alone = inputs(subscription, p, period, finalized, cache, None)
        assert batched == alone
        assert alone.late[0].measured != alone.late[0].billed  # the late events


def test_quantities_of_match_aggregate_and_leave_out_what_it_cannot_answer(plan: Plan, calls: BillableMetric) -> None:
    made = subscriptions(plan, calls)
    mtu = BillableMetric.objects.get(code="mtu")
    sum_metric: BillableMetric = BillableMetricFactory(
        code="spend", name="Spend", aggregation=Aggregation.SUM, field="amount"
    )
    requests: list[Request] = []
    for subscription in made:
        customer = subscription.customer
        period = october(subscription)
        september = period_of(subscription, at=datetime(2026, 9, 15, tzinfo=UTC)).start
        trial = (period.start, datetime(2026, 10, 6, 3, tzinfo=UTC))  # not whole local days
        for metric in (mtu, calls):
            requests.append((customer, metric, september, period.end, None))  # two months
            requests.append((customer, metric, period.start, period.end, None))
            requests.append((customer, metric, period.end, period.start, None))  # empty
        requests.append((customer, mtu, period.start, period.end, trial))
        requests.append((customer, sum_metric, period.start, period.end, None))
    found = quantities_of(requests)
    for customer, metric, start, end, exclude in requests:
        key = (customer.pk, metric.pk, start, end, exclude)
        if metric is sum_metric or exclude is not None:
            assert key not in found
            continue
        expected = aggregate(customer=customer, metric=metric, start=start, end=end, count_events=False).quantity
        assert found[key] == expected


def test_billed_quantities_of_match_billed_quantities(plan: Plan, calls: BillableMetric) -> None:
    made = subscriptions(plan, calls)
    for s in made:
        s.has_commitment = s.has_credit = False  # type: ignore[attr-defined]
    items = [(s, plan, october(s), known_invoices(s).finalized_periods) for s in made]
    ahead = read_ahead(items)
    for s, _, _, finalized in items:
        ((start, _),) = finalized
        assert ahead.billed[(s.pk, start)] == billed_quantities([s.pk], start, None)
    # September's usage lines (New York's first period is Aug 31 alone there, with no usage)
    assert sum(1 for billed in ahead.billed.values() if billed) == len(made) - 1


def test_a_batched_close_reads_its_groups_usage_in_a_constant_number_of_statements(
    plan: Plan, calls: BillableMetric
) -> None:
    made = subscriptions(plan, calls)
    with CaptureQueriesContext(connection) as queries:
        report = close_chunk([s.pk for s in made], now=datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    assert not report.errors and len(report.finalized) == len(made)
    if connection.vendor == "postgresql":
        usage = [q for q in queries if "metering_distinctvalue" in q["sql"] or "metering_eventcount" in q["sql"]]
        assert len(usage) == 1  # every window of every subscription, in one statement
        billed = [q for q in queries if "billing_invoiceline" in q["sql"] and q["sql"].startswith("SELECT")]
        assert len(billed) == 1  # what was billed for every earlier period
        # The rest: the chunk's read, the run's plan (4), the lock, invoices, ids, lines, emails,
        # numbers, INSERT, webhooks, savepoints: 17 for these four subscriptions, as for 25.
        assert len(queries) <= 18, [q["sql"][:80] for q in queries]

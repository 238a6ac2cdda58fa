"""What Lago schedules on a subscription (billing.services.subscriptions): a downgrade staged to
the end of the current period and applied there by the clock (once, even with two clocks at
once), an `ending_at` honoured at its moment, and a termination that skips its closing invoice."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.engine.vocabulary import BillingTime, Interval, OnTerminationInvoice
from billing.models import Invoice, InvoiceKind, LineKind, Plan, Subscription, SubscriptionStatus
from billing.services.period_close import close_periods
from billing.services.subscriptions import (
    is_downgrade,
    subscription_create,
    subscription_terminate,
    subscription_update,
    subscriptions_watch,
)
from tests.conftest import using_postgres
from tests.factories import CustomerFactory, PlanFactory, team_plan
from tests.helpers import run_concurrently

pytestmark = pytest.mark.django_db

START = datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)


def subscribe(plan: Plan, *, external_id: str = "acme-team", now: datetime = START) -> Subscription:
    customer = CustomerFactory(external_id="acme")
    subscription, _ = subscription_create(
        customer=customer,
        plan=plan,
        external_id=external_id,
        subscription_at=START,
        billing_time=BillingTime.CALENDAR,
        now=now,
    )
    return subscription


def change_plan(subscription: Subscription, plan: Plan, *, at: datetime = NOW) -> Subscription:
    changed, _ = subscription_create(
        customer=subscription.customer,
        plan=plan,
        external_id=subscription.external_id,
        subscription_at=at,
        billing_time=BillingTime.CALENDAR,
        now=at,
    )
    return changed


def base_fees(subscription: Subscription) -> list[tuple[datetime, Decimal]]:
    return sorted(
        (invoice.period_start, line.amount)
        for invoice in Invoice.objects.filter(subscription=subscription, kind=InvoiceKind.PERIOD)
        for line in invoice.lines.filter(kind=LineKind.BASE_FEE)
    )


def test_a_downgrade_is_decided_on_the_yearly_base_fee_as_lago() -> None:
    monthly = PlanFactory(base_fee=Decimal("120"))  # 1,440 a year
    assert is_downgrade(current=monthly, new=PlanFactory(base_fee=Decimal("1000"), interval=Interval.YEAR))
    assert not is_downgrade(current=monthly, new=PlanFactory(base_fee=Decimal("1440"), interval=Interval.YEAR))
    assert not is_downgrade(current=monthly, new=PlanFactory(base_fee=Decimal("200")))


def test_a_downgrade_waits_for_the_end_of_the_period_then_the_clock_applies_it() -> None:
    team = team_plan()
    starter = PlanFactory(code="starter", base_fee=Decimal("20"))
    current = subscribe(team)

    staged = change_plan(current, starter)

    assert staged.pk == current.pk  # the subscription stays on its plan, with the next one staged
    assert (staged.plan, staged.next_plan, staged.downgrade_at) == (team, starter, NOVEMBER)
    assert subscriptions_watch(now=NOVEMBER - (NOVEMBER - NOW) / 2).downgraded == []

    report = subscriptions_watch(now=NOVEMBER)

    old = Subscription.objects.get(pk=current.pk)
    new = Subscription.objects.get(pk=report.downgraded[0])
    assert (old.status, old.terminated_at, old.next_plan) == (SubscriptionStatus.TERMINATED, NOVEMBER, None)
    assert (new.status, new.plan, new.subscription_at, new.previous) == (
        SubscriptionStatus.ACTIVE,
        starter,
        NOVEMBER,
        old,
    )
    assert subscriptions_watch(now=NOVEMBER).downgraded == []  # once
    # The old plan is billed to the end of its period, the new one from there.
    close_periods(now=datetime(2026, 12, 1, tzinfo=UTC))
    assert base_fees(old) == [(START, Decimal("120.00"))]
    assert base_fees(new) == [(NOVEMBER, Decimal("20.00"))]


def test_an_upgrade_or_a_termination_drops_a_staged_downgrade() -> None:
    team = team_plan()
    current = subscribe(team)
    change_plan(current, PlanFactory(code="starter", base_fee=Decimal("20")))
    business = PlanFactory(code="business", base_fee=Decimal("500"))

    upgraded = change_plan(current, business)

    assert (upgraded.plan, upgraded.next_plan, upgraded.previous_id) == (business, None, current.pk)
    change_plan(upgraded, PlanFactory(code="mini", base_fee=Decimal("1")))
    ended = subscription_terminate(subscription=upgraded, at=NOW)
    assert (ended.next_plan, ended.downgrade_at) == (None, None)
    assert subscriptions_watch(now=NOVEMBER).downgraded == []


def test_ending_at_terminates_the_subscription_at_that_moment() -> None:
    subscription = subscribe(team_plan(), now=NOW)
    ends = datetime(2026, 10, 25, 15, 30, tzinfo=UTC)
    subscription_update(subscription=subscription, ending_at=ends, now=NOW)

    assert subscriptions_watch(now=ends.replace(minute=29)).ended == []
    report = subscriptions_watch(now=ends.replace(minute=31))

    subscription.refresh_from_db()
    assert report.ended == [subscription.pk]
    assert (subscription.status, subscription.terminated_at) == (SubscriptionStatus.TERMINATED, ends)


@pytest.mark.parametrize(
    ("on_termination", "periods"),
    [(OnTerminationInvoice.GENERATE, [START]), (OnTerminationInvoice.SKIP, [])],
)
def test_skip_bills_no_closing_invoice(on_termination: str, periods: list[datetime]) -> None:
    subscription = subscribe(team_plan(), now=NOW)
    subscription_terminate(subscription=subscription, at=NOW, on_termination_invoice=on_termination)

    close_periods(now=datetime(2026, 11, 2, tzinfo=UTC))

    invoiced = Invoice.objects.filter(subscription=subscription, kind=InvoiceKind.PERIOD)
    assert [invoice.period_start for invoice in invoiced] == periods


def test_a_pending_subscription_that_ends_is_canceled() -> None:
    customer = CustomerFactory()
    pending, _ = subscription_create(
        customer=customer,
        plan=team_plan(),
        external_id="later",
        subscription_at=NOVEMBER,
        billing_time=BillingTime.CALENDAR,
        now=NOW,
    )

    canceled = subscription_terminate(subscription=pending, at=NOW)

    assert (canceled.status, canceled.canceled_at) == (SubscriptionStatus.CANCELED, NOW)
    assert subscriptions_watch(now=datetime(2026, 11, 2, tzinfo=UTC)).started == []


@pytest.mark.skipif(not using_postgres(), reason="row locks are tested on PostgreSQL only (DESIGN §5)")
@pytest.mark.django_db(transaction=True)
def test_two_clocks_at_once_apply_a_staged_downgrade_once() -> None:
    current = subscribe(team_plan())
    change_plan(current, PlanFactory(code="starter", base_fee=Decimal("20")))

    reports = run_concurrently([lambda: subscriptions_watch(now=NOVEMBER) for _ in range(2)])

    assert sorted(len(report.downgraded) for report in reports) == [0, 1]
    assert Subscription.objects.filter(external_id="acme-team").count() == 2
    assert Subscription.objects.get(external_id="acme-team", status=SubscriptionStatus.ACTIVE).plan.code == "starter"

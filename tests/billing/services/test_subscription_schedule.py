"""What Lago schedules on a subscription (billing.services.subscriptions and its clock,
billing.services.subscription_clock): a downgrade staged to the end of the current period and
applied there by the clock (once, even with two clocks at once), an `ending_at` honoured at its
moment, and a termination that skips its closing invoice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.engine.vocabulary import BillingTime, Interval, OnTerminationInvoice
from billing.models import Invoice, InvoiceKind, LineKind, Plan, Subscription, SubscriptionStatus
from billing.services.period_close import close_periods, close_subscription
from billing.services.period_close_due import subscriptions_to_close
from billing.services.subscription_clock import subscriptions_watch
from billing.services.subscriptions import (
    NOT_LIVE,
    SubscriptionError,
    is_downgrade,
    subscription_create,
    subscription_terminate,
    subscription_update,
)
from customers.models import Customer
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


def test_a_plan_change_bills_the_old_plans_part_period_even_when_set_to_skip() -> None:
    current = subscribe(team_plan(), now=NOW)
    subscription_update(subscription=current, on_termination_invoice=OnTerminationInvoice.SKIP, now=NOW)

    upgraded = change_plan(current, PlanFactory(code="business", base_fee=Decimal("500")))

    old = Subscription.objects.get(pk=current.pk)
    assert old.on_termination_invoice == OnTerminationInvoice.GENERATE
    close_periods(now=datetime(2026, 11, 2, tzinfo=UTC))
    assert base_fees(old) == [(START, Decimal("73.55"))]  # Oct 1-19: 19 of 31 days of $120
    assert [start for start, _ in base_fees(upgraded)] == [NOW.replace(hour=0)]
    # What an ended subscription's termination bills can no longer change (the same value is taken).
    with pytest.raises(SubscriptionError) as refused:
        subscription_update(subscription=old, on_termination_invoice=OnTerminationInvoice.SKIP, now=NOW)
    ended = NOT_LIVE.format(status="terminated")
    assert (refused.value.field, refused.value.message) == ("on_termination_invoice", ended)
    subscription_update(subscription=old, on_termination_invoice=OnTerminationInvoice.GENERATE, now=NOW)


def test_a_draft_is_always_finalized_even_if_its_period_is_then_skipped() -> None:
    customer = CustomerFactory(invoice_grace_period=3)
    subscription, _ = subscription_create(
        customer=customer,
        plan=team_plan(),
        external_id="s",
        subscription_at=START,
        billing_time=BillingTime.CALENDAR,
        now=NOW,
    )
    subscription_terminate(subscription=subscription, at=NOW)
    close_periods(now=datetime(2026, 10, 22, tzinfo=UTC))
    draft = Invoice.objects.get(subscription=subscription, kind=InvoiceKind.PERIOD)
    assert draft.status == "draft"
    Subscription.objects.filter(pk=subscription.pk).update(on_termination_invoice=OnTerminationInvoice.SKIP)

    close_periods(now=datetime(2026, 10, 26, tzinfo=UTC))

    draft.refresh_from_db()
    assert draft.status == "finalized"
    assert subscription.pk not in subscriptions_to_close(now=datetime(2026, 10, 26, tzinfo=UTC))


def test_the_clock_reports_a_failing_subscription_and_does_the_others() -> None:
    current = subscribe(team_plan())
    starter = PlanFactory(code="starter", base_fee=Decimal("20"))
    change_plan(current, starter)
    Plan.objects.filter(pk=starter.pk).update(currency="EUR")  # the staged plan no longer fits
    other, _ = subscription_create(
        customer=current.customer,
        plan=team_plan(code="other"),
        external_id="other",
        subscription_at=START,
        billing_time=BillingTime.CALENDAR,
        now=START,
        ending_at=datetime(2026, 10, 25, tzinfo=UTC),
    )

    report = subscriptions_watch(now=NOVEMBER)

    assert len(report.errors) == 1 and report.errors[0].startswith(f"subscription {current.pk}: plan_code")
    assert (report.downgraded, report.ended) == ([], [other.pk])
    assert Subscription.objects.get(pk=current.pk).next_plan == starter  # still staged: tried again next run


@pytest.mark.parametrize("ends_before_downgrade", [False, True])
def test_after_an_outage_what_was_due_first_happens_first(ends_before_downgrade: bool) -> None:
    current = subscribe(team_plan())
    ends = datetime(2026, 10, 25, tzinfo=UTC) if ends_before_downgrade else datetime(2026, 11, 15, tzinfo=UTC)
    subscription_update(subscription=current, ending_at=ends, now=NOW)
    change_plan(current, PlanFactory(code="starter", base_fee=Decimal("20")))

    report = subscriptions_watch(now=datetime(2026, 11, 20, tzinfo=UTC))

    old = Subscription.objects.get(pk=current.pk)
    if ends_before_downgrade:  # it ended: the downgrade never applies
        assert (report.downgraded, report.ended, old.terminated_at) == ([], [old.pk], ends)
    else:  # downgraded on Nov 1, and the new subscription (with the ending_at) ended on Nov 15
        new = Subscription.objects.get(pk=report.downgraded[0])
        assert (old.terminated_at, new.subscription_at, new.ending_at) == (NOVEMBER, NOVEMBER, ends)
        assert (report.ended, new.status, new.terminated_at) == ([new.pk], SubscriptionStatus.TERMINATED, ends)


def test_canceled_and_fully_billed_skipped_subscriptions_leave_the_close_set() -> None:
    live = subscribe(team_plan(pay_in_advance=True))
    pending, _ = subscription_create(
        customer=live.customer,
        plan=live.plan,
        external_id="later",
        subscription_at=NOVEMBER,
        billing_time=BillingTime.CALENDAR,
        now=NOW,
    )
    subscription_terminate(subscription=pending, at=NOW)  # canceled
    skipped, _ = subscription_create(
        customer=live.customer,
        plan=live.plan,
        external_id="skipped",
        subscription_at=START,
        billing_time=BillingTime.CALENDAR,
        now=START,
    )
    mid_november = datetime(2026, 11, 15, 10, tzinfo=UTC)
    subscription_terminate(subscription=skipped, at=mid_november, on_termination_invoice=OnTerminationInvoice.SKIP)
    after = datetime(2026, 11, 20, tzinfo=UTC)

    # A canceled subscription never has a period to bill.
    close_subscription(subscription_id=pending.pk, now=after)
    assert not Invoice.objects.filter(subscription=pending).exists()
    # October (and its advance fees) not billed yet: the skipped one stays in.
    assert list(subscriptions_to_close(now=after)) == [live.pk, skipped.pk]

    close_periods(now=after)

    assert [i.period_start for i in Invoice.objects.filter(subscription=skipped, kind=InvoiceKind.PERIOD)] == [START]
    assert list(subscriptions_to_close(now=after)) == [live.pk]
    assert list(subscriptions_to_close(now=after + timedelta(days=40))) == [live.pk]


@pytest.mark.skipif(not using_postgres(), reason="row locks are tested on PostgreSQL only (DESIGN §5)")
def test_the_clock_locks_the_customer_before_the_subscription_as_a_create_does() -> None:
    current = subscribe(team_plan())
    subscription_update(subscription=current, ending_at=datetime(2026, 11, 15, tzinfo=UTC), now=NOW)
    change_plan(current, PlanFactory(code="starter", base_fee=Decimal("20")))

    with CaptureQueriesContext(connection) as queries:
        report = subscriptions_watch(now=datetime(2026, 11, 20, tzinfo=UTC))

    assert (len(report.downgraded), len(report.ended)) == (1, 1)
    locked = [q["sql"].split(" FROM ")[1].split()[0].strip('"') for q in queries if "FOR UPDATE" in q["sql"]]
    customers, subscriptions = Customer._meta.db_table, Subscription._meta.db_table
    # Each change (the downgrade, then the ending) locks the customer, then the subscription.
    assert locked[:2] == [customers, subscriptions]
    assert locked.count(customers) >= 2 and locked[locked.index(customers, 1) + 1] == subscriptions

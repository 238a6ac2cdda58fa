"""The period close's batched path (issue 18): groups of subscriptions closed in one transaction
(billing.services.period_close.close_group), on PostgreSQL. What a group cannot batch is closed
one by one in its place, so the order of the numbers stays the subscriptions' order; a group that
fails is rolled back and closed one by one, which reports the failing subscription alone.
On SQLite every subscription is closed one by one: the same expectations hold there."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Invoice, InvoiceStatus, Plan, Subscription
from billing.services import period_close
from billing.services.period_close import CloseReport, close_chunk
from tests.factories import BillableMetricFactory, ChargeFactory, CustomerFactory, PlanFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)
OCTOBER_CLOSE = datetime(2026, 10, 1, 0, 5, tzinfo=UTC)
NOVEMBER_CLOSE = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)


@pytest.fixture
def plan() -> Plan:
    plan: Plan = PlanFactory(code="metered", name="Metered", base_fee=Decimal("10"))
    ChargeFactory(plan=plan, metric=BillableMetricFactory(), unit_amount=Decimal("0.10"))
    return plan


def subscribe(plan: Plan, n: int, **customer: Any) -> list[Subscription]:
    return [
        SubscriptionFactory(
            customer=CustomerFactory(external_id=f"g-{i:03d}", **customer), plan=plan, subscription_at=SEPTEMBER
        )
        for i in range(n)
    ]


def numbered(period_start: datetime) -> list[tuple[str, int]]:
    """(number, subscription id) of the finalized invoices of the period, by number."""
    return sorted(
        Invoice.objects.filter(period_start=period_start, status=InvoiceStatus.FINALIZED).values_list(
            "number", "subscription_id"
        )
    )


def test_what_a_group_cannot_batch_is_closed_in_its_place(plan: Plan) -> None:
    subscriptions = subscribe(plan, 5)
    # A grace period of three days: its invoice stays a draft, which the batched path does not make.
    draft = subscriptions[2]
    draft.customer.invoice_grace_period = 3
    draft.customer.save()
    steps: list[int] = []
    report = close_chunk(
        [s.pk for s in subscriptions], now=OCTOBER_CLOSE, step=lambda so_far: steps.append(len(so_far.created))
    )
    assert not report.errors
    assert steps == [1, 2, 3, 4, 5]  # one step a subscription, in order, once each is committed
    others = [s.pk for s in subscriptions if s is not draft]
    assert numbered(SEPTEMBER) == [(f"INV-2026-{n:06d}", pk) for n, pk in enumerate(others, start=1)]
    assert Invoice.objects.get(subscription=draft).status == InvoiceStatus.DRAFT
    assert sorted(report.finalized) == sorted(
        Invoice.objects.filter(subscription_id__in=others).values_list("pk", flat=True)
    )


def test_a_failing_subscription_is_reported_alone_and_the_others_are_closed(plan: Plan, monkeypatch: Any) -> None:
    subscriptions = subscribe(plan, 4)
    bad = subscriptions[1]
    inputs = period_close.period_invoice_inputs

    def failing(subscription: Subscription, *args: Any, **kwargs: Any) -> Any:
        if subscription.pk == bad.pk:
            raise RuntimeError("cannot price it")
        return inputs(subscription, *args, **kwargs)

    monkeypatch.setattr(period_close, "period_invoice_inputs", failing)
    report = close_chunk([s.pk for s in subscriptions], now=OCTOBER_CLOSE, report=CloseReport())
    assert report.errors == [f"subscription {bad.pk}: cannot price it"]
    others = [s.pk for s in subscriptions if s is not bad]
    # Gap-free: the rolled-back group gave its numbers back.
    assert numbered(SEPTEMBER) == [(f"INV-2026-{n:06d}", pk) for n, pk in enumerate(others, start=1)]
    assert not Invoice.objects.filter(subscription=bad).exists()


def test_the_next_month_of_invoiced_subscriptions_is_batched_too(plan: Plan) -> None:
    subscriptions = subscribe(plan, 6)
    ids = [s.pk for s in subscriptions]
    close_chunk(ids, now=OCTOBER_CLOSE)
    with CaptureQueriesContext(connection) as queries:
        report = close_chunk(ids, now=NOVEMBER_CLOSE)
    assert not report.errors
    assert numbered(datetime(2026, 10, 1, tzinfo=UTC)) == [(f"INV-2026-{n:06d}", pk) for n, pk in enumerate(ids, 7)]
    if connection.vendor == "postgresql":
        # Each: the usage of its period and of the period before (late events), and what that
        # one billed; the rest is shared (the chunk's read, one group's lock, invoices, ids, lines,
        # emails, numbers, INSERT and webhook check, a test's savepoint): 33 here. One by one it was
        # 11 or more a subscription.
        assert len(queries) <= 3 * len(ids) + 16

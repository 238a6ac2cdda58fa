"""Two closers at once (DESIGN §5: nothing may assume a single process), on PostgreSQL.

Each invoice must exist exactly once and the numbers must stay gap-free and unique when two
`close_period` processes, or two threads calling close_periods, run over the same subscriptions
at the same time. The subprocesses run on the real clock (time cannot be frozen across
processes), so the subscriptions start three months before the real current month: every
period they have to invoice is already over. Events are stored through metering.ingest directly
(the API would reject events older than BILLING_EVENT_MAX_AGE_DAYS).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import ChargeModel, Invoice, InvoiceStatus, Plan, Subscription
from billing.services.period_close import CloseReport, close_periods, close_subscription
from billing.services.period_close_due import subscriptions_to_close
from tests.conftest import using_postgres
from tests.factories import (
    BillableMetricFactory,
    ChargeFactory,
    CustomerFactory,
    PlanFactory,
    SubscriptionFactory,
    store_users,
)

pytestmark = [
    pytest.mark.skipif(
        not using_postgres(), reason="row locks and concurrent closers are tested on PostgreSQL only (DESIGN §5)"
    ),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[3]
SUBSCRIPTIONS = 40
MONTHS = 3
USERS = 5


def month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def months_before(moment: datetime, n: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 - n
    return month_start(index // 12, index % 12 + 1)


@pytest.fixture
def population() -> list[Subscription]:
    """SUBSCRIPTIONS customers on $10 + $0.10 per MTU since MONTHS months ago, USERS users a month."""
    plan: Plan = PlanFactory(code="metered", name="Metered", base_fee=Decimal("10"))
    metric = BillableMetricFactory()
    ChargeFactory(plan=plan, metric=metric, model=ChargeModel.STANDARD, unit_amount=Decimal("0.10"))
    start = months_before(timezone.now(), MONTHS)
    subscriptions = []
    for i in range(SUBSCRIPTIONS):
        customer = CustomerFactory(external_id=f"cust-{i:03d}")
        subscriptions.append(SubscriptionFactory(customer=customer, plan=plan, subscription_at=start))
        for m in range(MONTHS):
            when = months_before(timezone.now(), MONTHS - m).replace(day=10)
            store_users(customer, range(USERS), when, f"{i}-{m}", metric)
    return subscriptions


def assert_invoiced_exactly_once(subscriptions: list[Subscription]) -> None:
    invoices = list(Invoice.objects.order_by("finalized_at", "pk"))
    keys = [(inv.subscription_id, inv.kind, inv.period_start) for inv in invoices]
    assert len(keys) == len(set(keys)) == SUBSCRIPTIONS * MONTHS
    assert {inv.subscription_id for inv in invoices} == {s.pk for s in subscriptions}
    assert {inv.status for inv in invoices} == {InvoiceStatus.FINALIZED}
    assert {inv.total for inv in invoices} == {Decimal("10.50")}  # $10 + 5 × $0.10, every month
    numbers = [inv.number for inv in invoices]
    assert len(set(numbers)) == len(numbers)
    by_year: dict[str, list[int]] = {}
    for number in numbers:
        match = re.fullmatch(r"INV-(\d{4})-(\d{6})", number or "")
        assert match, number
        by_year.setdefault(match.group(1), []).append(int(match.group(2)))
    for sequence in by_year.values():
        assert sorted(sequence) == list(range(1, len(sequence) + 1))  # gap-free from 1
    for subscription in subscriptions:
        # within a subscription, months are finalized in order
        own = [inv for inv in invoices if inv.subscription_id == subscription.pk]
        assert [inv.period_start for inv in own] == sorted(inv.period_start for inv in own)


def database_url() -> str:
    s = connection.settings_dict
    credentials = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        credentials += ":" + quote(s["PASSWORD"], safe="")
    host = s.get("HOST") or "localhost"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{quote(s['NAME'], safe='')}"


def test_two_close_period_processes_at_once_invoice_each_period_once(population: list[Subscription]) -> None:
    env = {**os.environ, "DATABASE_URL": database_url(), "BILLING_GRACE_PERIOD_HOURS": "0"}
    command = [sys.executable, str(ROOT / "manage.py"), "close_period"]
    closers = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [closer.communicate(timeout=300) for closer in closers]
    for closer, (out, err) in zip(closers, outputs, strict=True):
        assert closer.returncode == 0, out + err
    created = [int(re.search(r"Invoices: (\d+) created", out).group(1)) for out, _ in outputs]  # type: ignore[union-attr]
    assert sum(created) == SUBSCRIPTIONS * MONTHS
    assert_invoiced_exactly_once(population)


def close_in_reverse(now: datetime) -> CloseReport:
    """close_periods' work, last subscription first: meets the other closer half-way."""
    report = CloseReport()
    for subscription_id in reversed(list(subscriptions_to_close())):
        close_subscription(subscription_id=subscription_id, now=now, report=report)
    return report


@pytest.mark.parametrize("reverse", [False, True], ids=["same-order", "opposite-order"])
def test_two_threads_closing_at_once_invoice_each_period_once(population: list[Subscription], reverse: bool) -> None:
    now = timezone.now()
    barrier = threading.Barrier(2)
    reports: list[CloseReport] = []
    failures: list[BaseException] = []

    def closer(run: Callable[[datetime], CloseReport]) -> None:
        try:
            barrier.wait(timeout=30)
            reports.append(run(now))
        except BaseException as exc:  # reported to the test thread below
            failures.append(exc)
        finally:
            connection.close()  # this thread's own connection

    second = close_in_reverse if reverse else (lambda moment: close_periods(now=moment))
    threads = [
        threading.Thread(target=closer, args=(lambda moment: close_periods(now=moment),)),
        threading.Thread(target=closer, args=(second,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures
    assert [r.errors for r in reports] == [[], []]
    assert sum(len(r.created) for r in reports) == SUBSCRIPTIONS * MONTHS
    assert sum(len(r.finalized) for r in reports) == SUBSCRIPTIONS * MONTHS
    assert_invoiced_exactly_once(population)

    # and a third run afterwards finds nothing to do
    again = close_periods(now=now)
    assert (len(again.created), len(again.finalized), again.errors) == (0, 0, [])

"""A period close fanned out across workers (issue 18): `close_period --workers N`, the chunks'
two passes (SKIP LOCKED, then blocking) and the django-q2 task that queues one task a chunk.

Exactly once and gap-free are proven on PostgreSQL, where closers really run at once (row locks
across processes); SQLite closes with one worker in-process, whatever --workers says.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Task

from billing.models import ChargeModel, Invoice, InvoiceStatus, Plan, Subscription
from billing.services.period_close import CloseReport, close_chunk, close_subscription
from billing.services.period_close_workers import (
    ONE_WORKER_IN_TRANSACTION,
    ONE_WORKER_SQLITE,
    close_periods_in_workers,
    queue_close_chunks,
)
from billing.tasks import close_ended_periods, close_period_chunk
from customers.models import Customer
from tests.conftest import using_postgres
from tests.factories import BillableMetricFactory, ChargeFactory, CustomerFactory, PlanFactory, SubscriptionFactory
from tests.helpers import travel

ROOT = Path(__file__).resolve().parents[3]
SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)
CLOSE_AT = datetime(2026, 10, 1, 0, 5, tzinfo=UTC)
postgres_only = pytest.mark.skipif(not using_postgres(), reason="row locks across processes: PostgreSQL only")


def metered_plan() -> Plan:
    plan: Plan = PlanFactory(code="metered", name="Metered", base_fee=Decimal("10"))
    ChargeFactory(plan=plan, metric=BillableMetricFactory(), model=ChargeModel.STANDARD, unit_amount=Decimal("0.10"))
    return plan


def subscribe(n: int, start: datetime = SEPTEMBER) -> list[Subscription]:
    plan = metered_plan()
    return [
        SubscriptionFactory(customer=CustomerFactory(external_id=f"w-{i:03d}"), plan=plan, subscription_at=start)
        for i in range(n)
    ]


def months_before(moment: datetime, n: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 - n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def assert_each_period_once_and_numbers_contiguous(expected: int, drafts: int = 0) -> None:
    keys = list(Invoice.objects.values_list("subscription_id", "kind", "period_start"))
    assert len(keys) == len(set(keys)) == expected + drafts
    invoices = list(Invoice.objects.filter(status=InvoiceStatus.FINALIZED))
    assert len(invoices) == expected
    by_year: dict[str, list[int]] = {}
    for number in (inv.number for inv in invoices):
        match = re.fullmatch(r"INV-(\d{4})-(\d{6})", number or "")
        assert match, number
        by_year.setdefault(match.group(1), []).append(int(match.group(2)))
    for sequence in by_year.values():
        assert sorted(sequence) == list(range(1, len(sequence) + 1))  # no gap, no duplicate


def database_url() -> str:
    s = connection.settings_dict
    credentials = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        credentials += ":" + quote(s["PASSWORD"], safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{credentials}@{s.get('HOST') or 'localhost'}{port}/{quote(s['NAME'], safe='')}"


# --- PostgreSQL: closers at once ---------------------------------------------------------------


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_close_period_runs_with_two_workers_each_invoice_each_period_once() -> None:
    # On the real clock (it cannot be frozen across processes): two months over already.
    subscriptions = subscribe(30, start=months_before(timezone.now(), 2))
    env = {**os.environ, "DATABASE_URL": database_url(), "BILLING_GRACE_PERIOD_HOURS": "0"}
    command = [sys.executable, str(ROOT / "manage.py"), "close_period", "--workers", "2"]
    runs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out + err
        assert "Workers: 2." in out
    created = [int(re.search(r"Invoices: (\d+) created", out).group(1)) for out, _ in outputs]  # type: ignore[union-attr]
    assert sum(created) == len(subscriptions) * 2  # each invoice created once in total
    assert_each_period_once_and_numbers_contiguous(len(subscriptions) * 2)

    # A third run, forking its workers from this process, finds nothing left to do.
    seen: list[tuple[int, int]] = []
    again = close_periods_in_workers(now=timezone.now(), workers=2, progress=lambda d, t, _: seen.append((d, t)))
    assert (again.created, again.finalized, again.errors) == ([], [], [])
    assert seen[-1] == (len(subscriptions), len(subscriptions))


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_subscription_locked_elsewhere_is_skipped_then_found_invoiced_in_the_second_pass() -> None:
    first, held, last = subscribe(3)
    # The other closer makes a draft (the customer's grace period is a day): a finalization would
    # also hold the invoice counter's row until it commits, and every finalizing closer waits there.
    Customer.objects.filter(pk=held.customer_id).update(invoice_grace_period=1)
    locked, release = threading.Event(), threading.Event()
    holder_report = CloseReport()
    failures: list[BaseException] = []

    def other_closer() -> None:
        """Closes `held` (a draft) and keeps its locks until told to commit."""
        try:
            with transaction.atomic():
                close_subscription(subscription_id=held.pk, now=CLOSE_AT, report=holder_report)
                locked.set()
                release.wait(timeout=60)
        except BaseException as exc:  # reported to the test thread below
            failures.append(exc)
        finally:
            locked.set()
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=other_closer)
    thread.start()
    assert locked.wait(timeout=60)
    done_before_release: list[int] = []

    def step(report: CloseReport) -> None:
        done_before_release.append(len(report.created))
        if len(done_before_release) == 2:  # the two free ones are closed: the first pass is over
            release.set()

    report = close_chunk([first.pk, held.pk, last.pk], now=CLOSE_AT, step=step)
    thread.join(timeout=60)
    assert not failures, failures
    assert done_before_release == [1, 2, 2]  # `held` came last, after the other closer committed
    assert (report.errors, report.unchanged) == ([], 1)  # found the other's draft, left it as it was
    by_subscription = dict(Invoice.objects.values_list("pk", "subscription_id"))
    assert sorted(by_subscription[pk] for pk in report.created) == [first.pk, last.pk]
    assert [by_subscription[pk] for pk in holder_report.created] == [held.pk]  # made once, by the other
    assert Invoice.objects.get(subscription=held).status == InvoiceStatus.DRAFT
    assert_each_period_once_and_numbers_contiguous(2, drafts=1)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_subscription_locked_elsewhere_is_closed_in_the_second_pass() -> None:
    first, held, last = subscribe(3)
    locked, release = threading.Event(), threading.Event()

    def lock_holder() -> None:
        try:
            with transaction.atomic():
                Subscription.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(timeout=60)
        finally:
            locked.set()
            connection.close()

    thread = threading.Thread(target=lock_holder)
    thread.start()
    assert locked.wait(timeout=60)
    closed: list[int] = []

    def step(report: CloseReport) -> None:
        closed.append(len(report.created))
        if len(closed) == 2:
            release.set()

    report = close_chunk([first.pk, held.pk, last.pk], now=CLOSE_AT, step=step)
    thread.join(timeout=60)
    assert report.errors == []
    by_subscription = dict(Invoice.objects.values_list("pk", "subscription_id"))
    assert [by_subscription[pk] for pk in report.created] == [first.pk, last.pk, held.pk]  # held: second pass
    assert_each_period_once_and_numbers_contiguous(3)


# --- the command -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_close_period_with_two_workers_closes_everything_in_process_where_it_must() -> None:
    subscribe(3)
    out = StringIO()
    with travel(CLOSE_AT):
        call_command("close_period", "--workers", "2", stdout=out)
    # SQLite has one writer; a test's transaction is invisible to other processes.
    reason = ONE_WORKER_IN_TRANSACTION if using_postgres() else ONE_WORKER_SQLITE
    assert out.getvalue().splitlines()[:2] == [reason, "Workers: 1."]
    assert "Invoices: 3 created, 0 recomputed, 3 finalized, 0 unchanged." in out.getvalue()
    assert_each_period_once_and_numbers_contiguous(3)


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_close_period_refuses_a_bad_worker_count(value: str) -> None:
    with pytest.raises(CommandError, match="--workers"):
        call_command("close_period", "--workers", value, stdout=StringIO())


# --- the django-q2 tasks -----------------------------------------------------------------------


@pytest.fixture
def sync_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2 runs queued tasks at once, in this process and transaction (its sync mode)."""
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.mark.django_db
@pytest.mark.usefixtures("sync_tasks")
def test_the_hourly_task_queues_the_close_and_the_queued_task_closes_it() -> None:
    subscribe(3)
    with travel(CLOSE_AT):
        assert close_ended_periods() == "3 subscriptions in 1 chunk queued"
    (chunk,) = Task.objects.filter(func="billing.tasks.close_period_chunk")
    assert (chunk.success, chunk.result) == (True, "3 created, 3 finalized, 0 errors")
    assert_each_period_once_and_numbers_contiguous(3)


@pytest.mark.django_db
@pytest.mark.usefixtures("sync_tasks")
def test_the_subscriptions_due_are_queued_one_task_a_chunk() -> None:
    subscribe(3)
    with travel(CLOSE_AT):
        assert queue_close_chunks(now=CLOSE_AT, size=2) == (3, 2)
    chunks = Task.objects.filter(func="billing.tasks.close_period_chunk").order_by("started")
    assert [(len(task.args[0]), task.success) for task in chunks] == [(2, True), (1, True)]
    assert_each_period_once_and_numbers_contiguous(3)


@pytest.mark.django_db
def test_a_chunk_task_fails_when_a_subscription_failed_after_closing_the_others() -> None:
    first, last = subscribe(2)
    missing = last.pk + 1000
    with (
        travel(CLOSE_AT),
        pytest.raises(RuntimeError, match=f"2 created, 2 finalized, 1 errors: subscription {missing}"),
    ):
        close_period_chunk([first.pk, missing, last.pk])
    assert_each_period_once_and_numbers_contiguous(2)

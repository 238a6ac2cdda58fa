"""Prepaid commitments end to end (DESIGN §3 "Commitments"): through the API, the management
commands and the commitment services, with the clock frozen by time_machine.

The plans come from a small catalog file of their own, priced for round numbers:
- `metered`: $10 a month plus $0.10 per MTU; $200 for 12 months covering base fee *and* usage,
  not renewing.
- `renewing`: $5 a month plus $0.10 per MTU; $100 for 12 months covering the base fee, renewing.
- `plain`: $40 a month, no commitment (one is added later, by hand).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from billing.engine.periods import term_end
from billing.models import (
    Commitment,
    CommitmentCovers,
    CommitmentStatus,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    Plan,
    Subscription,
)
from billing.selectors.commitments import balance
from billing.services.commitments import (
    ADJUSTMENT_REASON_REQUIRED,
    CommitmentError,
    adjustment_create,
    drawdown_record,
    process_commitments,
)
from billing.services.invoices import invoice_void
from billing.services.subscriptions import subscription_create
from customers.models import Customer
from metering.days import day_start
from tests.helpers import api_client, at, load_catalog, post

pytestmark = pytest.mark.django_db

CATALOG = {
    "billable_metrics": [
        {"code": "mtu", "name": "Monthly tracked users", "aggregation": "unique_count", "field": "user_id"}
    ],
    "plans": [
        {
            "code": "metered",
            "name": "Metered",
            "interval": "month",
            "currency": "USD",
            "base_fee": "10",
            "commitment": {"amount": "200", "months": 12, "covers": "all", "auto_renew": False},
            "charges": [{"metric": "mtu", "model": "standard", "unit_amount": "0.10"}],
        },
        {
            "code": "renewing",
            "name": "Renewing",
            "interval": "month",
            "currency": "USD",
            "base_fee": "5",
            "commitment": {"amount": "100", "months": 12, "covers": "base_fee", "auto_renew": True},
            "charges": [{"metric": "mtu", "model": "standard", "unit_amount": "0.10"}],
        },
        {"code": "plain", "name": "Plain", "interval": "month", "currency": "USD", "base_fee": "40", "charges": []},
    ],
}


def subscribe(api: APIClient, customer: str, plan: str, start: datetime) -> Subscription:
    with time_machine.travel(start, tick=False):
        post(api, "/api/v1/customers", {"customer": {"external_id": customer, "name": customer, "currency": "USD"}})
        post(
            api,
            "/api/v1/subscriptions",
            {
                "subscription": {
                    "external_customer_id": customer,
                    "plan_code": plan,
                    "external_id": f"{customer}-{plan}",
                    "subscription_at": start.isoformat(),
                    "billing_time": "calendar",
                }
            },
        )
    return Subscription.objects.get(external_id=f"{customer}-{plan}")


def send_users(api: APIClient, customer: str, count: int, when: datetime) -> None:
    """`count` distinct users seen on `when`, posted on that day."""
    events = [
        {
            "transaction_id": f"{when:%Y%m%d}-u{u}",
            "external_customer_id": customer,
            "code": "mtu",
            "timestamp": when.isoformat(),
            "properties": {"user_id": f"u{u}"},
        }
        for u in range(count)
    ]
    with time_machine.travel(when, tick=False):
        for i in range(0, len(events), 1000):
            post(api, "/api/v1/events/batch", {"events": events[i : i + 1000]})


@pytest.fixture
def api(tmp_path: Path) -> APIClient:
    load_catalog(tmp_path, CATALOG)
    return api_client()


def run(command: str, now: datetime, *args: str) -> str:
    out = StringIO()
    with time_machine.travel(now, tick=False):
        call_command(command, *args, stdout=out)
    return out.getvalue()


def close(year: int, month: int) -> None:
    """The hourly close a few minutes after midnight on the 1st (UTC customers)."""
    run("close_period", at(year, month, 1, 0, 5))


def process(day: date) -> str:
    return run("process_commitments", at(day.year, day.month, day.day, 0, 10), "--date", day.isoformat())


def lines(invoice: Invoice) -> list[tuple[str, Decimal]]:
    return [(line.kind, line.amount.quantize(Decimal("0.01"))) for line in invoice.lines.order_by("position")]


def period_invoice(subscription: Subscription, year: int, month: int) -> Invoice:
    return Invoice.objects.get(subscription=subscription, kind=InvoiceKind.PERIOD, period_start=at(year, month, 1))


def ledger(commitment: Commitment) -> list[tuple[str, Decimal]]:
    return [(e.kind, e.amount.quantize(Decimal("0.01"))) for e in commitment.entries.order_by("created_at", "id")]


def snapshot() -> tuple[int, int, int]:
    return Invoice.objects.count(), LedgerEntry.objects.count(), Commitment.objects.count()


# --- Drawdown: covers=all -----------------------------------------------------------------------


def test_covers_all_draws_usage_too_until_the_balance_is_spent_then_bills_cash(api: APIClient) -> None:
    subscription = subscribe(api, "acme", "metered", at(2026, 1, 1, 0, 10))
    commitment = Commitment.objects.get(subscription=subscription)
    assert commitment.covers == CommitmentCovers.ALL and commitment.auto_renew is False
    assert commitment.status == CommitmentStatus.ACTIVE
    assert commitment.invoice is not None and commitment.invoice.total == Decimal("200.00")
    assert ledger(commitment) == [("purchase", Decimal("200.00"))]

    # January: $10 + 300 users × $0.10 = $40, all drawn.
    send_users(api, "acme", 300, at(2026, 1, 20))
    close(2026, 2)
    january = period_invoice(subscription, 2026, 1)
    assert lines(january) == [
        ("base_fee", Decimal("10.00")),
        ("usage", Decimal("30.00")),
        ("commitment_drawdown", Decimal("-40.00")),
    ]
    assert january.total == 0 and january.status == InvoiceStatus.FINALIZED
    assert balance(commitment) == Decimal("160.00")

    # February: $10 + $100 = $110, all drawn.
    send_users(api, "acme", 1000, at(2026, 2, 20))
    close(2026, 3)
    assert period_invoice(subscription, 2026, 2).total == 0
    assert balance(commitment) == Decimal("50.00")

    # March: $10 + $60 = $70; the balance covers $50, the remaining $20 is billed in cash.
    send_users(api, "acme", 600, at(2026, 3, 20))
    close(2026, 4)
    march = period_invoice(subscription, 2026, 3)
    assert lines(march) == [
        ("base_fee", Decimal("10.00")),
        ("usage", Decimal("60.00")),
        ("commitment_drawdown", Decimal("-50.00")),
    ]
    assert march.total == Decimal("20.00")
    assert balance(commitment) == 0

    # April: nothing left to draw: all $20 in cash, and no drawdown line at all.
    send_users(api, "acme", 100, at(2026, 4, 20))
    close(2026, 5)
    april = period_invoice(subscription, 2026, 4)
    assert lines(april) == [("base_fee", Decimal("10.00")), ("usage", Decimal("10.00"))]
    assert april.total == Decimal("20.00")

    assert balance(commitment) == 0
    assert ledger(commitment) == [
        ("purchase", Decimal("200.00")),
        ("drawdown", Decimal("-40.00")),
        ("drawdown", Decimal("-110.00")),
        ("drawdown", Decimal("-50.00")),
    ]
    # Every drawdown entry belongs to the invoice whose line it records.
    for entry in commitment.entries.filter(kind=LedgerKind.DRAWDOWN).select_related("invoice"):
        assert entry.invoice is not None
        assert entry.invoice.lines.get(kind="commitment_drawdown").amount == entry.amount


def test_balance_never_goes_below_zero_across_months(api: APIClient) -> None:
    subscription = subscribe(api, "acme", "metered", at(2026, 1, 1, 0, 10))
    commitment = Commitment.objects.get(subscription=subscription)
    for month, users in [(1, 900), (2, 900), (3, 900)]:  # $100 a month against $200
        send_users(api, "acme", users, at(2026, month, 10))
        close(2026, month + 1)
        running = Decimal(0)
        for entry in commitment.entries.order_by("created_at", "id"):
            running += entry.amount
            assert running >= 0
    assert balance(commitment) == 0
    assert [period_invoice(subscription, 2026, m).total for m in (1, 2, 3)] == [0, 0, Decimal("100.00")]


def test_voiding_a_finalized_invoice_returns_its_drawdown_to_the_balance(api: APIClient) -> None:
    subscription = subscribe(api, "acme", "metered", at(2026, 1, 1, 0, 10))
    commitment = Commitment.objects.get(subscription=subscription)
    send_users(api, "acme", 1900, at(2026, 1, 20))  # $10 + $190 = $200: the whole balance
    close(2026, 2)
    january = period_invoice(subscription, 2026, 1)
    assert balance(commitment) == 0

    with time_machine.travel(at(2026, 2, 3), tick=False):
        invoice_void(invoice=january, reason="Duplicate events", now=at(2026, 2, 3))

    returned = LedgerEntry.objects.get(commitment=commitment, kind=LedgerKind.ADJUSTMENT)
    assert returned.amount == Decimal("200.00")
    assert returned.invoice == january
    assert january.number in returned.reason
    assert balance(commitment) == Decimal("200.00")

    # February's base fee is drawn from the returned balance again.
    close(2026, 3)
    february = period_invoice(subscription, 2026, 2)
    assert lines(february) == [("base_fee", Decimal("10.00")), ("commitment_drawdown", Decimal("-10.00"))]
    assert balance(commitment) == Decimal("190.00")


def test_drawdown_is_recorded_once_per_invoice(api: APIClient) -> None:
    subscription = subscribe(api, "acme", "metered", at(2026, 1, 1, 0, 10))
    commitment = Commitment.objects.get(subscription=subscription)
    send_users(api, "acme", 2500, at(2026, 1, 20))  # $260 due: all $200 drawn, the balance is empty
    close(2026, 2)
    january = period_invoice(subscription, 2026, 1)
    entry = LedgerEntry.objects.get(invoice=january, kind=LedgerKind.DRAWDOWN)
    assert entry.amount == Decimal("-200.00") and balance(commitment) == 0

    # Recording it again (a retried finalization) returns the same entry and adds nothing,
    # even though the balance is now empty.
    with transaction.atomic():
        again = drawdown_record(invoice=january)
    assert again == entry
    assert commitment.entries.filter(kind=LedgerKind.DRAWDOWN).count() == 1

    # The database refuses a second drawdown entry for the same invoice outright.
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            commitment=commitment, kind=LedgerKind.DRAWDOWN, invoice=january, amount=Decimal("-1.00")
        )
    assert balance(commitment) == 0


# --- Adjustments --------------------------------------------------------------------------------


def test_adjustment_needs_a_reason_and_cannot_take_the_balance_below_zero(api: APIClient) -> None:
    subscription = subscribe(api, "acme", "metered", at(2026, 1, 1, 0, 10))
    commitment = Commitment.objects.get(subscription=subscription)

    with pytest.raises(CommitmentError, match=ADJUSTMENT_REASON_REQUIRED):
        adjustment_create(commitment=commitment, amount=Decimal("10"), reason="  ", user=None)
    with pytest.raises(CommitmentError, match="below zero"):
        adjustment_create(commitment=commitment, amount=Decimal("-200.01"), reason="Refund", user=None)
    assert ledger(commitment) == [("purchase", Decimal("200.00"))]

    credit = adjustment_create(commitment=commitment, amount=Decimal("25"), reason="Goodwill credit", user=None)
    debit = adjustment_create(commitment=commitment, amount=Decimal("-225"), reason="Refunded in cash", user=None)
    assert (credit.kind, credit.amount, credit.reason) == (LedgerKind.ADJUSTMENT, Decimal("25.00"), "Goodwill credit")
    assert debit.amount == Decimal("-225.00")
    assert balance(commitment) == 0


# --- Processing: expiry, renewal, catching up ---------------------------------------------------


def test_non_renewing_commitment_expires_its_unused_balance_without_renewal(api: APIClient) -> None:
    subscription = subscribe(api, "acme", "metered", at(2026, 1, 1, 0, 10))
    commitment = Commitment.objects.get(subscription=subscription)
    close(2026, 12)  # January to November: $10 a month drawn
    assert balance(commitment) == Decimal("90.00")

    # December is not invoiced yet: its drawdown would be lost, so the expiry waits for it.
    out = process(date(2027, 1, 1))
    assert "waiting" in out
    commitment.refresh_from_db()
    assert commitment.status == CommitmentStatus.ACTIVE

    close(2027, 1)
    assert balance(commitment) == Decimal("80.00")
    process(date(2027, 1, 1))

    commitment.refresh_from_db()
    assert commitment.status == CommitmentStatus.EXPIRED
    assert ledger(commitment)[-1] == ("expiry", Decimal("-80.00"))
    assert balance(commitment) == 0
    assert Commitment.objects.count() == 1
    assert Invoice.objects.filter(kind=InvoiceKind.COMMITMENT).count() == 1

    # January 2027 is billed in cash.
    close(2027, 2)
    assert lines(period_invoice(subscription, 2027, 1)) == [("base_fee", Decimal("10.00"))]


def test_process_commitments_is_idempotent_for_the_same_date(api: APIClient) -> None:
    subscribe(api, "acme", "renewing", at(2026, 1, 1, 0, 10))
    close(2027, 1)
    process(date(2027, 1, 1))
    assert Commitment.objects.count() == 2
    before = snapshot()
    before_ledger = list(LedgerEntry.objects.order_by("id").values_list("id", "kind", "amount"))

    out = process(date(2027, 1, 1))
    process(date(2027, 1, 2))

    assert snapshot() == before
    assert list(LedgerEntry.objects.order_by("id").values_list("id", "kind", "amount")) == before_ledger
    assert "0 prepaid, 0 expired, 0 renewed" in out


def test_missed_days_are_caught_up_term_after_term_in_order(api: APIClient) -> None:
    """Nothing processed for two years: one run expires and renews both terms, in order."""
    subscription = subscribe(api, "acme", "renewing", at(2026, 1, 1, 0, 10))
    first = Commitment.objects.get(subscription=subscription)
    close(2028, 1)  # every period through December 2027
    assert balance(first) == Decimal("40.00")  # 12 × $5 drawn from $100

    with time_machine.travel(at(2028, 1, 1, 0, 10), tick=False):
        report = process_commitments(today=date(2028, 1, 1))

    assert report.errors == [] and report.waiting == []
    assert len(report.prepaid) == 2 and len(report.expired) == 2 and len(report.renewed) == 2
    first.refresh_from_db()
    second = first.renewal
    third = second.renewal
    assert [c.status for c in (first, second, third)] == [
        CommitmentStatus.EXPIRED,
        CommitmentStatus.EXPIRED,
        CommitmentStatus.ACTIVE,
    ]
    assert (second.term_start, second.term_end) == (at(2027, 1, 1), at(2028, 1, 1))
    assert (third.term_start, third.term_end) == (at(2028, 1, 1), at(2029, 1, 1))
    # The renewal was not there when 2027 was invoiced, so its whole prepayment expires.
    assert ledger(first) == [("purchase", Decimal("100.00"))] + [("drawdown", Decimal("-5.00"))] * 12 + [
        ("expiry", Decimal("-40.00"))
    ]
    assert ledger(second) == [("purchase", Decimal("100.00")), ("expiry", Decimal("-100.00"))]
    assert ledger(third) == [("purchase", Decimal("100.00"))]
    # In order: each term expired before the next was prepaid.
    assert [e.commitment for e in report.expired] == [first, second]
    assert [c.pk for c in report.renewed] == [second.pk, third.pk]
    prepayments = list(Invoice.objects.filter(kind=InvoiceKind.COMMITMENT).order_by("id"))
    assert [i.period_start for i in prepayments] == [at(2026, 1, 1), at(2027, 1, 1), at(2028, 1, 1)]
    assert all(i.status == InvoiceStatus.FINALIZED and i.total == Decimal("100.00") for i in prepayments)

    # January 2028 is drawn from the third term.
    close(2028, 2)
    assert lines(period_invoice(subscription, 2028, 1))[-1] == ("commitment_drawdown", Decimal("-5.00"))
    assert balance(third) == Decimal("95.00")


def test_terminated_subscription_commitment_is_not_renewed(api: APIClient) -> None:
    subscription = subscribe(api, "acme", "renewing", at(2026, 1, 1, 0, 10))
    commitment = Commitment.objects.get(subscription=subscription)
    # Terminated in the middle of June, half-way through the commitment's term.
    with time_machine.travel(at(2026, 6, 15, 12), tick=False):
        response = api.delete(f"/api/v1/subscriptions/{subscription.external_id}")
    assert response.status_code == 200
    close(2026, 7)  # January to the final, partial June period (June 1–14: the 15th does not count)
    june = period_invoice(subscription, 2026, 6)
    assert june.period_end == at(2026, 6, 15)
    assert lines(june) == [("base_fee", Decimal("2.33")), ("commitment_drawdown", Decimal("-2.33"))]  # 5 × 14/30
    assert balance(commitment) == Decimal("72.67")

    process(date(2026, 12, 31))
    commitment.refresh_from_db()
    assert commitment.status == CommitmentStatus.ACTIVE  # the term runs to its end

    left = balance(commitment)
    assert left > 0
    process(date(2027, 1, 1))

    commitment.refresh_from_db()
    assert commitment.status == CommitmentStatus.EXPIRED
    assert ledger(commitment)[-1] == ("expiry", -left)
    assert not Commitment.objects.filter(renewed_from=commitment).exists()
    assert Invoice.objects.filter(kind=InvoiceKind.COMMITMENT).count() == 1


def test_commitment_added_later_is_prepaid_only_when_its_start_is_processed(api: APIClient) -> None:
    subscription = subscribe(api, "acme", "plain", at(2026, 1, 1, 0, 10))
    assert not Commitment.objects.exists()
    start = day_start(date(2026, 3, 1), "UTC")
    with time_machine.travel(at(2026, 2, 10), tick=False):
        commitment = Commitment.objects.create(
            subscription=subscription,
            amount=Decimal("300"),
            currency="USD",
            term_start=start,
            term_end=term_end(start, 12, "UTC"),
            months=12,
            covers=CommitmentCovers.BASE_FEE,
            auto_renew=False,
        )
    assert commitment.term_end == at(2027, 3, 1)

    process(date(2026, 2, 28))
    commitment.refresh_from_db()
    assert commitment.status == CommitmentStatus.PENDING and commitment.invoice is None
    assert not commitment.entries.exists()

    close(2026, 3)  # February: before the term, billed in cash
    assert lines(period_invoice(subscription, 2026, 2)) == [("base_fee", Decimal("40.00"))]

    out = process(date(2026, 3, 1))
    commitment.refresh_from_db()
    assert commitment.status == CommitmentStatus.ACTIVE
    assert commitment.invoice is not None and commitment.invoice.total == Decimal("300.00")
    assert commitment.invoice.number in out
    assert ledger(commitment) == [("purchase", Decimal("300.00"))]

    close(2026, 4)
    assert lines(period_invoice(subscription, 2026, 3)) == [
        ("base_fee", Decimal("40.00")),
        ("commitment_drawdown", Decimal("-40.00")),
    ]
    assert balance(commitment) == Decimal("260.00")


def test_next_term_set_up_by_hand_replaces_the_automatic_renewal(api: APIClient) -> None:
    subscription = subscribe(api, "acme", "renewing", at(2026, 1, 1, 0, 10))
    first = Commitment.objects.get(subscription=subscription)
    start = at(2027, 1, 1)
    with time_machine.travel(at(2026, 11, 10), tick=False):
        next_year = Commitment.objects.create(
            subscription=subscription,
            amount=Decimal("150"),
            currency="USD",
            term_start=start,
            term_end=term_end(start, 12, "UTC"),
            months=12,
            covers=CommitmentCovers.BASE_FEE,
            auto_renew=False,
        )
    close(2027, 1)

    out = process(date(2027, 1, 1))

    assert "1 prepaid, 1 expired, 0 renewed" in out, out
    first.refresh_from_db()
    next_year.refresh_from_db()
    assert first.status == CommitmentStatus.EXPIRED
    assert next_year.status == CommitmentStatus.ACTIVE and next_year.invoice.total == Decimal("150.00")
    assert Commitment.objects.count() == 2


def test_voiding_a_prepayment_invoice_cancels_its_commitment_and_takes_back_the_credit() -> None:
    call_command("load_catalog", stdout=StringIO())
    customer = Customer.objects.create(external_id="void-prepay")
    plan = Plan.objects.get(code="team-annual", is_current=True)
    frozen_now = timezone.now()
    subscription_create(
        customer=customer,
        plan=plan,
        external_id="vp",
        subscription_at=frozen_now,
        billing_time="calendar",
        now=frozen_now,
    )
    prepayment = Invoice.objects.get(kind=InvoiceKind.COMMITMENT)
    invoice_void(invoice=prepayment, reason="customer never paid", now=frozen_now)
    commitment = Commitment.objects.get()
    assert commitment.status == CommitmentStatus.CANCELED
    assert balance(commitment) == 0
    assert commitment.entries.get(kind=LedgerKind.ADJUSTMENT).amount == Decimal("-1440.00")

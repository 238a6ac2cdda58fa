"""Concurrent period closes never overdraw a commitment (STYLE rule 4), on PostgreSQL.

Four closers (as four django-q2 workers or a cron job racing the schedule would) run
billing.services.period_close.close_periods at once, each in its own thread with its own database
connection, over subscriptions whose covers=all commitment is smaller than what their ended
periods cost. The subscription row lock serializes them per subscription, and the database
allows one drawdown per invoice: afterwards every period is invoiced once, every invoice has at
most one drawdown, the drawdowns add up to at most the prepayment and no balance is negative.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.db.models import Count

from billing.models import Commitment, Invoice, InvoiceKind, InvoiceStatus, LedgerEntry, LedgerKind, LineKind, Plan
from billing.selectors.commitments import balance
from billing.services.commitments import CommitmentError, adjustment_create
from billing.services.period_close import CloseReport, close_periods
from billing.services.subscriptions import subscription_create
from customers.models import Customer
from tests.conftest import using_postgres
from tests.helpers import api_client, at, load_catalog, run_concurrently

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not using_postgres(), reason="concurrent closers need PostgreSQL row locks (SQLite has one writer)"
    ),
]

CLOSERS = 4
CUSTOMERS = 3
MONTHS = (1, 2, 3, 4)  # January to April 2026 have ended when the closers run on May 1
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
        }
    ],
}


def test_concurrent_period_closes_never_overdraw_a_commitment(tmp_path: Path) -> None:
    load_catalog(tmp_path, CATALOG)
    api = api_client()

    plan = Plan.objects.get(code="metered", is_current=True)
    for n in range(CUSTOMERS):
        customer = Customer.objects.create(external_id=f"acme-{n}", name=f"Acme {n}", currency="USD")
        with time_machine.travel(at(2026, 1, 1, 0, 10), tick=False):
            subscription_create(
                customer=customer,
                plan=plan,
                external_id=f"acme-{n}-metered",
                subscription_at=at(2026, 1, 1),
                billing_time="calendar",
                now=at(2026, 1, 1, 0, 10),
            )
    # Each month costs $10 + 500 users × $0.10 = $60: four months ($240) are more than the $200.
    for month in MONTHS:
        when = at(2026, month, 15)
        with time_machine.travel(when, tick=False):
            for n in range(CUSTOMERS):
                events = [
                    {
                        "transaction_id": f"{month}-u{u}",
                        "external_customer_id": f"acme-{n}",
                        "code": "mtu",
                        "timestamp": when.isoformat(),
                        "properties": {"user_id": f"u{u}"},
                    }
                    for u in range(500)
                ]
                response = api.post("/api/v1/events/batch", {"events": events}, format="json")
                assert response.status_code == 200, response.content
    assert Commitment.objects.filter(status="active").count() == CUSTOMERS
    assert not Invoice.objects.filter(kind=InvoiceKind.PERIOD).exists()

    now = at(2026, 5, 1, 0, 5)
    reports: list[CloseReport] = run_concurrently([lambda: close_periods(now=now) for _ in range(CLOSERS)])

    assert [error for report in reports for error in report.errors] == []
    # Every period was invoiced once, by one of the closers.
    assert sum(len(report.created) for report in reports) == CUSTOMERS * len(MONTHS)
    period_invoices = Invoice.objects.filter(kind=InvoiceKind.PERIOD)
    assert period_invoices.count() == CUSTOMERS * len(MONTHS)
    assert not period_invoices.values("subscription", "period_start").annotate(n=Count("id")).filter(n__gt=1)
    assert set(period_invoices.values_list("status", flat=True)) == {InvoiceStatus.FINALIZED}
    # At most one drawdown entry per invoice, and it matches the invoice's drawdown line.
    per_invoice = LedgerEntry.objects.filter(kind=LedgerKind.DRAWDOWN).values("invoice").annotate(n=Count("id"))
    assert max(row["n"] for row in per_invoice) == 1
    for invoice in period_invoices:
        line = invoice.lines.filter(kind=LineKind.COMMITMENT_DRAWDOWN).first()
        entry = LedgerEntry.objects.filter(invoice=invoice, kind=LedgerKind.DRAWDOWN).first()
        assert (line.amount if line else None) == (entry.amount if entry else None)

    for commitment in Commitment.objects.all():
        purchase = commitment.entries.get(kind=LedgerKind.PURCHASE).amount
        drawn = -sum(e.amount for e in commitment.entries.filter(kind=LedgerKind.DRAWDOWN))
        assert drawn <= purchase
        assert balance(commitment) >= 0
        # $60, $60, $60 drawn, then the last $20; the rest of April is billed in cash.
        assert drawn == Decimal("200.00") and balance(commitment) == 0
        totals = [
            i.total for i in period_invoices.filter(subscription=commitment.subscription).order_by("period_start")
        ]
        assert totals == [0, 0, 0, Decimal("40.00")]

    # Running again changes nothing.
    before = (Invoice.objects.count(), LedgerEntry.objects.count())
    again = close_periods(now=now)
    assert again.created == [] and again.errors == []
    assert (Invoice.objects.count(), LedgerEntry.objects.count()) == before


def test_adjustments_racing_period_closes_never_overdraw(tmp_path: Path) -> None:
    """Finance staff take money off the balances while the closers run: whichever gets the
    commitment's row lock first wins, the other sees its effect. A closer whose drawdown no
    longer fits rolls back that subscription and reports it; the next run invoices it."""
    load_catalog(tmp_path, CATALOG)
    plan = Plan.objects.get(code="metered", is_current=True)
    for n in range(CUSTOMERS):
        customer = Customer.objects.create(external_id=f"acme-{n}", name=f"Acme {n}", currency="USD")
        with time_machine.travel(at(2026, 1, 1, 0, 10), tick=False):
            subscription_create(
                customer=customer,
                plan=plan,
                external_id=f"acme-{n}-metered",
                subscription_at=at(2026, 1, 1),
                billing_time="calendar",
                now=at(2026, 1, 1, 0, 10),
            )
    commitments = list(Commitment.objects.order_by("id"))
    now = at(2026, 5, 1, 0, 5)  # four $10 base fees to draw from each $200

    def adjust() -> list[str]:
        refusals = []
        for commitment in commitments:
            for _ in range(4):
                try:
                    adjustment_create(commitment=commitment, amount=Decimal("-45"), reason="Refund", user=None)
                except CommitmentError as exc:
                    refusals.append(str(exc))
        return refusals

    results = run_concurrently([adjust, *(lambda: close_periods(now=now) for _ in range(CLOSERS))])

    for report in results[1:]:
        assert all("exceeds the balance" in error for error in report.errors), report.errors
    close_periods(now=now)  # whatever was rolled back is invoiced now

    period_invoices = Invoice.objects.filter(kind=InvoiceKind.PERIOD)
    assert period_invoices.count() == CUSTOMERS * len(MONTHS)
    assert not period_invoices.values("subscription", "period_start").annotate(n=Count("id")).filter(n__gt=1)
    for commitment in commitments:
        assert balance(commitment) >= 0
        drawn = -sum(e.amount for e in commitment.entries.filter(kind=LedgerKind.DRAWDOWN))
        refunded = -sum(e.amount for e in commitment.entries.filter(kind=LedgerKind.ADJUSTMENT))
        assert drawn + refunded + balance(commitment) == Decimal("200.00")
        assert drawn <= Decimal("40.00")
        for invoice in period_invoices.filter(subscription=commitment.subscription):
            assert invoice.ledger_entries.filter(kind=LedgerKind.DRAWDOWN).count() <= 1
            # What is not drawn is billed: every invoice charges its $10 one way or the other.
            assert invoice.total - sum(
                (ln.amount for ln in invoice.lines.filter(kind=LineKind.COMMITMENT_DRAWDOWN)), Decimal(0)
            ) == Decimal("10.00")

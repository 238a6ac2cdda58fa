"""Receivables (billing.selectors.receivables): what is due on finalized invoices, bucketed by days
past the due date in each customer's own time zone, per customer and currency, with exact sums.

The invoices are written with the ORM with known due dates, payments and credit-note offsets;
the clock stands at 2026-05-01 02:00 UTC, which is already May 1 in Tokyo (UTC+9) but still
April 30 in Los Angeles (UTC−7).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.models import (
    CreditNote,
    CreditNoteReason,
    CreditStatus,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Subscription,
)
from billing.selectors.receivables import (
    BUCKETS,
    aging_report,
    bucket_index,
    customer_account,
    days_overdue,
    overdue_condition,
)
from customers.models import Customer
from tests.factories import CustomerFactory, PlanFactory, SubscriptionFactory

NOW = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
D = Decimal

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


_numbers = iter(range(1, 10_000))


def invoice(
    subscription: Subscription,
    total: str,
    due: date | None,
    *,
    status: str = InvoiceStatus.FINALIZED,
    payment_status: str = PaymentStatus.PENDING,
) -> Invoice:
    start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=next(_numbers))  # a period of its own
    n = next(_numbers)
    return Invoice.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        kind=InvoiceKind.PERIOD,
        period_start=start,
        period_end=start + timedelta(days=1),
        status=status,
        payment_status=payment_status,
        number=None if status == InvoiceStatus.DRAFT else f"INV-2026-{n:06d}",
        currency=subscription.customer.currency,
        total=D(total),
        issued_on=None if status == InvoiceStatus.DRAFT else (due or date(2026, 1, 1)),
        payment_due_date=due,
    )


def pay(inv: Invoice, amount: str) -> Payment:
    return Payment.objects.create(
        invoice=inv, amount=D(amount), currency=inv.currency, reference="wire", paid_at=NOW - timedelta(days=1)
    )


def note(inv: Invoice, *, offset: str = "0", credit: str = "0", status: str = CreditStatus.AVAILABLE) -> CreditNote:
    sequence = inv.credit_notes.count() + 1
    total = D(offset) + D(credit)
    return CreditNote.objects.create(
        invoice=inv,
        customer=inv.customer,
        sequence=sequence,
        number=f"{inv.number}-CN{sequence}",
        reason=CreditNoteReason.OTHER,
        currency=inv.currency,
        items_amount=total,
        sub_total_excluding_taxes_amount=total,
        total_amount=total,
        credit_amount=D(credit),
        offset_amount=D(offset),
        balance_amount=D(credit) if status == CreditStatus.AVAILABLE else D(0),
        credit_status=status,
        issued_on=date(2026, 4, 1),
    )


def subscribed(external_id: str, name: str, tz: str = "UTC", currency: str = "USD") -> Subscription:
    customer = CustomerFactory(external_id=external_id, name=name, timezone=tz, currency=currency)
    return SubscriptionFactory(customer=customer, plan=PlanFactory(currency=currency))


@pytest.fixture
def ledger() -> dict[str, Subscription]:
    """Invoices of four customers: Tokyo and Los Angeles (the same due date, a day apart locally),
    one in UTC with every bucket edge, and one billed in USD and EUR."""
    tokyo = subscribed("tokyo", "Tokyo KK", "Asia/Tokyo")
    la = subscribed("la", "LA Inc", "America/Los_Angeles")
    edges = subscribed("edges", "Edges Ltd")
    euro = subscribed("euro", "Euro GmbH", "Europe/Berlin", "EUR")
    april_30 = date(2026, 4, 30)
    invoice(tokyo, "100.00", april_30)  # May 1 in Tokyo: 1 day overdue
    invoice(la, "100.00", april_30)  # still April 30 in Los Angeles: due today, not overdue
    # UTC, today May 1: 0, 1, 30, 31, 60, 61, 90 and 91 days past the due date.
    today = date(2026, 5, 1)
    for days, total in ((0, "0.10"), (1, "0.20"), (30, "1.00"), (31, "2.00"), (60, "3.00")):
        invoice(edges, total, today - timedelta(days=days))
    invoice(edges, "4.00", today - timedelta(days=61))
    invoice(edges, "5.00", today - timedelta(days=90))
    invoice(edges, "6.00", today - timedelta(days=91))
    partly = invoice(edges, "50.00", today + timedelta(days=10))  # 50 − 20 paid − 5 offset = 25 not yet due
    pay(partly, "20.00")
    note(partly, offset="5.00", credit="7.00")
    # Not due at all: a draft, a voided invoice, a paid one, one paid and offset in full.
    invoice(edges, "999.00", None, status=InvoiceStatus.DRAFT)
    invoice(edges, "999.00", today, status=InvoiceStatus.VOIDED)
    invoice(edges, "999.00", today - timedelta(days=100), payment_status=PaymentStatus.SUCCEEDED)
    settled = invoice(edges, "30.00", today - timedelta(days=100), payment_status=PaymentStatus.SUCCEEDED)
    pay(settled, "10.00")
    note(settled, offset="20.00")
    # Euro GmbH owes in EUR, and in USD on an invoice of a USD plan: two rows, never added.
    invoice(euro, "70.00", date(2026, 3, 1))  # 61 days in Berlin
    dollars = SubscriptionFactory(customer=euro.customer, plan=PlanFactory(currency="USD"))
    usd = invoice(dollars, "12.00", date(2026, 4, 1))
    usd.currency = "USD"
    usd.save(update_fields=["currency"])
    return {"tokyo": tokyo, "la": la, "edges": edges, "euro": euro}


def amounts(row: Any) -> list[Decimal]:
    return list(row.amounts)


# --- Days and buckets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(-5, 0), (0, 0), (1, 1), (30, 1), (31, 2), (60, 2), (61, 3), (90, 3), (91, 4), (400, 4)],
)
def test_bucket_edges(days: int, bucket: int) -> None:
    assert bucket_index(days) == bucket


def test_days_overdue_count_from_the_day_after_the_due_date() -> None:
    assert days_overdue(date(2026, 4, 30), date(2026, 4, 30)) == 0
    assert days_overdue(date(2026, 4, 30), date(2026, 5, 1)) == 1
    assert days_overdue(None, date(2026, 5, 1)) == 0  # no due date kept: not yet due
    assert [bucket.label for bucket in BUCKETS] == [
        "Not yet due",
        "1–30 days",
        "31–60 days",
        "61–90 days",
        "Over 90 days",
    ]


# --- The aging report ---------------------------------------------------------------------------


def test_aging_buckets_each_customer_in_its_own_time_zone(ledger: dict[str, Subscription]) -> None:
    report = aging_report(now=NOW)
    rows = {(row.external_id, row.currency): row for row in report.rows}
    assert amounts(rows[("tokyo", "USD")]) == [D("0"), D("100.00"), D("0"), D("0"), D("0")]
    assert amounts(rows[("la", "USD")]) == [D("100.00"), D("0"), D("0"), D("0"), D("0")]
    # Exact sums: 0.10 + 25.00 (not yet due), 0.20 + 1.00 (1–30), …
    edges = rows[("edges", "USD")]
    assert amounts(edges) == [D("25.10"), D("1.20"), D("5.00"), D("9.00"), D("6.00")]
    assert (edges.total, edges.overdue, edges.invoices, edges.overdue_invoices) == (D("46.30"), D("21.20"), 9, 7)
    assert amounts(rows[("euro", "EUR")]) == [D("0"), D("0"), D("0"), D("70.00"), D("0")]
    assert amounts(rows[("euro", "USD")]) == [D("0"), D("12.00"), D("0"), D("0"), D("0")]


def test_aging_rows_are_ordered_by_currency_then_customer_and_totalled_per_currency(
    ledger: dict[str, Subscription],
) -> None:
    report = aging_report(now=NOW)
    assert [(row.currency, row.external_id) for row in report.rows] == [
        ("EUR", "euro"),
        ("USD", "edges"),
        ("USD", "euro"),
        ("USD", "la"),
        ("USD", "tokyo"),
    ]
    assert list(report.totals) == ["EUR", "USD"]
    usd = report.totals["USD"]
    assert usd.amounts == [D("125.10"), D("113.20"), D("5.00"), D("9.00"), D("6.00")]
    assert (usd.total, usd.overdue, usd.customers, usd.invoices, usd.overdue_invoices) == (
        D("258.30"),
        D("133.20"),
        4,
        12,
        9,
    )
    eur = report.totals["EUR"]
    assert (eur.total, eur.overdue, eur.customers, eur.invoices) == (D("70.00"), D("70.00"), 1, 1)


def test_a_day_later_los_angeles_is_overdue_too(ledger: dict[str, Subscription]) -> None:
    report = aging_report(now=NOW + timedelta(hours=4, minutes=59))  # 2026-04-30 23:59 in Los Angeles
    la = next(row for row in report.rows if row.external_id == "la")
    assert amounts(la) == [D("100.00"), D("0"), D("0"), D("0"), D("0")]
    report = aging_report(now=NOW + timedelta(hours=5))  # midnight, May 1 in Los Angeles (UTC−7)
    la = next(row for row in report.rows if row.external_id == "la")
    assert amounts(la) == [D("0"), D("100.00"), D("0"), D("0"), D("0")]


def test_aging_report_is_three_queries_however_many_invoices(
    ledger: dict[str, Subscription], django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(3):
        aging_report(now=NOW)
    for i in range(30):
        extra = subscribed(f"more-{i}", f"More {i}", "Asia/Kolkata" if i % 2 else "UTC")
        pay(invoice(extra, "10.00", date(2026, 3, 1)), "1.00")
    with django_assert_num_queries(3):
        report = aging_report(now=NOW)
    assert report.totals["USD"].customers == 34


def test_an_invoice_its_payments_cover_is_left_out_before_its_status_says_so() -> None:
    # A payment recorded while the report reads: the invoice's payments settle it, whatever its
    # payment_status said a moment before.
    covered = invoice(subscribed("race", "Race Co"), "40.00", date(2026, 1, 1))
    pay(covered, "40.00")
    assert aging_report(now=NOW).rows == []


def test_aging_report_of_nothing_due_is_empty() -> None:
    assert aging_report(now=NOW).rows == []
    assert aging_report(now=NOW).totals == {}


def test_overdue_condition_uses_each_customers_time_zone(ledger: dict[str, Subscription]) -> None:
    overdue = Invoice.objects.filter(overdue_condition(NOW))
    customers = sorted(set(overdue.values_list("customer__external_id", flat=True)))
    assert customers == ["edges", "euro", "tokyo"]  # not Los Angeles, still on its due day
    # the settled invoices are out, the partly paid one is not yet due
    assert overdue.filter(customer__external_id="edges").count() == 7


# --- One customer's account ---------------------------------------------------------------------


def test_customer_account_lists_invoices_with_what_is_due_and_available_credit(
    ledger: dict[str, Subscription],
) -> None:
    customer: Customer = ledger["edges"].customer
    account = customer_account(customer, now=NOW, limit=50)
    assert not account.more_invoices
    assert len(account.invoices) == 13
    by_total = {(row.invoice.total, row.invoice.status): row for row in account.invoices}
    partly = by_total[(D("50.00"), InvoiceStatus.FINALIZED)]
    assert (partly.due, partly.days_overdue) == (D("25.00"), -10)  # due in ten days
    assert by_total[(D("6.00"), InvoiceStatus.FINALIZED)].days_overdue == 91
    assert by_total[(D("999.00"), InvoiceStatus.DRAFT)].due is None
    assert by_total[(D("999.00"), InvoiceStatus.VOIDED)].due is None
    assert [p.amount for p in account.payments] == [D("10.00"), D("20.00")]  # the latest first
    assert len(account.credit_notes) == 2
    assert account.available_credit == {"USD": D("7.00")}
    assert account.aging.totals["USD"].total == D("46.30")


def test_customer_account_says_when_there_are_more_than_it_lists(ledger: dict[str, Subscription]) -> None:
    account = customer_account(ledger["edges"].customer, now=NOW, limit=5)
    assert len(account.invoices) == 5 and account.more_invoices
    assert not account.more_payments and not account.more_credit_notes
    empty = customer_account(CustomerFactory(), now=NOW)
    assert (empty.invoices, empty.payments, empty.credit_notes, empty.available_credit) == ([], [], [], {})

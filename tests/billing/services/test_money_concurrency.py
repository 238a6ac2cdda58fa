"""Concurrent changes to an invoice's money never take more than there is (STYLE rule 4), on PostgreSQL.

Each task runs a service in its own thread and database connection, all released at once: the
invoice's row lock (payments, credit notes) and the customer's (credit consumed at finalization)
serialize them, and whoever comes second reads what the first committed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing.models import CreditApplication, CreditNote, CreditNoteItem, Invoice, InvoiceStatus, Payment
from billing.services.credit_notes import CreditNoteError, credit_note_create
from billing.services.invoices import invoice_finalize
from billing.services.payments import PaymentError, payment_create
from billing.services.period_close import close_periods
from tests.billing.services.lifecycle import OCTOBER_CLOSE, World, september_invoice
from tests.conftest import using_postgres
from tests.factories import SubscriptionFactory
from tests.helpers import at, run_concurrently

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not using_postgres(), reason="concurrent writers need PostgreSQL row locks (SQLite has one)"),
]

NOW = at(2026, 10, 20, 12)
D = Decimal
TASKS = 4


def outcome(call: Any) -> Any:
    def run() -> Any:
        try:
            return call()
        except (CreditNoteError, PaymentError) as exc:
            return exc

    return run


def test_credit_notes_at_once_never_credit_more_than_the_fee() -> None:
    world = september_invoice()
    fee = world.usage_fee  # $235.00; each note asks for $100.00 of it: two fit, not three

    def issue() -> CreditNote:
        return credit_note_create(
            invoice=world.september,
            items=[(fee.pk, D("100"))],
            reason="other",
            credit_amount=D("100"),
            refund_amount=D("0"),
            offset_amount=D("0"),
            now=NOW,
        )

    results = run_concurrently([outcome(issue) for _ in range(TASKS)])
    made = [r for r in results if isinstance(r, CreditNote)]
    assert len(made) == 2 and all(isinstance(r, CreditNoteError) for r in results if r not in made)
    assert sum(CreditNoteItem.objects.filter(fee=fee).values_list("amount", flat=True)) == D("200.00")
    assert sorted(CreditNote.objects.values_list("number", flat=True)) == [
        f"{world.september.number}-CN1",
        f"{world.september.number}-CN2",
    ]


def test_payments_at_once_never_pay_more_than_the_total() -> None:
    world = september_invoice()

    def pay() -> Payment:
        return payment_create(invoice=world.september, amount=D("150"), reference="wire", paid_at=NOW, now=NOW)

    results = run_concurrently([outcome(pay) for _ in range(TASKS)])
    assert sum(isinstance(r, Payment) for r in results) == 2  # $300 of $355; a third would overpay
    assert sum(Payment.objects.values_list("amount", flat=True)) == D("300.00")


def test_finalizations_at_once_consume_a_customers_credit_once(settings: Any) -> None:
    """Two subscriptions of one customer, their October drafts finalized at the same moment:
    $150 of credit pays for one invoice and part of the other, never more."""
    world: World = september_invoice()
    settings.BILLING_GRACE_PERIOD_HOURS = 48
    SubscriptionFactory(
        customer=world.customer, plan=world.subscription.plan, external_id="acme-2", subscription_at=at(2026, 10, 1)
    )
    credit_note_create(
        invoice=world.september,
        items=[(world.usage_fee.pk, D("150"))],
        reason="other",
        credit_amount=D("150"),
        refund_amount=D("0"),
        offset_amount=D("0"),
        now=NOW,
    )
    close_periods(now=OCTOBER_CLOSE)  # drafts, inside the grace period
    drafts = list(Invoice.objects.filter(status=InvoiceStatus.DRAFT, period_start=at(2026, 10, 1)))
    assert len(drafts) == 2

    run_concurrently([lambda d=d: invoice_finalize(invoice=d, now=OCTOBER_CLOSE) for d in drafts])
    note = CreditNote.objects.get()
    consumed = sum(CreditApplication.objects.values_list("amount", flat=True))
    assert consumed == D("150.00") and note.balance_amount == 0
    finalized = Invoice.objects.filter(pk__in=[d.pk for d in drafts])
    assert {i.status for i in finalized} == {InvoiceStatus.FINALIZED}
    # acme-2's October is its trial month: $120.00 less 14 days of it, $65.81
    assert sum(i.total for i in finalized) == D("120") + D("65.81") - D("150")

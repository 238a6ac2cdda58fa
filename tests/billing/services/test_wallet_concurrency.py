"""A wallet's balance under concurrent writers (STYLE rule 4), on PostgreSQL.

Each task runs in its own thread and database connection, all released at once. Finalizing an
invoice consumes the wallet under the customer's lock (then the wallet's); top-ups and voids take
the same locks in the same order, and a payment settles a purchase under the invoice's lock then
the wallet's: whoever comes second reads what the first committed, so credit is never used twice
and the balance is always Σ inbound settled − Σ outbound settled, never below zero.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing.engine.vocabulary import LineKind, WalletTransactionKind, WalletTransactionStatus, WalletTransactionType
from billing.models import Invoice, InvoiceLine, Subscription, Wallet, WalletTransaction
from billing.services.payments import payment_create
from billing.services.period_close import close_periods, close_subscription
from billing.services.wallets import WalletError, wallet_create, wallet_transaction_create
from tests.billing.services.wallet_world import AUGUST_CLOSE, SEPTEMBER_CLOSE, WALLET_MADE, vat
from tests.conftest import using_postgres
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import at, run_concurrently, travel

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not using_postgres(), reason="concurrent writers need PostgreSQL row locks (SQLite has one)"),
]

D = Decimal


def settled_sum(wallet: Wallet, direction: str) -> Decimal:
    rows = WalletTransaction.objects.filter(
        wallet=wallet, status=WalletTransactionStatus.SETTLED, transaction_type=direction
    ).values_list("amount", flat=True)
    return sum(rows, D(0))


def assert_balance_is_its_history(wallet: Wallet) -> None:
    wallet.refresh_from_db()
    assert wallet.balance >= 0 and wallet.credits_balance >= 0
    assert wallet.balance == settled_sum(wallet, WalletTransactionType.INBOUND) - settled_sum(
        wallet, WalletTransactionType.OUTBOUND
    )
    # What invoices used is exactly what their prepaid_credits lines say, once per invoice.
    used = WalletTransaction.objects.filter(wallet=wallet, transaction_status=WalletTransactionKind.INVOICED)
    lines = InvoiceLine.objects.filter(kind=LineKind.PREPAID_CREDITS, invoice__customer_id=wallet.customer_id)
    assert sorted(used.values_list("invoice_id", flat=True)) == sorted(set(lines.values_list("invoice_id", flat=True)))
    assert sum(used.values_list("amount", flat=True), D(0)) == -sum(lines.values_list("amount", flat=True), D(0))


def two_subscriptions() -> tuple[Any, list[Subscription]]:
    """acme with two Team subscriptions since August (the MTUs are the customer's: both bill its 300
    September users, $426.00 each after VAT), August closed."""
    customer = CustomerFactory(external_id="acme")
    plan = scaled_team_plan()
    subscriptions = [
        SubscriptionFactory(customer=customer, plan=plan, external_id=f"acme-{n}", subscription_at=at(2026, 8, 1))
        for n in (1, 2)
    ]
    store_users(customer, range(300), at(2026, 9, 20), "sep")
    with travel(AUGUST_CLOSE):
        close_periods(now=AUGUST_CLOSE)
    vat()
    return customer, subscriptions


def test_two_closes_at_once_never_use_the_same_wallet_credit_twice() -> None:
    customer, subscriptions = two_subscriptions()
    with travel(WALLET_MADE):
        wallet = wallet_create(customer=customer, rate_amount=D("1"), granted_credits=D("500"), now=WALLET_MADE)

    def close(subscription: Subscription) -> Any:
        return lambda: close_subscription(subscription_id=subscription.pk, now=SEPTEMBER_CLOSE)

    with travel(SEPTEMBER_CLOSE):
        reports = run_concurrently([close(s) for s in subscriptions])
    assert all(not report.errors for report in reports)

    invoices = Invoice.objects.filter(subscription__in=subscriptions, period_start=at(2026, 9, 1))
    # Whichever finalized first took 426.00 of the 500.00, the other what was left.
    assert sorted(invoices.values_list("total", flat=True)) == [D("0.00"), D("352.00")]
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.consumed_amount) == (D("0.00"), D("500.00"))
    assert_balance_is_its_history(wallet)


def test_top_ups_a_payment_and_a_consumption_at_once_keep_the_balance_its_history() -> None:
    customer, subscriptions = two_subscriptions()
    with travel(WALLET_MADE):
        wallet = wallet_create(
            customer=customer, rate_amount=D("1"), granted_credits=D("100"), paid_credits=D("30"), now=WALLET_MADE
        )
    purchase = WalletTransaction.objects.get(wallet=wallet, transaction_status=WalletTransactionKind.PURCHASED)
    assert purchase.invoice is not None
    credit_invoice = purchase.invoice

    def grant(credits: str) -> Any:
        return lambda: wallet_transaction_create(wallet=wallet, granted_credits=D(credits), now=SEPTEMBER_CLOSE)

    def void(credits: str) -> Any:
        def run() -> Any:
            try:
                return wallet_transaction_create(wallet=wallet, voided_credits=D(credits), now=SEPTEMBER_CLOSE)
            except WalletError as exc:  # the close may have used the credit first
                return exc

        return run

    def pay() -> Any:
        return payment_create(
            invoice=credit_invoice, amount=D("30"), reference="wire", paid_at=SEPTEMBER_CLOSE, now=SEPTEMBER_CLOSE
        )

    def close() -> Any:
        return close_subscription(subscription_id=subscriptions[0].pk, now=SEPTEMBER_CLOSE)

    with travel(SEPTEMBER_CLOSE):
        results = run_concurrently([grant("50"), grant("20"), void("10"), pay, close])
    assert not results[-1].errors

    purchase.refresh_from_db()
    assert purchase.status == WalletTransactionStatus.SETTLED
    assert_balance_is_its_history(wallet)
    september = Invoice.objects.get(subscription=subscriptions[0], period_start=at(2026, 9, 1))
    used = -sum(september.lines.filter(kind=LineKind.PREPAID_CREDITS).values_list("amount", flat=True), D(0))
    voided = settled_sum(wallet, WalletTransactionType.OUTBOUND) - used
    # All that came in (100 + 50 + 20 + 30) is either used by September, voided, or still there.
    assert wallet.balance + used + voided == D("200.00")
    assert september.total == D("426.00") - used

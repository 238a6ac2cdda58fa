"""Wallets (DESIGN §6 "Wallets"): prepaid credits applied after tax at step 7, through the real
period close; top-ups (a purchase usable once its credit invoice is paid, grants at once), voids,
terminate and expiry; every movement a transaction, announced; what is refused stores nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from billing.engine.vocabulary import (
    InvoiceKind,
    InvoiceStatus,
    LineKind,
    PaymentStatus,
    WalletStatus,
    WalletTransactionKind,
    WalletTransactionStatus,
    WalletTransactionType,
)
from billing.models import Invoice, InvoiceLine, Wallet, WalletTransaction, WebhookDelivery
from billing.selectors.wallets import ongoing_balance
from billing.services.invoices import invoice_void
from billing.services.payments import payment_create
from billing.services.wallets import (
    ALREADY_ACTIVE,
    CODE_TAKEN,
    CURRENCY_NOT_CUSTOMERS,
    MORE_THAN_BALANCE,
    NEGATIVE,
    NOT_IN_FUTURE,
    NOT_POSITIVE,
    ROUNDS_TO_ZERO,
    TERMINATED,
    TOO_PRECISE,
    VOIDED_AFTER_TERMINATION,
    WalletError,
    wallet_create,
    wallet_terminate,
    wallet_transaction_create,
    wallet_update,
    wallets_expire,
)
from billing.services.webhooks import webhook_endpoint_create
from tests.billing.services.wallet_world import (
    SEPTEMBER_CLOSE,
    WALLET_MADE,
    WalletWorld,
    customer_in_september,
    vat,
    wallet_world,
)
from tests.factories import CustomerFactory
from tests.helpers import at, travel

pytestmark = pytest.mark.django_db

D = Decimal
NOW = at(2026, 10, 20, 12)


def lines_of(invoice: Invoice, kind: str) -> list[InvoiceLine]:
    return list(invoice.lines.filter(kind=kind))


def inbound_minus_outbound(world: WalletWorld) -> Decimal:
    """Σ inbound settled − Σ outbound settled: what the balance must be."""
    settled = WalletTransaction.objects.filter(wallet=world.wallet, status=WalletTransactionStatus.SETTLED)
    inbound = sum(settled.filter(transaction_type=WalletTransactionType.INBOUND).values_list("amount", flat=True), D(0))
    outbound = sum(
        settled.filter(transaction_type=WalletTransactionType.OUTBOUND).values_list("amount", flat=True), D(0)
    )
    return inbound - outbound


def stored() -> tuple[Any, ...]:
    """Everything a wallet change may write."""
    from billing.models import Wallet

    return (
        list(Wallet.objects.order_by("pk").values()),
        list(WalletTransaction.objects.order_by("pk").values()),
        list(Invoice.objects.order_by("pk").values_list("pk", "status", "payment_status")),
        WebhookDelivery.objects.count(),
    )


def refused(call: Any) -> dict[str, list[str]]:
    before = stored()
    with pytest.raises(WalletError) as caught:
        call()
    assert stored() == before
    return caught.value.errors


# --- the worked case: credit applied after tax, through the period close --------------------------


def test_a_wallet_with_100_granted_credits_pays_100_dollars_of_an_invoice_after_tax() -> None:
    world = wallet_world(granted="100")
    assert (world.wallet.balance, world.wallet.credits_balance) == (D("100.00"), D("100"))

    september = world.close_september()

    assert september.status == InvoiceStatus.FINALIZED
    fees = sum(line.amount for line in september.lines.filter(kind__in=[LineKind.BASE_FEE, LineKind.USAGE]))
    assert fees == D("355.00")
    assert [line.amount for line in lines_of(september, LineKind.TAX)] == [D("71.00")]  # 20 % of 355.00
    assert [line.amount for line in lines_of(september, LineKind.PREPAID_CREDITS)] == [D("-100.00")]
    assert september.total == D("326.00")  # 426.00 after tax, less the wallet's 100.00
    wallet = world.reload()
    assert (wallet.balance, wallet.credits_balance) == (D("0.00"), D("0"))
    assert (wallet.consumed_amount, wallet.consumed_credits) == (D("100.00"), D("100"))
    assert wallet.last_consumed_credit_at == SEPTEMBER_CLOSE
    used = WalletTransaction.objects.get(wallet=wallet, transaction_status=WalletTransactionKind.INVOICED)
    assert (used.transaction_type, used.status, used.amount, used.credit_amount, used.invoice_id) == (
        WalletTransactionType.OUTBOUND,
        WalletTransactionStatus.SETTLED,
        D("100.00"),
        D("100"),
        september.pk,
    )
    assert wallet.balance == inbound_minus_outbound(world)


def test_a_second_invoice_uses_what_is_left_and_a_void_gives_it_back() -> None:
    world = wallet_world(granted="500")

    september = world.close_september()
    assert september.total == D("0.00")  # the wallet pays all of the 426.00
    assert september.payment_status == PaymentStatus.SUCCEEDED
    assert world.reload().balance == D("74.00")

    october = world.close_october()
    assert [line.amount for line in lines_of(october, LineKind.PREPAID_CREDITS)] == [D("-74.00")]
    assert october.total == D("70.00")  # 120.00 + 24.00 VAT − 74.00
    assert world.reload().balance == D("0.00")

    with travel(NOW):
        invoice_void(invoice=october, reason="issued in error", now=NOW)
    wallet = world.reload()
    assert (wallet.balance, wallet.credits_balance) == (D("74.00"), D("74"))
    assert (wallet.consumed_amount, wallet.consumed_credits) == (D("426.00"), D("426"))
    given_back = WalletTransaction.objects.get(wallet=wallet, voided_invoice=october)
    assert (given_back.transaction_type, given_back.transaction_status, given_back.amount) == (
        WalletTransactionType.INBOUND,
        WalletTransactionKind.GRANTED,
        D("74.00"),
    )
    assert wallet.balance == inbound_minus_outbound(world)


def test_paid_credits_are_usable_only_once_their_credit_invoice_is_paid() -> None:
    world = wallet_world(paid="100")
    purchase = WalletTransaction.objects.get(wallet=world.wallet)
    assert (purchase.transaction_status, purchase.status, purchase.amount) == (
        WalletTransactionKind.PURCHASED,
        WalletTransactionStatus.PENDING,
        D("100.00"),
    )
    assert world.reload().balance == 0

    september = world.close_september()  # the purchase is not paid: nothing to use
    assert not lines_of(september, LineKind.PREPAID_CREDITS)
    assert september.total == D("426.00")

    credit_invoice = purchase.invoice
    assert credit_invoice is not None
    payment_create(invoice=credit_invoice, amount=D("40"), reference="wire 1", paid_at=NOW, now=NOW)
    purchase.refresh_from_db()
    assert purchase.status == WalletTransactionStatus.PENDING and world.reload().balance == 0  # partly paid

    payment_create(invoice=credit_invoice, amount=D("60"), reference="wire 2", paid_at=NOW, now=NOW)
    purchase.refresh_from_db()
    credit_invoice.refresh_from_db()
    assert credit_invoice.payment_status == PaymentStatus.SUCCEEDED
    assert (purchase.status, purchase.settled_at, purchase.credit_amount) == (
        WalletTransactionStatus.SETTLED,
        NOW,
        D("100"),
    )
    assert (world.reload().balance, world.wallet.credits_balance) == (D("100.00"), D("100"))

    october = world.close_october()
    assert [line.amount for line in lines_of(october, LineKind.PREPAID_CREDITS)] == [D("-100.00")]
    assert october.total == D("44.00")  # 144.00 − 100.00
    assert world.reload().balance == inbound_minus_outbound(world) == 0


def test_a_purchase_is_a_credit_invoice_finalized_at_once_and_not_taxed() -> None:
    world = wallet_world(paid="50.5", rate="2")
    purchase = WalletTransaction.objects.get(wallet=world.wallet)
    invoice = purchase.invoice
    assert invoice is not None
    assert (invoice.kind, invoice.subscription_id, invoice.status, invoice.payment_status) == (
        InvoiceKind.CREDIT,
        None,
        InvoiceStatus.FINALIZED,
        PaymentStatus.PENDING,
    )
    assert invoice.number and invoice.number.startswith("INV-2026-")
    assert invoice.issued_on is not None and invoice.finalized_at == WALLET_MADE
    [line] = invoice.lines.all()  # one line, no tax line although the organization has VAT
    assert (line.kind, line.quantity, line.unit_amount, line.amount) == (
        LineKind.CREDIT_PURCHASE,
        D("50.5"),
        D("2"),
        D("101.00"),
    )
    assert line.details == {"wallet": world.wallet.pk, "wallet_transaction": purchase.pk}
    assert invoice.total == D("101.00") == purchase.amount
    assert purchase.credit_amount == D("50.5")


def test_granted_and_voided_credits_move_the_balance_at_once() -> None:
    world = wallet_world(granted="10")
    with travel(NOW):
        made = wallet_transaction_create(
            wallet=world.wallet, granted_credits=D("5.5"), voided_credits=D("3"), name="goodwill", now=NOW
        )
    assert [(m.transaction_status, m.transaction_type, m.status, m.amount) for m in made] == [
        (WalletTransactionKind.GRANTED, WalletTransactionType.INBOUND, WalletTransactionStatus.SETTLED, D("5.50")),
        (WalletTransactionKind.VOIDED, WalletTransactionType.OUTBOUND, WalletTransactionStatus.SETTLED, D("3.00")),
    ]
    assert all(m.name == "goodwill" and m.settled_at == NOW for m in made)
    wallet = world.reload()
    assert (wallet.balance, wallet.credits_balance) == (D("12.50"), D("12.5"))
    assert wallet.balance == inbound_minus_outbound(world)


def test_voiding_all_the_credits_empties_the_balance_whatever_the_rate() -> None:
    world = wallet_world(granted="3", rate="0.33333")  # 3 credits are worth 1.00 (0.99999 rounded)
    wallet = world.reload()
    assert wallet.balance == D("1.00")
    with travel(NOW):
        wallet_transaction_create(wallet=wallet, voided_credits=wallet.credits_balance, now=NOW)
    assert (world.reload().balance, world.wallet.credits_balance) == (D("0.00"), D("0"))


def test_every_movement_is_announced_with_its_wallet() -> None:
    webhook_endpoint_create(webhook_url="https://example.com/hooks")
    world = wallet_world(granted="100", paid="20")
    world.close_september()
    bodies = [
        json.loads(d.body)
        for d in WebhookDelivery.objects.filter(webhook_type="wallet_transaction.created").order_by("id")
    ]
    kinds = [(b["wallet_transaction"]["transaction_status"], b["wallet_transaction"]["status"]) for b in bodies]
    assert kinds == [("purchased", "pending"), ("granted", "settled"), ("invoiced", "settled")]
    assert all(b["object_type"] == "wallet_transaction" for b in bodies)
    assert bodies[2]["wallet_transaction"]["wallet"]["balance_cents"] == 0
    assert bodies[2]["wallet_transaction"]["amount"] == "100.00"
    credit_invoice = WebhookDelivery.objects.get(webhook_type="invoice.paid_credit_added")
    assert json.loads(credit_invoice.body)["invoice"]["invoice_type"] == "credit"

    purchase = WalletTransaction.objects.get(transaction_status=WalletTransactionKind.PURCHASED)
    assert purchase.invoice is not None
    payment_create(invoice=purchase.invoice, amount=D("20"), reference="card", paid_at=NOW, now=NOW)
    last = WebhookDelivery.objects.filter(webhook_type="wallet_transaction.created").order_by("id").last()
    assert last is not None
    settled = json.loads(last.body)
    assert (settled["wallet_transaction"]["lago_id"], settled["wallet_transaction"]["status"]) == (
        str(purchase.pk),
        "settled",
    )
    assert settled["wallet_transaction"]["wallet"]["balance_cents"] == 2000


# --- terminate and expiry -----------------------------------------------------------------------


def test_terminating_voids_the_balance_and_stops_the_wallet() -> None:
    world = wallet_world(granted="100")
    with travel(NOW):
        wallet = wallet_terminate(wallet=world.wallet, now=NOW)
    assert (wallet.status, wallet.terminated_at, wallet.balance, wallet.credits_balance) == (
        WalletStatus.TERMINATED,
        NOW,
        D("0.00"),
        D("0"),
    )
    voided = WalletTransaction.objects.get(wallet=wallet, transaction_status=WalletTransactionKind.VOIDED)
    assert (voided.transaction_type, voided.amount) == (WalletTransactionType.OUTBOUND, D("100.00"))
    with travel(NOW):
        assert wallet_terminate(wallet=wallet, now=at(2026, 10, 21)).terminated_at == NOW  # again: no change
    assert WalletTransaction.objects.filter(wallet=wallet).count() == 2
    errors = refused(lambda: wallet_transaction_create(wallet=wallet, granted_credits=D("1"), now=NOW))
    assert errors == {"wallet_id": [TERMINATED.format(wallet=wallet.pk)]}

    october = world.close_october()  # a terminated wallet pays nothing
    assert not lines_of(october, LineKind.PREPAID_CREDITS)
    # … and a new wallet may be opened in its currency.
    with travel(NOW):
        wallet_create(customer=world.customer, rate_amount=D("1"), granted_credits=D("1"), now=NOW)


def test_a_wallet_expires_at_its_expiration_at_by_the_clock() -> None:
    customer, _ = customer_in_september()
    expires = at(2026, 9, 30, 12)
    with travel(WALLET_MADE):
        wallet = wallet_create(
            customer=customer, rate_amount=D("1"), granted_credits=D("30"), expiration_at=expires, now=WALLET_MADE
        )
    assert wallets_expire(now=at(2026, 9, 30, 11, 59)).expired == []
    with travel(expires):
        report = wallets_expire(now=expires)
    assert (report.expired, report.errors) == ([wallet.pk], [])
    wallet.refresh_from_db()
    assert (wallet.status, wallet.terminated_at, wallet.balance) == (WalletStatus.TERMINATED, expires, D("0.00"))
    voided = WalletTransaction.objects.get(wallet=wallet, transaction_status=WalletTransactionKind.VOIDED)
    assert voided.amount == D("30.00") and "expired" in voided.name
    assert wallets_expire(now=at(2026, 10, 1)).expired == []  # once


def test_credits_paid_after_the_wallet_was_terminated_are_voided_at_once() -> None:
    world = wallet_world(paid="25")
    purchase = WalletTransaction.objects.get(wallet=world.wallet)
    with travel(NOW):
        wallet_terminate(wallet=world.wallet, now=NOW)
    assert purchase.invoice is not None
    payment_create(invoice=purchase.invoice, amount=D("25"), reference="late wire", paid_at=NOW, now=NOW)
    purchase.refresh_from_db()
    assert purchase.status == WalletTransactionStatus.SETTLED
    voided = WalletTransaction.objects.get(wallet=world.wallet, transaction_status=WalletTransactionKind.VOIDED)
    assert (voided.amount, voided.name) == (D("25.00"), VOIDED_AFTER_TERMINATION)
    assert world.reload().balance == 0 == inbound_minus_outbound(world)


def test_voiding_an_unpaid_credit_invoice_fails_its_purchase() -> None:
    world = wallet_world(paid="25")
    purchase = WalletTransaction.objects.get(wallet=world.wallet)
    assert purchase.invoice is not None
    with travel(NOW):
        invoice_void(invoice=purchase.invoice, reason="not wanted", now=NOW)
    purchase.refresh_from_db()
    assert (purchase.status, purchase.failed_at) == (WalletTransactionStatus.FAILED, NOW)
    assert world.reload().balance == 0


# --- the ongoing balance ----------------------------------------------------------------------------


def test_the_ongoing_balance_is_the_balance_less_usage_with_tax_and_drafts_not_the_base_fee(settings: Any) -> None:
    world = wallet_world(granted="1000")
    at_mid_september = at(2026, 9, 25)
    ongoing = ongoing_balance(world.reload(), now=at_mid_september)
    # September so far: 300 users → 235.00 of usage, 47.00 VAT on it; the base fee is not counted.
    assert (ongoing.usage, ongoing.balance) == (D("282.00"), D("718.00"))
    assert (ongoing.credits_usage, ongoing.credits_balance) == (D("282"), D("718"))

    settings.BILLING_GRACE_PERIOD_HOURS = 48  # September's invoice stays a draft after the close
    with travel(SEPTEMBER_CLOSE):
        from billing.services.period_close import close_periods

        close_periods(now=SEPTEMBER_CLOSE)
    draft = Invoice.objects.get(subscription=world.subscription, period_start=at(2026, 9, 1))
    assert draft.status == InvoiceStatus.DRAFT and draft.total == D("0.00")  # the draft shows the wallet paying
    ongoing = ongoing_balance(world.reload(), now=SEPTEMBER_CLOSE)
    assert world.wallet.balance == D("1000.00")  # drafts move nothing
    assert ongoing.usage == D("426.00")  # the draft before credits; October has no usage yet
    assert ongoing.balance == D("574.00")


# --- what is refused, with nothing stored -----------------------------------------------------------


def test_refusals_name_the_field_and_store_nothing() -> None:
    customer, _ = customer_in_september()
    vat()

    def create(**kwargs: Any) -> Any:
        return lambda: wallet_create(customer=customer, now=NOW, **{"rate_amount": D("1"), **kwargs})

    assert refused(create(rate_amount=D("0"))) == {"rate_amount": [NOT_POSITIVE]}
    assert refused(create(rate_amount=D("-1"))) == {"rate_amount": [NOT_POSITIVE]}
    assert refused(create(rate_amount=D("0.000001"))) == {"rate_amount": [TOO_PRECISE]}
    assert refused(create(currency="EUR")) == {"currency": [CURRENCY_NOT_CUSTOMERS.format(currency="USD")]}
    assert refused(create(expiration_at=NOW)) == {"expiration_at": [NOT_IN_FUTURE]}
    assert refused(create(paid_credits=D("-1"))) == {"paid_credits": [NEGATIVE]}
    assert refused(create(granted_credits=D("1.000001"))) == {"granted_credits": [TOO_PRECISE]}
    assert refused(create(granted_credits=D("0.001"))) == {
        "granted_credits": [ROUNDS_TO_ZERO.format(currency="USD", rate="1")]
    }
    assert "name" in refused(create(name="x" * 256))

    with travel(NOW):
        wallet = wallet_create(customer=customer, rate_amount=D("1"), code="main", granted_credits=D("10"), now=NOW)
    assert refused(create()) == {"currency": [ALREADY_ACTIVE.format(customer="acme", currency="USD", wallet=wallet.pk)]}
    other = CustomerFactory(external_id="globex", currency="EUR")
    with travel(NOW):
        wallet_create(customer=other, rate_amount=D("1"), code="main", now=NOW)  # another customer: fine

    def top_up(**kwargs: Any) -> Any:
        return lambda: wallet_transaction_create(wallet=wallet, now=NOW, **kwargs)

    assert refused(top_up(voided_credits=D("10.5"))) == {"voided_credits": [MORE_THAN_BALANCE.format(credits="10")]}
    assert refused(top_up(paid_credits=D("-5"))) == {"paid_credits": [NEGATIVE]}
    assert refused(top_up(granted_credits=D("0.000001"))) == {"granted_credits": [TOO_PRECISE]}
    assert "granted_credits" in refused(top_up(granted_credits=D("1e16")))
    # Nothing asked: nothing made (Lago answers an empty list).
    assert wallet_transaction_create(wallet=wallet, now=NOW) == []

    assert refused(lambda: wallet_update(wallet=wallet, now=NOW, expiration_at=at(2026, 10, 1))) == {
        "expiration_at": [NOT_IN_FUTURE]
    }


def test_code_is_unique_among_a_customers_active_wallets_and_made_from_the_name() -> None:
    customer, _ = customer_in_september()
    with travel(NOW):
        wallet = wallet_create(customer=customer, rate_amount=D("1"), name="Prepaid Credits", now=NOW)
    assert wallet.code == "prepaid_credits"
    with travel(NOW):
        wallet = wallet_update(wallet=wallet, now=NOW, name="Main", expiration_at=at(2027, 1, 1), metadata={"a": "1"})
    assert (wallet.name, wallet.code, wallet.expiration_at, wallet.metadata) == (
        "Main",
        "prepaid_credits",
        at(2027, 1, 1),
        {"a": "1"},
    )
    with travel(NOW):
        wallet_update(wallet=wallet, now=NOW, expiration_at=None)
    wallet.refresh_from_db()
    assert wallet.expiration_at is None
    with travel(NOW):
        wallet_terminate(wallet=wallet, now=NOW)
    assert refused(lambda: wallet_update(wallet=wallet, now=NOW, name="x")) == {
        "wallet_id": [TERMINATED.format(wallet=wallet.pk)]
    }
    with travel(NOW):
        again = wallet_create(customer=customer, rate_amount=D("1"), code="prepaid_credits", now=NOW)
    assert again.code == "prepaid_credits"  # the terminated one no longer holds it

    # A customer whose currency changed (it has no subscription) may hold an active wallet in each.
    other = CustomerFactory(external_id="globex")
    with travel(NOW):
        wallet_create(customer=other, rate_amount=D("1"), code="main", now=NOW)
    other.currency = "EUR"
    other.save()
    assert refused(lambda: wallet_create(customer=other, rate_amount=D("1"), code="main", now=NOW)) == {
        "code": [CODE_TAKEN.format(customer="globex")]
    }


def test_september_invoice_json_reports_the_prepaid_credit() -> None:
    """The invoice's Lago amounts add up with the wallet's line (step 7)."""
    from billing.api.invoice_json import invoice_json, invoices_for_json

    world = wallet_world(granted="100")
    september = world.close_september()
    body = invoice_json(invoices_for_json().get(pk=september.pk))
    assert body["prepaid_credit_amount_cents"] == 10000
    assert body["taxes_amount_cents"] == 7100
    assert body["total_amount_cents"] == 32600
    assert body["sub_total_including_taxes_amount_cents"] - body["prepaid_credit_amount_cents"] == 32600


def test_a_wallet_purchase_takes_no_credit_note_so_no_credit_is_given_for_nothing() -> None:
    from billing.services.credit_notes import WALLET_PURCHASE, CreditNoteError, credit_note_create

    world = wallet_world(paid="100")
    purchase = WalletTransaction.objects.get(wallet=world.wallet)
    invoice = purchase.invoice
    assert invoice is not None
    line = invoice.lines.get()
    with pytest.raises(CreditNoteError) as refused_note:
        credit_note_create(
            invoice=invoice,
            items=[(line.pk, D("100"))],
            reason="other",
            credit_amount=D("0"),
            refund_amount=D("0"),
            offset_amount=D("100"),
            now=NOW,
        )
    assert refused_note.value.errors == {"invoice_id": [WALLET_PURCHASE.format(invoice=invoice.number)]}
    purchase.refresh_from_db()
    assert purchase.status == WalletTransactionStatus.PENDING and world.reload().balance == 0


def test_an_expiry_moved_later_after_the_wallet_was_found_due_does_not_expire_it() -> None:
    customer, _ = customer_in_september()
    expires = at(2026, 9, 30, 12)
    with travel(WALLET_MADE):
        wallet = wallet_create(
            customer=customer, rate_amount=D("1"), granted_credits=D("30"), expiration_at=expires, now=WALLET_MADE
        )
    Wallet.objects.filter(pk=wallet.pk).update(expiration_at=at(2026, 12, 31))  # moved since it was listed
    done = wallet_terminate(wallet=wallet, now=expires, expired=True)
    assert (done.status, done.balance) == (WalletStatus.ACTIVE, D("30.00"))


def test_an_expired_wallet_pays_nothing_even_before_the_expiry_job_runs() -> None:
    from billing.selectors.adjustments import wallet_credit

    customer, _ = customer_in_september()
    with travel(WALLET_MADE):
        wallet_create(
            customer=customer,
            rate_amount=D("1"),
            granted_credits=D("30"),
            expiration_at=at(2026, 9, 30, 12),
            now=WALLET_MADE,
        )
        assert wallet_credit(customer.pk, currency=customer.currency) is not None
    with travel(at(2026, 9, 30, 12, 1)):  # expired, the minute's job not run yet
        assert wallet_credit(customer.pk, currency=customer.currency) is None

"""The wallets admin: the list (balance in money and credits, ongoing balance, status, expiry), adding
a wallet through the service (its refusals shown by field, nothing stored), "Top up" (the purchase
invoice it creates is shown), "Void credits", "Terminate selected wallets", the read-only page with
its transaction history, and the customer page's wallet balance."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from billing.admin.wallets import NOT_ACTIVE, UNKNOWN_CUSTOMER, WALLETS_TERMINATED
from billing.engine.vocabulary import InvoiceKind, WalletStatus, WalletTransactionKind, WalletTransactionStatus
from billing.models import Invoice, Wallet, WalletTransaction
from billing.services.roles import FINANCE_READ_ONLY, ensure_roles
from billing.services.wallets import wallet_create
from tests.factories import CustomerFactory
from tests.helpers import at

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(at(2026, 10, 20, 12))]

D = Decimal
NOW = at(2026, 10, 20, 12)
CHANGELIST = "admin:billing_wallet_changelist"


def wallet(**kwargs: str) -> Wallet:
    customer = CustomerFactory(external_id="acme", name="Acme")
    return wallet_create(
        customer=customer,
        rate_amount=D(kwargs.pop("rate", "1")),
        name="Prepaid",
        granted_credits=D(kwargs.pop("granted", "0")),
        paid_credits=D(kwargs.pop("paid", "0")),
        now=NOW,
    )


def messages_of(response: object) -> list[str]:
    return [str(m) for m in response.context["messages"]]  # type: ignore[attr-defined]


def test_the_list_shows_balances_ongoing_balance_status_and_expiry(admin_client: Client) -> None:
    made = wallet(granted="100", rate="0.5")
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    content = response.content.decode()
    assert "$50.00" in content and "100" in content  # 100 credits worth $50.00
    assert "$50.00 (100 credits)" in content  # the ongoing balance: no usage yet
    assert admin_client.get(reverse(CHANGELIST), {"q": "acme"}).context["cl"].result_count == 1
    assert admin_client.get(reverse(CHANGELIST), {"customer": "acme"}).context["cl"].result_count == 1
    assert admin_client.get(reverse(CHANGELIST), {"status__exact": "terminated"}).context["cl"].result_count == 0
    page = admin_client.get(reverse("admin:billing_wallet_change", args=[made.pk])).content.decode()
    assert 'name="_save"' not in page  # read-only
    assert "wallet-top-up-link" in page and "wallet-void-credits-link" in page
    assert "Granted" in page  # the transaction history


def test_adding_a_wallet_goes_through_the_service(admin_client: Client) -> None:
    CustomerFactory(external_id="acme", name="Acme")
    add = reverse("admin:billing_wallet_add")
    assert admin_client.get(add, {"customer": "acme"}).status_code == 200

    response = admin_client.post(add, {"customer": "ghost", "rate_amount": "1"})
    assert response.status_code == 200 and UNKNOWN_CUSTOMER in response.content.decode()
    response = admin_client.post(add, {"customer": "acme", "rate_amount": "1", "expiration_at": "2026-10-01T00:00"})
    assert response.status_code == 200 and "Expires at must be in the future" in response.content.decode()
    assert not Wallet.objects.exists()

    response = admin_client.post(
        add,
        {"customer": "acme", "rate_amount": "1", "name": "Prepaid", "granted_credits": "10", "paid_credits": "5"},
        follow=True,
    )
    made = Wallet.objects.get()
    assert (made.balance, made.code) == (D("10.00"), "prepaid")
    invoice = Invoice.objects.get(kind=InvoiceKind.CREDIT)
    text = " ".join(messages_of(response))
    assert "was created" in text and str(invoice.number) in text and "usable once it is paid" in text

    # A second active wallet in the currency is refused on the customer field, storing nothing.
    response = admin_client.post(add, {"customer": "acme", "rate_amount": "1"})
    assert response.status_code == 200 and "already has an active USD wallet" in response.content.decode()
    assert Wallet.objects.count() == 1


def test_top_up_shows_the_purchase_invoice_and_void_credits(admin_client: Client) -> None:
    made = wallet(granted="10")
    top_up = reverse("admin:billing_wallet_top_up", args=[made.pk])
    assert admin_client.get(top_up).status_code == 200
    response = admin_client.post(top_up, {"paid_credits": "20", "granted_credits": "5", "name": "Q4"}, follow=True)
    purchase = WalletTransaction.objects.get(transaction_status=WalletTransactionKind.PURCHASED)
    assert purchase.invoice is not None and purchase.status == WalletTransactionStatus.PENDING
    text = " ".join(messages_of(response))
    assert "20 credits invoiced on <a href" in text and f">{purchase.invoice.number}</a> ($20.00)" in text
    assert "5 credits granted ($5.00)" in text
    made.refresh_from_db()
    assert made.balance == D("15.00")
    page = response.content.decode()
    assert str(purchase.invoice.number) in page and "(pending)" in page  # the history links the invoice

    void = reverse("admin:billing_wallet_void_credits", args=[made.pk])
    response = admin_client.post(void, {"voided_credits": "16"})
    assert response.status_code == 200 and "more than the wallet&#x27;s balance" in response.content.decode()
    response = admin_client.post(void, {"voided_credits": "15", "name": "closing"}, follow=True)
    assert "15 credits voided ($15.00)" in " ".join(messages_of(response))
    made.refresh_from_db()
    assert made.balance == 0


def test_terminate_selected_wallets_voids_their_balance(admin_client: Client) -> None:
    made = wallet(granted="10")
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "terminate_selected", helpers.ACTION_CHECKBOX_NAME: [made.pk], "index": "0"},
        follow=True,
    )
    assert WALLETS_TERMINATED[0] % {"count": 1} in messages_of(response)
    made.refresh_from_db()
    assert (made.status, made.balance) == (WalletStatus.TERMINATED, 0)
    page = admin_client.get(reverse("admin:billing_wallet_change", args=[made.pk])).content.decode()
    assert "wallet-top-up-link" not in page
    note = admin_client.get(reverse("admin:billing_wallet_top_up", args=[made.pk])).content.decode()
    assert NOT_ACTIVE.format(wallet=made) in note


def test_the_customer_page_shows_its_wallet_balance(admin_client: Client) -> None:
    made = wallet(granted="100")
    page = admin_client.get(reverse("admin:customers_customer_change", args=[made.customer_id])).content.decode()
    assert 'id="account-wallets"' in page and "$100.00 (100 credits)" in page


def test_read_only_staff_see_wallets_and_change_nothing(client: Client) -> None:
    made = wallet(granted="10")
    ensure_roles()
    reader = User.objects.create_user("rita", is_staff=True)
    reader.groups.add(Group.objects.get(name=FINANCE_READ_ONLY))
    client.force_login(reader)
    page = client.get(reverse("admin:billing_wallet_change", args=[made.pk])).content.decode()
    assert "Granted" in page and "wallet-top-up-link" not in page
    for name in ("admin:billing_wallet_top_up", "admin:billing_wallet_void_credits"):
        assert client.get(reverse(name, args=[made.pk])).status_code == 403
        assert client.post(reverse(name, args=[made.pk]), {"granted_credits": "5"}).status_code == 403
    assert client.post(reverse("admin:billing_wallet_add"), {"customer": "acme", "rate_amount": "1"}).status_code == 403
    customer_page = client.get(reverse("admin:customers_customer_change", args=[made.customer_id])).content.decode()
    assert "$10.00 (10 credits)" in customer_page and "add-wallet-link" not in customer_page
    made.refresh_from_db()
    assert made.balance == D("10.00") and WalletTransaction.objects.count() == 1

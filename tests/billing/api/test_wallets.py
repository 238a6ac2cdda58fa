"""The wallets API: with Lago's official Python SDK (lago-python-client 1.55, unmodified) against the
live server, a wallet's life (create with paid and granted credits, the credit invoice, the period
close using the credit after tax, paying the purchase, top-ups, filters, update, metadata,
terminate); then, with the test client, every refusal (422 naming the field, nothing stored),
the 404s, the lists' filters and the customer-scoped routes.

The live server runs on the real clock, so the months are relative to today, as in
tests/billing/api/test_lago_lifecycle.py: M0 is the trial month, M1 has 300 users ($355.00, and
$426.00 with the organization's 20 % VAT).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.payment import Payment as LagoPayment
from lago_python_client.models.subscription import Subscription as LagoSubscription
from lago_python_client.models.wallet import AppliesTo, RecurringTransactionRule, RecurringTransactionRuleList
from lago_python_client.models.wallet import Wallet as LagoWallet
from lago_python_client.models.wallet_transaction import WalletTransaction as LagoWalletTransaction
from rest_framework.test import APIClient

from billing.engine.periods import add_months, month_start
from billing.models import Invoice, Wallet, WalletTransaction, WebhookDelivery
from billing.services.period_close import close_periods
from customers.models import Customer
from customers.services import api_key_create
from tests.billing.services.wallet_world import vat
from tests.factories import CustomerFactory, scaled_team_plan, store_users
from tests.helpers import at, errors, get, messages, post

D = Decimal


def moment(day: date, hours: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hours, tzinfo=UTC)


@pytest.fixture
def lago(live_server: Any) -> Client:
    scaled_team_plan()
    _, raw_key = api_key_create(name="lago sdk")
    return Client(api_key=raw_key, api_url=live_server.url)


def refused(call: Any) -> dict[str, Any]:
    """The SDK call fails with Lago's 422 envelope, storing nothing; returns its error details."""
    before = stored()
    with pytest.raises(LagoApiError) as caught:
        call()
    assert caught.value.status_code == 422, caught.value.response
    body = caught.value.response
    assert body["code"] == "validation_errors"
    assert stored() == before
    return dict(messages(body["error_details"]))


def stored() -> tuple[Any, ...]:
    return (
        list(Wallet.objects.order_by("pk").values()),
        list(WalletTransaction.objects.order_by("pk").values()),
        list(Invoice.objects.order_by("pk").values_list("pk", "status", "payment_status")),
    )


@pytest.mark.django_db(transaction=True)
def test_a_wallet_with_the_lago_sdk(lago: Client) -> None:
    today = timezone.now().date()
    m0 = add_months(month_start(today), -3)
    m1, m2 = add_months(m0, 1), add_months(m0, 2)
    lago.customers.create(LagoCustomer(external_id="acme", name="Acme", currency="USD", timezone="UTC"))
    lago.subscriptions.create(
        LagoSubscription(
            external_customer_id="acme",
            plan_code="team",
            external_id="acme-team",
            subscription_at=f"{m0.isoformat()}T00:00:00Z",
        )
    )
    store_users(Customer.objects.get(external_id="acme"), range(300), moment(m1 + timedelta(days=19)), "m1")
    close_periods(now=moment(m1, hours=9))  # M0 (the trial month) is invoiced before the wallet exists
    vat()

    # 1. A wallet with 100 granted credits and 50 paid ones.
    expires = (timezone.now() + timedelta(days=400)).replace(microsecond=0)
    wallet = lago.wallets.create(
        LagoWallet(
            external_customer_id="acme",
            rate_amount="1",
            name="Prepaid",
            currency="USD",
            granted_credits="100",
            paid_credits="50",
            expiration_at=expires.isoformat(),
            metadata={"crm": "A-1"},
            transaction_name="Opening",
            transaction_metadata=[{"key": "po", "value": "42"}],
            invoice_requires_successful_payment=False,
            applies_to=AppliesTo(fee_types=[], billable_metric_codes=[]),
        )
    )
    assert wallet is not None
    assert (wallet.status, wallet.currency, wallet.rate_amount, wallet.code) == ("active", "USD", "1", "prepaid")
    assert (wallet.balance_cents, wallet.credits_balance, wallet.consumed_credits) == (10000, "100", "0")
    assert wallet.expiration_at == expires.isoformat().replace("+00:00", "Z")
    assert wallet.metadata == {"crm": "A-1"}
    # The ongoing balance: M2's usage so far is none, and no draft; the base fee is not counted.
    assert (wallet.ongoing_balance_cents, wallet.ongoing_usage_balance_cents) == (10000, 0)

    listed = lago.wallet_transactions.find_all(wallet.lago_id)["wallet_transactions"]
    assert [(t.transaction_status, t.status, t.amount, t.name) for t in listed] == [
        ("granted", "settled", "100.00", "Opening"),
        ("purchased", "pending", "50.00", "Opening"),
    ]
    purchase = listed[1]
    assert purchase.metadata == [{"key": "po", "value": "42"}]

    # 2. The purchase is a credit invoice, finalized at once, not taxed.
    credit_invoice = lago.invoices.find(purchase.lago_invoice_id)
    assert (credit_invoice.invoice_type, credit_invoice.status, credit_invoice.payment_status) == (
        "credit",
        "finalized",
        "pending",
    )
    assert (credit_invoice.total_amount_cents, credit_invoice.taxes_amount_cents) == (5000, 0)
    [fee] = credit_invoice.fees.__root__
    assert (fee.item.type, fee.amount_cents) == ("credit", 5000)

    # 3. M1 is closed: the wallet pays $100.00 of the $426.00 after tax.
    close_periods(now=moment(m2, hours=9))
    invoices = lago.invoices.find_all({"external_customer_id": "acme", "invoice_type": "subscription"})["invoices"]
    m1_invoice = next(
        i for i in invoices if i.billing_periods.__root__[0].subscription_from_datetime.startswith(str(m1))
    )
    assert (m1_invoice.taxes_amount_cents, m1_invoice.prepaid_credit_amount_cents, m1_invoice.total_amount_cents) == (
        7100,
        10000,
        32600,
    )
    wallet = lago.wallets.find(wallet.lago_id)
    assert (wallet.balance_cents, wallet.consumed_credits) == (0, "100")

    # 4. Paying the credit invoice makes its 50 credits usable.
    lago.payments.create(LagoPayment(invoice_id=credit_invoice.lago_id, amount_cents=5000, reference="card"))
    wallet = lago.wallets.find(wallet.lago_id)
    assert (wallet.balance_cents, wallet.credits_balance) == (5000, "50")
    settled = lago.wallet_transactions.find_all(wallet.lago_id, {"transaction_status": "purchased"})
    assert [t.status for t in settled["wallet_transactions"]] == ["settled"]

    # 5. A top-up: 20 granted, 10 voided; Lago answers the transactions it made.
    made = lago.wallet_transactions.create(
        LagoWalletTransaction(wallet_id=wallet.lago_id, granted_credits="20", voided_credits="10", name="Goodwill")
    )["wallet_transactions"]
    assert [(t.transaction_status, t.transaction_type, t.credit_amount) for t in made] == [
        ("granted", "inbound", "20"),
        ("voided", "outbound", "10"),
    ]
    assert lago.wallets.find(wallet.lago_id).balance_cents == 6000
    history = lago.wallet_transactions.find_all(wallet.lago_id, {"per_page": 2, "page": 1})
    assert history["meta"]["total_count"] == 5 and len(history["wallet_transactions"]) == 2
    outbound = lago.wallet_transactions.find_all(wallet.lago_id, {"transaction_type": "outbound"})
    assert sorted(t.transaction_status for t in outbound["wallet_transactions"]) == ["invoiced", "voided"]

    # 6. What is refused (422 naming the field), storing nothing.
    assert list(refused(lambda: lago.wallets.create(LagoWallet(external_customer_id="acme", rate_amount="1")))) == [
        "currency"
    ]
    assert list(
        refused(lambda: lago.wallets.create(LagoWallet(external_customer_id="acme", rate_amount="1", priority=2)))
    ) == ["priority"]
    rules = RecurringTransactionRuleList(__root__=[RecurringTransactionRule(trigger="interval", interval="monthly")])
    assert "recurring_transaction_rules" in refused(
        lambda: lago.wallets.create(
            LagoWallet(external_customer_id="acme", rate_amount="1", recurring_transaction_rules=rules)
        )
    )
    assert list(
        refused(
            lambda: lago.wallet_transactions.create(
                LagoWalletTransaction(wallet_id=wallet.lago_id, voided_credits="61")
            )
        )
    ) == ["voided_credits"]
    assert list(
        refused(
            lambda: lago.wallet_transactions.create(
                LagoWalletTransaction(wallet_id=wallet.lago_id, granted_credits="1", purchase_order_number="PO-1")
            )
        )
    ) == ["purchase_order_number"]

    # 7. Update, the lists, the customer's wallets by code, metadata.
    wallet = lago.wallets.update(LagoWallet(name="Main", expiration_at=None), wallet.lago_id)
    assert (wallet.name, wallet.code) == ("Main", "prepaid")
    assert [w.lago_id for w in lago.wallets.find_all({"external_customer_id": "acme"})["wallets"]] == [wallet.lago_id]
    assert [w.lago_id for w in lago.customers.wallets.find_all("acme")["wallets"]] == [wallet.lago_id]
    assert lago.customers.wallets.find("acme", "prepaid").lago_id == wallet.lago_id
    assert lago.wallets.merge_metadata(wallet.lago_id, {"tier": "gold"}) == {"crm": "A-1", "tier": "gold"}
    assert lago.wallets.delete_metadata_key(wallet.lago_id, "crm") == {"tier": "gold"}
    assert lago.wallets.replace_metadata(wallet.lago_id, {"a": None}) == {"a": None}
    assert lago.wallets.delete_all_metadata(wallet.lago_id) == {}

    # 8. Terminate: the balance is voided.
    terminated = lago.wallets.destroy(wallet.lago_id)
    assert (terminated.status, terminated.balance_cents) == ("terminated", 0)
    assert terminated.terminated_at is not None
    last = lago.wallet_transactions.find_all(wallet.lago_id, {"per_page": 1})["wallet_transactions"][0]
    assert (last.transaction_status, last.amount) == ("voided", "60.00")


# --- the test client: refusals, 404s, filters, customer routes -----------------------------------

NOW = at(2026, 10, 20, 12)
LATER = "2027-01-01T00:00:00Z"
frozen = pytest.mark.frozen_clock(NOW)


def create(api: APIClient, **fields: Any) -> Any:
    body = {"wallet": {"external_customer_id": "acme", "rate_amount": "1", **fields}}
    return api.post("/api/v1/wallets", body, format="json")


def top_up(api: APIClient, **fields: Any) -> Any:
    return api.post("/api/v1/wallet_transactions", {"wallet_transaction": fields}, format="json")


def refused_by(call: Any, *args: Any, **kwargs: Any) -> Any:
    """call(*args, **kwargs) is answered 422, storing nothing; its error details."""
    before = stored()
    details = errors(call(*args, **kwargs))
    assert stored() == before
    return details


@pytest.mark.django_db
@frozen
def test_every_refusal_names_the_field_and_stores_nothing(api: APIClient) -> None:
    CustomerFactory(external_id="acme")
    unsupported = {
        "recurring_transaction_rules": [{"trigger": "interval", "interval": "monthly"}],
        "paid_top_up_min_amount_cents": 100,
        "paid_top_up_max_amount_cents": 100,
        "payment_method": {"payment_method_type": "manual"},
        "invoice_custom_section": {"skip_invoice_custom_sections": True},
        "billing_entity_code": "eu",
        "purchase_order_number": "PO-1",
        "applies_to": {"fee_types": ["charge"]},
        "priority": 2,
        "invoice_requires_successful_payment": True,
        "wallet_alerts": [],
    }
    for name, value in unsupported.items():
        assert list(refused_by(create, api, **{name: value})) == [name], name
    invalid = {
        "rate_amount": ["0", "-1", "abc", "0.000001", True],
        "paid_credits": ["-1", "1.000001", "x"],
        "granted_credits": ["0.001", "1e20"],
        "expiration_at": ["2026-10-20T11:00:00Z", "tomorrow"],
        "currency": ["EUR"],
        "name": ["x" * 256, 12],
        "transaction_metadata": [[{"key": "k"}], [{"key": "k", "value": "v"}] * 6],
    }
    for name, values in invalid.items():
        for value in values:
            assert list(refused_by(create, api, **{name: value})) == [name], (name, value)
    assert refused_by(create, api, external_customer_id="ghost") == {
        "external_customer_id": ["unknown customer 'ghost'"]
    }
    assert list(refused_by(api.post, "/api/v1/wallets", {"wallet": {"rate_amount": "1"}}, format="json")) == [
        "external_customer_id"
    ]
    assert list(refused_by(api.post, "/api/v1/wallets", {}, format="json")) == ["wallet"]

    wallet = post(
        api, "/api/v1/wallets", {"wallet": {"external_customer_id": "acme", "rate_amount": "2", "granted_credits": "5"}}
    )["wallet"]
    assert list(refused_by(create, api)) == ["currency"]  # one active wallet per currency
    lago_id = wallet["lago_id"]
    for fields, field in (
        ({"voided_credits": "5.5"}, "voided_credits"),
        ({"paid_credits": "-1"}, "paid_credits"),
        ({"granted_credits": 1.5}, None),  # a JSON number is read (as Lago's SDKs may send floats)
        ({"name": "x" * 256}, "name"),
        ({"metadata": [{"key": "k", "value": "v"}] * 16}, "metadata"),
        ({"invoice_requires_successful_payment": True}, "invoice_requires_successful_payment"),
        ({"payment_method": {"payment_method_type": "card"}}, "payment_method"),
        ({"voided_transaction_id": "1"}, "voided_transaction_id"),
    ):
        if field is None:
            assert top_up(api, wallet_id=lago_id, **fields).status_code == 200
            continue
        assert list(refused_by(top_up, api, wallet_id=lago_id, **fields)) == [field], fields
    assert refused_by(top_up, api, wallet_id="999999", granted_credits="1") == {
        "wallet_id": ["unknown wallet '999999'"]
    }
    detail = f"/api/v1/wallets/{lago_id}"
    for fields, field in (
        ({"rate_amount": "3"}, "rate_amount"),
        ({"external_customer_id": "globex"}, "external_customer_id"),
        ({"paid_credits": "1"}, "paid_credits"),
        ({"expiration_at": "2026-10-01T00:00:00Z"}, "expiration_at"),
        ({"priority": 5}, "priority"),
    ):
        assert list(refused_by(api.put, detail, {"wallet": fields}, format="json")) == [field], fields
    # The SDK repeats create fields on update: the wallet's own values are fine.
    response = api.put(
        detail, {"wallet": {"rate_amount": "2", "external_customer_id": "acme", "name": "Main"}}, format="json"
    )
    assert response.status_code == 200 and response.json()["wallet"]["name"] == "Main"

    api.delete(detail)
    assert refused_by(top_up, api, wallet_id=lago_id, granted_credits="1") == {
        "wallet_id": [f"wallet {lago_id} is terminated"]
    }
    assert list(refused_by(api.put, detail, {"wallet": {"name": "x"}}, format="json")) == ["wallet_id"]


@pytest.mark.django_db
@frozen
def test_unknown_wallets_and_customers_are_lagos_404(api: APIClient) -> None:
    CustomerFactory(external_id="acme")
    for path in ("/api/v1/wallets/999", "/api/v1/wallets/abc", "/api/v1/wallets/999/wallet_transactions"):
        body = get(api, path, expect=404)
        assert body["code"] == "wallet_not_found"
    assert api.delete("/api/v1/wallets/999").json()["code"] == "wallet_not_found"
    assert get(api, "/api/v1/wallets", expect=404, external_customer_id="ghost")["code"] == "customer_not_found"
    assert get(api, "/api/v1/customers/ghost/wallets", expect=404)["code"] == "customer_not_found"
    assert get(api, "/api/v1/customers/acme/wallets/nope", expect=404)["code"] == "wallet_not_found"
    assert get(api, "/api/v1/wallet_transactions/1/consumptions", expect=404)["code"] == "wallet_transaction_not_found"


@pytest.mark.django_db
@frozen
def test_lists_filter_and_paginate_as_lago(api: APIClient) -> None:
    CustomerFactory(external_id="acme")
    CustomerFactory(external_id="globex", currency="EUR")
    acme = post(
        api,
        "/api/v1/wallets",
        {"wallet": {"external_customer_id": "acme", "rate_amount": "1", "granted_credits": "10", "paid_credits": "5"}},
    )["wallet"]
    globex = post(api, "/api/v1/customers/globex/wallets", {"wallet": {"rate_amount": "1", "code": "eur"}})["wallet"]
    assert (globex["external_customer_id"], globex["currency"], globex["code"]) == ("globex", "EUR", "eur")

    everyone = get(api, "/api/v1/wallets")
    assert [w["lago_id"] for w in everyone["wallets"]] == [globex["lago_id"], acme["lago_id"]]
    assert everyone["meta"] == {
        "current_page": 1,
        "next_page": None,
        "prev_page": None,
        "total_pages": 1,
        "total_count": 2,
    }
    assert [w["lago_id"] for w in get(api, "/api/v1/wallets", external_customer_id="acme")["wallets"]] == [
        acme["lago_id"]
    ]
    assert [w["lago_id"] for w in get(api, "/api/v1/wallets", currency="EUR")["wallets"]] == [globex["lago_id"]]
    page = get(api, "/api/v1/wallets", per_page=1, page=2)
    assert (len(page["wallets"]), page["meta"]["prev_page"]) == (1, 1)
    assert list(errors(api.get("/api/v1/wallets", {"per_page": "0"}))) == ["per_page"]

    transactions = f"/api/v1/wallets/{acme['lago_id']}/wallet_transactions"
    assert len(get(api, transactions)["wallet_transactions"]) == 2
    assert [t["status"] for t in get(api, transactions, status="pending")["wallet_transactions"]] == ["pending"]
    assert [
        t["transaction_status"] for t in get(api, transactions, transaction_status="granted")["wallet_transactions"]
    ] == ["granted"]
    assert get(api, transactions, transaction_type="outbound")["wallet_transactions"] == []
    assert list(errors(api.get(transactions, {"status": "done"}))) == ["status"]
    assert list(errors(api.get(transactions, {"transaction_type": "sideways"}))) == ["transaction_type"]

    # The customer's wallets, by code: find, update, metadata, terminate.
    scoped = "/api/v1/customers/globex/wallets/eur"
    assert get(api, scoped)["wallet"]["lago_id"] == globex["lago_id"]
    assert [w["lago_id"] for w in get(api, "/api/v1/customers/globex/wallets")["wallets"]] == [globex["lago_id"]]
    response = api.put(scoped, {"wallet": {"name": "Euro", "expiration_at": LATER}}, format="json")
    assert response.json()["wallet"]["expiration_at"] == LATER
    assert api.post(f"{scoped}/metadata", {"metadata": {"a": "1"}}, format="json").json() == {"metadata": {"a": "1"}}
    assert api.patch(f"{scoped}/metadata", {"metadata": {"b": None}}, format="json").json() == {
        "metadata": {"a": "1", "b": None}
    }
    assert api.delete(f"{scoped}/metadata/a").json() == {"metadata": {"b": None}}
    assert api.delete(f"{scoped}/metadata").json() == {"metadata": {}}
    assert api.delete(f"{scoped}/metadata/b").json()["code"] == "metadata_not_found"
    assert api.delete(scoped).json()["wallet"]["status"] == "terminated"
    assert get(api, scoped)["wallet"]["status"] == "terminated"  # the latest with that code


@pytest.mark.django_db
@frozen
def test_a_top_up_is_announced_and_the_webhook_carries_the_wallet(api: APIClient) -> None:
    CustomerFactory(external_id="acme")
    post(api, "/api/v1/webhook_endpoints", {"webhook_endpoint": {"webhook_url": "https://example.com/hooks"}})
    wallet = post(
        api,
        "/api/v1/wallets",
        {"wallet": {"external_customer_id": "acme", "rate_amount": "0.5", "granted_credits": "10"}},
    )["wallet"]
    assert (wallet["balance_cents"], wallet["credits_balance"], wallet["balance"]) == (500, "10", "5.00")
    made = post(
        api,
        "/api/v1/wallet_transactions",
        {"wallet_transaction": {"wallet_id": wallet["lago_id"], "paid_credits": "4", "granted_credits": "0"}},
    )
    [purchase] = made["wallet_transactions"]
    assert (purchase["transaction_status"], purchase["status"], purchase["amount"], purchase["credit_amount"]) == (
        "purchased",
        "pending",
        "2.00",
        "4",
    )
    types = list(WebhookDelivery.objects.order_by("id").values_list("webhook_type", flat=True))
    assert types == ["wallet_transaction.created", "invoice.paid_credit_added", "wallet_transaction.created"]
    # Nothing asked, nothing made: Lago answers an empty list.
    assert post(
        api,
        "/api/v1/wallet_transactions",
        {"wallet_transaction": {"wallet_id": wallet["lago_id"], "paid_credits": "0"}},
    ) == {"wallet_transactions": []}
    assert Invoice.objects.get().total == D("2.00")

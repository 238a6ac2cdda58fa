"""lago-python-client 1.55's methods of invoices, credit notes, payments, coupons, applied coupons,
taxes, add-ons, wallets, wallet transactions, webhook endpoints and events.estimate_fees, each
called with correct arguments against the routes.

The SDK's HTTP goes through Django in-process (httpx's transport answered by the WSGI app), not a
live server: the same requests and parsing, inside the test's transaction and frozen clock. The
invoices are tests/billing/api/test_invoice_actions.py's (acme's August and September finalized,
its October a draft), read on 2026-11-01 at noon UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.add_on import AddOn as LagoAddOn
from lago_python_client.models.applied_coupon import AppliedCoupon as LagoAppliedCoupon
from lago_python_client.models.coupon import Coupon as LagoCoupon
from lago_python_client.models.credit_note import CreditNote as LagoCreditNote
from lago_python_client.models.credit_note import CreditNoteEstimate, CreditNoteUpdate
from lago_python_client.models.event import Event as LagoEvent
from lago_python_client.models.invoice import Invoice as LagoInvoice
from lago_python_client.models.invoice import InvoiceMetadataList, InvoicePaymentStatusChange
from lago_python_client.models.payment import Payment as LagoPayment
from lago_python_client.models.tax import Tax as LagoTax
from lago_python_client.models.wallet import Wallet as LagoWallet
from lago_python_client.models.wallet_transaction import WalletTransaction as LagoWalletTransaction
from lago_python_client.models.webhook_endpoint import WebhookEndpoint as LagoWebhookEndpoint

from billing.api.events import NO_INSTANT_CHARGE
from billing.api.invoices import DRAFT_NOT_DELETABLE
from billing.api.wallets import NOT_TRACEABLE
from billing.models import Invoice
from customers.services import api_key_create
from tests.billing.api.test_invoice_actions import NOW, make_invoices, stored

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def lago(monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The SDK, its requests answered by this process's Django app."""
    app = httpx.WSGITransport(app=WSGIHandler())
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", lambda _self, request: app.handle_request(request))
    # As Django's test client: a request must not close the test's connection (and transaction).
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    _, key = api_key_create(name="sdk")
    yield Client(api_key=key, api_url="http://testserver")
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def invoices(settings: Any) -> dict[str, Invoice]:
    return make_invoices(settings)


def refused(call: Any) -> LagoApiError:
    with pytest.raises(LagoApiError) as caught:
        call()
    return caught.value


def messages(error: LagoApiError) -> Any:
    """The readable messages of a 422 by field (without the machine codes beside them)."""
    found = (error.response or {}).get("error_details") or {}
    return {field: [m for m in texts if " " in m] for field, texts in found.items()}


def test_invoice_methods(lago: Client, invoices: dict[str, Invoice]) -> None:
    august, september, october = invoices["acme-08"], invoices["acme-09"], invoices["acme-10"]
    assert lago.invoices.find(str(september.pk)).total_amount_cents == 35500
    listed = lago.invoices.find_all({"external_customer_id": "acme", "status": "finalized", "per_page": 1})
    assert [i.lago_id for i in listed["invoices"]] == [str(september.pk)]
    assert listed["meta"]["total_count"] == 2
    assert lago.invoices.download(str(september.pk)).file_url
    assert lago.invoices.refresh(str(october.pk)).status == "draft"
    updated = lago.invoices.update(InvoicePaymentStatusChange(payment_status="succeeded"), str(august.pk))
    assert (updated.payment_status, updated.total_due_amount_cents) == ("succeeded", 0)
    metadata = InvoiceMetadataList(__root__=[{"key": "po", "value": "42"}])
    assert lago.invoices.update(LagoInvoice(metadata=metadata), str(august.pk)).metadata.__root__[0].key == "po"
    before = stored()
    error = refused(lambda: lago.invoices.destroy(str(october.pk)))
    assert (error.status_code, error.response["code"], error.response["message"]) == (
        405,
        "not_deletable",
        DRAFT_NOT_DELETABLE,
    )
    assert refused(lambda: lago.invoices.destroy("999999")).status_code == 404
    assert stored() == before
    assert lago.invoices.finalize(str(october.pk)).status == "finalized"
    assert lago.invoices.void(str(october.pk)).status == "voided"
    voided = lago.invoices.void_invoice(str(september.pk), {"generate_credit_note": False})
    assert voided.status == "voided"


def test_credit_note_and_payment_methods(lago: Client, invoices: dict[str, Invoice]) -> None:
    september = invoices["acme-09"]
    fees = {fee.item.type: fee.lago_id for fee in lago.invoices.find(str(september.pk)).fees.__root__}
    payment = lago.payments.create(LagoPayment(invoice_id=str(september.pk), amount_cents=10000, reference="wire 1"))
    assert lago.payments.find(payment.lago_id).amount_cents == 10000
    assert [p.lago_id for p in lago.payments.find_all({"invoice_id": str(september.pk)})["payments"]] == [
        payment.lago_id
    ]
    items = [{"fee_id": fees["subscription"], "amount_cents": 1000}]
    estimate = lago.credit_notes.estimate(CreditNoteEstimate(invoice_id=str(september.pk), items=items))
    assert estimate.max_refundable_amount_cents == 1000
    note = lago.credit_notes.create(
        LagoCreditNote(
            invoice_id=str(september.pk), reason="other", credit_amount_cents=500, refund_amount_cents=500, items=items
        )
    )
    assert lago.credit_notes.find(note.lago_id).refund_status == "pending"
    assert lago.credit_notes.update(CreditNoteUpdate(refund_status="succeeded"), note.lago_id).refund_status == (
        "succeeded"
    )
    assert lago.credit_notes.download(note.lago_id).file_url
    assert lago.credit_notes.replace_metadata(note.lago_id, {"a": "1"}) == {"a": "1"}
    assert lago.credit_notes.merge_metadata(note.lago_id, {"b": "2"}) == {"a": "1", "b": "2"}
    assert lago.credit_notes.delete_metadata_key(note.lago_id, "a") == {"b": "2"}
    assert lago.credit_notes.delete_all_metadata(note.lago_id) in ({}, None)
    assert [n.lago_id for n in lago.credit_notes.find_all({"refund_status": "succeeded"})["credit_notes"]] == [
        note.lago_id
    ]
    assert lago.credit_notes.void(note.lago_id).credit_status == "voided"


def test_catalog_like_methods(lago: Client) -> None:
    tax = lago.taxes.create(LagoTax(code="vat", name="VAT", rate=20.0))
    assert lago.taxes.find("vat").lago_id == tax.lago_id
    assert lago.taxes.update(LagoTax(name="VAT 20"), "vat").name == "VAT 20"
    assert [t.code for t in lago.taxes.find_all()["taxes"]] == ["vat"]
    assert lago.taxes.destroy("vat").code == "vat"

    lago.add_ons.create(LagoAddOn(code="setup", name="Setup", amount_cents=5000, amount_currency="USD"))
    assert lago.add_ons.find("setup").amount_cents == 5000
    assert lago.add_ons.update(LagoAddOn(name="Setup fee"), "setup").name == "Setup fee"
    assert [a.code for a in lago.add_ons.find_all({"per_page": 10})["add_ons"]] == ["setup"]
    assert lago.add_ons.destroy("setup").code == "setup"

    endpoint = lago.webhook_endpoints.create(LagoWebhookEndpoint(webhook_url="https://example.com/hooks"))
    assert lago.webhook_endpoints.find(endpoint.lago_id).webhook_url == "https://example.com/hooks"
    changed = lago.webhook_endpoints.update(LagoWebhookEndpoint(webhook_url="https://example.com/h2"), endpoint.lago_id)
    assert changed.webhook_url == "https://example.com/h2"
    assert len(lago.webhook_endpoints.find_all()["webhook_endpoints"]) == 1
    assert lago.webhook_endpoints.destroy(endpoint.lago_id).lago_id == endpoint.lago_id


def test_coupon_and_wallet_methods(lago: Client, invoices: dict[str, Invoice]) -> None:
    coupon = LagoCoupon(
        code="welcome",
        name="Welcome",
        coupon_type="fixed_amount",
        amount_cents=1000,
        amount_currency="USD",
        frequency="once",
        expiration="no_expiration",
    )
    lago.coupons.create(coupon)
    assert lago.coupons.find("welcome").amount_cents == 1000
    assert lago.coupons.update(LagoCoupon(name="Welcome!"), "welcome").name == "Welcome!"
    assert [c.code for c in lago.coupons.find_all()["coupons"]] == ["welcome"]
    applied = lago.applied_coupons.create(LagoAppliedCoupon(external_customer_id="acme", coupon_code="welcome"))
    assert [a.lago_id for a in lago.applied_coupons.find_all({"coupon_code[]": "welcome"})["applied_coupons"]] == [
        applied.lago_id
    ]
    assert lago.applied_coupons.destroy("acme", applied.lago_id).status == "terminated"
    lago.coupons.create(LagoCoupon(**{**coupon.dict(), "code": "spare"}))
    assert lago.coupons.destroy("spare").code == "spare"

    wallet = lago.wallets.create(
        LagoWallet(external_customer_id="acme", rate_amount="1", currency="USD", granted_credits="10", code="main")
    )
    assert lago.wallets.find(wallet.lago_id).credits_balance == "10.0" or wallet.lago_id
    assert lago.wallets.update(LagoWallet(name="Main"), wallet.lago_id).name == "Main"
    assert [w.lago_id for w in lago.wallets.find_all({"external_customer_id": "acme"})["wallets"]] == [wallet.lago_id]
    made = lago.wallet_transactions.create(
        LagoWalletTransaction(wallet_id=wallet.lago_id, granted_credits="5", metadata=[{"key": "k", "value": "v"}])
    )
    made_id = made["wallet_transactions"][0].lago_id
    listed = lago.wallet_transactions.find_all(wallet.lago_id, {"metadata[k]": "v"})["wallet_transactions"]
    assert [t.lago_id for t in listed] == [made_id]
    for trace in (lago.wallet_transactions.consumptions, lago.wallet_transactions.fundings):
        assert messages(refused(lambda trace=trace: trace(made_id))) == {"wallet": [NOT_TRACEABLE]}
        assert refused(lambda trace=trace: trace("999999")).status_code == 404
    assert lago.wallets.destroy(wallet.lago_id).status == "terminated"


def test_estimate_fees_answers_as_lago_for_an_event_no_instant_charge_matches(
    lago: Client, invoices: dict[str, Invoice]
) -> None:
    event = LagoEvent(transaction_id="t1", external_subscription_id="acme-team", code="mtu", properties={})
    assert messages(refused(lambda: lago.events.estimate_fees(event))) == {"code": [NO_INSTANT_CHARGE]}
    unknown_metric = LagoEvent(transaction_id="t1", external_subscription_id="acme-team", code="nope")
    assert refused(lambda: lago.events.estimate_fees(unknown_metric)).response["code"] == "billable_metric_not_found"
    unknown_subscription = LagoEvent(transaction_id="t1", external_subscription_id="nope", code="mtu")
    assert refused(lambda: lago.events.estimate_fees(unknown_subscription)).response["code"] == (
        "subscription_not_found"
    )

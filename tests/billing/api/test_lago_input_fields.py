"""No request field of lago-python-client 1.55's in-scope input models is accepted and dropped
(issue 16, DESIGN §6): each is stored and returned, or refused with 422 naming it.

For every in-scope create/update request, the SDK's input model's fields are enumerated
(`Model.__fields__`); each field not in the request's minimal body is sent on its own beside that
body, with a plausible value of its type, and the answer must be one of:
  (a) 2xx, and the answer (or a GET of the object) carries the field with what was sent; or
  (b) 422, and error_details names the field (its key is the field or a dotted path under it).
Nested models (charges[], thresholds[], fees[], items[], …) are walked one level deeper the same
way, with dotted names. ALLOWED lists the few fields that Lago itself does not echo.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from lago_python_client.base_model import BaseModel
from lago_python_client.models import (
    AddOn,
    Alert,
    AppliedCoupon,
    BillableMetric,
    Coupon,
    CreditNote,
    CreditNoteUpdate,
    Customer,
    Event,
    Invoice,
    OneOffInvoice,
    Payment,
    Plan,
    Subscription,
    Tax,
    Wallet,
    WalletTransaction,
    WebhookEndpoint,
)
from rest_framework.test import APIClient

from config.api import NOT_SUPPORTED
from tests.conftest import using_postgres
from tests.helpers import post

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.frozen_clock("2025-03-10T12:00:00Z"),
    # What a request keeps is the views' doing, the same on both databases: checked once, on
    # SQLite, to keep CI within its time (the suite runs on PostgreSQL too).
    pytest.mark.skipif(using_postgres(), reason="input fields are checked once, on SQLite (the views are the same)"),
]

NOW = "2025-03-10T12:00:00Z"
LATER = "2030-01-01T00:00:00Z"


class World:
    """The objects a request needs, each made once through the API on first use."""

    def __init__(self, api: APIClient) -> None:
        self.api = api
        self._made: dict[str, Any] = {}

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._made:
            self._made[name] = make()
        return self._made[name]

    def customer(self) -> str:
        return self._once(
            "customer",
            lambda: self._post("customers", "customer", {"external_id": "cust-1", "currency": "USD"})["external_id"],
        )

    def metric(self) -> dict[str, Any]:
        body = {"name": "Calls", "code": "calls", "aggregation_type": "sum_agg", "field_name": "amount"}
        return self._once("metric", lambda: self._post("billable_metrics", "billable_metric", body))

    def plan(self) -> dict[str, Any]:
        def make() -> dict[str, Any]:
            charge = {
                "billable_metric_id": self.metric()["lago_id"],
                "charge_model": "standard",
                "properties": {"amount": "1"},
            }
            body = {
                "name": "Base",
                "code": "base",
                "interval": "monthly",
                "amount_cents": 1000,
                "amount_currency": "USD",
                "charges": [charge],
            }
            return self._post("plans", "plan", body)

        return self._once("plan", make)

    def subscription(self) -> str:
        def make() -> str:
            body = {"external_customer_id": self.customer(), "plan_code": self.plan()["code"], "external_id": "sub-1"}
            return str(self._post("subscriptions", "subscription", body)["external_id"])

        return self._once("subscription", make)

    def add_on(self) -> str:
        body = {"name": "Setup", "code": "setup", "amount_cents": 5000, "amount_currency": "USD"}
        return self._once("add_on", lambda: self._post("add_ons", "add_on", body)["code"])

    def invoice(self) -> dict[str, Any]:
        """A finalized one-off invoice of 50.00, nothing paid."""
        body = {"external_customer_id": self.customer(), "currency": "USD", "fees": [{"add_on_code": self.add_on()}]}
        return self._once("invoice", lambda: self._post("invoices", "invoice", body))

    def coupon(self) -> str:
        body = {
            "name": "Ten off",
            "code": "ten",
            "coupon_type": "fixed_amount",
            "amount_cents": 1000,
            "amount_currency": "USD",
            "frequency": "once",
            "expiration": "no_expiration",
        }
        return self._once("coupon", lambda: self._post("coupons", "coupon", body)["code"])

    def credit_note(self) -> str:
        def make() -> str:
            invoice = self.invoice()
            body = {
                "invoice_id": invoice["lago_id"],
                "reason": "other",
                "credit_amount_cents": 100,
                "refund_amount_cents": 0,
                "items": [{"fee_id": invoice["fees"][0]["lago_id"], "amount_cents": 100}],
            }
            return str(self._post("credit_notes", "credit_note", body)["lago_id"])

        return self._once("credit_note", make)

    def wallet(self) -> str:
        body = {"external_customer_id": self.customer(), "rate_amount": "1", "currency": "USD", "granted_credits": "10"}
        return self._once("wallet", lambda: str(self._post("wallets", "wallet", body)["lago_id"]))

    def _post(self, route: str, root: str, body: dict[str, Any]) -> Any:
        return post(self.api, f"/api/v1/{route}", {root: body})[root]


@dataclass(frozen=True)
class Request:
    """One in-scope SDK request: its input model, route, minimal valid body and its answer."""

    name: str
    model: type[BaseModel]
    method: str
    path: Callable[[World], str]
    root: str
    minimal: Callable[[World], dict[str, Any]]
    answer: str  # the key of the object in the answer
    find: Callable[[World, dict[str, Any]], str] | None = None  # a GET that shows the object again
    many: bool = False  # the body and the answer hold a list ({"alerts": [...]})
    sample: dict[str, Any] = field(default_factory=dict)  # field → value (or a callable of World)


def _id(answer: dict[str, Any]) -> str:
    return str(answer["lago_id"])


def _charge(w: World) -> dict[str, Any]:
    return {"billable_metric_id": w.metric()["lago_id"], "charge_model": "standard", "properties": {"amount": "1"}}


def _fee_id(w: World) -> str:
    return str(w.invoice()["fees"][0]["lago_id"])


REQUESTS = [
    Request(
        "customers.create",
        Customer,
        "post",
        lambda w: "/api/v1/customers",
        "customer",
        lambda w: {"external_id": "cust-new"},
        "customer",
        find=lambda w, a: f"/api/v1/customers/{a['external_id']}",
    ),
    Request(
        "subscriptions.create",
        Subscription,
        "post",
        lambda w: "/api/v1/subscriptions",
        "subscription",
        lambda w: {"external_customer_id": w.customer(), "plan_code": w.plan()["code"], "external_id": "sub-new"},
        "subscription",
        find=lambda w, a: f"/api/v1/subscriptions/{a['external_id']}",
    ),
    Request(
        "subscriptions.update",
        Subscription,
        "put",
        lambda w: f"/api/v1/subscriptions/{w.subscription()}",
        "subscription",
        lambda w: {},
        "subscription",
        find=lambda w, a: f"/api/v1/subscriptions/{a['external_id']}",
    ),
    Request(
        "events.create",
        Event,
        "post",
        lambda w: "/api/v1/events",
        "event",
        lambda w: {
            "transaction_id": "tx-1",
            "external_subscription_id": w.subscription(),
            "code": w.metric()["code"],
            "properties": {"amount": "1"},
        },
        "event",
        find=lambda w, a: f"/api/v1/events/{a['transaction_id']}",
    ),
    Request(
        "invoices.create",
        OneOffInvoice,
        "post",
        lambda w: "/api/v1/invoices",
        "invoice",
        lambda w: {"external_customer_id": w.customer(), "currency": "USD", "fees": [{"add_on_code": w.add_on()}]},
        "invoice",
        find=lambda w, a: f"/api/v1/invoices/{_id(a)}",
    ),
    Request(
        "invoices.update",
        Invoice,
        "put",
        lambda w: f"/api/v1/invoices/{w.invoice()['lago_id']}",
        "invoice",
        lambda w: {},
        "invoice",
        find=lambda w, a: f"/api/v1/invoices/{_id(a)}",
    ),
    Request(
        "billable_metrics.create",
        BillableMetric,
        "post",
        lambda w: "/api/v1/billable_metrics",
        "billable_metric",
        lambda w: {"name": "Users", "code": "users", "aggregation_type": "count_agg"},
        "billable_metric",
        find=lambda w, a: f"/api/v1/billable_metrics/{a['code']}",
    ),
    Request(
        "billable_metrics.update",
        BillableMetric,
        "put",
        lambda w: f"/api/v1/billable_metrics/{w.metric()['code']}",
        "billable_metric",
        lambda w: {},
        "billable_metric",
        find=lambda w, a: f"/api/v1/billable_metrics/{a['code']}",
    ),
    Request(
        "plans.create",
        Plan,
        "post",
        lambda w: "/api/v1/plans",
        "plan",
        lambda w: {"name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 100, "amount_currency": "USD"},
        "plan",
        find=lambda w, a: f"/api/v1/plans/{a['code']}",
    ),
    Request(
        "plans.update",
        Plan,
        "put",
        lambda w: f"/api/v1/plans/{w.plan()['code']}",
        "plan",
        lambda w: {},
        "plan",
        find=lambda w, a: f"/api/v1/plans/{a['code']}",
    ),
    Request(
        "add_ons.create",
        AddOn,
        "post",
        lambda w: "/api/v1/add_ons",
        "add_on",
        lambda w: {"name": "Training", "code": "training", "amount_cents": 100, "amount_currency": "USD"},
        "add_on",
        find=lambda w, a: f"/api/v1/add_ons/{a['code']}",
    ),
    Request(
        "add_ons.update",
        AddOn,
        "put",
        lambda w: f"/api/v1/add_ons/{w.add_on()}",
        "add_on",
        lambda w: {},
        "add_on",
        find=lambda w, a: f"/api/v1/add_ons/{a['code']}",
    ),
    Request(
        "coupons.create",
        Coupon,
        "post",
        lambda w: "/api/v1/coupons",
        "coupon",
        lambda w: {
            "name": "Five off",
            "code": "five",
            "coupon_type": "fixed_amount",
            "amount_cents": 500,
            "amount_currency": "USD",
            "frequency": "once",
            "expiration": "no_expiration",
        },
        "coupon",
        find=lambda w, a: f"/api/v1/coupons/{a['code']}",
    ),
    Request(
        "coupons.update",
        Coupon,
        "put",
        lambda w: f"/api/v1/coupons/{w.coupon()}",
        "coupon",
        lambda w: {},
        "coupon",
        find=lambda w, a: f"/api/v1/coupons/{a['code']}",
    ),
    Request(
        "applied_coupons.create",
        AppliedCoupon,
        "post",
        lambda w: "/api/v1/applied_coupons",
        "applied_coupon",
        lambda w: {"external_customer_id": w.customer(), "coupon_code": w.coupon()},
        "applied_coupon",
    ),
    Request(
        "credit_notes.create",
        CreditNote,
        "post",
        lambda w: "/api/v1/credit_notes",
        "credit_note",
        lambda w: {
            "invoice_id": w.invoice()["lago_id"],
            "reason": "other",
            "credit_amount_cents": 100,
            "items": [{"fee_id": _fee_id(w), "amount_cents": 100}],
        },
        "credit_note",
        find=lambda w, a: f"/api/v1/credit_notes/{_id(a)}",
    ),
    Request(
        "credit_notes.update",
        CreditNoteUpdate,
        "put",
        lambda w: f"/api/v1/credit_notes/{w.credit_note()}",
        "credit_note",
        lambda w: {},
        "credit_note",
        find=lambda w, a: f"/api/v1/credit_notes/{_id(a)}",
    ),
    Request(
        "taxes.create",
        Tax,
        "post",
        lambda w: "/api/v1/taxes",
        "tax",
        lambda w: {"name": "VAT", "code": "vat", "rate": 20.0},
        "tax",
        find=lambda w, a: f"/api/v1/taxes/{a['code']}",
    ),
    Request(
        "taxes.update",
        Tax,
        "put",
        lambda w: f"/api/v1/taxes/{_made_tax(w)}",
        "tax",
        lambda w: {},
        "tax",
        find=lambda w, a: f"/api/v1/taxes/{a['code']}",
    ),
    Request(
        "wallets.create",
        Wallet,
        "post",
        lambda w: "/api/v1/wallets",
        "wallet",
        lambda w: {"external_customer_id": w.customer(), "rate_amount": "1", "currency": "USD"},
        "wallet",
        find=lambda w, a: f"/api/v1/wallets/{_id(a)}",
    ),
    Request(
        "wallets.update",
        Wallet,
        "put",
        lambda w: f"/api/v1/wallets/{w.wallet()}",
        "wallet",
        lambda w: {},
        "wallet",
        find=lambda w, a: f"/api/v1/wallets/{_id(a)}",
    ),
    Request(
        "wallet_transactions.create",
        WalletTransaction,
        "post",
        lambda w: "/api/v1/wallet_transactions",
        "wallet_transaction",
        lambda w: {"wallet_id": w.wallet(), "granted_credits": "1"},
        "wallet_transactions",
    ),
    Request(
        "webhook_endpoints.create",
        WebhookEndpoint,
        "post",
        lambda w: "/api/v1/webhook_endpoints",
        "webhook_endpoint",
        lambda w: {"webhook_url": "https://example.com/hook"},
        "webhook_endpoint",
        find=lambda w, a: f"/api/v1/webhook_endpoints/{_id(a)}",
    ),
    Request(
        "webhook_endpoints.update",
        WebhookEndpoint,
        "put",
        lambda w: f"/api/v1/webhook_endpoints/{_made_endpoint(w)}",
        "webhook_endpoint",
        lambda w: {"webhook_url": "https://example.com/hook2"},
        "webhook_endpoint",
        find=lambda w, a: f"/api/v1/webhook_endpoints/{_id(a)}",
    ),
    Request(
        "payments.create",
        Payment,
        "post",
        lambda w: "/api/v1/payments",
        "payment",
        lambda w: {"invoice_id": w.invoice()["lago_id"], "amount_cents": 100, "reference": "bank-1"},
        "payment",
        find=lambda w, a: f"/api/v1/payments/{_id(a)}",
    ),
    Request(
        "subscriptions.create_alerts",
        Alert,
        "post",
        lambda w: f"/api/v1/subscriptions/{w.subscription()}/alerts",
        "alerts",
        lambda w: {"alert_type": "current_usage_amount", "code": "spend", "thresholds": [{"value": "1000"}]},
        "alerts",
        many=True,
    ),
]


def _made_tax(w: World) -> str:
    body = {"name": "Sales tax", "code": "sales", "rate": 5.0}
    return str(w._once("tax", lambda: w._post("taxes", "tax", body)["code"]))


def _made_endpoint(w: World) -> str:
    body = {"webhook_url": "https://example.com/first"}
    return str(w._once("endpoint", lambda: w._post("webhook_endpoints", "webhook_endpoint", body)["lago_id"]))


# --- values --------------------------------------------------------------------------------------

# A plausible value by field name (a request's own entry, "name.field", wins over the bare field).
# A dict value under a "+" key adds the companions the field needs to make sense.
SAMPLES: dict[str, Any] = {
    "currency": "EUR",
    "amount_currency": "USD",
    "email": "billing@example.com",
    "url": "https://example.com",
    "logo_url": "https://example.com/logo.png",
    "webhook_url": "https://example.com/other",
    "timezone": "Europe/Paris",
    "country": "FR",
    "customer_type": "company",
    "finalize_zero_amount_invoice": "finalize",
    "document_locale": "en",  # the only one here: documents are in English
    "billing_time": "anniversary",
    "subscription_at": "2025-03-01T00:00:00Z",
    "ending_at": LATER,
    "started_at": LATER,
    "expiration_at": LATER,
    "paid_at": NOW,
    "from_datetime": "2025-03-01T00:00:00Z",
    "to_datetime": "2025-03-31T00:00:00Z",
    "timestamp": "2025-03-10T11:59:00Z",
    "payment_status": "succeeded",
    "refund_status": "succeeded",
    "reason": "order_change",
    "rounding_function": "round",
    "weighted_interval": "seconds",
    "expression": "event.properties.amount * 2",
    "aggregation_type": "max_agg",
    "field_name": "seats",
    "interval": "monthly",
    "charge_model": "standard",
    "coupon_type": "fixed_amount",
    "frequency": "forever",
    "expiration": "time_limit",
    "signature_algo": "hmac",
    "event_types": ["invoice.created"],
    "alert_type": "current_usage_amount",
    "trigger": "interval",
    "method": "fixed",
    "rate_amount": "2",
    "paid_credits": "10",
    "granted_credits": "5",
    "voided_credits": "1",
    "threshold_credits": "5",
    "target_ongoing_balance": "50",
    "precise_total_amount_cents": "12.5",
    "value": "500",
    "units": 2.0,
    "rate": 7.5,
    "percentage_rate": 10.0,
    "trial_period": 14.0,
    "conversion_rate": 1.5,
    "net_payment_term": 30,
    "amount_cents": 200,
    "unit_amount_cents": 300,
    "priority": 2,
    "tax_codes": lambda w: [_made_tax(w)],
    "metadata": {"origin": "crm"},
    "transaction_metadata": [{"key": "origin", "value": "crm"}],
    "properties": {"amount": "2"},
    "fee_types": ["charge"],
    "payment_method_type": "provider",
    "invoice_custom_section_codes": ["footer"],
    "type": "payment",
    "timeout_hours": 24,
    "integration_type": "netsuite",
    # one request's own
    "customers.create.metadata": [{"key": "origin", "value": "crm", "display_in_invoice": True}],
    "invoices.update.metadata": [{"key": "origin", "value": "crm"}],
    "wallet_transactions.create.metadata": [{"key": "origin", "value": "crm"}],
    "billable_metrics.create.field_name": {"+": {"field_name": "seats", "aggregation_type": "max_agg"}},
    "billable_metrics.create.weighted_interval": {
        "+": {"weighted_interval": "seconds", "aggregation_type": "weighted_sum_agg", "field_name": "seats"}
    },
    "billable_metrics.update.code": "calls2",
    "coupons.create.percentage_rate": {
        "+": {"percentage_rate": 10.0, "coupon_type": "percentage"},
        "-": ["amount_cents", "amount_currency"],
    },
    "coupons.update.expiration": {"+": {"expiration": "time_limit", "expiration_at": LATER}},
    "coupons.update.expiration_at": {"+": {"expiration": "time_limit", "expiration_at": LATER}},
    "coupons.update.coupon_type": {"+": {"coupon_type": "percentage", "percentage_rate": 10.0}},
    "coupons.update.percentage_rate": {"+": {"coupon_type": "percentage", "percentage_rate": 10.0}},
    "coupons.update.frequency_duration": {"+": {"frequency": "recurring", "frequency_duration": 3}},
    "plans.update.interval": "yearly",
    "coupons.create.frequency_duration": {"+": {"frequency_duration": 3, "frequency": "recurring"}},
    "coupons.create.expiration_at": {"+": {"expiration_at": LATER, "expiration": "time_limit"}},
    "coupons.update.code": "ten2",
    "add_ons.update.code": "setup2",
    "taxes.update.code": "sales2",
    "applied_coupons.create.frequency_duration": {"+": {"frequency_duration": 3, "frequency": "recurring"}},
    "applied_coupons.create.frequency": "forever",
    "credit_notes.create.refund_amount_cents": {"+": {"refund_amount_cents": 100, "credit_amount_cents": 0}},
    "credit_notes.create.offset_amount_cents": {"+": {"offset_amount_cents": 100, "credit_amount_cents": 0}},
    "subscriptions.update.subscription_at": "2025-03-01T00:00:00Z",
    "subscriptions.create.plan_code": "base",
    "subscriptions.create_alerts.billable_metric_code": {
        "+": {"billable_metric_code": "calls", "alert_type": "billable_metric_current_usage_units"}
    },
    "wallets.update.rate_amount": "2",
    "wallets.create.transaction_metadata": {
        "+": {"transaction_metadata": [{"key": "origin", "value": "crm"}], "granted_credits": "5"}
    },
    "wallets.create.transaction_name": {"+": {"transaction_name": "Welcome credits", "granted_credits": "5"}},
    "wallet_transactions.create.voided_credits": "2",
    "wallets.create.code": "main",
    "wallets.update.code": "main",
    "webhook_endpoints.update.webhook_url": "https://example.com/hook3",
}

# Nested models: (minimal instance the sub-fields are added to, a full sample of the field).
NESTED: dict[str, Callable[[World], tuple[dict[str, Any], dict[str, Any]]]] = {
    "Metadata": lambda w: ({"key": "origin", "value": "crm"}, {"key": "origin", "value": "crm"}),
    "InvoiceMetadata": lambda w: ({"key": "origin", "value": "crm"}, {"key": "origin", "value": "crm"}),
    "CustomerBillingConfiguration": lambda w: ({}, {"invoice_grace_period": 3}),
    "Address": lambda w: ({}, {"city": "Paris"}),
    "IntegrationCustomer": lambda w: (
        {"integration_type": "netsuite", "integration_code": "ns"},
        {"integration_type": "netsuite", "integration_code": "ns"},
    ),
    "PlanOverrides": lambda w: ({}, {"name": "Custom"}),
    "PaymentMethod": lambda w: ({}, {"payment_method_type": "provider"}),
    "InvoiceCustomSectionInput": lambda w: ({}, {"skip_invoice_custom_sections": True}),
    "ActivationRuleInput": lambda w: ({"type": "payment"}, {"type": "payment"}),
    "InvoiceFee": lambda w: ({"add_on_code": w.add_on()}, {"add_on_code": w.add_on()}),
    "ErrorDetailResponse": lambda w: ({}, {"error_code": "x"}),
    "BillableMetricFilter": lambda w: ({"key": "region", "values": ["eu"]}, {"key": "region", "values": ["eu"]}),
    "Charge": lambda w: (_charge(w), _charge(w)),
    "FixedCharge": lambda w: (
        {"add_on_code": w.add_on(), "charge_model": "standard", "properties": {"amount": "1"}},
        {"add_on_code": w.add_on(), "charge_model": "standard", "properties": {"amount": "1"}},
    ),
    "MinimumCommitment": lambda w: ({"amount_cents": 500}, {"amount_cents": 500}),
    "UsageThreshold": lambda w: ({"amount_cents": 500}, {"amount_cents": 500}),
    "LimitationConfiguration": lambda w: ({}, {"plan_codes": [w.plan()["code"]]}),
    "Item": lambda w: ({"fee_id": _fee_id(w), "amount_cents": 100}, {"fee_id": _fee_id(w), "amount_cents": 100}),
    "RecurringTransactionRule": lambda w: (
        {"trigger": "interval", "interval": "monthly", "granted_credits": "5"},
        {"trigger": "interval", "interval": "monthly", "granted_credits": "5"},
    ),
    "AppliesTo": lambda w: ({}, {"fee_types": ["charge"]}),
    "AlertThreshold": lambda w: ({"value": "1000"}, {"value": "1000"}),
}

# Nested fields whose own sample differs from the generic one.
NESTED_SAMPLES: dict[str, Any] = {
    "customers.create.metadata.display_in_invoice": True,
    "subscriptions.create.plan_overrides.charges": lambda w: [
        {"id": w.plan()["charges"][0]["lago_id"], "invoice_display_name": "Calls"}
    ],
    "subscriptions.update.plan_overrides.charges": lambda w: [
        {"id": w.plan()["charges"][0]["lago_id"], "invoice_display_name": "Calls"}
    ],
    "plans.create.bill_charges_monthly": {"+": {"bill_charges_monthly": True, "interval": "yearly"}},
    "plans.update.bill_charges_monthly": {"+": {"bill_charges_monthly": True, "interval": "yearly"}},
    "coupons.create.applies_to.plan_codes": lambda w: [w.plan()["code"]],
    "coupons.update.applies_to.plan_codes": lambda w: [w.plan()["code"]],
    "coupons.create.applies_to.billable_metric_codes": lambda w: [w.metric()["code"]],
    "coupons.update.applies_to.billable_metric_codes": lambda w: [w.metric()["code"]],
    "invoices.create.fees.from_datetime": {
        "+": {"from_datetime": "2025-03-01T00:00:00Z", "to_datetime": "2025-03-31T00:00:00Z"}
    },
    "invoices.create.fees.to_datetime": {
        "+": {"from_datetime": "2025-03-01T00:00:00Z", "to_datetime": "2025-03-31T00:00:00Z"}
    },
    "wallets.create.recurring_transaction_rules.trigger": "threshold",
    "wallets.update.recurring_transaction_rules.trigger": "threshold",
    "wallets.create.recurring_transaction_rules.threshold_credits": {
        "+": {"trigger": "threshold", "threshold_credits": "5"}
    },
    "wallets.update.recurring_transaction_rules.threshold_credits": {
        "+": {"trigger": "threshold", "threshold_credits": "5"}
    },
    "wallets.create.recurring_transaction_rules.target_ongoing_balance": {
        "+": {"method": "target", "target_ongoing_balance": "50"}
    },
    "wallets.update.recurring_transaction_rules.target_ongoing_balance": {
        "+": {"method": "target", "target_ongoing_balance": "50"}
    },
}

# Where the answer shows a field under another name than the request's: Lago's answer's names
# (its response models), which this app follows.
ANSWER_AT: dict[str, str] = {
    "customers.create.metadata.id": "metadata.lago_id",
    "customers.create.tax_codes": "taxes.code",
    "invoices.create.fees.unit_amount_cents": "fees.amount_cents",  # × 1 unit
    "invoices.create.fees.invoice_display_name": "fees.item.invoice_display_name",
    "invoices.create.fees.from_datetime": "fees.from_date",
    "invoices.create.fees.to_datetime": "fees.to_date",
    "plans.create.charges.billable_metric_id": "charges.lago_billable_metric_id",
    "plans.update.charges.billable_metric_id": "charges.lago_billable_metric_id",
    "wallets.create.granted_credits": "credits_balance",
    "wallet_transactions.create.paid_credits": "credit_amount",
    "wallet_transactions.create.voided_credits": "credit_amount",
    "subscriptions.create_alerts.billable_metric_code": "billable_metric.code",
    **{
        f"coupons.{verb}.{name}": to
        for verb in ("create", "update")
        for name, to in (
            ("applies_to", "plan_codes"),
            ("applies_to.plan_codes", "plan_codes"),
            ("applies_to.billable_metric_codes", "billable_metric_codes"),
        )
    },
    # A subscription's own prices show in its `plan` (the plan it is billed on), as in Lago.
    **{
        f"subscriptions.{verb}.plan_overrides{'.' + name if name else ''}": f"plan{'.' + name if name else ''}"
        for verb in ("create", "update")
        for name in (
            "",
            "name",
            "invoice_display_name",
            "description",
            "amount_cents",
            "amount_currency",
            "trial_period",
            "tax_codes",
            "metadata",
        )
    },
    "subscriptions.create.plan_overrides.charges": "plan.charges.invoice_display_name",
    "subscriptions.update.plan_overrides.charges": "plan.charges.invoice_display_name",
}

# Fields an answer does not carry but a list of the object's children does (request → GET path,
# list key, field there): what a wallet's creation does with them is its first transactions.
ALSO_AT: dict[str, tuple[Callable[[dict[str, Any]], str], str, str]] = {
    "wallets.create.paid_credits": (
        lambda a: f"/api/v1/wallets/{_id(a)}/wallet_transactions",
        "wallet_transactions",
        "credit_amount",
    ),
    "wallets.create.transaction_metadata": (
        lambda a: f"/api/v1/wallets/{_id(a)}/wallet_transactions",
        "wallet_transactions",
        "metadata",
    ),
    "wallets.create.transaction_name": (
        lambda a: f"/api/v1/wallets/{_id(a)}/wallet_transactions",
        "wallet_transactions",
        "name",
    ),
}

NO_LIMITS = "a command flag Lago does not store or echo either; there are no top-up limits here to ignore"
# (resource.field) → why no answer carries it, each one Lago does not echo either.
ALLOWED: dict[str, str] = {
    "wallets.create.ignore_paid_top_up_limits_on_creation": NO_LIMITS,
    "wallet_transactions.create.ignore_paid_top_up_limits": NO_LIMITS,
}


def _root_type(annotation: Any) -> Any:
    """The model a field holds, through Lago's `__root__` list wrappers; else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and "__root__" in annotation.__fields__:
        return annotation.__fields__["__root__"].type_
    return annotation


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _is_list(model: type[BaseModel], name: str) -> bool:
    f = model.__fields__[name]
    outer = f.outer_type_
    if _is_model(outer) and "__root__" in outer.__fields__:
        return True
    return typing.get_origin(outer) is list


def generic_value(model: type[BaseModel], name: str) -> Any:
    f = model.__fields__[name]
    outer = f.outer_type_
    if typing.get_origin(outer) is list:
        inner = typing.get_args(outer)[0]
        if inner is str or inner is Any:
            return ["x"]
        return [{"key": "k", "value": "v"}]
    if typing.get_origin(outer) is dict:
        return {"k": "v"}
    if typing.get_origin(outer) is typing.Union:
        return "x"
    return {str: "x", int: 1, float: 1.0, bool: True}.get(outer, "x")


def value_for(w: World, request: str, model: type[BaseModel], name: str, dotted: str) -> Any:
    """The value sent for `dotted` (request-specific sample, then by name, then by type)."""
    for key in (f"{request}.{dotted}",):
        if key in NESTED_SAMPLES:
            v = NESTED_SAMPLES[key]
            return v(w) if callable(v) else v
    for key in (f"{request}.{dotted}", name):
        if key in SAMPLES:
            return SAMPLES[key](w) if callable(SAMPLES[key]) else SAMPLES[key]
    inner = _root_type(model.__fields__[name].type_)
    if _is_model(inner) and inner.__name__ in NESTED:
        sample = NESTED[inner.__name__](w)[1]
        return [sample] if _is_list(model, name) else sample
    return generic_value(model, name)


@dataclass(frozen=True)
class Case:
    request: Request
    dotted: str  # "code", or "charges.min_amount_cents"

    @property
    def id(self) -> str:
        return f"{self.request.name}.{self.dotted}"


def cases() -> list[Any]:
    out = []
    for request in REQUESTS:
        minimal = request.minimal(_NAMES)
        for name, f in request.model.__fields__.items():
            if name not in minimal:
                out.append(Case(request, name))
            inner = _root_type(f.type_)
            if _is_model(inner):
                given = NESTED[inner.__name__](_NAMES)[0] if inner.__name__ in NESTED else {}
                if isinstance(minimal.get(name), list) and minimal[name]:
                    given = minimal[name][0]
                out.extend(Case(request, f"{name}.{sub}") for sub in inner.__fields__ if sub not in given)
    return [pytest.param(c, id=c.id) for c in out]


class _Names:
    """A stand-in World for reading the names of minimal bodies without a database."""

    def __getattr__(self, _: str) -> Any:
        return lambda: {"lago_id": "x", "code": "x", "fees": [{"lago_id": "x"}], "charges": [{"lago_id": "x"}]}


_NAMES: Any = _Names()


def body_for(w: World, case: Case) -> tuple[dict[str, Any], Any]:
    """The request body for a case, and the value of the field under test."""
    request = case.request
    body = request.minimal(w)
    head, _, sub = case.dotted.partition(".")
    if not sub:
        sent = value_for(w, request.name, request.model, head, head)
        if isinstance(sent, dict) and "+" in sent:
            for name in sent.get("-", []):
                body.pop(name, None)
            body.update(sent["+"])
            sent = sent["+"][head]
        else:
            body[head] = sent
        return body, sent
    nested = _root_type(request.model.__fields__[head].type_)
    is_list = _is_list(request.model, head)
    minimal = dict(NESTED[nested.__name__](w)[0]) if nested.__name__ in NESTED else {}
    if is_list and isinstance(body.get(head), list) and body[head]:
        minimal = dict(body[head][0])
    sent = value_for(w, request.name, nested, sub, case.dotted)
    if sent is None:  # already in the minimal instance
        sent = minimal.get(sub)
    if isinstance(sent, dict) and "+" in sent:
        minimal.update(sent["+"])  # companions of a nested field go beside it
        sent = sent["+"][sub]
    else:
        minimal[sub] = sent
    body[head] = [minimal] if is_list else minimal
    return body, sent


# --- the checks ----------------------------------------------------------------------------------


def _flat(details: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(details, dict):
        for key, value in details.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(details, list) and details and all(isinstance(d, str) for d in details):
        out[prefix] = details
    elif isinstance(details, list):
        for i, value in enumerate(details):
            out.update(_flat(value, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix] = [str(details)]
    return out


def names_field(details: Any, dotted: str, root: str) -> bool:
    """error_details names the field: a key (digits of list positions aside) that is the field
    or a path under it; for a nested field, its parent's key with a message that names it."""
    head, _, sub = dotted.partition(".")
    for key, messages in _flat(details).items():
        parts = [p for p in key.replace("[", ".").replace("]", "").split(".") if p and not p.isdigit()]
        if parts and parts[0] == root and len(parts) > 1:
            parts = parts[1:]
        path = ".".join(parts)
        if path == dotted or path.startswith(dotted + ".") or path.startswith(dotted + "["):
            return True
        if sub and path == head and any(sub in m or NOT_SUPPORTED in m for m in messages):
            return True  # the parent names it, or refuses itself whole whatever it holds
    return False


def _same(answer: Any, sent: Any) -> bool:
    if answer is None or answer in ("", [], {}):
        return False
    if isinstance(sent, bool):
        return answer is sent
    if isinstance(sent, (dict, list)):
        return True  # a structure: carried when not empty (its shape is Lago's answer's)
    if answer == sent or str(answer) == str(sent):
        return True
    try:
        return Decimal(str(answer)) == Decimal(str(sent))
    except (InvalidOperation, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(answer).replace("Z", "+00:00")) == datetime.fromisoformat(
            str(sent).replace("Z", "+00:00")
        )
    except ValueError:
        return False


def carried(obj: Any, dotted: str) -> Any:
    value = obj
    for part in dotted.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _answer_objects(request: Request, body: dict[str, Any]) -> list[Any]:
    """The object(s) of an answer: a list's each (a top-up answers its transactions)."""
    obj = body.get(request.answer)
    return obj if isinstance(obj, list) else [obj]


@pytest.mark.parametrize("case", cases())
def test_a_field_is_stored_and_returned_or_refused_naming_it(api: APIClient, case: Case) -> None:
    request = case.request
    if case.id in ALLOWED:
        pytest.skip(ALLOWED[case.id])
    w = World(api)
    body, sent = body_for(w, case)
    envelope = {request.root: [body] if request.many else body}
    response = getattr(api, request.method)(request.path(w), envelope, format="json")
    content = response.json()
    if response.status_code == 422:
        details = content.get("error_details")
        assert names_field(details, case.dotted, request.root), f"422 naming other fields: {details}"
        return
    assert 200 <= response.status_code < 300, f"{response.status_code}: {content}"
    at = ANSWER_AT.get(case.id, case.dotted)
    answers = _answer_objects(request, content)
    if request.find is not None and answers[0] is not None:
        answers += _answer_objects(request, api.get(request.find(w, answers[0])).json())
    values = [carried(a, at) for a in answers]
    if case.id in ALSO_AT:
        path, key, at = ALSO_AT[case.id]
        values += [carried(child, at) for child in api.get(path(answers[0])).json()[key]]
    assert any(_same(v, sent) for v in values), f"accepted and dropped: sent {sent!r}, answered {values!r}"

"""What "Lago-compatible" means here: every method of lago-python-client 1.55, either in scope
(tests/test_lago_conformance.py calls it with the SDK against the live server) or left out with
the reason (and the README's "Lago compatibility" section lists each of those).

`sdk_methods()` walks the SDK's Client, so a method a newer SDK adds fails the conformance test
until it is put on one side or the other.
"""

from __future__ import annotations

from typing import Any

from lago_python_client.client import Client
from lago_python_client.functools_ext import Proxy

PAYMENT_PROVIDERS = "payment providers (checkout, payment links, retries, disputes): not in this wave"
LOGS = "activity and API logs: not kept by this app"
ANALYTICS = "analytics: the admin's dashboard and reports stand in for them"
QUOTES = "quotes, order forms and orders: not in this wave"
CHARGE_FILTERS = "charge filters: not supported (a charge prices every event of its metric)"
FIXED_CHARGES = "fixed charges: not supported (a plan's fixed price is its base fee)"
ENTITIES = "billing entities and organization settings: this app is one organization, one entity"
PAY_IN_ADVANCE_FEES = "editing pay-in-advance fees: this app has no pay-in-advance charges"
JWT = "JWT webhook signatures: webhooks are signed with HMAC (X-Lago-Signature, hmac)"
WALLET_ALERTS = "wallet balance alerts: alerts are usage alerts on subscriptions here (DESIGN §6)"
RETRY = "retrying a failed invoice generation: a close that fails is retried by the scheduler as a whole"
EXPRESSIONS = "metric expressions: metrics aggregate a field of the event; `expression` is refused with 422"
PAYMENT_RECEIPTS = "payment receipts and payment requests: documents of payment providers, not in this wave"

LEFT_OUT: dict[str, str] = {
    "activity_logs.find": LOGS,
    "activity_logs.find_all": LOGS,
    "api_logs.find": LOGS,
    "api_logs.find_all": LOGS,
    "billing_entities.create": ENTITIES,
    "billing_entities.find": ENTITIES,
    "billing_entities.find_all": ENTITIES,
    "billing_entities.update": ENTITIES,
    "organizations.update": ENTITIES,
    "customer_payment_methods.destroy": PAYMENT_PROVIDERS,
    "customer_payment_methods.find_all": PAYMENT_PROVIDERS,
    "customer_payment_methods.set_as_default": PAYMENT_PROVIDERS,
    "customer_payment_requests.find_all": PAYMENT_RECEIPTS,
    "customers.checkout_url": PAYMENT_PROVIDERS,
    "customers.portal_url": "the customer portal: not in this wave (finance staff use the admin)",
    "customers.wallets.alerts.create": WALLET_ALERTS,
    "customers.wallets.alerts.create_batch": WALLET_ALERTS,
    "customers.wallets.alerts.destroy": WALLET_ALERTS,
    "customers.wallets.alerts.destroy_all": WALLET_ALERTS,
    "customers.wallets.alerts.find": WALLET_ALERTS,
    "customers.wallets.alerts.find_all": WALLET_ALERTS,
    "customers.wallets.alerts.update": WALLET_ALERTS,
    "fees.destroy": PAY_IN_ADVANCE_FEES,
    "fees.update": PAY_IN_ADVANCE_FEES,
    "gross_revenues.find_all": ANALYTICS,
    "invoice_collections.find_all": ANALYTICS,
    "invoiced_usages.find_all": ANALYTICS,
    "mrrs.find_all": ANALYTICS,
    "overdue_balances.find_all": ANALYTICS,
    "usages.find_all": ANALYTICS,
    "invoices.lose_dispute": PAYMENT_PROVIDERS,
    "invoices.payment_url": PAYMENT_PROVIDERS,
    "invoices.retry_payment": PAYMENT_PROVIDERS,
    "invoices.retry": RETRY,
    "wallet_transactions.payment_url": PAYMENT_PROVIDERS,
    "order_forms.find": QUOTES,
    "order_forms.find_all": QUOTES,
    "order_forms.mark_as_signed": QUOTES,
    "order_forms.void": QUOTES,
    "orders.execute": QUOTES,
    "orders.find": QUOTES,
    "orders.find_all": QUOTES,
    "quote_versions.approve": QUOTES,
    "quote_versions.clone": QUOTES,
    "quote_versions.find": QUOTES,
    "quote_versions.void": QUOTES,
    "quotes.find": QUOTES,
    "quotes.find_all": QUOTES,
    "quotes.versions": QUOTES,
    "payment_receipts.find": PAYMENT_RECEIPTS,
    "payment_receipts.find_all": PAYMENT_RECEIPTS,
    "payment_requests.create": PAYMENT_RECEIPTS,
    "payment_requests.find": PAYMENT_RECEIPTS,
    "payment_requests.find_all": PAYMENT_RECEIPTS,
    "plan_fixed_charges.create": FIXED_CHARGES,
    "plan_fixed_charges.destroy": FIXED_CHARGES,
    "plan_fixed_charges.find": FIXED_CHARGES,
    "plan_fixed_charges.find_all": FIXED_CHARGES,
    "plan_fixed_charges.update": FIXED_CHARGES,
    "subscription_fixed_charges.find": FIXED_CHARGES,
    "subscription_fixed_charges.find_all": FIXED_CHARGES,
    "subscription_fixed_charges.update": FIXED_CHARGES,
    "plans.create_charge_filter": CHARGE_FILTERS,
    "plans.destroy_charge_filter": CHARGE_FILTERS,
    "plans.find_all_charge_filters": CHARGE_FILTERS,
    "plans.find_charge_filter": CHARGE_FILTERS,
    "plans.update_charge_filter": CHARGE_FILTERS,
    "subscriptions.create_charge_filter": CHARGE_FILTERS,
    "subscriptions.destroy_charge_filter": CHARGE_FILTERS,
    "subscriptions.find_all_charge_filters": CHARGE_FILTERS,
    "subscriptions.find_charge_filter": CHARGE_FILTERS,
    "subscriptions.update_charge_filter": CHARGE_FILTERS,
    "webhooks.public_key": JWT,
    "billable_metrics.evaluate_expression": EXPRESSIONS,
}

_NOT_METHODS = {"api_key", "base_url", "base_ingest_url", "rate_limit_retry_config", "api_resource"}


def _unwrap(value: Any) -> Any:
    return object.__getattribute__(value, "_obj") if isinstance(value, Proxy) else value


def sdk_methods() -> set[str]:
    """Every method of the SDK's resource clients, as `client.method` (nested: `customers.wallets.find`)."""
    found: set[str] = set()

    def walk(client: Any, prefix: str) -> None:
        for name in dir(type(client)):
            if name.startswith("_") or name.isupper() or name in _NOT_METHODS:
                continue
            value = _unwrap(getattr(client, name))
            if hasattr(value, "API_RESOURCE") or type(value).__name__.endswith("Client"):
                walk(value, f"{prefix}.{name}")
            elif callable(value):
                found.add(f"{prefix}.{name}")

    client = Client(api_key="-", api_url="http://localhost")
    for name in dir(type(client)):
        if not (name.startswith("_") or name.isupper() or name.startswith("base_")):
            walk(_unwrap(getattr(client, name)), name)
    return found


def in_scope() -> set[str]:
    return sdk_methods() - set(LEFT_OUT)

"""What a webhook carries: the same JSON as the API's GET of the announced object.

Registered with billing.services.webhooks at start-up (BillingConfig.ready), so that services
announce changes without importing the API. Each renderer reads the object again with
everything its JSON needs, inside the announcing transaction: the body is the object as the
change left it. Links in it (`file_url`) are absolute on BILLING_PUBLIC_URL.
"""

from __future__ import annotations

from typing import Any

from billing.api.alert_json import triggered_alert_json
from billing.api.credit_note_json import credit_note_json, credit_notes_for_json
from billing.api.invoice_json import invoice_json, invoices_for_json
from billing.api.subscriptions import subscription_json, subscriptions_for_json
from billing.api.wallet_json import transactions_for_json, wallet_transaction_json
from billing.models import CreditNote, Invoice, Subscription, TriggeredAlert, WalletTransaction
from billing.services.webhooks import register_renderer


def _invoice(invoice: Invoice) -> dict[str, Any]:
    return invoice_json(invoices_for_json().get(pk=invoice.pk))


def _credit_note(note: CreditNote) -> dict[str, Any]:
    return credit_note_json(credit_notes_for_json().get(pk=note.pk))


def _subscription(subscription: Subscription) -> dict[str, Any]:
    return subscription_json(subscriptions_for_json().get(pk=subscription.pk))


def _triggered_alert(triggered: TriggeredAlert) -> dict[str, Any]:
    return triggered_alert_json(triggered)


def _wallet_transaction(movement: WalletTransaction) -> dict[str, Any]:
    # With its wallet, as Lago's wallet_transaction.created.
    return wallet_transaction_json(transactions_for_json().get(pk=movement.pk), with_wallet=True)


def register() -> None:
    register_renderer("invoice", _invoice)
    register_renderer("credit_note", _credit_note)
    register_renderer("subscription", _subscription)
    register_renderer("triggered_alert", _triggered_alert)
    register_renderer("wallet_transaction", _wallet_transaction)

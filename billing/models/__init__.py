"""Billing's models, one module per concept; everything is importable from here.

The vocabularies (statuses, kinds, charge models) are defined once, in the pure engine
(billing.engine.vocabulary), and re-exported here beside the models that use them.
"""

from billing.engine.vocabulary import (
    AlertType,
    AppliesTo,
    BillingTime,
    ChargeModel,
    CommitmentCovers,
    CommitmentStatus,
    CreditNoteReason,
    CreditStatus,
    DeliveryStatus,
    EmailStatus,
    Interval,
    InvoiceKind,
    InvoiceStatus,
    InvoiceType,
    LedgerKind,
    LineKind,
    PaymentStatus,
    RefundStatus,
    SubscriptionStatus,
    WebhookType,
)
from billing.models.alerts import Alert, AlertCrossing, AlertThreshold, TriggeredAlert
from billing.models.catalog import Charge, Plan, PlanQuerySet, Promotion, Tier
from billing.models.commitments import Commitment, LedgerEntry
from billing.models.credit_notes import CreditApplication, CreditNote, CreditNoteItem
from billing.models.emails import InvoiceEmail
from billing.models.history import history_user
from billing.models.invoices import Invoice, InvoiceLine
from billing.models.payments import Payment
from billing.models.subscriptions import Subscription
from billing.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSigningKey

__all__ = [
    "Alert",
    "AlertCrossing",
    "AlertThreshold",
    "AlertType",
    "AppliesTo",
    "BillingTime",
    "Charge",
    "ChargeModel",
    "Commitment",
    "CommitmentCovers",
    "CommitmentStatus",
    "CreditApplication",
    "CreditNote",
    "CreditNoteItem",
    "CreditNoteReason",
    "CreditStatus",
    "DeliveryStatus",
    "EmailStatus",
    "Interval",
    "Invoice",
    "InvoiceEmail",
    "InvoiceKind",
    "InvoiceLine",
    "InvoiceStatus",
    "InvoiceType",
    "LedgerEntry",
    "LedgerKind",
    "LineKind",
    "Payment",
    "PaymentStatus",
    "Plan",
    "PlanQuerySet",
    "Promotion",
    "RefundStatus",
    "Subscription",
    "SubscriptionStatus",
    "Tier",
    "TriggeredAlert",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookSigningKey",
    "WebhookType",
    "history_user",
]

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
    CouponExpiration,
    CouponFrequency,
    CouponStatus,
    CouponType,
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
    WalletStatus,
    WalletTransactionKind,
    WalletTransactionStatus,
    WalletTransactionType,
    WebhookType,
)
from billing.models.addons import AddOn
from billing.models.alerts import Alert, AlertCrossing, AlertThreshold, TriggeredAlert
from billing.models.catalog import Charge, Plan, PlanQuerySet, Promotion, Tier
from billing.models.commitments import Commitment, LedgerEntry
from billing.models.coupons import AppliedCoupon, Coupon, CouponApplication
from billing.models.credit_notes import CreditApplication, CreditNote, CreditNoteItem
from billing.models.emails import InvoiceEmail
from billing.models.history import history_user
from billing.models.invoices import Invoice, InvoiceLine
from billing.models.payments import Payment
from billing.models.subscriptions import Subscription
from billing.models.taxes import CustomerTax, Tax
from billing.models.wallets import Wallet, WalletTransaction
from billing.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSigningKey

__all__ = [
    "AddOn",
    "Alert",
    "AlertCrossing",
    "AlertThreshold",
    "AlertType",
    "AppliedCoupon",
    "AppliesTo",
    "BillingTime",
    "Charge",
    "ChargeModel",
    "Commitment",
    "CommitmentCovers",
    "CommitmentStatus",
    "Coupon",
    "CouponApplication",
    "CouponExpiration",
    "CouponFrequency",
    "CouponStatus",
    "CouponType",
    "CreditApplication",
    "CreditNote",
    "CreditNoteItem",
    "CreditNoteReason",
    "CreditStatus",
    "CustomerTax",
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
    "Tax",
    "Tier",
    "TriggeredAlert",
    "Wallet",
    "WalletStatus",
    "WalletTransaction",
    "WalletTransactionKind",
    "WalletTransactionStatus",
    "WalletTransactionType",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookSigningKey",
    "WebhookType",
    "history_user",
]

"""Billing's vocabulary, defined once (pure): the engine computes with these members, and the
models' fields take their `choices` from them (config.choices)."""

from __future__ import annotations

from config.choices import Choices


class Interval(Choices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class BillingTime(Choices):
    CALENDAR = "calendar", "Calendar (periods start on the 1st)"
    ANNIVERSARY = "anniversary", "Anniversary (periods start on the subscription's day)"


class AppliesTo(Choices):
    BASE_FEE = "base_fee", "Base fee only (usage billed during the promotion)"
    PLAN = "plan", "Whole plan (base fee and usage)"


class ChargeModel(Choices):
    STANDARD = "standard", "Standard (per unit)"
    GRADUATED = "graduated", "Graduated tiers"
    VOLUME = "volume", "Volume tiers"
    PACKAGE = "package", "Package"


class CommitmentCovers(Choices):
    BASE_FEE = "base_fee", "Base fee"
    ALL = "all", "Base fee and usage"


class SubscriptionStatus(Choices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    TERMINATED = "terminated", "Terminated"
    CANCELED = "canceled", "Canceled (ended before it started)"


class OnTerminationInvoice(Choices):
    """Lago's on_termination_invoice: whether a termination bills the final part of the period."""

    GENERATE = "generate", "Generate the closing invoice"
    SKIP = "skip", "Skip the closing invoice"


class InvoiceKind(Choices):
    """Our kinds of invoice; Lago's coarser `invoice_type` is derived from them (INVOICE_TYPE)."""

    PERIOD = "period", "Period (usage and base fee in arrears)"
    ADVANCE = "advance", "Base fee in advance"
    COMMITMENT = "commitment", "Commitment prepayment"
    ONE_OFF = "one_off", "One-off (add-ons)"
    CREDIT = "credit", "Wallet credit purchase"


class InvoiceType(Choices):
    """Lago's invoice_type."""

    SUBSCRIPTION = "subscription", "Subscription"
    ONE_OFF = "one_off", "One-off"
    CREDIT = "credit", "Credit"


INVOICE_TYPE = {
    InvoiceKind.PERIOD: InvoiceType.SUBSCRIPTION,
    InvoiceKind.ADVANCE: InvoiceType.SUBSCRIPTION,
    InvoiceKind.COMMITMENT: InvoiceType.CREDIT,
    InvoiceKind.ONE_OFF: InvoiceType.ONE_OFF,
    InvoiceKind.CREDIT: InvoiceType.CREDIT,
}
# Invoices of these kinds belong to a subscription; one-off and credit invoices to a customer only.
SUBSCRIPTION_KINDS = frozenset({InvoiceKind.PERIOD, InvoiceKind.ADVANCE, InvoiceKind.COMMITMENT})


class InvoiceStatus(Choices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"
    VOIDED = "voided", "Voided"


class PaymentStatus(Choices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class LineKind(Choices):
    BASE_FEE = "base_fee", "Base fee"
    USAGE = "usage", "Usage"
    PROMOTION = "promotion", "Promotion"
    COMMITMENT = "commitment", "Commitment"
    COMMITMENT_DRAWDOWN = "commitment_drawdown", "Commitment drawdown"
    LATE_USAGE = "late_usage", "Late usage"
    CREDIT_NOTE = "credit_note", "Credit note"
    ADD_ON = "add_on", "Add-on"
    CREDIT_PURCHASE = "credit_purchase", "Wallet credits purchased"
    COUPON = "coupon", "Coupon"
    TAX = "tax", "Tax"
    PREPAID_CREDITS = "prepaid_credits", "Prepaid credits"


# Step 1 of an invoice (DESIGN §6): the fees; the other kinds reduce them or settle the total.
FEE_KINDS = frozenset(
    {
        LineKind.BASE_FEE,
        LineKind.USAGE,
        LineKind.LATE_USAGE,
        LineKind.COMMITMENT,
        LineKind.ADD_ON,
        LineKind.CREDIT_PURCHASE,
    }
)


class CommitmentStatus(Choices):
    PENDING = "pending", "Pending (term not started)"
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    CANCELED = "canceled", "Canceled"


class LedgerKind(Choices):
    PURCHASE = "purchase", "Purchase"
    DRAWDOWN = "drawdown", "Drawdown"
    EXPIRY = "expiry", "Expiry"
    ADJUSTMENT = "adjustment", "Adjustment"


class CreditNoteReason(Choices):
    DUPLICATED_CHARGE = "duplicated_charge", "Duplicated charge"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory", "Product unsatisfactory"
    ORDER_CHANGE = "order_change", "Order change"
    ORDER_CANCELLATION = "order_cancellation", "Order cancellation"
    FRAUDULENT_CHARGE = "fraudulent_charge", "Fraudulent charge"
    OTHER = "other", "Other"


class CreditStatus(Choices):
    AVAILABLE = "available", "Available"
    CONSUMED = "consumed", "Consumed"
    VOIDED = "voided", "Voided"


class RefundStatus(Choices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookType(Choices):
    """What a webhook announces (DESIGN §6 "Webhooks"); Lago's names."""

    INVOICE_CREATED = "invoice.created", "Invoice created"
    INVOICE_ONE_OFF_CREATED = "invoice.one_off_created", "One-off invoice created"
    INVOICE_PAID_CREDIT_ADDED = "invoice.paid_credit_added", "Wallet purchase invoiced"
    INVOICE_VOIDED = "invoice.voided", "Invoice voided"
    INVOICE_PAYMENT_STATUS_UPDATED = "invoice.payment_status_updated", "Invoice payment status updated"
    CREDIT_NOTE_CREATED = "credit_note.created", "Credit note created"
    SUBSCRIPTION_STARTED = "subscription.started", "Subscription started"
    SUBSCRIPTION_TERMINATED = "subscription.terminated", "Subscription terminated"
    SUBSCRIPTION_TRIAL_ENDED = "subscription.trial_ended", "Subscription trial ended"
    WALLET_TRANSACTION_CREATED = "wallet_transaction.created", "Wallet transaction created"
    ALERT_TRIGGERED = "alert.triggered", "Alert triggered"


class DeliveryStatus(Choices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class AlertType(Choices):
    """Lago's subscription alert types."""

    CURRENT_USAGE_AMOUNT = "current_usage_amount", "Current usage amount"
    BILLABLE_METRIC_CURRENT_USAGE_UNITS = "billable_metric_current_usage_units", "Metric units"


class EmailStatus(Choices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class CouponType(Choices):
    FIXED_AMOUNT = "fixed_amount", "Fixed amount"
    PERCENTAGE = "percentage", "Percentage"


class CouponFrequency(Choices):
    ONCE = "once", "Once"
    RECURRING = "recurring", "Recurring (a number of invoices)"
    FOREVER = "forever", "Forever"


class CouponExpiration(Choices):
    NO_EXPIRATION = "no_expiration", "No expiration"
    TIME_LIMIT = "time_limit", "Time limit"


class CouponStatus(Choices):
    ACTIVE = "active", "Active"
    TERMINATED = "terminated", "Terminated"


class WalletStatus(Choices):
    ACTIVE = "active", "Active"
    TERMINATED = "terminated", "Terminated"


class WalletTransactionType(Choices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class WalletTransactionStatus(Choices):
    """Where the movement is: pending (a purchase not paid yet), settled (in the balance), failed."""

    PENDING = "pending", "Pending"
    SETTLED = "settled", "Settled"
    FAILED = "failed", "Failed"


class WalletTransactionKind(Choices):
    """Lago's `transaction_status`: what the movement is."""

    PURCHASED = "purchased", "Purchased"
    GRANTED = "granted", "Granted"
    VOIDED = "voided", "Voided"
    INVOICED = "invoiced", "Used by an invoice"

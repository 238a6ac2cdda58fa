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


class InvoiceType(Choices):
    PERIOD = "period", "Period (usage and base fee in arrears)"
    ADVANCE = "advance", "Base fee in advance"
    COMMITMENT = "commitment", "Commitment prepayment"


class InvoiceStatus(Choices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


class LineKind(Choices):
    BASE_FEE = "base_fee", "Base fee"
    USAGE = "usage", "Usage"
    PROMOTION = "promotion", "Promotion"
    COMMITMENT = "commitment", "Commitment"
    COMMITMENT_DRAWDOWN = "commitment_drawdown", "Commitment drawdown"
    LATE_USAGE = "late_usage", "Late usage"


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

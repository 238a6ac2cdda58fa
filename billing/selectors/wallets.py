"""Reads of wallets (DESIGN §6 "Wallets"): the ongoing balance, and what the lists show.

The ongoing balance is Lago's: the balance less what the customer's usage so far will take of it,
recomputed on each read rather than kept in a column refreshed by a job. `ongoing_usage` is
- the usage charges of the open period of each active subscription billed in the wallet's
  currency (each charge net of its promotion, as the period's invoice will bill it; the open
  period's base fee is not counted, as in Lago), with the customer's taxes on them (one amount
  per tax, rounded once, as an invoice's tax line);
- plus the totals before credits (steps 1–5: what credit notes and the wallet will settle) of
  the customer's draft invoices in that currency.
`ongoing_balance = balance − ongoing_usage` may go below zero (Lago's `depleted_ongoing_balance`).
A terminated wallet is not used by any invoice: its ongoing usage is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Prefetch

from billing.engine.money import ZERO, quantize_money
from billing.engine.vocabulary import InvoiceStatus, LineKind, SubscriptionStatus, WalletStatus
from billing.models import Invoice, InvoiceLine, Subscription, Wallet
from billing.selectors.adjustments import tax_rates
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import current_usage

CREDIT_PLACES = Decimal("0.00001")
HUNDRED = Decimal(100)
# Lines a draft's total is settled by (steps 6 and 7): the total before credits leaves them out.
CREDIT_KINDS = (LineKind.CREDIT_NOTE, LineKind.PREPAID_CREDITS)


def credits_of(wallet: Wallet, amount: Decimal) -> Decimal:
    """`amount` of money in the wallet's credits (5 decimals, half up)."""
    return (amount / wallet.rate_amount).quantize(CREDIT_PLACES, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class OngoingBalance:
    usage: Decimal  # Lago's ongoing_usage_balance, in money
    balance: Decimal  # Lago's ongoing_balance: the balance less the usage (may be negative)
    credits_usage: Decimal
    credits_balance: Decimal


def usage_of_open_periods(customer_id: int, currency: str, now: datetime) -> Decimal:
    """The usage charges (net of promotions) of the customer's active subscriptions in `currency`,
    so far in their open periods, with the customer's taxes on them."""
    subscriptions = (
        Subscription.objects.filter(customer_id=customer_id, status=SubscriptionStatus.ACTIVE, plan__currency=currency)
        .select_related("customer", "promotion")
        .prefetch_related(Prefetch("plan", queryset=plans_with_charges()))
        .order_by("id")
    )
    usage = ZERO
    for subscription in subscriptions:
        period = current_usage(subscription=subscription, at=now, count_events=False, adjustments=False)
        # Each usage line's discount share is its promotion's (no coupon was applied here).
        usage += sum((c.line.amount - c.line.discount_amount for c in period.charges), ZERO)
    if usage <= 0:
        return ZERO
    taxes = sum((quantize_money(usage * tax.rate / HUNDRED, currency) for tax in tax_rates(customer_id)), ZERO)
    return usage + taxes


def drafts_before_credits(customer_id: int, currency: str) -> Decimal:
    """The customer's draft invoices in `currency`: their totals before credit notes and wallet."""
    drafts = Invoice.objects.filter(
        customer_id=customer_id, status=InvoiceStatus.DRAFT, currency=currency
    ).prefetch_related(Prefetch("lines", queryset=InvoiceLine.objects.filter(kind__in=CREDIT_KINDS)))
    return sum((draft.total - sum((ln.amount for ln in draft.lines.all()), ZERO) for draft in drafts), ZERO)


def ongoing_balance(wallet: Wallet, *, now: datetime) -> OngoingBalance:
    """The wallet's ongoing balance at `now` (see the module docstring)."""
    usage = ZERO
    if wallet.status == WalletStatus.ACTIVE:
        usage = usage_of_open_periods(wallet.customer_id, wallet.currency, now) + drafts_before_credits(
            wallet.customer_id, wallet.currency
        )
        usage = max(usage, ZERO)
    left = wallet.balance - usage
    return OngoingBalance(
        usage=usage, balance=left, credits_usage=credits_of(wallet, usage), credits_balance=credits_of(wallet, left)
    )

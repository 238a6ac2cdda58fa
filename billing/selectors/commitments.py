"""Reads of commitments: balances (the sum of the ledger), the commitment covering a period, and
the customer page's panel of each commitment with its ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.engine.invoice import CommitmentBalance
from billing.engine.money import ZERO, quantize_money
from billing.models import Commitment, CommitmentStatus, LedgerEntry, LedgerKind, Subscription
from config.db import exact_sum
from customers.models import Customer


def balance(commitment: Commitment) -> Decimal:
    """The commitment's balance: the sum of its ledger, never stored apart from it."""
    return exact_sum(commitment.entries.all(), "amount") or ZERO


def commitment_for_period(subscription: Subscription, period_start: datetime) -> Commitment | None:
    """The active commitment whose term contains the start of the period, if any."""
    return (
        Commitment.objects.filter(
            subscription=subscription,
            status=CommitmentStatus.ACTIVE,
            term_start__lte=period_start,
            term_end__gt=period_start,
        )
        .order_by("-term_start")
        .first()
    )


def commitment_balance(subscription: Subscription, period_start: datetime) -> CommitmentBalance | None:
    """What an invoice starting at `period_start` may draw from, as the engine takes it."""
    commitment = commitment_for_period(subscription, period_start)
    if commitment is None:
        return None
    return CommitmentBalance(
        commitment_id=commitment.pk,
        covers=commitment.covers,
        balance=balance(commitment),
        currency=commitment.currency,
    )


@dataclass(frozen=True)
class CommitmentPanel:
    commitment: Commitment
    balance: Decimal
    drawn: Decimal  # drawdowns so far (a positive amount)
    entries: list[LedgerEntry]


def commitment_panels(customer: Customer, *, entries: int = 12) -> list[CommitmentPanel]:
    """The customer's commitments, newest term first, each with its balance from the ledger."""
    panels = []
    commitments = (
        Commitment.objects.filter(subscription__customer=customer)
        .select_related("subscription", "invoice")
        .order_by("-term_start", "-id")[:10]
    )
    for commitment in commitments:
        drawn = exact_sum(commitment.entries.filter(kind=LedgerKind.DRAWDOWN), "amount") or ZERO
        panels.append(
            CommitmentPanel(
                commitment=commitment,
                balance=quantize_money(balance(commitment), commitment.currency),
                drawn=quantize_money(-drawn, commitment.currency),
                entries=list(commitment.entries.select_related("invoice").order_by("-created_at", "-id")[:entries]),
            )
        )
    return panels

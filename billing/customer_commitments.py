"""The customer page's commitments panel: each commitment's balance, what has been drawn, its ledger."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.commitments import balance
from billing.models import Commitment, LedgerEntry, LedgerKind
from billing.money import ZERO, quantize_money
from config.db import exact_sum
from customers.models import Customer


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

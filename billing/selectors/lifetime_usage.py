"""A subscription's lifetime usage (Lago's, read by its progressive billing): what its usage
charges have been invoiced since it started, across its plan changes, and its open period's
usage so far; plus the usage billed elsewhere before, as set through the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from billing.engine.money import to_cents
from billing.engine.vocabulary import InvoiceStatus, LineKind, SubscriptionStatus
from billing.models import InvoiceLine, Subscription
from billing.selectors.usage import current_usage


@dataclass(frozen=True)
class LifetimeUsage:
    subscription: Subscription
    from_datetime: datetime  # the start of its first subscription (before plan changes)
    historical_amount_cents: int
    invoiced_amount_cents: int
    current_amount_cents: int


def lifetime_usage(*, subscription: Subscription, now: datetime) -> LifetimeUsage:
    """Invoiced: the usage and late usage fees (before discounts and taxes, as Lago's charge fees)
    of the live invoices (draft or finalized) of this subscription and of those it replaced on
    plan changes. Current: its open period's usage so far (an active subscription's)."""
    chain: list[int] = [subscription.pk]
    first = subscription
    while first.previous_id is not None:
        first = Subscription.objects.only("pk", "previous_id", "subscription_at").get(pk=first.previous_id)
        chain.append(first.pk)
    invoiced = InvoiceLine.objects.filter(
        invoice__subscription_id__in=chain,
        invoice__status__in=[InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED],
        kind__in=[LineKind.USAGE, LineKind.LATE_USAGE],
    ).aggregate(total=Sum("amount"))["total"] or Decimal(0)
    currency = subscription.plan.currency
    current = Decimal(0)
    if subscription.status == SubscriptionStatus.ACTIVE:
        current = current_usage(subscription=subscription, at=now, count_events=False, adjustments=False).usage_amount
    return LifetimeUsage(
        subscription=subscription,
        from_datetime=first.subscription_at,
        historical_amount_cents=subscription.historical_usage_amount_cents,
        invoiced_amount_cents=to_cents(invoiced, currency),
        current_amount_cents=to_cents(current, currency),
    )

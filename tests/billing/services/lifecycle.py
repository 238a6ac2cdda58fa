"""The world the after-the-invoice tests share (payments, credit notes, void and regenerate).

acme (UTC, net payment term 30 days) on the scaled-down Team plan (tests.factories) since
2026-08-01: August is the trial month; September has 300 users, so its invoice, finalized on
2026-10-02, is $120.00 base fee + $235.00 usage = $355.00 (the worked example). October has no
usage: its invoice, closed on 2026-11-02, is the $120.00 base fee less any credit available.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.models import Invoice, InvoiceLine, LineKind, Subscription
from billing.services.period_close import close_periods
from customers.models import Customer
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import at, travel

SEPTEMBER_CLOSE = at(2026, 10, 2, 9)
OCTOBER_CLOSE = at(2026, 11, 2, 9)


@dataclass
class World:
    customer: Customer
    subscription: Subscription
    september: Invoice  # finalized, $355.00

    @property
    def base_fee(self) -> InvoiceLine:
        return self.september.lines.get(kind=LineKind.BASE_FEE)

    @property
    def usage_fee(self) -> InvoiceLine:
        return self.september.lines.get(kind=LineKind.USAGE)


def september_invoice(net_payment_term: int | None = 30) -> World:
    customer = CustomerFactory(external_id="acme", name="Acme", net_payment_term=net_payment_term)
    subscription = SubscriptionFactory(
        customer=customer, plan=scaled_team_plan(), external_id="acme-team", subscription_at=at(2026, 8, 1)
    )
    store_users(customer, range(300), at(2026, 9, 20), "sep")
    with travel(at(2026, 9, 2, 9)):
        close_periods(now=at(2026, 9, 2, 9))  # August
    with travel(SEPTEMBER_CLOSE):
        close_periods(now=SEPTEMBER_CLOSE)
    september = Invoice.objects.get(subscription=subscription, period_start=at(2026, 9, 1))
    assert september.total == Decimal("355.00")
    return World(customer, subscription, september)


def close_october(now: datetime = OCTOBER_CLOSE) -> Invoice:
    with travel(now):
        close_periods(now=now)
    return Invoice.objects.get(period_start=at(2026, 10, 1), voided_at=None)

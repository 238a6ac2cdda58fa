"""The world the wallet tests share: tests.billing.services.lifecycle's customer, with a wallet.

acme (UTC) on the scaled-down Team plan since 2026-08-01 (August is the trial month, closed on
2026-09-02); September has 300 users: $120.00 base fee + $235.00 usage = $355.00 before tax. With
the organization's 20 % VAT it is $426.00 after tax, which the wallet pays from when September is
closed on 2026-10-02 (DESIGN §6 step 7: wallet credit is applied after tax). October has no usage:
$120.00 + $24.00 VAT = $144.00, closed on 2026-11-02.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.models import Invoice, Subscription, Tax, Wallet
from billing.services.period_close import close_periods
from billing.services.wallets import wallet_create
from customers.models import Customer
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import at, travel

AUGUST_CLOSE = at(2026, 9, 2, 9)
WALLET_MADE = at(2026, 9, 15, 10)
SEPTEMBER_CLOSE = at(2026, 10, 2, 9)
OCTOBER_CLOSE = at(2026, 11, 2, 9)
D = Decimal


@dataclass
class WalletWorld:
    customer: Customer
    subscription: Subscription
    wallet: Wallet

    def close_september(self) -> Invoice:
        with travel(SEPTEMBER_CLOSE):
            close_periods(now=SEPTEMBER_CLOSE)
        return Invoice.objects.get(subscription=self.subscription, period_start=at(2026, 9, 1), voided_at=None)

    def close_october(self) -> Invoice:
        with travel(OCTOBER_CLOSE):
            close_periods(now=OCTOBER_CLOSE)
        return Invoice.objects.get(subscription=self.subscription, period_start=at(2026, 10, 1), voided_at=None)

    def reload(self) -> Wallet:
        self.wallet.refresh_from_db()
        return self.wallet


def vat() -> Tax:
    return Tax.objects.get_or_create(
        code="vat", defaults={"name": "VAT", "rate": D("20"), "applied_to_organization": True}
    )[0]


def customer_in_september(external_id: str = "acme") -> tuple[Customer, Subscription]:
    """The customer, its subscription, September's 300 users, and August closed (before any wallet)."""
    customer = CustomerFactory(external_id=external_id, name=external_id.title())
    subscription = SubscriptionFactory(
        customer=customer,
        plan=scaled_team_plan(),
        external_id=f"{external_id}-team",
        subscription_at=at(2026, 8, 1),
    )
    store_users(customer, range(300), at(2026, 9, 20), f"{external_id}-sep")
    with travel(AUGUST_CLOSE):
        close_periods(now=AUGUST_CLOSE)
    return customer, subscription


def wallet_world(*, granted: str = "0", paid: str = "0", rate: str = "1", taxed: bool = True) -> WalletWorld:
    """acme with the organization's VAT and a wallet made on 2026-09-15 (August already closed)."""
    customer, subscription = customer_in_september()
    if taxed:
        vat()
    with travel(WALLET_MADE):
        wallet = wallet_create(
            customer=customer,
            rate_amount=D(rate),
            name="Prepaid",
            granted_credits=D(granted),
            paid_credits=D(paid),
            now=WALLET_MADE,
        )
    return WalletWorld(customer, subscription, wallet)

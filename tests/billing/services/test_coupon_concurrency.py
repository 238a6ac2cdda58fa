"""Coupons used and given at the same moment never give more than there is (STYLE rule 4), on
PostgreSQL.

Each task runs in its own thread and database connection, all released at once. Closing a
period locks the subscription with its customer, and applying a coupon locks the customer: so
two closes of one customer's subscriptions, or two applications to one customer, serialize,
and whoever comes second reads what the first committed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing.models import AppliedCoupon, CouponApplication, CouponStatus, Invoice, LineKind
from billing.services.applied_coupons import NOT_REUSABLE, applied_coupon_create
from billing.services.coupons import CouponError, coupon_create
from billing.services.period_close import close_periods, close_subscription
from tests.conftest import using_postgres
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import at, run_concurrently

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not using_postgres(), reason="concurrent writers need PostgreSQL row locks (SQLite has one)"),
]

D = Decimal
NOW = at(2026, 8, 20, 12)
SEPTEMBER_CLOSE = at(2026, 10, 2, 9)


def outcome(call: Any) -> Any:
    def run() -> Any:
        try:
            return call()
        except CouponError as exc:
            return exc

    return run


def test_two_closes_at_once_never_use_more_of_a_once_coupon_than_it_has() -> None:
    """Two subscriptions of one customer, each with a $355.00 September invoice, closed at the
    same moment: a $200.00 once coupon gives $200.00 in all, to one of them."""
    customer = CustomerFactory(external_id="acme")
    plan = scaled_team_plan()
    subscriptions = [
        SubscriptionFactory(customer=customer, plan=plan, external_id=f"acme-{n}", subscription_at=at(2026, 8, 1))
        for n in (1, 2)
    ]
    store_users(customer, range(300), at(2026, 9, 20), "sep")
    close_periods(now=at(2026, 9, 2, 9))  # August, before the coupon
    coupon_create(
        fields={
            "name": "Two hundred",
            "code": "two-hundred",
            "coupon_type": "fixed_amount",
            "amount_cents": 20000,
            "amount_currency": "USD",
        },
        now=NOW,
    )
    applied = applied_coupon_create(external_customer_id="acme", coupon_code="two-hundred", now=NOW)

    run_concurrently([lambda s=s: close_subscription(subscription_id=s.pk, now=SEPTEMBER_CLOSE) for s in subscriptions])
    september = Invoice.objects.filter(period_start=at(2026, 9, 1), customer=customer)
    coupon_lines = [line.amount for invoice in september for line in invoice.lines.filter(kind=LineKind.COUPON)]
    assert coupon_lines == [D("-200.00")]
    assert sum(CouponApplication.objects.values_list("amount", flat=True)) == D("200.00")
    assert sorted(invoice.total for invoice in september) == [D("155.00"), D("355.00")]
    applied.refresh_from_db()
    assert (applied.amount_remaining, applied.status, applied.used_up) == (D("0"), CouponStatus.TERMINATED, True)


def test_two_applications_of_a_non_reusable_coupon_at_once_apply_it_once() -> None:
    CustomerFactory(external_id="acme")
    coupon_create(
        fields={
            "name": "Welcome",
            "code": "welcome",
            "coupon_type": "percentage",
            "percentage_rate": D("10"),
            "reusable": False,
        },
        now=NOW,
    )

    def apply() -> AppliedCoupon:
        return applied_coupon_create(external_customer_id="acme", coupon_code="welcome", now=NOW)

    results = run_concurrently([outcome(apply) for _ in range(4)])
    applied = [r for r in results if isinstance(r, AppliedCoupon)]
    refused = [r for r in results if isinstance(r, CouponError)]
    assert (len(applied), len(refused)) == (1, 3)
    assert all(r.errors == {"coupon_code": [NOT_REUSABLE.format(code="welcome")]} for r in refused)
    assert AppliedCoupon.objects.count() == 1

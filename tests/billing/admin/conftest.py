"""Fixtures of the admin tests about money after the invoice (credit notes, payments, aging).

`discounted_invoice`: October's invoice of the Team plan (its MTU tiers a hundred times smaller)
with a 25 % promotion on the whole plan, finalized on November 3 with a 30-day term:

| fee | amount | discount (its promotion share) |
|---|---|---|
| Team base fee | 120.00 | 30.00 |
| Monthly tracked users (110: 10 × 1.20) | 12.00 | 3.00 |

Total 99.00, nothing paid, due December 3.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing.models import AppliesTo, Invoice
from billing.services.invoices import invoice_finalize
from billing.services.period_close import close_periods
from tests.factories import CustomerFactory, PromotionFactory, SubscriptionFactory, scaled_team_plan, store_users

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
CLOSE_AT = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
FINALIZED_AT = datetime(2026, 11, 3, 9, tzinfo=UTC)


@pytest.fixture
def discounted_invoice(settings: Any) -> Invoice:
    settings.BILLING_GRACE_PERIOD_HOURS = 48
    promotion = PromotionFactory(
        code="quarter-off", percent_off=Decimal(25), duration_days=90, applies_to=AppliesTo.PLAN
    )
    plan = scaled_team_plan(promotion=promotion)
    customer = CustomerFactory(external_id="acme", name="Acme Inc.", net_payment_term=30)
    SubscriptionFactory(customer=customer, plan=plan, external_id="acme-team", subscription_at=OCTOBER)
    store_users(customer, range(110), datetime(2026, 10, 10, tzinfo=UTC), "oct")
    close_periods(now=CLOSE_AT)
    invoice = invoice_finalize(invoice=Invoice.objects.get(customer=customer), now=FINALIZED_AT)
    assert invoice.total == Decimal("99.00")
    return invoice

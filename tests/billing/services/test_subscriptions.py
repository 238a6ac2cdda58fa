"""billing.services.subscriptions.subscription_create takes the promotion: the plan's by default,
another one, or none (the admin's choice, which used to be a second save of the subscription)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billing.engine.vocabulary import BillingTime
from billing.models import Plan, Subscription
from billing.services.subscriptions import PLAN_PROMOTION, subscription_create
from tests.factories import CustomerFactory, PromotionFactory, team_plan

pytestmark = pytest.mark.django_db

START = datetime(2026, 6, 10, 9, tzinfo=UTC)


def subscribe(plan: Plan, **promotion: Any) -> Subscription:
    subscription, created = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub-1",
        subscription_at=START,
        billing_time=BillingTime.CALENDAR,
        now=START,
        **promotion,
    )
    assert created
    return subscription


def test_the_plans_promotion_attaches_by_default() -> None:
    trial = PromotionFactory(code="trial")
    subscription = subscribe(team_plan(promotion=trial))
    assert (subscription.promotion, subscription.promotion_start) == (trial, START)


def test_the_default_is_spelled_plan_promotion() -> None:
    trial = PromotionFactory(code="trial")
    assert subscribe(team_plan(promotion=trial), promotion=PLAN_PROMOTION).promotion == trial


def test_another_promotion_replaces_the_plans() -> None:
    chosen = PromotionFactory(code="negotiated", percent_off="50")
    subscription = subscribe(team_plan(promotion=PromotionFactory(code="trial")), promotion=chosen)
    assert (subscription.promotion, subscription.promotion_start) == (chosen, START)


def test_none_means_no_promotion_at_all() -> None:
    subscription = subscribe(team_plan(promotion=PromotionFactory(code="trial")), promotion=None)
    assert (subscription.promotion, subscription.promotion_start) == (None, None)

"""usage_subscription: current_usage's subscription in one statement, the same models the ORM's
select_related and prefetches build, read fresh on every call; None whenever the answer is not
exactly one subscription (the caller words the error)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.engine.vocabulary import ChargeModel
from billing.models import Subscription, SubscriptionStatus
from billing.selectors.plans import charges_with_tiers
from billing.selectors.usage_subscription import usage_subscription
from tests.factories import (
    BillableMetricFactory,
    ChargeFactory,
    CustomerFactory,
    PlanFactory,
    PromotionFactory,
    SubscriptionFactory,
    TierFactory,
)

pytestmark = pytest.mark.django_db


def values(obj: Model | None) -> tuple[Any, ...] | None:
    if obj is None:
        return None
    return tuple(getattr(obj, f.attname) for f in obj._meta.concrete_fields)


def orm_read(pk: int) -> Subscription:
    return (
        Subscription.objects.select_related("customer", "promotion", "plan")
        .prefetch_related(charges_with_tiers("plan__charges"))
        .get(pk=pk)
    )


def shape(sub: Subscription) -> Any:
    """Everything current_usage reads, as plain values."""
    return (
        values(sub),
        values(sub.customer),
        values(sub.promotion),
        values(sub.plan),
        [(values(c), values(c.metric), [values(t) for t in c.tiers.all()]) for c in sub.plan.charges.all()],
    )


@pytest.fixture
def subscription() -> Subscription:
    customer = CustomerFactory(
        external_id="acme", metadata=[{"key": "k", "value": "v"}], shipping_address={"city": "X"}
    )
    plan = PlanFactory(code="team", base_fee=Decimal("120.50"), promotion=PromotionFactory(), metadata={"a": "b"})
    graduated = ChargeFactory(plan=plan, metric=BillableMetricFactory(code="mtu"), model=ChargeModel.GRADUATED)
    TierFactory(charge=graduated, position=1, up_to=None, unit_amount=Decimal("0.011"))
    TierFactory(charge=graduated, position=0, up_to=Decimal("1000"), flat_amount=Decimal("5"))
    ChargeFactory(
        plan=plan,
        metric=BillableMetricFactory(code="calls", aggregation="count", field=""),
        position=1,
        unit_amount=Decimal("0.002"),
        usage_limit=Decimal("1000000"),
    )
    return SubscriptionFactory(customer=customer, plan=plan, external_id="acme-sub")


@pytest.mark.parametrize("external_id", ["acme-sub", None])
def test_reads_what_the_orm_reads_in_one_statement(subscription: Subscription, external_id: str | None) -> None:
    with CaptureQueriesContext(connection) as queries:
        found = usage_subscription("acme", external_id)
        assert found is not None
        read = shape(found)
    assert len(queries.captured_queries) == 1
    assert read == shape(orm_read(subscription.pk))
    assert [c.metric.code for c in found.plan.charges.all()] == ["mtu", "calls"]
    assert [t.position for t in found.plan.charges.all()[0].tiers.all()] == [0, 1]
    assert found.plan.charges.all()[0].plan is found.plan


def test_a_plan_without_charges_or_promotion() -> None:
    sub = SubscriptionFactory(customer=CustomerFactory(external_id="acme"), external_id="s1", plan=PlanFactory())
    found = usage_subscription("acme", "s1")
    assert found is not None and found.promotion is None and list(found.plan.charges.all()) == []
    assert shape(found) == shape(orm_read(sub.pk))


def test_every_call_reads_the_catalog_afresh(subscription: Subscription) -> None:
    charge = subscription.plan.charges.get(metric__code="calls")
    charge.unit_amount = Decimal("0.003")
    charge.save()
    charge.metric.name = "API calls"
    charge.metric.save()
    found = usage_subscription("acme", "acme-sub")
    assert found is not None
    calls = found.plan.charges.all()[1]
    assert (calls.unit_amount, calls.metric.name) == (Decimal("0.003"), "API calls")


def test_none_unless_exactly_one_subscription(subscription: Subscription) -> None:
    assert usage_subscription("acme", "other") is None
    assert usage_subscription("nobody", "acme-sub") is None
    SubscriptionFactory(customer=subscription.customer, plan=subscription.plan, external_id="second")
    assert usage_subscription("acme", None) is None  # two active: the caller asks which
    assert usage_subscription("acme", "second") is not None


def test_a_deleted_customer_has_none(subscription: Subscription) -> None:
    subscription.customer.deleted_at = timezone.now()
    subscription.customer.save()
    assert usage_subscription("acme", "acme-sub") is None


def test_a_terminated_namesake_is_not_the_live_subscription(subscription: Subscription) -> None:
    """Terminated subscriptions may share an external_id; as .first() does, the newest is read."""
    old = SubscriptionFactory(
        customer=subscription.customer,
        plan=PlanFactory(),
        external_id="acme-sub",
        subscription_at=subscription.subscription_at - timedelta(days=60),
        status=SubscriptionStatus.TERMINATED,
        terminated_at=subscription.subscription_at - timedelta(days=30),
    )
    found = usage_subscription("acme", "acme-sub")
    assert found is not None and found.pk == subscription.pk != old.pk

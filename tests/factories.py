"""factory-boy factories for the models tests build on.

Defaults follow the shipped catalog: USD, UTC, and the `mtu` metric (unique_count of user_id).
`BillableMetricFactory` gets-or-creates by code, so every factory that needs a metric shares the
one `mtu` row instead of tripping over its unique code; pass `code=` (and the aggregation) for
another metric.

`team_plan()` builds the seeds' Team plan (DESIGN §1): $120 a month, 10,000 MTUs included, then
graduated tiers at 0.012 / 0.011 / 0.010; `scaled_team_plan()` the same scaled down a hundredfold
(tiers end at 100, 250 and 1,000 MTUs at $1.20, $1.10 and $1.00, so the worked example's $355.00
needs 300 users, not 30,000); `free_plan()` the Free plan: MTUs free up to a usage limit.
`store_users(...)` stores one event per user directly (no age check, fast).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from billing.models import (
    AppliesTo,
    BillingTime,
    Charge,
    ChargeModel,
    Interval,
    Plan,
    Promotion,
    Subscription,
    SubscriptionStatus,
    Tier,
)
from customers.models import ApiKey, Customer, hash_api_key
from metering.ingest import store_events
from metering.models import Aggregation, BillableMetric
from metering.validation import Owner, ValidEvent, payload_hash

# (up_to, unit_amount) of the Team plan's MTU charge; None is the unbounded last tier.
TEAM_TIERS: tuple[tuple[int | None, str], ...] = (
    (10_000, "0"),
    (25_000, "0.012"),
    (100_000, "0.011"),
    (None, "0.010"),
)


class CustomerFactory(DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cust-{n:05d}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")
    currency = "USD"
    timezone = "UTC"


class ApiKeyFactory(DjangoModelFactory):
    """An API key; pass `raw_key="bk_..."` to know the key, or use `create_with_key()`."""

    class Meta:
        model = ApiKey

    class Params:
        raw_key = factory.LazyFunction(ApiKey.generate)

    name = factory.Sequence(lambda n: f"key {n}")
    prefix = factory.LazyAttribute(lambda o: o.raw_key[:8])
    key_hash = factory.LazyAttribute(lambda o: hash_api_key(o.raw_key))

    @classmethod
    def create_with_key(cls, **kwargs: Any) -> tuple[ApiKey, str]:
        raw_key = kwargs.pop("raw_key", None) or ApiKey.generate()
        return cls.create(raw_key=raw_key, **kwargs), raw_key


class BillableMetricFactory(DjangoModelFactory):
    class Meta:
        model = BillableMetric
        django_get_or_create = ("code",)

    code = "mtu"
    name = "Monthly tracked users"
    aggregation = Aggregation.UNIQUE_COUNT
    field = "user_id"


class PromotionFactory(DjangoModelFactory):
    """Defaults to the Lago-style trial: 100 % off the base fee for 14 days."""

    class Meta:
        model = Promotion

    code = factory.Sequence(lambda n: f"promo-{n}")
    name = factory.LazyAttribute(lambda o: f"Promotion {o.code}")
    percent_off = Decimal("100")
    duration_days = 14
    applies_to = AppliesTo.BASE_FEE


class PlanFactory(DjangoModelFactory):
    """A monthly USD plan without charges (add them with ChargeFactory, or use team_plan())."""

    class Meta:
        model = Plan

    code = factory.Sequence(lambda n: f"plan-{n}")
    version = 1
    is_current = True
    name = factory.LazyAttribute(lambda o: f"Plan {o.code}")
    interval = Interval.MONTH
    currency = "USD"
    base_fee = Decimal("0")
    promotion = None


class ChargeFactory(DjangoModelFactory):
    """A standard charge on the `mtu` metric; for tiers pass model=ChargeModel.GRADUATED."""

    class Meta:
        model = Charge

    plan = factory.SubFactory(PlanFactory)
    metric = factory.SubFactory(BillableMetricFactory)
    position = 0
    model = ChargeModel.STANDARD
    unit_amount = Decimal("0")


class TierFactory(DjangoModelFactory):
    """An unbounded free tier, placed after the charge's existing tiers."""

    class Meta:
        model = Tier

    charge = factory.SubFactory(ChargeFactory, model=ChargeModel.GRADUATED)
    position = factory.LazyAttribute(lambda o: o.charge.tiers.count())
    up_to = None
    unit_amount = Decimal("0")
    flat_amount = Decimal("0")


class SubscriptionFactory(DjangoModelFactory):
    """An active calendar-billed subscription starting now; it takes the plan's promotion."""

    class Meta:
        model = Subscription

    customer = factory.SubFactory(CustomerFactory)
    plan = factory.SubFactory(PlanFactory)
    external_id = factory.Sequence(lambda n: f"sub-{n:05d}")
    subscription_at = factory.LazyFunction(timezone.now)
    billing_time = BillingTime.CALENDAR
    status = SubscriptionStatus.ACTIVE
    promotion = factory.LazyAttribute(lambda o: o.plan.promotion)


def add_tiers(charge: Charge, tiers: Sequence[tuple[int | str | None, str]]) -> list[Tier]:
    """Tiers (up_to, unit_amount) on `charge`, in order."""
    return [
        TierFactory(
            charge=charge,
            position=i,
            up_to=None if up_to is None else Decimal(str(up_to)),
            unit_amount=Decimal(unit_amount),
        )
        for i, (up_to, unit_amount) in enumerate(tiers)
    ]


def team_plan(**kwargs: Any) -> Plan:
    """The seeds' Team plan: $120 a month and graduated MTU tiers. Keyword arguments go to PlanFactory."""
    kwargs.setdefault("code", "team")
    kwargs.setdefault("name", "Team")
    kwargs.setdefault("base_fee", Decimal("120"))
    plan = PlanFactory(**kwargs)
    charge = ChargeFactory(plan=plan, metric=BillableMetricFactory(), model=ChargeModel.GRADUATED)
    add_tiers(charge, TEAM_TIERS)
    return plan


SCALED_TEAM_TIERS: tuple[tuple[int | None, str], ...] = ((100, "0"), (250, "1.2"), (1000, "1.1"), (None, "1.0"))


def scaled_team_plan(**kwargs: Any) -> Plan:
    """The Team plan with its 14-day trial on the base fee, its MTU tiers a hundred times smaller."""
    kwargs.setdefault("code", "team")
    kwargs.setdefault("name", "Team")
    kwargs.setdefault("base_fee", Decimal("120"))
    if "promotion" not in kwargs:
        kwargs["promotion"] = Promotion.objects.filter(code="trial-14d-base").first() or PromotionFactory(
            code="trial-14d-base", name="14-day free trial"
        )
    plan = PlanFactory(**kwargs)
    charge = ChargeFactory(plan=plan, metric=BillableMetricFactory(), model=ChargeModel.GRADUATED)
    add_tiers(charge, SCALED_TEAM_TIERS)
    return plan


def store_users(
    customer: Customer, users: range, when: datetime, prefix: str, metric: BillableMetric | None = None
) -> None:
    """One event per user (`user_id` "u<n>") at `when`, stored as the events API stores them,
    without its age check."""
    metric = metric or BillableMetricFactory()
    owner = Owner(customer.pk, customer.timezone, customer.external_id)
    events = [
        ValidEvent(
            owner=owner,
            metric=metric,
            transaction_id=f"{prefix}-{u}",
            timestamp=when,
            properties={"user_id": f"u{u}"},
            value=None,
            distinct=f"u{u}",
            payload_hash=payload_hash(metric.code, when.timestamp(), {"user_id": f"u{u}"}),
        )
        for u in users
    ]
    store_events(events, received_at=when)


def free_plan(limit: int = 1000) -> Plan:
    """The catalog's Free plan: no base fee, one unbounded free tier of MTUs and a usage limit."""
    plan = PlanFactory(code="free", name="Free")
    charge = ChargeFactory(
        plan=plan, metric=BillableMetricFactory(), model=ChargeModel.GRADUATED, usage_limit=Decimal(limit)
    )
    add_tiers(charge, [(None, "0")])
    return plan

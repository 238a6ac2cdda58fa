"""Coupons (DESIGN §6 "Coupons"): writing coupons and applying them (billing.services.coupons and
billing.services.applied_coupons), every rule and refusal with nothing stored; and the worked
cases through the real period close (tests.billing.services.lifecycle's acme on the scaled-down
Team plan: September is $120.00 base fee + $235.00 usage = $355.00, October is $120.00).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from billing.models import (
    AppliedCoupon,
    Coupon,
    CouponApplication,
    CouponStatus,
    Invoice,
    InvoiceStatus,
    LineKind,
    Subscription,
)
from billing.services.applied_coupons import (
    COUPON_EXPIRED,
    COUPON_TERMINATED,
    CURRENCY_MISMATCH,
    LIMITATION_OVERLAPS,
    NOT_REUSABLE,
    UNKNOWN_COUPON,
    UNKNOWN_CUSTOMER,
    CouponOverrides,
    applied_coupon_create,
    applied_coupon_terminate,
)
from billing.services.coupons import (
    AMOUNT_NOT_POSITIVE,
    APPLIED_NOT_DELETED,
    BAD_CHOICE,
    CODE_SLASH,
    CODE_TAKEN,
    DURATION_NOT_POSITIVE,
    DURATION_REQUIRED,
    EXPIRATION_AT_PAST,
    EXPIRATION_AT_REQUIRED,
    FIXED_ONCE_APPLIED,
    MAX_AMOUNT_CENTS,
    NOT_A_BOOLEAN,
    ONE_LIMITATION,
    ONLY_FIXED,
    ONLY_PERCENTAGE,
    ONLY_RECURRING,
    ONLY_TIME_LIMIT,
    RATE_DECIMALS,
    RATE_RANGE,
    REQUIRED,
    TOO_LARGE,
    UNKNOWN_METRICS,
    UNKNOWN_PLANS,
    CouponError,
    CouponFields,
    coupon_create,
    coupon_destroy,
    coupon_terminate,
    coupon_update,
)
from billing.services.invoices import invoice_void
from billing.services.period_close import close_periods
from customers.validators import INVALID_CURRENCY
from tests.billing.services.lifecycle import OCTOBER_CLOSE, SEPTEMBER_CLOSE
from tests.factories import (
    BillableMetricFactory,
    CustomerFactory,
    PlanFactory,
    SubscriptionFactory,
    scaled_team_plan,
    store_users,
)
from tests.helpers import at, travel

pytestmark = pytest.mark.django_db

D = Decimal
NOW = at(2026, 8, 20, 12)  # coupons are written and applied after August closed, before September's close
AUGUST_CLOSE = at(2026, 9, 2, 9)
NOVEMBER_CLOSE = at(2026, 12, 2, 9)

FIXED_50: CouponFields = {
    "name": "Welcome",
    "code": "welcome-50",
    "coupon_type": "fixed_amount",
    "amount_cents": 5000,
    "amount_currency": "USD",
}
TEN_PERCENT: CouponFields = {
    "name": "Launch",
    "code": "launch-10",
    "coupon_type": "percentage",
    "percentage_rate": D("10"),
    "frequency": "forever",
}


def create(**fields: Any) -> Coupon:
    return coupon_create(fields={**FIXED_50, **fields}, now=NOW)  # type: ignore[typeddict-item]


def apply(code: str, customer: str = "acme", now: datetime = NOW, **overrides: Any) -> AppliedCoupon:
    return applied_coupon_create(
        external_customer_id=customer, coupon_code=code, overrides=CouponOverrides(**overrides), now=now
    )


def refused(call: Callable[[], object]) -> dict[str, list[str]]:
    """The call is refused with a CouponError and stores nothing; its errors."""
    before = (Coupon.objects.count(), AppliedCoupon.objects.count(), list(Coupon.objects.values().order_by("pk")))
    with pytest.raises(CouponError) as caught:
        call()
    after = (Coupon.objects.count(), AppliedCoupon.objects.count(), list(Coupon.objects.values().order_by("pk")))
    assert after == before
    return caught.value.errors


# --- the world: acme on the scaled-down Team plan since August ------------------------------------


def close(moment: datetime) -> None:
    with travel(moment):
        close_periods(now=moment)


@pytest.fixture
def acme() -> Subscription:
    """acme on Team since 2026-08-01, its August (the trial month) invoiced; 300 users in
    September."""
    customer = CustomerFactory(external_id="acme", name="Acme")
    subscription = SubscriptionFactory(
        customer=customer, plan=scaled_team_plan(), external_id="acme-team", subscription_at=at(2026, 8, 1)
    )
    store_users(customer, range(300), at(2026, 9, 20), "sep")
    close(AUGUST_CLOSE)
    return subscription


def invoice_of(subscription: Subscription, month: int) -> Invoice:
    return Invoice.objects.get(subscription=subscription, period_start=at(2026, month, 1), voided_at=None)


def coupon_amounts(invoice: Invoice) -> list[Decimal]:
    return [line.amount for line in invoice.lines.filter(kind=LineKind.COUPON).order_by("position", "id")]


# --- creating coupons -------------------------------------------------------------------------------


def test_a_fixed_coupon_keeps_its_amount_in_its_currency_with_lagos_defaults() -> None:
    coupon = create()
    assert (coupon.amount, coupon.currency, coupon.percentage_rate) == (D("50.00"), "USD", None)
    assert (coupon.frequency, coupon.frequency_duration, coupon.expiration, coupon.expiration_at) == (
        "once",
        None,
        "no_expiration",
        None,
    )
    assert coupon.reusable and coupon.status == CouponStatus.ACTIVE
    assert (coupon.plan_codes, coupon.billable_metric_codes) == ([], [])
    assert create(code="yen", amount_cents=1235, amount_currency="JPY").amount == D("1235")


def test_a_percentage_coupon_recurring_with_a_time_limit() -> None:
    coupon = coupon_create(
        fields={
            **TEN_PERCENT,
            "percentage_rate": D("12.5"),
            "frequency": "recurring",
            "frequency_duration": 3,
            "expiration": "time_limit",
            "expiration_at": at(2026, 12, 31),
            "reusable": False,
            "description": "Three months at 12.5 %",
        },
        now=NOW,
    )
    assert (coupon.coupon_type, coupon.percentage_rate, coupon.amount, coupon.currency) == (
        "percentage",
        D("12.5"),
        None,
        "",
    )
    assert (coupon.frequency, coupon.frequency_duration) == ("recurring", 3)
    assert (coupon.expiration, coupon.expiration_at, coupon.reusable) == ("time_limit", at(2026, 12, 31), False)
    assert coupon_create(fields={**TEN_PERCENT, "code": "all", "percentage_rate": D("100")}, now=NOW).pk


def test_a_coupon_limited_to_plans_or_to_metrics() -> None:
    scaled_team_plan()
    BillableMetricFactory(code="api_calls", name="API calls")
    by_plan = create(code="team-only", plan_codes=["team", "team"])
    by_metric = create(code="mtu-only", billable_metric_codes=["mtu", "api_calls"])
    assert (by_plan.plan_codes, by_plan.billable_metric_codes) == (["team"], [])
    assert (by_metric.plan_codes, by_metric.billable_metric_codes) == ([], ["mtu", "api_calls"])


CHOICES = "must be one of: {}"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": None}, {"name": [REQUIRED]}),
        ({"name": "  "}, {"name": [REQUIRED]}),
        ({"code": ""}, {"code": [REQUIRED]}),
        ({"code": "a/b"}, {"code": [CODE_SLASH]}),
        ({"code": "x" * 256}, {"code": ["must be at most 255 characters"]}),
        ({"coupon_type": None}, {"coupon_type": [REQUIRED]}),
        ({"coupon_type": "free"}, {"coupon_type": [BAD_CHOICE.format(choices="fixed_amount, percentage")]}),
        ({"amount_cents": None}, {"amount_cents": [REQUIRED]}),
        ({"amount_cents": 0}, {"amount_cents": [AMOUNT_NOT_POSITIVE]}),
        ({"amount_cents": -100}, {"amount_cents": [AMOUNT_NOT_POSITIVE]}),
        ({"amount_cents": MAX_AMOUNT_CENTS + 1}, {"amount_cents": [TOO_LARGE.format(n=MAX_AMOUNT_CENTS)]}),
        ({"amount_currency": None}, {"amount_currency": [REQUIRED]}),
        ({"amount_currency": "XXX"}, {"amount_currency": [INVALID_CURRENCY.format(value="XXX")]}),
        ({"amount_currency": "usd"}, {"amount_currency": [INVALID_CURRENCY.format(value="usd")]}),
        ({"percentage_rate": D("10")}, {"percentage_rate": [ONLY_PERCENTAGE]}),
        ({"frequency": "weekly"}, {"frequency": [BAD_CHOICE.format(choices="once, recurring, forever")]}),
        ({"frequency": "recurring"}, {"frequency_duration": [DURATION_REQUIRED]}),
        ({"frequency": "recurring", "frequency_duration": 0}, {"frequency_duration": [DURATION_NOT_POSITIVE]}),
        ({"frequency_duration": 2}, {"frequency_duration": [ONLY_RECURRING]}),
        ({"frequency": "forever", "frequency_duration": 2}, {"frequency_duration": [ONLY_RECURRING]}),
        ({"expiration": "time_limit"}, {"expiration_at": [EXPIRATION_AT_REQUIRED]}),
        ({"expiration": "time_limit", "expiration_at": NOW}, {"expiration_at": [EXPIRATION_AT_PAST]}),
        ({"expiration": "time_limit", "expiration_at": at(2026, 1, 1)}, {"expiration_at": [EXPIRATION_AT_PAST]}),
        ({"expiration_at": at(2027, 1, 1)}, {"expiration_at": [ONLY_TIME_LIMIT]}),
        ({"expiration": "soon"}, {"expiration": [BAD_CHOICE.format(choices="no_expiration, time_limit")]}),
        ({"reusable": None}, {"reusable": [NOT_A_BOOLEAN]}),
        ({"plan_codes": ["gold"]}, {"applies_to.plan_codes": [UNKNOWN_PLANS.format(codes="gold")]}),
        (
            {"billable_metric_codes": ["x", "y"]},
            {"applies_to.billable_metric_codes": [UNKNOWN_METRICS.format(codes="x, y")]},
        ),
        ({"plan_codes": ["team"], "billable_metric_codes": ["mtu"]}, {"applies_to": [ONE_LIMITATION]}),
    ],
)
def test_a_fixed_coupon_is_refused_naming_the_field(fields: dict[str, Any], expected: dict[str, list[str]]) -> None:
    scaled_team_plan()  # the plan `team` and the metric `mtu` exist
    assert refused(lambda: create(**fields)) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"percentage_rate": None}, {"percentage_rate": [REQUIRED]}),
        ({"percentage_rate": D("0")}, {"percentage_rate": [RATE_RANGE]}),
        ({"percentage_rate": D("-5")}, {"percentage_rate": [RATE_RANGE]}),
        ({"percentage_rate": D("100.01")}, {"percentage_rate": [RATE_RANGE]}),
        ({"percentage_rate": D("12.34567")}, {"percentage_rate": [RATE_DECIMALS.format(n=4)]}),
        ({"amount_cents": 100}, {"amount_cents": [ONLY_FIXED]}),
        ({"amount_currency": "USD"}, {"amount_currency": [ONLY_FIXED]}),
    ],
)
def test_a_percentage_coupon_is_refused_naming_the_field(
    fields: dict[str, Any], expected: dict[str, list[str]]
) -> None:
    assert refused(lambda: coupon_create(fields={**TEN_PERCENT, **fields}, now=NOW)) == expected  # type: ignore[typeddict-item]


def test_every_fault_is_named_at_once() -> None:
    errors = refused(lambda: coupon_create(fields={"coupon_type": "fixed_amount", "amount_cents": 0}, now=NOW))
    assert errors == {
        "name": [REQUIRED],
        "code": [REQUIRED],
        "amount_currency": [REQUIRED],
        "amount_cents": [AMOUNT_NOT_POSITIVE],
    }


def test_a_code_is_unique() -> None:
    create()
    assert refused(lambda: create(name="Again")) == {"code": [CODE_TAKEN.format(code="welcome-50")]}


# --- changing, terminating, deleting ----------------------------------------------------------------


def test_an_update_changes_only_what_is_sent() -> None:
    coupon = create(description="Fifty off")
    coupon = coupon_update(coupon=coupon, fields={"amount_cents": 7500, "name": "Seventy-five"}, now=NOW)
    assert (coupon.name, coupon.amount, coupon.currency, coupon.description) == (
        "Seventy-five",
        D("75.00"),
        "USD",
        "Fifty off",
    )
    # A new currency alone reads the same cents in it (as Lago keeps amount_cents).
    assert coupon_update(coupon=coupon, fields={"amount_currency": "EUR"}, now=NOW).amount == D("75.00")
    assert Coupon.objects.get().currency == "EUR"


def test_an_update_clears_what_no_longer_applies_and_refuses_it_sent() -> None:
    coupon = create(frequency="recurring", frequency_duration=2, expiration="time_limit", expiration_at=at(2027, 1, 1))
    coupon = coupon_update(
        coupon=coupon,
        fields={
            "coupon_type": "percentage",
            "percentage_rate": D("5"),
            "frequency": "forever",
            "expiration": "no_expiration",
        },
        now=NOW,
    )
    assert (coupon.amount, coupon.currency, coupon.percentage_rate) == (None, "", D("5"))
    assert (coupon.frequency_duration, coupon.expiration_at) == (None, None)
    assert refused(lambda: coupon_update(coupon=coupon, fields={"amount_cents": 100}, now=NOW)) == {
        "amount_cents": [ONLY_FIXED]
    }
    assert refused(lambda: coupon_update(coupon=coupon, fields={"coupon_type": "fixed_amount"}, now=NOW)) == {
        "amount_currency": [REQUIRED],
        "amount_cents": [REQUIRED],
    }


def test_an_update_swaps_a_limitation_to_plans_for_one_to_metrics_as_lago() -> None:
    scaled_team_plan()
    coupon = create(plan_codes=["team"])
    coupon = coupon_update(coupon=coupon, fields={"billable_metric_codes": ["mtu"]}, now=NOW)
    assert (coupon.plan_codes, coupon.billable_metric_codes) == ([], ["mtu"])
    coupon = coupon_update(coupon=coupon, fields={"billable_metric_codes": []}, now=NOW)
    assert (coupon.plan_codes, coupon.billable_metric_codes) == ([], [])


def test_an_applied_coupon_changes_only_its_name_description_and_expiration() -> None:
    CustomerFactory(external_id="acme")
    coupon = create()
    apply("welcome-50")
    changed = coupon_update(
        coupon=coupon,
        fields={
            "name": "Welcome back",
            "description": "For old friends",
            "expiration": "time_limit",
            "expiration_at": at(2027, 1, 1),
            "amount_cents": 5000,  # the same value is not a change
            "amount_currency": "USD",
            "code": "welcome-50",
        },
        now=NOW,
    )
    assert (changed.name, changed.description, changed.expiration_at) == (
        "Welcome back",
        "For old friends",
        at(2027, 1, 1),
    )
    for fields, field in (
        ({"amount_cents": 6000}, "amount_cents"),
        ({"amount_currency": "EUR"}, "amount_currency"),
        ({"code": "other"}, "code"),
        ({"coupon_type": "percentage", "percentage_rate": D("10")}, "coupon_type"),
        ({"frequency": "forever"}, "frequency"),
        ({"reusable": False}, "reusable"),
        ({"plan_codes": []}, None),  # not limited before either: no change
    ):
        if field is None:
            coupon_update(coupon=coupon, fields=fields, now=NOW)  # type: ignore[arg-type]
            continue
        errors = refused(lambda fields=fields: coupon_update(coupon=coupon, fields=fields, now=NOW))  # type: ignore[misc]
        assert errors[field] == [FIXED_ONCE_APPLIED]


def test_terminating_a_coupon_stops_new_applications_not_the_applied_ones() -> None:
    CustomerFactory(external_id="acme")
    CustomerFactory(external_id="globex")
    coupon = create()
    applied = apply("welcome-50")
    terminated = coupon_terminate(coupon=coupon, now=NOW)
    assert (terminated.status, terminated.terminated_at) == (CouponStatus.TERMINATED, NOW)
    assert coupon_terminate(coupon=coupon, now=at(2026, 9, 1)).terminated_at == NOW  # once
    applied.refresh_from_db()
    assert applied.status == CouponStatus.ACTIVE
    assert refused(lambda: apply("welcome-50", customer="globex")) == {
        "coupon_code": [COUPON_TERMINATED.format(code="welcome-50")]
    }


def test_a_coupon_never_applied_is_deleted_one_applied_only_terminated() -> None:
    CustomerFactory(external_id="acme")
    coupon_destroy(coupon=create(code="unused"))
    assert not Coupon.objects.filter(code="unused").exists()
    coupon = create()
    applied = apply("welcome-50")
    applied_coupon_terminate(applied_coupon=applied, now=NOW)  # even terminated, it was applied
    assert refused(lambda: coupon_destroy(coupon=coupon)) == {"coupon": [APPLIED_NOT_DELETED]}


# --- applying coupons -------------------------------------------------------------------------------


def test_applying_copies_the_coupons_terms_and_what_is_left_of_them() -> None:
    CustomerFactory(external_id="acme")
    create()
    create(code="thrice", frequency="recurring", frequency_duration=3)
    coupon_create(fields=TEN_PERCENT, now=NOW)
    once = apply("welcome-50")
    assert (once.coupon_type, once.amount, once.currency, once.frequency) == ("fixed_amount", D("50.00"), "USD", "once")
    assert (once.amount_remaining, once.frequency_duration_remaining, once.status) == (D("50.00"), None, "active")
    recurring = apply("thrice")
    assert (recurring.amount_remaining, recurring.frequency_duration, recurring.frequency_duration_remaining) == (
        None,
        3,
        3,
    )
    percentage = apply("launch-10")
    assert (percentage.percentage_rate, percentage.amount, percentage.currency, percentage.frequency) == (
        D("10"),
        None,
        "",
        "forever",
    )


def test_applying_overrides_amount_rate_frequency_and_duration_as_lago() -> None:
    CustomerFactory(external_id="acme")
    create(reusable=True)
    coupon_create(fields=TEN_PERCENT, now=NOW)
    fixed = apply("welcome-50", amount_cents=2500, frequency="recurring", frequency_duration=4)
    assert (fixed.amount, fixed.frequency, fixed.frequency_duration, fixed.frequency_duration_remaining) == (
        D("25.00"),
        "recurring",
        4,
        4,
    )
    assert fixed.amount_remaining is None  # recurring: the amount on each invoice
    assert apply("welcome-50", amount_currency="USD").amount_remaining == D("50.00")
    percentage = apply("launch-10", percentage_rate=D("15"), frequency="once")
    assert (percentage.percentage_rate, percentage.frequency, percentage.frequency_duration) == (D("15"), "once", None)


@pytest.mark.parametrize(
    ("code", "overrides", "expected"),
    [
        ("welcome-50", {"amount_cents": 0}, {"amount_cents": [AMOUNT_NOT_POSITIVE]}),
        ("welcome-50", {"percentage_rate": D("5")}, {"percentage_rate": [ONLY_PERCENTAGE]}),
        (
            "welcome-50",
            {"amount_currency": "EUR"},
            {"amount_currency": [CURRENCY_MISMATCH.format(currency="EUR", customer_currency="USD")]},
        ),
        ("welcome-50", {"amount_currency": "ZZZ"}, {"amount_currency": [INVALID_CURRENCY.format(value="ZZZ")]}),
        ("welcome-50", {"frequency": "recurring"}, {"frequency_duration": [DURATION_REQUIRED]}),
        ("welcome-50", {"frequency_duration": 3}, {"frequency_duration": [ONLY_RECURRING]}),
        ("welcome-50", {"frequency": "daily"}, {"frequency": [BAD_CHOICE.format(choices="once, recurring, forever")]}),
        (
            "launch-10",
            {"amount_cents": 100, "amount_currency": "USD"},
            {"amount_cents": [ONLY_FIXED], "amount_currency": [ONLY_FIXED]},
        ),
        ("launch-10", {"percentage_rate": D("101")}, {"percentage_rate": [RATE_RANGE]}),
        (
            "launch-10",
            {"frequency": "recurring", "frequency_duration": 0},
            {"frequency_duration": [DURATION_NOT_POSITIVE]},
        ),
    ],
)
def test_overrides_are_checked_as_the_coupons_own_terms(
    code: str, overrides: dict[str, Any], expected: dict[str, list[str]]
) -> None:
    CustomerFactory(external_id="acme")
    create()
    coupon_create(fields=TEN_PERCENT, now=NOW)
    assert refused(lambda: apply(code, **overrides)) == expected


def test_an_unknown_customer_and_coupon_are_named_together() -> None:
    assert refused(lambda: apply("nope", customer="ghost")) == {
        "external_customer_id": [UNKNOWN_CUSTOMER.format(ref="ghost")],
        "coupon_code": [UNKNOWN_COUPON.format(ref="nope")],
    }


def test_an_expired_coupon_is_not_applied() -> None:
    CustomerFactory(external_id="acme")
    create(expiration="time_limit", expiration_at=at(2026, 9, 1))
    assert apply("welcome-50", now=at(2026, 8, 31, 23)).pk
    assert refused(lambda: apply("welcome-50", now=at(2026, 9, 1))) == {
        "coupon_code": [COUPON_EXPIRED.format(code="welcome-50", at="2026-09-01T00:00:00+00:00")]
    }


def test_a_coupon_in_another_currency_than_the_customers_is_refused() -> None:
    CustomerFactory(external_id="acme", currency="EUR")
    create()
    coupon_create(fields=TEN_PERCENT, now=NOW)
    assert refused(lambda: apply("welcome-50")) == {
        "amount_currency": [CURRENCY_MISMATCH.format(currency="USD", customer_currency="EUR")]
    }
    assert apply("welcome-50", amount_currency="EUR").currency == "EUR"
    assert apply("launch-10").pk  # a percentage has no currency


def test_a_non_reusable_coupon_is_applied_once_per_customer_ever() -> None:
    CustomerFactory(external_id="acme")
    CustomerFactory(external_id="globex")
    create(reusable=False)
    first = apply("welcome-50")
    applied_coupon_terminate(applied_coupon=first, now=NOW)
    assert refused(lambda: apply("welcome-50")) == {"coupon_code": [NOT_REUSABLE.format(code="welcome-50")]}
    assert apply("welcome-50", customer="globex").pk  # another customer may
    create(code="again", reusable=True)
    assert apply("again").pk and apply("again").pk


def test_coupons_limited_to_overlapping_plans_or_metrics_are_not_active_together_as_lago() -> None:
    CustomerFactory(external_id="acme")
    scaled_team_plan()
    PlanFactory(code="startup")
    create(code="team-a", plan_codes=["team"])
    create(code="team-b", plan_codes=["team"])
    create(code="mtu", billable_metric_codes=["mtu"])  # the team plan charges mtu
    create(code="startup", plan_codes=["startup"])  # charges nothing
    create()
    first = apply("team-a")
    for code in ("team-b", "mtu"):
        assert refused(lambda code=code: apply(code)) == {  # type: ignore[misc]
            "coupon_code": [LIMITATION_OVERLAPS.format(code=code, other="team-a")]
        }
    assert apply("startup").pk and apply("welcome-50").pk  # other plans, or no limitation
    applied_coupon_terminate(applied_coupon=first, now=NOW)
    assert apply("mtu").pk


def test_terminating_an_applied_coupon_is_once() -> None:
    CustomerFactory(external_id="acme")
    create()
    applied = apply("welcome-50")
    stopped = applied_coupon_terminate(applied_coupon=applied, now=NOW)
    assert (stopped.status, stopped.terminated_at, stopped.used_up) == (CouponStatus.TERMINATED, NOW, False)
    assert applied_coupon_terminate(applied_coupon=applied, now=at(2026, 9, 1)).terminated_at == NOW


# --- the worked cases, through the period close --------------------------------------------------


def test_ten_percent_forever_takes_35_50_off_the_355_invoice_and_goes_on(acme: Subscription) -> None:
    coupon_create(fields=TEN_PERCENT, now=NOW)
    applied = apply("launch-10")
    close(SEPTEMBER_CLOSE)
    september = invoice_of(acme, 9)
    assert coupon_amounts(september) == [D("-35.50")]
    assert september.total == D("319.50") and september.status == InvoiceStatus.FINALIZED
    close(OCTOBER_CLOSE)
    assert coupon_amounts(invoice_of(acme, 10)) == [D("-12.00")]
    applied.refresh_from_db()
    assert (applied.status, applied.used_up) == (CouponStatus.ACTIVE, False)
    assert sorted(CouponApplication.objects.values_list("amount", flat=True)) == [D("12.00"), D("35.50")]


def test_fifty_once_on_the_120_base_fee_is_used_up_and_a_void_gives_it_back(acme: Subscription) -> None:
    close(SEPTEMBER_CLOSE)  # before the coupon: $355.00
    create()
    applied = apply("welcome-50", now=at(2026, 10, 10))
    close(OCTOBER_CLOSE)
    october = invoice_of(acme, 10)
    assert coupon_amounts(october) == [D("-50.00")] and october.total == D("70.00")
    applied.refresh_from_db()
    assert (applied.amount_remaining, applied.status, applied.used_up) == (D("0"), CouponStatus.TERMINATED, True)
    assert applied.terminated_at is not None

    close(NOVEMBER_CLOSE)
    assert coupon_amounts(invoice_of(acme, 11)) == []  # nothing left for the next invoice

    invoice_void(invoice=october, reason="wrong month", now=at(2026, 12, 5))
    applied.refresh_from_db()
    assert (applied.amount_remaining, applied.status, applied.used_up, applied.terminated_at) == (
        D("50.00"),
        CouponStatus.ACTIVE,
        False,
        None,
    )
    assert CouponApplication.objects.get(invoice=october).reversed_at == at(2026, 12, 5)


def test_a_once_fixed_coupon_carries_what_it_did_not_use_to_the_next_invoice(acme: Subscription) -> None:
    create(amount_cents=40000)  # $400.00 on a $355.00 invoice
    applied = apply("welcome-50")
    close(SEPTEMBER_CLOSE)
    assert coupon_amounts(invoice_of(acme, 9)) == [D("-355.00")]
    assert invoice_of(acme, 9).total == D("0.00")
    applied.refresh_from_db()
    assert (applied.amount_remaining, applied.status) == (D("45.00"), CouponStatus.ACTIVE)
    close(OCTOBER_CLOSE)
    assert coupon_amounts(invoice_of(acme, 10)) == [D("-45.00")]
    applied.refresh_from_db()
    assert (applied.amount_remaining, applied.status, applied.used_up) == (D("0"), CouponStatus.TERMINATED, True)


def test_a_recurring_coupon_for_two_invoices_reduces_two_then_stops(acme: Subscription) -> None:
    create(code="two", amount_cents=1000, frequency="recurring", frequency_duration=2)
    applied = apply("two")
    close(SEPTEMBER_CLOSE)
    applied.refresh_from_db()
    assert (applied.frequency_duration_remaining, applied.status) == (1, CouponStatus.ACTIVE)
    close(OCTOBER_CLOSE)
    close(NOVEMBER_CLOSE)
    assert [coupon_amounts(invoice_of(acme, month)) for month in (9, 10, 11)] == [[D("-10.00")], [D("-10.00")], []]
    applied.refresh_from_db()
    assert (applied.frequency_duration_remaining, applied.status, applied.used_up) == (
        0,
        CouponStatus.TERMINATED,
        True,
    )


def test_a_terminated_applied_coupon_reduces_no_later_invoice(acme: Subscription) -> None:
    coupon_create(fields=TEN_PERCENT, now=NOW)
    applied = apply("launch-10")
    close(SEPTEMBER_CLOSE)
    applied_coupon_terminate(applied_coupon=applied, now=at(2026, 10, 5))
    close(OCTOBER_CLOSE)
    assert coupon_amounts(invoice_of(acme, 9)) == [D("-35.50")]
    assert coupon_amounts(invoice_of(acme, 10)) == []


@pytest.mark.parametrize(
    ("limitation", "expected"),
    [
        ({"billable_metric_codes": ["mtu"]}, [D("-23.50")]),  # 10 % of the $235.00 usage only
        ({"plan_codes": ["team"]}, [D("-35.50")]),  # every fee of a team invoice
        ({"plan_codes": ["startup"]}, []),  # not this plan's invoices
    ],
)
def test_a_coupon_limited_to_plans_or_metrics_counts_only_their_fees(
    acme: Subscription, limitation: dict[str, list[str]], expected: list[Decimal]
) -> None:
    PlanFactory(code="startup")
    coupon_create(fields={**TEN_PERCENT, **limitation}, now=NOW)  # type: ignore[typeddict-item]
    apply("launch-10")
    close(SEPTEMBER_CLOSE)
    assert coupon_amounts(invoice_of(acme, 9)) == expected


def test_a_coupon_limited_to_metrics_comes_before_an_older_one_unlimited(acme: Subscription) -> None:
    """Lago's order: limited to metrics, then to plans, then the others, whatever was applied
    first. Oldest first, $100.00 would take $66.20 of the usage fee and leave 10 % of $168.80."""
    create(code="hundred", amount_cents=10000)
    apply("hundred")
    coupon_create(fields={**TEN_PERCENT, "billable_metric_codes": ["mtu"]}, now=NOW)
    apply("launch-10")
    close(SEPTEMBER_CLOSE)
    september = invoice_of(acme, 9)
    assert [(line.details["coupon_code"], line.amount) for line in september.lines.filter(kind=LineKind.COUPON)] == [
        ("launch-10", D("-23.50")),
        ("hundred", D("-100.00")),
    ]
    assert september.total == D("231.50")


def test_the_database_keeps_a_non_reusable_coupon_once_per_customer() -> None:
    from django.db import IntegrityError, transaction

    CustomerFactory(external_id="acme")
    coupon = create(reusable=False)
    applied = apply(coupon.code)
    assert applied.reusable is False
    with pytest.raises(IntegrityError), transaction.atomic():  # past the service's check
        AppliedCoupon.objects.create(
            coupon=coupon,
            customer=applied.customer,
            coupon_type=coupon.coupon_type,
            frequency=coupon.frequency,
            reusable=False,
        )

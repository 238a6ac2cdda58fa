"""Period lines (pure): base fee proration, promotion discounts on the base fee and on usage (DESIGN §3)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from billing.engine.lines import (
    Line,
    MeasuredCharge,
    PromotionWindow,
    base_fee_lines,
    promotion_touches,
    total,
    usage_lines,
)
from billing.engine.periods import Period, period_containing
from billing.engine.pricing import ChargeSpec, TierSpec, price_charge
from billing.engine.vocabulary import AppliesTo, BillingTime, ChargeModel, Interval, LineKind

D = Decimal

TEAM_MTU = ChargeSpec(
    model=ChargeModel.GRADUATED,
    tiers=(
        TierSpec(up_to=D("10000"), unit_amount=D("0")),
        TierSpec(up_to=D("25000"), unit_amount=D("0.012")),
        TierSpec(up_to=D("100000"), unit_amount=D("0.011")),
        TierSpec(up_to=None, unit_amount=D("0.010")),
    ),
)


def month_period(subscription_day: date, at: date) -> Period:
    return period_containing(
        subscription_at=datetime.combine(subscription_day, datetime.min.time(), tzinfo=UTC),
        terminated_at=None,
        billing_time=BillingTime.CALENDAR,
        interval=Interval.MONTH,
        tz="UTC",
        at=datetime.combine(at, datetime.min.time(), tzinfo=UTC),
    )


def trial(start: date, *, percent: str = "100", scope: str = AppliesTo.BASE_FEE, days: int = 14) -> PromotionWindow:
    return PromotionWindow(
        code="trial",
        name="14-day free trial",
        percent_off=D(percent),
        applies_to=scope,
        start_day=start,
        end_day=start + timedelta(days=days),
    )


def fee_lines(period: Period, promotion: PromotionWindow | None = None, fee: str = "120") -> list[Line]:
    return base_fee_lines(plan_name="Team", base_fee=D(fee), currency="USD", period=period, promotion=promotion)


def mtu(quantity: int, outside: int | None = None) -> MeasuredCharge:
    return MeasuredCharge(
        metric_code="mtu",
        metric_name="Monthly tracked users",
        charge=TEAM_MTU,
        quantity=D(quantity),
        quantity_outside_promotion=None if outside is None else D(outside),
    )


def amounts(lines: list[Line]) -> list[tuple[str, Decimal]]:
    return [(line.kind, line.amount) for line in lines]


# --- base fee ------------------------------------------------------------------------------------


def test_full_period_base_fee_is_the_whole_fee() -> None:
    lines = fee_lines(month_period(date(2026, 9, 1), date(2026, 9, 15)))
    assert amounts(lines) == [(LineKind.BASE_FEE, D("120.00"))]
    assert lines[0].quantity == 1
    assert lines[0].description == "Team base fee"


def test_partial_first_period_base_fee_is_prorated_by_days() -> None:
    lines = fee_lines(month_period(date(2026, 9, 10), date(2026, 9, 15)))
    assert amounts(lines) == [(LineKind.BASE_FEE, D("84.00"))]  # 120 × 21 / 30
    assert lines[0].description == "Team base fee (21 of 30 days)"
    assert lines[0].unit_amount == D("120")


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (date(2026, 10, 31), D("3.87")),  # 120 × 1/31 = 3.870…
        (date(2026, 2, 15), D("60.00")),  # 120 × 14/28
        (date(2026, 3, 17), D("58.06")),  # 120 × 15/31 = 58.064…
        (date(2026, 4, 2), D("116.00")),  # 120 × 29/30
    ],
)
def test_prorated_base_fee_is_rounded_once_half_up(start: date, expected: Decimal) -> None:
    assert fee_lines(month_period(start, start))[0].amount == expected


def test_zero_base_fee_gets_no_promotion_line() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 1))
    assert amounts(fee_lines(period, trial(date(2026, 9, 1)), fee="0")) == [(LineKind.BASE_FEE, D("0.00"))]


# --- promotions on the base fee ------------------------------------------------------------------


def test_base_fee_trial_of_14_days_in_a_30_day_month_discounts_56() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    lines = fee_lines(period, trial(date(2026, 9, 1)))
    assert amounts(lines) == [(LineKind.BASE_FEE, D("120.00")), (LineKind.PROMOTION, D("-56.00"))]  # 120 × 14/30
    assert lines[1].quantity == 14
    assert "for 14 of 30 days" in lines[1].description
    assert total(lines) == D("64.00")


def test_base_fee_trial_of_14_days_in_march_discounts_54_19() -> None:
    period = month_period(date(2026, 3, 1), date(2026, 3, 20))
    lines = fee_lines(period, trial(date(2026, 3, 1)))
    assert amounts(lines) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.PROMOTION, D("-54.19")),
    ]  # 120 × 14/31 = 54.193…
    assert total(lines) == D("65.81")


def test_trial_spanning_two_periods_discounts_the_overlapping_days_of_each() -> None:
    promotion = trial(date(2026, 9, 24))  # Sep 24 .. Oct 7 inclusive: 7 days + 7 days
    september = fee_lines(month_period(date(2026, 9, 24), date(2026, 9, 25)), promotion)
    assert amounts(september) == [(LineKind.BASE_FEE, D("28.00")), (LineKind.PROMOTION, D("-28.00"))]  # 120 × 7/30 each
    october = fee_lines(month_period(date(2026, 9, 24), date(2026, 10, 5)), promotion)
    assert amounts(october) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.PROMOTION, D("-27.10")),
    ]  # 120 × 7/31 = 27.096…


def test_promotion_window_not_touching_the_period_adds_no_line() -> None:
    promotion = trial(date(2026, 8, 1))  # ends Aug 15, exclusive
    period = month_period(date(2026, 8, 1), date(2026, 10, 1))
    assert amounts(fee_lines(period, promotion)) == [(LineKind.BASE_FEE, D("120.00"))]
    assert not promotion_touches(promotion, period)


def test_promotion_ending_exactly_at_the_period_start_adds_no_line() -> None:
    promotion = trial(date(2026, 9, 17))  # [Sep 17, Oct 1)
    period = month_period(date(2026, 9, 17), date(2026, 10, 1))
    assert period.start_day == promotion.end_day
    assert amounts(fee_lines(period, promotion)) == [(LineKind.BASE_FEE, D("120.00"))]


def test_half_price_promotion_discounts_half_of_the_covered_days() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    lines = fee_lines(period, trial(date(2026, 9, 1), percent="50"))
    assert amounts(lines) == [(LineKind.BASE_FEE, D("120.00")), (LineKind.PROMOTION, D("-28.00"))]
    assert "50 % off the base fee" in lines[1].description


def test_promotion_on_a_prorated_first_period_discounts_relative_to_the_full_period() -> None:
    period = month_period(date(2026, 9, 10), date(2026, 9, 12))
    lines = fee_lines(period, trial(date(2026, 9, 10)))
    assert amounts(lines) == [(LineKind.BASE_FEE, D("84.00")), (LineKind.PROMOTION, D("-56.00"))]


# --- usage and plan-scope promotions -------------------------------------------------------------


def test_usage_line_prices_the_whole_period_quantity() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 15))
    lines = usage_lines(charges=[mtu(30_000)], currency="USD", period=period, promotion=None)
    assert amounts(lines) == [(LineKind.USAGE, D("235.00"))]
    assert lines[0].priced is not None
    assert lines[0].metric_code == "mtu"


def test_plan_scope_trial_discounts_usage_seen_only_during_the_trial() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    promotion = trial(date(2026, 9, 1), scope=AppliesTo.PLAN)
    lines = usage_lines(charges=[mtu(12_000, outside=7_000)], currency="USD", period=period, promotion=promotion)
    assert amounts(lines) == [(LineKind.USAGE, D("24.00")), (LineKind.PROMOTION, D("-24.00"))]
    assert lines[1].quantity == 5_000
    assert lines[1].metric_code == "mtu"
    assert total(lines) == D("0.00")


def test_plan_scope_discount_leaves_the_price_of_the_usage_outside_the_trial() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    promotion = trial(date(2026, 9, 1), scope=AppliesTo.PLAN)
    lines = usage_lines(charges=[mtu(30_000, outside=20_000)], currency="USD", period=period, promotion=promotion)
    # price(30,000) = 235.00, price(20,000) = 120.00
    assert amounts(lines) == [(LineKind.USAGE, D("235.00")), (LineKind.PROMOTION, D("-115.00"))]
    assert total(lines) == price_charge(TEAM_MTU, D(20_000), "USD").amount


def test_plan_scope_discount_is_taken_from_rounded_line_prices() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    promotion = trial(date(2026, 9, 1), scope=AppliesTo.PLAN)
    # price(10,003) = 0.036 → 0.04 and price(10,001) = 0.012 → 0.01: the discount is 0.03 (not
    # round(0.024) = 0.02), so the customer pays exactly the 0.01 that q_out alone would cost.
    lines = usage_lines(charges=[mtu(10_003, outside=10_001)], currency="USD", period=period, promotion=promotion)
    assert amounts(lines) == [(LineKind.USAGE, D("0.04")), (LineKind.PROMOTION, D("-0.03"))]
    assert total(lines) == D("0.01")


def test_half_price_plan_scope_promotion_discounts_half_the_difference_rounded_half_up() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    promotion = trial(date(2026, 9, 1), percent="50", scope=AppliesTo.PLAN)
    lines = usage_lines(charges=[mtu(30_000, outside=20_000)], currency="USD", period=period, promotion=promotion)
    assert amounts(lines) == [(LineKind.USAGE, D("235.00")), (LineKind.PROMOTION, D("-57.50"))]
    odd = usage_lines(charges=[mtu(10_003, outside=10_001)], currency="USD", period=period, promotion=promotion)
    assert amounts(odd) == [(LineKind.USAGE, D("0.04")), (LineKind.PROMOTION, D("-0.02"))]  # 0.5 × 0.03 = 0.015 → 0.02


def test_no_usage_discount_when_all_usage_is_outside_the_trial() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    promotion = trial(date(2026, 9, 1), scope=AppliesTo.PLAN)
    lines = usage_lines(charges=[mtu(30_000, outside=30_000)], currency="USD", period=period, promotion=promotion)
    assert amounts(lines) == [(LineKind.USAGE, D("235.00"))]


def test_no_usage_discount_when_usage_is_free_anyway() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    promotion = trial(date(2026, 9, 1), scope=AppliesTo.PLAN)
    lines = usage_lines(charges=[mtu(8_000, outside=0)], currency="USD", period=period, promotion=promotion)
    assert amounts(lines) == [(LineKind.USAGE, D("0.00"))]


def test_base_fee_scope_promotion_never_discounts_usage() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    promotion = trial(date(2026, 9, 1), scope=AppliesTo.BASE_FEE)
    lines = usage_lines(charges=[mtu(12_000, outside=7_000)], currency="USD", period=period, promotion=promotion)
    assert amounts(lines) == [(LineKind.USAGE, D("24.00"))]


def test_plan_scope_promotion_outside_the_period_does_not_discount_usage() -> None:
    period = month_period(date(2026, 8, 1), date(2026, 10, 5))
    promotion = trial(date(2026, 8, 1), scope=AppliesTo.PLAN)
    lines = usage_lines(charges=[mtu(12_000, outside=7_000)], currency="USD", period=period, promotion=promotion)
    assert amounts(lines) == [(LineKind.USAGE, D("24.00"))]


def test_plan_scope_promotion_also_discounts_the_base_fee() -> None:
    period = month_period(date(2026, 3, 1), date(2026, 3, 20))
    promotion = trial(date(2026, 3, 1), scope=AppliesTo.PLAN)
    lines = fee_lines(period, promotion) + usage_lines(
        charges=[mtu(12_000, outside=7_000)], currency="USD", period=period, promotion=promotion
    )
    assert amounts(lines) == [
        (LineKind.BASE_FEE, D("120.00")),
        (LineKind.PROMOTION, D("-54.19")),
        (LineKind.USAGE, D("24.00")),
        (LineKind.PROMOTION, D("-24.00")),
    ]
    assert total(lines) == D("65.81")


def test_zero_percent_promotion_adds_no_line() -> None:
    period = month_period(date(2026, 9, 1), date(2026, 9, 20))
    promotion = trial(date(2026, 9, 1), percent="0", scope=AppliesTo.PLAN)
    lines = fee_lines(period, promotion) + usage_lines(
        charges=[mtu(12_000, outside=7_000)], currency="USD", period=period, promotion=promotion
    )
    assert amounts(lines) == [(LineKind.BASE_FEE, D("120.00")), (LineKind.USAGE, D("24.00"))]

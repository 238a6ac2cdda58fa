"""Billing periods (pure): calendar and anniversary, monthly and yearly, clamping, termination, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from billing.engine.periods import Period, full_period_days, period_containing
from billing.engine.vocabulary import BillingTime, Interval


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


def period(
    start: datetime,
    at: datetime,
    *,
    billing_time: str = BillingTime.CALENDAR,
    interval: str = Interval.MONTH,
    tz: str = "UTC",
    terminated_at: datetime | None = None,
) -> Period:
    return period_containing(
        subscription_at=start,
        terminated_at=terminated_at,
        billing_time=billing_time,
        interval=interval,
        tz=tz,
        at=at,
    )


def days(p: Period) -> tuple[date, date]:
    return p.start_day, p.end_day


# --- calendar, monthly ---------------------------------------------------------------------------


def test_calendar_first_period_is_partial_from_the_subscription_day_to_the_next_first() -> None:
    p = period(utc(2026, 9, 10, 15, 30), utc(2026, 9, 20))
    assert (p.start, p.end) == (utc(2026, 9, 10), utc(2026, 10, 1))
    assert (p.full_start, p.full_end) == (utc(2026, 9, 1), utc(2026, 10, 1))
    assert (p.days, p.full_days, p.is_partial) == (21, 30, True)


def test_calendar_later_periods_are_whole_months() -> None:
    p = period(utc(2026, 9, 10), utc(2026, 10, 15))
    assert (p.start, p.end) == (utc(2026, 10, 1), utc(2026, 11, 1))
    assert (p.days, p.full_days, p.is_partial) == (31, 31, False)
    feb = period(utc(2026, 9, 10), utc(2027, 2, 14))
    assert days(feb) == (date(2027, 2, 1), date(2027, 3, 1))
    assert feb.days == 28


def test_calendar_subscription_on_the_first_is_not_partial() -> None:
    p = period(utc(2026, 9, 1), utc(2026, 9, 1))
    assert (p.start, p.end, p.is_partial) == (utc(2026, 9, 1), utc(2026, 10, 1), False)


def test_december_period_ends_on_january_first_of_the_next_year() -> None:
    p = period(utc(2026, 1, 1), utc(2026, 12, 31, 23, 59))
    assert (p.start, p.end) == (utc(2026, 12, 1), utc(2027, 1, 1))


def test_bounds_are_half_open_the_end_instant_belongs_to_the_next_period() -> None:
    sub = utc(2026, 1, 1)
    assert period(sub, utc(2026, 10, 1)).start == utc(2026, 10, 1)
    last_instant = utc(2026, 10, 1) - timedelta(microseconds=1)
    assert period(sub, last_instant).end == utc(2026, 10, 1)
    assert period(sub, last_instant).start == utc(2026, 9, 1)


def test_a_moment_before_the_subscription_falls_in_its_first_period() -> None:
    p = period(utc(2026, 9, 10), utc(2026, 8, 1))
    assert (p.start, p.end) == (utc(2026, 9, 10), utc(2026, 10, 1))


# --- anniversary, monthly ------------------------------------------------------------------------


def test_anniversary_periods_start_on_the_subscription_day_of_month() -> None:
    sub = utc(2026, 9, 10, 8)
    first = period(sub, utc(2026, 9, 12), billing_time=BillingTime.ANNIVERSARY)
    assert (first.start, first.end) == (utc(2026, 9, 10), utc(2026, 10, 10))
    assert (first.days, first.is_partial) == (30, False)
    second = period(sub, utc(2026, 10, 9, 23), billing_time=BillingTime.ANNIVERSARY)
    assert (second.start, second.end) == (utc(2026, 9, 10), utc(2026, 10, 10))
    third = period(sub, utc(2026, 10, 10), billing_time=BillingTime.ANNIVERSARY)
    assert (third.start, third.end) == (utc(2026, 10, 10), utc(2026, 11, 10))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (date(2026, 2, 1), (date(2026, 1, 31), date(2026, 2, 28))),
        (date(2026, 2, 28), (date(2026, 2, 28), date(2026, 3, 31))),
        (date(2026, 3, 30), (date(2026, 2, 28), date(2026, 3, 31))),
        (date(2026, 3, 31), (date(2026, 3, 31), date(2026, 4, 30))),
        (date(2026, 5, 15), (date(2026, 4, 30), date(2026, 5, 31))),
    ],
)
def test_anniversary_on_the_31st_is_clamped_to_shorter_months_and_returns_to_the_31st(
    at: date, expected: tuple[date, date]
) -> None:
    p = period(
        utc(2026, 1, 31), datetime.combine(at, datetime.min.time(), tzinfo=UTC), billing_time=BillingTime.ANNIVERSARY
    )
    assert days(p) == expected
    assert p.days == (expected[1] - expected[0]).days


def test_anniversary_on_february_29_renews_on_the_29th_and_in_non_leap_years_on_the_28th() -> None:
    sub = utc(2028, 2, 29)
    assert days(period(sub, utc(2028, 3, 1), billing_time=BillingTime.ANNIVERSARY)) == (
        date(2028, 2, 29),
        date(2028, 3, 29),
    )
    assert days(period(sub, utc(2028, 3, 29), billing_time=BillingTime.ANNIVERSARY)) == (
        date(2028, 3, 29),
        date(2028, 4, 29),
    )
    assert days(period(sub, utc(2029, 2, 28), billing_time=BillingTime.ANNIVERSARY)) == (
        date(2029, 2, 28),
        date(2029, 3, 29),
    )
    assert days(period(sub, utc(2029, 2, 27), billing_time=BillingTime.ANNIVERSARY)) == (
        date(2029, 1, 29),
        date(2029, 2, 28),
    )


def test_consecutive_anniversary_periods_tile_time_without_gaps() -> None:
    sub = utc(2026, 1, 31)
    p = period(sub, sub, billing_time=BillingTime.ANNIVERSARY)
    for _ in range(30):
        following = period(sub, p.end, billing_time=BillingTime.ANNIVERSARY)
        assert following.start == p.end
        assert following.start < following.end
        p = following


# --- yearly --------------------------------------------------------------------------------------


def test_calendar_yearly_first_period_runs_to_january_first_and_is_partial() -> None:
    p = period(utc(2026, 9, 10), utc(2026, 11, 5), interval=Interval.YEAR)
    assert (p.start, p.end) == (utc(2026, 9, 10), utc(2027, 1, 1))
    assert (p.full_start, p.full_end) == (utc(2026, 1, 1), utc(2027, 1, 1))
    assert (p.days, p.full_days, p.is_partial) == (113, 365, True)
    following = period(utc(2026, 9, 10), utc(2028, 6, 1), interval=Interval.YEAR)
    assert (following.start, following.end, following.days) == (utc(2028, 1, 1), utc(2029, 1, 1), 366)


def test_anniversary_yearly_periods_run_from_the_subscription_date() -> None:
    sub = utc(2026, 9, 10)
    p = period(sub, utc(2027, 3, 1), billing_time=BillingTime.ANNIVERSARY, interval=Interval.YEAR)
    assert (p.start, p.end, p.days, p.is_partial) == (utc(2026, 9, 10), utc(2027, 9, 10), 365, False)
    assert period(sub, utc(2027, 9, 10), billing_time=BillingTime.ANNIVERSARY, interval=Interval.YEAR).start == utc(
        2027, 9, 10
    )


def test_anniversary_yearly_from_february_29_uses_february_28_in_common_years() -> None:
    sub = utc(2028, 2, 29)
    assert days(period(sub, utc(2028, 6, 1), billing_time=BillingTime.ANNIVERSARY, interval=Interval.YEAR)) == (
        date(2028, 2, 29),
        date(2029, 2, 28),
    )
    assert days(period(sub, utc(2029, 6, 1), billing_time=BillingTime.ANNIVERSARY, interval=Interval.YEAR)) == (
        date(2029, 2, 28),
        date(2030, 2, 28),
    )
    assert days(period(sub, utc(2032, 2, 28), billing_time=BillingTime.ANNIVERSARY, interval=Interval.YEAR)) == (
        date(2031, 2, 28),
        date(2032, 2, 29),
    )
    assert days(period(sub, utc(2032, 2, 29), billing_time=BillingTime.ANNIVERSARY, interval=Interval.YEAR)) == (
        date(2032, 2, 29),
        date(2033, 2, 28),
    )


def test_full_period_days_rejects_an_unknown_interval() -> None:
    with pytest.raises(ValueError, match="unknown interval"):
        full_period_days(date(2026, 1, 1), BillingTime.CALENDAR, "week", date(2026, 1, 5))


# --- termination ---------------------------------------------------------------------------------


def test_the_day_a_subscription_ends_does_not_count_even_mid_day() -> None:
    p = period(utc(2026, 9, 1), utc(2026, 9, 19, 15), terminated_at=utc(2026, 9, 20, 15))
    assert (p.start, p.end) == (utc(2026, 9, 1), utc(2026, 9, 20))
    assert (p.days, p.full_days, p.is_partial) == (19, 30, True)


def test_termination_exactly_at_midnight_does_not_count_that_day() -> None:
    p = period(utc(2026, 9, 1), utc(2026, 9, 19, 12), terminated_at=utc(2026, 9, 20))
    assert (p.end, p.days) == (utc(2026, 9, 20), 19)


def test_termination_after_the_period_does_not_shorten_it() -> None:
    p = period(utc(2026, 9, 1), utc(2026, 9, 15), terminated_at=utc(2026, 12, 3, 10))
    assert (p.end, p.is_partial) == (utc(2026, 10, 1), False)


def test_subscription_started_and_terminated_in_one_month_has_both_ends_clipped() -> None:
    p = period(utc(2026, 9, 10, 9), utc(2026, 9, 12), terminated_at=utc(2026, 9, 14, 18))
    assert days(p) == (date(2026, 9, 10), date(2026, 9, 14))
    assert (p.days, p.full_days) == (4, 30)


def test_termination_on_the_start_instant_leaves_an_empty_period() -> None:
    p = period(utc(2026, 9, 10), utc(2026, 9, 10), terminated_at=utc(2026, 9, 10))
    assert p.start == p.end
    assert p.days == 0


# --- time zones ----------------------------------------------------------------------------------


def test_period_starts_at_local_midnight_in_the_customer_zone() -> None:
    tz = "Europe/Paris"
    p = period(local(tz, 2026, 9, 1), local(tz, 2026, 9, 30, 23, 30), tz=tz)
    assert p.start == local(tz, 2026, 9, 1) == utc(2026, 8, 31, 22)
    assert p.end == local(tz, 2026, 10, 1) == utc(2026, 9, 30, 22)
    assert p.start.tzinfo == UTC  # stored as aware UTC datetimes


def test_a_utc_moment_before_local_midnight_belongs_to_the_previous_local_month() -> None:
    tz = "America/New_York"
    # 2026-10-01 02:00 UTC is still September 30th, 22:00 in New York.
    p = period(utc(2026, 1, 1, 12), utc(2026, 10, 1, 2), tz=tz)
    assert days(p) == (date(2026, 9, 1), date(2026, 10, 1))
    assert p.end == utc(2026, 10, 1, 4)


def test_new_york_march_with_the_spring_dst_switch_has_31_days_of_743_hours() -> None:
    tz = "America/New_York"
    p = period(utc(2026, 1, 1, 12), utc(2026, 3, 15), tz=tz)
    assert (p.start, p.end) == (utc(2026, 3, 1, 5), utc(2026, 4, 1, 4))  # EST then EDT
    assert (p.days, p.full_days, p.is_partial) == (31, 31, False)
    assert p.end - p.start == timedelta(days=31) - timedelta(hours=1)


def test_paris_october_with_the_autumn_dst_switch_has_31_days_of_745_hours() -> None:
    tz = "Europe/Paris"
    p = period(utc(2026, 1, 1, 12), utc(2026, 10, 26), tz=tz)
    assert (p.start, p.end) == (utc(2026, 9, 30, 22), utc(2026, 10, 31, 23))  # CEST then CET
    assert (p.days, p.is_partial) == (31, False)
    assert p.end - p.start == timedelta(days=31, hours=1)


def test_partial_first_period_in_a_dst_month_counts_calendar_days_not_hours() -> None:
    tz = "Europe/Paris"
    p = period(local(tz, 2026, 3, 20, 10), local(tz, 2026, 3, 29, 12), tz=tz)
    assert p.start == local(tz, 2026, 3, 20)
    assert (p.days, p.full_days) == (12, 31)  # 20th..31st; the 29th is 23 hours long


def test_anniversary_periods_in_a_zone_start_at_local_midnight_of_the_anniversary() -> None:
    tz = "America/New_York"
    sub = local(tz, 2026, 2, 10, 17)
    p = period(sub, local(tz, 2026, 3, 10, 0, 30), billing_time=BillingTime.ANNIVERSARY, tz=tz)
    assert p.start == local(tz, 2026, 3, 10) == utc(2026, 3, 10, 4)  # EDT since March 8th
    assert p.end == local(tz, 2026, 4, 10)


def test_termination_at_local_midnight_in_a_zone_excludes_that_day() -> None:
    tz = "America/New_York"
    terminated = local(tz, 2026, 3, 20)
    p = period(utc(2026, 1, 1, 12), utc(2026, 3, 15), tz=tz, terminated_at=terminated)
    assert (p.end, p.days) == (terminated, 19)
    # Midnight UTC is 20:00 the day before in New York: that local day (the 19th) is the end.
    p = period(utc(2026, 1, 1, 12), utc(2026, 3, 15), tz=tz, terminated_at=utc(2026, 3, 20))
    assert p.end_day == date(2026, 3, 19)


def test_a_day_whose_midnight_does_not_exist_starts_at_its_first_instant() -> None:
    tz = "America/Santiago"  # clocks jump from 00:00 to 01:00 on 2026-09-06
    p = period(utc(2026, 1, 1, 12), utc(2026, 9, 7, 12), tz=tz, terminated_at=utc(2026, 9, 7, 12))
    assert p.end_day == date(2026, 9, 7)
    assert p.end == utc(2026, 9, 7, 3)  # Monday 00:00 -03:00
    p = period(utc(2026, 1, 1, 12), utc(2026, 9, 5, 12), tz=tz, terminated_at=utc(2026, 9, 6, 12))
    assert p.end_day == date(2026, 9, 6)
    assert p.end == utc(2026, 9, 6, 4)  # 01:00 -03:00, the first instant of Sunday (no midnight)

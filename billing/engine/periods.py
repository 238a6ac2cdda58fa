"""Billing periods (pure): half-open [start, end) of whole local days, as aware UTC datetimes.

- `calendar` periods start on the 1st of the month (or January 1st for yearly fees);
  `anniversary` periods start on the subscription's day of month (or date, yearly), clamped to
  the month's last day (a subscription on Jan 31 renews Feb 28, Mar 31, …).
- Usage is always billed monthly; the base fee follows the plan's interval.
- Days are calendar days in the customer's time zone. The day a subscription starts counts
  whole; the day it ends (the exclusive bound) does not (DESIGN §3), so a subscription
  terminated on Oct 16 at 10:00 is billed for Oct 1–15, and events of Oct 16 are not billed
  by it (a plan change starts the next plan at that day's midnight, which bills them). A
  subscription terminated at its own start instant never ran: it has no days.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from billing.engine.vocabulary import BillingTime, Interval
from metering.days import day_start, local_date

ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    full_start: datetime  # the whole period this one belongs to (for proration)
    full_end: datetime
    start_day: date  # local dates, [start_day, end_day)
    end_day: date
    full_start_day: date
    full_end_day: date

    @property
    def days(self) -> int:
        return (self.end_day - self.start_day).days

    @property
    def full_days(self) -> int:
        return (self.full_end_day - self.full_start_day).days

    @property
    def is_partial(self) -> bool:
        return self.days != self.full_days


def clamped_date(year: int, month: int, day: int) -> date:
    """The date, with the day clamped to the month's last (Feb 31 → Feb 28 or 29)."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def add_months(day: date, months: int, *, anchor_day: int | None = None) -> date:
    """The same day `months` later (or earlier), clamped to the month's end: Jan 31 + 1 → Feb 28.

    `anchor_day`: the day of month to aim for instead of `day`'s (a period anchored on the 31st
    that passed through February aims for the 31st again).
    """
    index = day.year * 12 + (day.month - 1) + months
    return clamped_date(index // 12, index % 12 + 1, anchor_day or day.day)


def month_start(day: date) -> date:
    return day.replace(day=1)


def full_period_days(anchor: date, billing_time: str, interval: str, day: date) -> tuple[date, date]:
    """The whole period [start, end) of local dates that contains `day`."""
    if interval == Interval.MONTH:
        anchor_day = 1 if billing_time == BillingTime.CALENDAR else anchor.day
        start = clamped_date(day.year, day.month, anchor_day)
        if day < start:
            start = add_months(start, -1, anchor_day=anchor_day)
        return start, add_months(start, 1, anchor_day=anchor_day)
    if interval == Interval.YEAR:
        month, anchor_day = (1, 1) if billing_time == BillingTime.CALENDAR else (anchor.month, anchor.day)
        start = clamped_date(day.year, month, anchor_day)
        if day < start:
            start = clamped_date(day.year - 1, month, anchor_day)
        return start, clamped_date(start.year + 1, month, anchor_day)
    raise ValueError(f"unknown interval {interval!r}")


def end_day(moment: datetime, tz: str) -> date:
    """The exclusive end day of something that stops at `moment`: the day it ends does not count
    (DESIGN §3), wherever in that day it falls."""
    return local_date(moment, tz)


def period_containing(
    *,
    subscription_at: datetime,
    terminated_at: datetime | None,
    billing_time: str,
    interval: str,
    tz: str,
    at: datetime,
) -> Period:
    """The subscription's period (of `interval`) that contains the moment `at`, clipped to its life."""
    first_day = local_date(subscription_at, tz)
    day = max(local_date(at, tz), first_day)
    full_start, full_end = full_period_days(first_day, billing_time, interval, day)
    start, end = max(full_start, first_day), full_end
    if terminated_at is not None:
        # Terminated at (or before) its start instant, it never ran: no day at all, even if
        # that instant is not a midnight (a same-day plan change replaces it from its start).
        end = start if terminated_at <= subscription_at else max(start, min(end, end_day(terminated_at, tz)))
    return Period(
        start=day_start(start, tz),
        end=day_start(end, tz),
        full_start=day_start(full_start, tz),
        full_end=day_start(full_end, tz),
        start_day=start,
        end_day=end,
        full_start_day=full_start,
        full_end_day=full_end,
    )


class Subscribed(Protocol):
    """What a period needs of a subscription (billing.models.Subscription has it)."""

    subscription_at: datetime
    terminated_at: datetime | None
    billing_time: str


def subscription_period(subscription: Subscribed, *, tz: str, interval: str, at: datetime) -> Period:
    """The subscription's period of `interval` (usage: always monthly) that contains `at`."""
    return period_containing(
        subscription_at=subscription.subscription_at,
        terminated_at=subscription.terminated_at,
        billing_time=subscription.billing_time,
        interval=interval,
        tz=tz,
        at=at,
    )


def term_end(start: datetime, months: int, tz: str) -> datetime:
    """The end of a term of `months` from `start` (a commitment's): local midnight `months` after
    its first local day, the day clamped to the month's end."""
    first = local_date(start, tz)
    return day_start(add_months(first, months), tz)

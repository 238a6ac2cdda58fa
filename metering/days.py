"""Calendar days in a customer's time zone, as aware datetimes (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import cache
from zoneinfo import ZoneInfo


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def day_start(day: date, tz: str) -> datetime:
    """The first instant of `day` in zone `tz`, in UTC.

    Where a DST change skips midnight, zoneinfo reads 00:00 with the offset in force before the
    change, which lands on the first instant that exists that day.
    """
    return datetime.combine(day, time(0), tzinfo=zone(tz)).astimezone(UTC)


def local_date(moment: datetime, tz: str) -> date:
    return moment.astimezone(zone(tz)).date()


def is_day_start(moment: datetime, tz: str) -> bool:
    return day_start(local_date(moment, tz), tz) == moment


def month_key(day: date) -> int:
    return day.year * 100 + day.month

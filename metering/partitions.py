"""Monthly partitions of the events table on PostgreSQL (SQLite keeps one plain table).

`metering_event` is PARTITION BY RANGE ("timestamp") with one partition per UTC month
(`metering_event_y2026m11`) and a DEFAULT partition that catches anything outside them, so an
insert never fails for want of a partition. A daily task creates the coming months ahead.
Creating a month whose rows already sit in the default partition moves them: the new table is
filled from the default, then attached, in one transaction.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.db import connection, transaction

PARENT = "metering_event"
DEFAULT = "metering_event_default"


def partition_name(month: date) -> str:
    return f"{PARENT}_y{month.year}m{month.month:02d}"


def _month(year: int, month: int, shift: int) -> date:
    index = year * 12 + month - 1 + shift
    return date(index // 12, index % 12 + 1, 1)


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [PARENT])
        return cursor.fetchone() is not None


def existing_partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [PARENT],
        )
        return {row[0] for row in cursor.fetchall()}


def ensure_event_partitions(*, around: date, months_before: int = 2, months_after: int = 3) -> list[str]:
    """Create the monthly partitions from `months_before` to `months_after` around `around`."""
    if not is_partitioned():
        return []
    have = existing_partitions()
    created = []
    for shift in range(-months_before, months_after + 1):
        start = _month(around.year, around.month, shift)
        name = partition_name(start)
        if name in have:
            continue
        end = _month(start.year, start.month, 1)
        lower = datetime(start.year, start.month, 1, tzinfo=UTC).isoformat()
        upper = datetime(end.year, end.month, 1, tzinfo=UTC).isoformat()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            cursor.execute(
                f'WITH moved AS (DELETE FROM {DEFAULT} WHERE "timestamp" >= %s AND "timestamp" < %s '
                f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                [lower, upper],
            )
            cursor.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [lower, upper])
        created.append(name)
    return created

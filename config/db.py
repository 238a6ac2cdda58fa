"""Database helpers that must behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import connections
from django.db.models import QuerySet, Sum


def exact_sum(queryset: QuerySet[Any], field: str) -> Decimal | None:
    """SUM of a DecimalField, exact on both databases (None when there are no rows).

    PostgreSQL sums `numeric` exactly. SQLite stores decimals as REAL and its SUM() returns a
    float (54.19 + … can come back as 54.1900000000001), so there the rows are read one by one
    (each converted exactly to Decimal by Django) and added in Python.
    """
    if connections[queryset.db].vendor != "sqlite":
        summed: Decimal | None = queryset.aggregate(total=Sum(field))["total"]
        return summed
    total: Decimal | None = None
    for value in queryset.values_list(field, flat=True).iterator(chunk_size=10_000):
        if value is not None:
            total = value if total is None else total + value
    return total

"""Database helpers that must behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet, Sum
from django.utils import timezone


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


def raw_timestamp(value: datetime | str, using: str = DEFAULT_DB_ALIAS) -> datetime:
    """A timestamp from a raw cursor as the ORM would give it: aware. SQLite returns naive UTC,
    and an aggregate's (a subquery's max()) as text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, connections[using].timezone)


def prepared_cursor() -> CursorWrapper:
    """A cursor for a statement run on every request (the event path's read and store): with
    prepared statements on (DATABASES OPTIONS prepare_threshold, DATABASE_PREPARED_STATEMENTS)
    a server-side binding cursor, which psycopg prepares after a few runs on a connection, so the
    statement is planned once per connection instead of each time; else Django's cursor.

    It connects (and health-checks, when that is on) as Django's cursor() does and runs inside
    Django's wrapper: errors are Django's (a lost connection is closed after the request, as for
    any query), execute wrappers apply, and the query is logged where queries are. Django's own
    cursors bind client-side and never prepare.
    """
    # The connection itself, looked up once: each attribute of django.db.connection (a proxy)
    # looks it up again, in a task-local store, and this function read eight of them.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or db.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        return db.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor  # imports psycopg: PostgreSQL only

    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    cursor_class: Any = ServerBindingCursor  # a psycopg cursor; django-stubs type it as Django's wrapper
    raw = cursor_class(db.connection)
    return db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw)


class FieldCheckConstraint(models.CheckConstraint):
    """A CheckConstraint about one field: when a form validates the model (Model.full_clean), its
    violation is an error on that field, in words ("must not be negative"), not Django's
    'Constraint "tier_unit_amount_not_negative" is violated.' above the form. The database
    enforces it as any CheckConstraint."""

    def __init__(self, *args: Any, field: str, **kwargs: Any) -> None:
        self.field = field
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        path, args, kwargs = super().deconstruct()
        kwargs["field"] = self.field
        return path, args, kwargs

    def validate(self, model: Any, instance: Any, exclude: Any = None, using: str = DEFAULT_DB_ALIAS) -> None:
        try:
            super().validate(model, instance, exclude=exclude, using=using)
        except ValidationError as exc:
            # On its field, with the constraint's code kept (violation_error_code).
            raise ValidationError({self.field: [ValidationError(m, code=exc.code) for m in exc.messages]}) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldCheckConstraint) and self.field == other.field and super().__eq__(other)

    # Like CheckConstraint (which defines __eq__), unhashable: constraints are compared, not hashed.

"""django-q2 tasks of metering. Thin: each calls one service."""

from __future__ import annotations

from django.utils import timezone

from metering.partitions import ensure_event_partitions


def create_event_partitions() -> str:
    """Create the coming months' event partitions ahead (daily; idempotent; no-op on SQLite)."""
    created = ensure_event_partitions(around=timezone.now().date())
    return f"created {', '.join(created)}" if created else "partitions up to date"

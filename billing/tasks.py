"""django-q2 tasks. Thin: each calls one service. Schedules are created by `setup_schedules`."""

from __future__ import annotations

from django.utils import timezone

from billing.period_close import close_periods


def close_ended_periods() -> str:
    """Monthly usage invoicing: close every period that has ended (runs hourly; idempotent)."""
    report = close_periods(now=timezone.now())
    summary = f"{len(report.created)} created, {len(report.finalized)} finalized, {len(report.errors)} errors"
    if report.errors:
        raise RuntimeError(summary + ": " + "; ".join(report.errors[:10]))
    return summary

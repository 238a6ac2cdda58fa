"""django-q2 tasks. Thin: each calls one service. Schedules are created by `setup_schedules`."""

from __future__ import annotations

from django.utils import timezone

from billing.services.commitments import process_commitments
from billing.services.period_close import close_periods
from metering.days import local_date


def close_ended_periods() -> str:
    """Monthly usage invoicing: close every period that has ended (runs hourly; idempotent)."""
    report = close_periods(now=timezone.now())
    summary = f"{len(report.created)} created, {len(report.finalized)} finalized, {len(report.errors)} errors"
    if report.errors:
        raise RuntimeError(summary + ": " + "; ".join(report.errors[:10]))
    return summary


def process_due_commitments() -> str:
    """Annual commitment processing: prepayments, expiry, renewal (runs daily; idempotent)."""
    report = process_commitments(today=local_date(timezone.now(), "UTC"))
    summary = (
        f"{len(report.prepaid)} prepaid, {len(report.expired)} expired, {len(report.renewed)} renewed, "
        f"{len(report.waiting)} waiting, {len(report.errors)} errors"
    )
    if report.errors:
        raise RuntimeError(summary + ": " + "; ".join(report.errors[:10]))
    return summary

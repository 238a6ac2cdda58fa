"""django-q2 tasks. Thin: each calls one service. Schedules are created by `setup_schedules`."""

from __future__ import annotations

from django.utils import timezone

from billing.services.alerts import check_alerts as check_usage_alerts
from billing.services.commitments import process_commitments
from billing.services.invoice_emails import send_due
from billing.services.period_close import close_chunk
from billing.services.period_close_workers import queue_close_chunks
from billing.services.subscription_clock import subscriptions_watch
from billing.services.wallets import wallets_expire
from billing.services.webhooks import deliver_due
from metering.days import local_date


def close_ended_periods() -> str:
    """Monthly usage invoicing (runs hourly; idempotent): queue one close_period_chunk task per
    chunk of the subscriptions with periods to close, so the cluster's workers share them."""
    subscriptions, chunks = queue_close_chunks(now=timezone.now())
    return f"{subscriptions} subscriptions in {chunks} chunk{'' if chunks == 1 else 's'} queued"


def close_period_chunk(subscription_ids: list[int]) -> str:
    """Close the periods of a chunk of subscriptions; one that failed fails the task (after the
    others were closed), so it shows."""
    report = close_chunk(subscription_ids, now=timezone.now())
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


def deliver_webhooks() -> str:
    """Send every webhook delivery that is due (queued after each commit, and every minute)."""
    return str(deliver_due())


def send_invoice_emails() -> str:
    """Send every invoice email that is due (queued after each finalization, and every minute)."""
    return str(send_due())


def watch_subscriptions() -> str:
    """Start pending subscriptions whose start has come, apply due downgrades, end those whose
    ending_at has come, announce ended trials (every minute); a failed one fails the task (after
    the others were done), so it shows."""
    report = subscriptions_watch(now=timezone.now())
    summary = (
        f"{len(report.started)} started, {len(report.downgraded)} downgraded, {len(report.ended)} ended, "
        f"{len(report.trials_ended)} trials ended"
    )
    if report.errors:
        raise RuntimeError(f"{summary}: " + "; ".join(report.errors[:10]))
    return summary


def check_alerts() -> str:
    """Usage alerts: record and announce the thresholds crossed since the last check (every minute)."""
    report = check_usage_alerts(now=timezone.now())
    if report.errors:
        raise RuntimeError(f"{report}: " + "; ".join(report.errors[:10]))
    return str(report)


def expire_wallets() -> str:
    """Wallets whose expiration_at has come: balance voided, wallet terminated (every minute)."""
    report = wallets_expire(now=timezone.now())
    if report.errors:
        raise RuntimeError(f"{report}: " + "; ".join(report.errors[:10]))
    return str(report)

"""Create or update the django-q2 schedules (idempotent; they show in the admin under Task queue)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_q.models import Schedule

SCHEDULES = [
    # (name, function, schedule type, minutes)
    ("Close ended billing periods", "billing.tasks.close_ended_periods", Schedule.MINUTES, 60),
    # Daily; it also runs hourly-safe, so an hourly cadence catches time zones east of UTC early.
    ("Process commitments", "billing.tasks.process_due_commitments", Schedule.MINUTES, 60 * 24),
    ("Create event partitions ahead", "metering.tasks.create_event_partitions", Schedule.MINUTES, 60 * 24),
    # Every minute: what was written but not sent (a process died before queueing it, a retry
    # fell due), pending subscriptions that start, ended trials, usage alerts, and wallets that expire.
    ("Deliver webhooks", "billing.tasks.deliver_webhooks", Schedule.MINUTES, 1),
    ("Send invoice emails", "billing.tasks.send_invoice_emails", Schedule.MINUTES, 1),
    ("Watch subscriptions", "billing.tasks.watch_subscriptions", Schedule.MINUTES, 1),
    ("Check usage alerts", "billing.tasks.check_alerts", Schedule.MINUTES, 1),
    ("Expire wallets", "billing.tasks.expire_wallets", Schedule.MINUTES, 1),
]


def ensure_schedules() -> list[tuple[str, bool]]:
    results = []
    for name, func, schedule_type, minutes in SCHEDULES:
        _, created = Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": schedule_type, "minutes": minutes, "repeats": -1},
        )
        results.append((name, created))
    return results


class Command(BaseCommand):
    help = "Create the scheduled tasks (period close, commitments, webhooks, emails, alerts) if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, created in ensure_schedules():
            self.stdout.write(f"  schedule {name!r}: {'created' if created else 'up to date'}")

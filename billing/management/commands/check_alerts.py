"""Check every usage alert once and exit (DESIGN §6 "Usage alerts"; scheduled every minute).

1. For each active subscription with alerts, compute its current usage once.
2. For each of its alerts, under the alert's row lock: record the thresholds crossed since the
   previous check (at most once per period each, a database constraint) as one triggered
   alert, and announce `alert.triggered` in the same transaction.
3. Print the counts. Exits with status 1 when a subscription or an alert could not be checked,
   so cron reports it; the others are checked all the same.

Safe beside the django-q2 task and other runs of itself.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from billing.services.alerts import check_alerts


class Command(BaseCommand):
    help = "Check every usage alert once (record and announce the thresholds crossed) and exit."

    def handle(self, *args: Any, **options: Any) -> None:
        report = check_alerts(now=timezone.now())
        self.stdout.write(f"Alerts: {report}")
        for error in report.errors:
            self.stderr.write(error)
        if report.errors:
            sys.exit(1)

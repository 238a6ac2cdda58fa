"""Send every invoice email that is due now, once, and exit (DESIGN §6 "Invoice emails").

Safe beside the django-q2 workers and other runs of itself: each email is claimed under its row
lock with a lease before it is sent (billing.services.invoice_emails). Exits with status 1 when
an email failed for good in this run (its attempts are spent, or the server refused the
address), so cron reports it.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing.services.invoice_emails import send_due


class Command(BaseCommand):
    help = "Send every due invoice email once (retries included) and exit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="Send at most this many emails.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = send_due(limit=options["limit"])
        self.stdout.write(f"Invoice emails: {report}")
        if report.failed:
            sys.exit(1)

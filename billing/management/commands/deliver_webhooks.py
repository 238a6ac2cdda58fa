"""Send every webhook delivery that is due now, once, and exit (DESIGN §6 "Webhooks").

Safe beside the django-q2 workers and other runs of itself: each attempt is claimed under the
delivery's row lock and numbered once in the database. Exits with status 1 when a delivery
failed for good in this run (its attempts are spent), so cron reports it.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing.services.webhooks import deliver_due


class Command(BaseCommand):
    help = "Send every due webhook delivery once (retries included) and exit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="Send at most this many attempts.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = deliver_due(limit=options["limit"])
        self.stdout.write(f"Webhooks: {report}")
        if report.failed:
            sys.exit(1)

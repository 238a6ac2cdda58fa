"""Prepay, expire and renew prepaid commitments as of a date (DESIGN §3 "Commitments").

1. Terms that have started get their prepayment invoice (finalized) and a purchase entry.
2. Terms that have ended, once their last period is invoiced, expire their unused balance.
3. Auto-renewing commitments start a new term, prepaid in the same run if it has started.
Idempotent for any date; a date after missed days catches up.
"""

from __future__ import annotations

import sys
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.management.progress import Progress
from billing.services.commitments import CommitmentReport, process_commitments
from metering.days import local_date


class Command(BaseCommand):
    help = "Issue commitment prepayment invoices, expire unused balances at term end, renew."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="Process as of this day (YYYY-MM-DD; default: today, UTC).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["date"]:
            try:
                today = date.fromisoformat(options["date"])
            except ValueError:
                raise CommandError(f"--date {options['date']!r}: expected YYYY-MM-DD") from None
        else:
            today = local_date(timezone.now(), "UTC")
        progress = Progress(self.stdout, "Commitments")

        def step(done: int, total: int, report: CommitmentReport) -> None:
            progress.update(done, total, f"{len(report.prepaid)} prepaid, {len(report.expired)} expired")

        report = process_commitments(today=today, progress=step)
        progress.finish()
        for invoice in report.prepaid:
            self.stdout.write(f"  prepayment {invoice.number}: {invoice.total} {invoice.currency}")
        for entry in report.expired:
            self.stdout.write(f"  expired {-entry.amount} {entry.commitment.currency} of {entry.commitment}")
        for commitment in report.renewed:
            self.stdout.write(f"  renewed: {commitment}")
        for note in report.waiting:
            self.stdout.write(f"  waiting: {note}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Commitments as of {today}: {len(report.prepaid)} prepaid, {len(report.expired)} expired, "
                f"{len(report.renewed)} renewed."
            )
        )
        for error in report.errors:
            self.stderr.write(error)
        if report.errors:
            sys.exit(1)

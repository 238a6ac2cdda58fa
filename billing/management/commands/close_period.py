"""Invoice every billing period that has ended (DESIGN §4), idempotently.

1. Find the subscriptions with periods to invoice (or one customer's, with --customer).
2. For each, in its own transaction with the subscription locked: create the missing period
   invoices (catching up missed months), recompute drafts, and finalize those whose grace
   period (BILLING_GRACE_PERIOD_HOURS) has passed.
3. Print progress and a summary. Running it again changes nothing.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.engine.money import format_decimal
from billing.management.progress import Progress
from billing.services.period_close import CloseReport, close_periods


def parse_month(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise CommandError(f"--period {value!r}: expected YYYY-MM, e.g. 2026-09")
    return int(match.group(1)), int(match.group(2))


class Command(BaseCommand):
    help = "Create, recompute and finalize the invoices of every ended billing period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", help="Only periods starting in this month (YYYY-MM, customer's time zone).")
        parser.add_argument("--customer", help="Only this customer (external id).")
        parser.add_argument("--dry-run", action="store_true", help="Show what would be invoiced; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        month = parse_month(options["period"]) if options["period"] else None
        progress = Progress(self.stdout, "Closing periods")

        def step(done: int, total: int, report: CloseReport) -> None:
            progress.update(done, total, f"{len(report.created)} created, {len(report.finalized)} finalized")

        report = close_periods(
            now=timezone.now(),
            month=month,
            customer_external_id=options["customer"],
            dry_run=options["dry_run"],
            progress=step,
        )
        progress.finish()
        if options["dry_run"]:
            for external_id, period, total, currency in report.would_create:
                self.stdout.write(
                    f"  would invoice {external_id}: {period.start_day} – {period.end_day} "
                    f"{format_decimal(total)} {currency}"
                )
            self.stdout.write(f"Dry run: {len(report.would_create)} invoice(s) would be created.")
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Invoices: {len(report.created)} created, {len(report.recomputed)} recomputed, "
                    f"{len(report.finalized)} finalized, {report.unchanged} unchanged."
                )
            )
        for error in report.errors:
            self.stderr.write(error)
        if report.errors:
            sys.exit(1)

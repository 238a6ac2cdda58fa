"""Invoice every billing period that has ended (DESIGN §4), idempotently.

1. Find the subscriptions with periods to invoice (or one customer's, with --customer).
2. Split them into chunks closed by --workers child processes (BILLING_CLOSE_WORKERS; one, in
   this process, on SQLite, with --dry-run or --customer).
3. For each, in its own transaction with the subscription locked: create the missing period
   invoices (catching up missed months), recompute drafts, and finalize those whose grace
   period (BILLING_GRACE_PERIOD_HOURS) has passed.
4. Print progress and a summary. Running it again changes nothing.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.engine.money import format_decimal
from billing.management.progress import Progress
from billing.services.period_close import CloseReport, close_periods
from billing.services.period_close_workers import close_periods_in_workers, usable_workers

MAX_WORKERS = 64


def parse_workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        raise CommandError(f"--workers {value!r}: expected a whole number from 1 to {MAX_WORKERS}")
    return int(value)


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
        parser.add_argument(
            "--workers",
            help=f"Worker processes closing chunks at once (1–{MAX_WORKERS}; default BILLING_CLOSE_WORKERS).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        month = parse_month(options["period"]) if options["period"] else None
        progress = Progress(self.stdout, "Closing periods")

        def step(done: int, total: int, report: CloseReport) -> None:
            progress.update(done, total, f"{len(report.created)} created, {len(report.finalized)} finalized")

        requested = (
            parse_workers(str(options["workers"])) if options["workers"] is not None else settings.BILLING_CLOSE_WORKERS
        )
        workers, why = usable_workers(1 if options["dry_run"] or options["customer"] else requested)
        if why:
            self.stdout.write(why)
        self.stdout.write(f"Workers: {workers}.")
        if workers > 1:
            report = close_periods_in_workers(now=timezone.now(), workers=workers, month=month, progress=step)
        else:
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

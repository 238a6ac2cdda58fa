"""`manage.py benchmark`: measure ingestion, unique_count, current_usage and period close at scale
(DESIGN §5). billing/management/commands/benchmark.py loads this command from the checkout.

1. Refuse unless DATABASE_URL is PostgreSQL; create the throw-away database <name>_bench on that
   server, migrate it and load the catalog in child processes (the real database is never
   touched).
2. Build the data with SQL: millions of events and their DistinctValue rows (a customer per
   size of the growth curve), thousands of customers with subscriptions and last month's usage.
3. Measure, each section printing progress, CPU beside wall time: unique_count beside
   COUNT(DISTINCT) at each size; HTTP ingestion against granian (settings probed) beside raw
   COPY; current_usage latency under ingestion load at each size; closing last month for a
   growing number of customers in a child process with workers (time, CPU, peak RSS).
4. Print the table (figure, value, target, met?) and the growth curves, write
   benchmark-report.json at the repository root (or --report PATH), and drop the bench database
   unless --keep.

--quick runs reduced sizes (within 10 minutes) and says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tests.benchmarks import close, ingest, prepare, report, sections
from tests.benchmarks.context import FULL, QUICK, Bench
from tests.benchmarks.database import BenchmarkError, bench_database, drop

SECTIONS = ("unique", "ingest", "usage", "close")


@contextmanager
def timed(durations: dict[str, float], name: str) -> Iterator[None]:
    """Record how long a stage took: the report says where a run's time goes."""
    started = time.monotonic()
    try:
        yield
    finally:
        durations[name] = round(time.monotonic() - started, 1)


class Command(BaseCommand):
    help = "Benchmark ingestion, unique_count, current_usage and period close on a throw-away PostgreSQL database."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quick", action="store_true", help="Reduced sizes; finishes within 10 minutes.")
        parser.add_argument("--keep", action="store_true", help="Keep the <name>_bench database afterwards.")
        parser.add_argument(
            "--report",
            default=str(report.REPORT_FILE),
            metavar="PATH",
            help="Where to write the JSON report (default: benchmark-report.json at the repository root).",
        )
        parser.add_argument(
            "--prepare-only",
            action="store_true",
            help="Build the bench database with its data and keep it (for profiling); measure nothing.",
        )
        parser.add_argument(
            "--only",
            action="append",
            choices=SECTIONS,
            metavar="SECTION",
            help=f"Run only this section (repeatable): {', '.join(SECTIONS)}.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            db = bench_database(settings.DATABASES["default"], os.environ.get("DATABASE_URL"))
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
        quick = options["quick"]
        chosen = set(options["only"] or SECTIONS)
        bench = Bench(db=db, sizes=QUICK if quick else FULL, quick=quick, write=self.stdout.write)
        mode = "QUICK mode: reduced sizes" if quick else "full mode"
        s = bench.sizes
        closes = " / ".join(f"{n:,}" for n in s.close_customers)
        uniques = " / ".join(f"{n:,}" for n in s.unique_growth)
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"Benchmark ({mode}): unique_count and current_usage over {uniques} events from "
                f"{s.unique_distinct:,} users, current_usage at {s.usage_events:,} events, close of {closes} "
                f"customers; database {db.name} on the server of DATABASE_URL; {os.cpu_count()} CPUs."
            )
        )
        fallback = settings.DATABASES["default"]["NAME"]
        durations: dict[str, float] = bench.results.setdefault("durations_s", {})
        try:
            bench.note_load("start")
            with timed(durations, "prepare"):
                prepare.database(bench, fallback=fallback)
                bench.log("creating customers and subscriptions …")
                prepare.customers(bench, chosen)
                bench.log("building data with SQL (indexes dropped while loading) …")
                prepare.bulk_data(bench, chosen)
            if options["prepare_only"]:
                options["keep"] = True  # read by the finally below
                return
            if "unique" in chosen:
                bench.note_load("unique")
                with timed(durations, "unique"):
                    sections.unique(bench)
            if chosen & {"ingest", "usage"}:
                bench.note_load("ingest")
                with timed(durations, "ingest_and_usage"):
                    ingest.run(bench, chosen)
            if "close" in chosen:
                bench.note_load("close")
                with timed(durations, "close"):
                    close.close(bench)
            bench.note_load("end")
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if not options["keep"]:
                drop(db, fallback=fallback)
                bench.log(f"dropped {db.name}")
            else:
                bench.log(f"kept {db.name} (--keep); DATABASE_URL={db.url}")
        durations["total"] = round(time.monotonic() - bench.started, 1)
        path = report.write(bench, sections=chosen, path=Path(options["report"]))
        self.stdout.write("")
        if quick:
            self.stdout.write(
                self.style.WARNING("QUICK mode: reduced sizes; run without --quick for the full figures.")
            )
        report.print_table(bench, self.stdout.write)
        self.stdout.write(f"\nReport: {path} (in {durations['total']:.0f} s)")

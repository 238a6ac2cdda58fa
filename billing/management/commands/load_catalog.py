"""Create or update billable metrics, promotions and plans from a catalog JSON file.

1. Parse and validate the whole file; every problem is reported with its JSON path.
2. In one transaction, create what is new and update what changed. A plan with subscriptions
   gets a new version instead of being repriced. Nothing the file omits is deleted.
3. Print one line per metric, promotion and plan, and a summary.

The API's /billable_metrics and /plans write through the same services
(billing.services.catalog.metric_save, plan_save), so a plan changed by either one follows the
same rules and a file that matches what the API made loads as "unchanged".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.engine.catalog import CatalogError, loads
from billing.services.catalog import catalog_load

SEGMENT_CATALOG = Path(__file__).resolve().parents[2] / "catalogs" / "segment.json"


class Command(BaseCommand):
    help = "Load a catalog file (metrics, promotions, plans, add-ons). Idempotent; invalid files change nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file",
            nargs="?",
            default=str(SEGMENT_CATALOG),
            help=f"Catalog JSON file (default: the shipped Segment catalog, {SEGMENT_CATALOG.name}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Validate and report, change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{path}: cannot read ({exc.strerror})") from exc

        def progress(kind: str, code: str, action: str) -> None:
            self.stdout.write(f"  {kind:<10} {code:<24} {action}")

        try:
            report = catalog_load(data=loads(text), dry_run=options["dry_run"], progress=progress)
        except CatalogError as exc:
            for error in exc.errors:
                self.stderr.write(error)
            raise CommandError(f"{path}: {len(exc.errors)} error(s); nothing was changed") from exc

        changed = sum(1 for *_, action in report.actions if action != "unchanged")
        verb = "would change" if options["dry_run"] else "changed"
        self.stdout.write(self.style.SUCCESS(f"Catalog {path.name}: {len(report.actions)} item(s), {changed} {verb}."))

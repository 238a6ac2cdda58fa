"""Price one full period of a plan at a given usage, without promotions."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.documents.formats import tier_range_label
from billing.engine.money import format_decimal, money_str
from billing.engine.quotes import quote_dict, quote_plan
from billing.models import Plan
from billing.selectors.plans import current_plan, plan_spec


def parse_usage(values: list[str]) -> dict[str, Decimal]:
    usage: dict[str, Decimal] = {}
    for value in values:
        code, sep, raw = value.partition("=")
        if not sep or not code:
            raise CommandError(f"--usage {value!r}: expected CODE=QUANTITY, e.g. mtu=30000")
        try:
            quantity = Decimal(raw.replace("_", "").replace(",", ""))
        except InvalidOperation:
            raise CommandError(f"--usage {code}: {raw!r} is not a number") from None
        if not quantity.is_finite() or quantity < 0:
            raise CommandError(f"--usage {code}: must be a number of 0 or more")
        usage[code] = quantity
    return usage


class Command(BaseCommand):
    help = "Show the price breakdown of one full period of PLAN at the given usage (no promotion)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("plan", help="Plan code (its current version), e.g. team.")
        parser.add_argument(
            "--usage",
            action="append",
            default=[],
            metavar="CODE=QTY",
            help="Quantity of a billable metric, e.g. --usage mtu=30000 (repeatable; missing = 0).",
        )
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            plan = current_plan(options["plan"])
        except Plan.DoesNotExist:
            codes = ", ".join(Plan.objects.current().values_list("code", flat=True)) or "none"
            raise CommandError(f"plan {options['plan']!r} does not exist (plans: {codes})") from None
        try:
            quote = quote_plan(plan_spec(plan), parse_usage(options["usage"]))
        except KeyError as exc:
            raise CommandError(f"--usage: {exc.args[0]}") from None

        if options["json"]:
            self.stdout.write(json.dumps(quote_dict(quote), indent=2))
            return
        cur = quote.currency
        self.stdout.write(f"{plan.name} ({plan.code}), one {plan.interval}, {cur}")
        for line in quote.lines:
            quantity, amount = format_decimal(line.quantity), money_str(line.amount, cur)
            self.stdout.write(f"  {line.description:<40} {quantity:>12} {amount:>12}")
            if line.priced is None:
                continue
            for tier in line.priced.tiers:
                if tier.units == 0 and tier.amount == 0:
                    continue
                label = tier_range_label(tier.from_units, tier.up_to)
                self.stdout.write(
                    f"      {label}: {format_decimal(tier.units)} × "
                    f"{format_decimal(tier.unit_amount)}"
                    + (f" + {format_decimal(tier.flat_amount)}" if tier.flat_amount else "")
                    + f" = {format_decimal(tier.amount)}"
                )
            if line.priced.limit_exceeded:
                self.stdout.write(
                    self.style.WARNING(
                        f"      usage limit exceeded: {format_decimal(line.quantity)} > billed "
                        f"{format_decimal(line.priced.billed_units)}"
                    )
                )
        self.stdout.write(f"  {'Total':<40} {'':>12} {money_str(quote.total, cur):>12}")

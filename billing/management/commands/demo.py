"""Create demo customers on the Segment plans (idempotent).

1. Load the Segment catalog if its plans are missing.
2. Create three customers, one on each plan, subscribed at the start of the current month.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from billing.models import Plan, Subscription
from customers.models import Customer

DEMO_CUSTOMERS = [
    # external_id, name, email, timezone, plan
    ("demo-hooli", "Hooli", "billing@hooli.example", "America/Los_Angeles", "free"),
    ("demo-acme", "Acme Analytics", "finance@acme.example", "UTC", "team"),
    ("demo-initech", "Initech", "ap@initech.example", "Europe/Paris", "team-annual"),
]


class Command(BaseCommand):
    help = "Create demo customers and subscriptions on the free, team and team-annual plans."

    def handle(self, *args: Any, **options: Any) -> None:
        if Plan.objects.current().filter(code__in=["free", "team", "team-annual"]).count() < 3:
            call_command("load_catalog", stdout=self.stdout)
        frozen_now = timezone.now()
        month_start = datetime(frozen_now.year, frozen_now.month, 1, tzinfo=UTC)
        created = 0
        for external_id, name, email, tz, plan_code in DEMO_CUSTOMERS:
            customer, _ = Customer.objects.get_or_create(
                external_id=external_id,
                defaults={"name": name, "email": email, "timezone": tz, "legal_name": f"{name} Inc."},
            )
            plan = Plan.objects.current().get(code=plan_code)
            _, was_created = Subscription.objects.get_or_create(
                external_id=f"{external_id}-{plan_code}",
                defaults={
                    "customer": customer, "plan": plan, "subscription_at": month_start,
                    "promotion": plan.promotion,
                },
            )
            created += was_created
        self.stdout.write(f"Demo data: {len(DEMO_CUSTOMERS)} customers, {created} new subscription(s).")

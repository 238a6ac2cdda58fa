"""Create demo customers on the Segment plans, with this month's usage (idempotent).

1. Load the Segment catalog if its plans are missing.
2. Create three customers, one on each plan, subscribed at the start of the current month in
   their own time zone (billing.services.subscriptions.subscription_create, which attaches the plan's
   trial).
3. Give each one MTU events from the start of its open billing period until now: Hooli on
   `free` past its 1,000-user limit, Acme on `team` in the third tier, Initech on `team-annual`
   in the second. Events are stored by the service behind the events API
   (metering.ingest.store_events), 1,000 per batch. Each event's transaction id is derived from
   the customer, the period's month and the event's number, and the ids already stored are
   skipped: running the command again stores nothing new, and a run that was interrupted
   finishes the rest.
4. Give Hooli's `free` subscription a usage alert at its plan's usage limit (1,000 MTUs, a
   `billable_metric_current_usage_units` alert, billing.services.alerts), if it has none, and
   check the alerts once: Hooli is past the limit, so the alert is triggered (once per period,
   however often the check runs).
5. Print each customer's usage so far, priced (billing.selectors.usage.current_usage).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db.models import Prefetch
from django.utils import timezone

from billing.engine.money import format_decimal
from billing.engine.periods import month_start
from billing.models import AlertType, BillingTime, Plan, Subscription
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import current_usage, period_of
from billing.services.alerts import AlertInput, ThresholdInput, alert_create, check_alerts
from billing.services.subscriptions import subscription_create
from customers.models import Customer
from metering.days import day_start, local_date
from metering.ingest import store_events
from metering.models import BillableMetric, Event
from metering.validation import Owner, ValidEvent, payload_hash

BATCH_SIZE = 1_000  # BILLING_EVENTS_BATCH_MAX: what one API batch may carry
PROGRESS_EVERY = 10_000
METRIC_CODE = "mtu"
TRACK_EVENTS = ("Page Viewed", "Page Viewed", "Page Viewed", "Signed In", "Product Added", "Order Completed")


@dataclass(frozen=True)
class DemoCustomer:
    external_id: str
    name: str
    email: str
    timezone: str
    plan_code: str
    users: int  # distinct user_id values this month
    events: int  # MTU events this month (at least one per user)


DEMO_CUSTOMERS = [
    DemoCustomer("demo-hooli", "Hooli", "billing@hooli.example", "America/Los_Angeles", "free", 1_400, 2_500),
    DemoCustomer("demo-acme", "Acme Analytics", "finance@acme.example", "UTC", "team", 30_000, 50_000),
    DemoCustomer("demo-initech", "Initech", "ap@initech.example", "Europe/Paris", "team-annual", 12_000, 20_000),
]


def local_month_start(moment: datetime, tz: str) -> datetime:
    """The first instant of the month containing `moment` in zone `tz`, in UTC."""
    return day_start(month_start(local_date(moment, tz)), tz)


def planned_events(demo: DemoCustomer, month: str) -> list[tuple[str, float, dict[str, str]]]:
    """(transaction id, position in the window from 0 to 1, properties) of the month's events.

    Seeded by customer and month, so every run plans the same ids. Every user sends at least one
    event; the rest go mostly to a few heavy users, as real traffic does.
    """
    rng = random.Random(f"{demo.external_id}/{month}")
    users = list(range(demo.users))
    users += [int(demo.users * rng.random() ** 3) for _ in range(demo.events - demo.users)]
    rng.shuffle(users)
    positions = sorted(rng.random() for _ in range(demo.events))
    return [
        (
            f"{demo.external_id}-{month}-{i:06d}",
            position,
            {"user_id": f"user_{user:06d}", "event": rng.choice(TRACK_EVENTS)},
        )
        for i, (user, position) in enumerate(zip(users, positions, strict=True))
    ]


class Command(BaseCommand):
    help = (
        "Create demo customers on the free, team and team-annual plans, with realistic MTU events "
        "this month. Idempotent: running it again stores nothing new."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if Plan.objects.current().filter(code__in=["free", "team", "team-annual"]).count() < 3:
            call_command("load_catalog", stdout=self.stdout)
        frozen_now = timezone.now()
        metric = BillableMetric.objects.get(code=METRIC_CODE)

        subscriptions: list[tuple[DemoCustomer, Subscription]] = []
        created = 0
        for demo in DEMO_CUSTOMERS:
            customer, _ = Customer.objects.get_or_create(
                external_id=demo.external_id,
                defaults={
                    "name": demo.name,
                    "email": demo.email,
                    "timezone": demo.timezone,
                    "legal_name": f"{demo.name} Inc.",
                },
            )
            subscription, was_created = subscription_create(
                customer=customer,
                plan=Plan.objects.current().get(code=demo.plan_code),
                external_id=f"{demo.external_id}-{demo.plan_code}",
                subscription_at=local_month_start(frozen_now, customer.timezone),
                billing_time=BillingTime.CALENDAR,
                now=frozen_now,
            )
            created += was_created
            subscriptions.append((demo, subscription))
        self.stdout.write(f"Demo data: {len(DEMO_CUSTOMERS)} customers, {created} new subscription(s).")

        for demo, subscription in subscriptions:
            self._send_events(demo, subscription, metric, frozen_now)
        self._limit_alerts(subscriptions, frozen_now)
        self._summary(subscriptions, frozen_now)

    def _limit_alerts(self, subscriptions: list[tuple[DemoCustomer, Subscription]], frozen_now: datetime) -> None:
        """An alert at the usage limit of each demo subscription whose plan has one (Hooli's free
        plan), then one check of the alerts."""
        for _demo, subscription in subscriptions:
            for charge in subscription.plan.charges.select_related("metric").filter(usage_limit__isnull=False):
                code = f"{charge.metric.code}-limit"
                if subscription.alerts.filter(code=code).exists():
                    continue
                limit = charge.usage_limit
                assert limit is not None
                alert_create(
                    subscription=subscription,
                    alert=AlertInput(
                        alert_type=AlertType.BILLABLE_METRIC_CURRENT_USAGE_UNITS,
                        code=code,
                        name=f"{subscription.plan.name} plan limit",
                        billable_metric_code=charge.metric.code,
                        thresholds=[ThresholdInput(value=format_decimal(limit), code="limit")],
                    ),
                )
        report = check_alerts(now=frozen_now)
        self.stdout.write(f"Usage alerts: {report}.")

    def _send_events(
        self, demo: DemoCustomer, subscription: Subscription, metric: BillableMetric, frozen_now: datetime
    ) -> None:
        customer = subscription.customer
        period = period_of(subscription, at=frozen_now)
        start = max(period.start, local_month_start(frozen_now, customer.timezone))
        span = frozen_now - start
        month = f"{period.start_day:%Y%m}"
        owner = Owner(customer.pk, customer.timezone, customer.external_id)
        planned = planned_events(demo, month)
        stored = 0
        for first in range(0, len(planned), BATCH_SIZE):
            chunk = planned[first : first + BATCH_SIZE]
            existing = set(
                Event.objects.filter(customer=customer, transaction_id__in=[t for t, _, _ in chunk]).values_list(
                    "transaction_id", flat=True
                )
            )
            batch = []
            for transaction_id, position, properties in chunk:
                if transaction_id in existing:
                    continue
                timestamp = start + span * position
                batch.append(
                    ValidEvent(
                        owner=owner,
                        metric=metric,
                        transaction_id=transaction_id,
                        timestamp=timestamp,
                        properties=properties,
                        value=None,
                        distinct=properties["user_id"],
                        payload_hash=payload_hash(metric.code, timestamp.isoformat(), properties),
                    )
                )
            if batch:
                store_events(batch, received_at=frozen_now)
                stored += len(batch)
            done = first + len(chunk)
            if done % PROGRESS_EVERY == 0 or done == len(planned):
                self.stdout.write(f"  {demo.name}: {done:,} / {len(planned):,} events ({stored:,} new)")

    def _summary(self, subscriptions: list[tuple[DemoCustomer, Subscription]], frozen_now: datetime) -> None:
        ids = [subscription.pk for _, subscription in subscriptions]
        loaded = {
            s.pk: s
            for s in Subscription.objects.filter(pk__in=ids)
            .select_related("customer", "promotion")
            .prefetch_related(Prefetch("plan", queryset=plans_with_charges()))
        }
        self.stdout.write("Usage so far this period:")
        for demo, subscription in subscriptions:
            usage = current_usage(subscription=loaded[subscription.pk], at=frozen_now)
            units = sum(c.measured.quantity for c in usage.charges)
            flags = (
                " (usage limit exceeded: the excess is not billed)"
                if any(c.line.priced is not None and c.line.priced.limit_exceeded for c in usage.charges)
                else ""
            )
            self.stdout.write(
                f"  {demo.name:<15} {demo.plan_code:<12} {units:>8,} MTUs  usage {usage.usage_amount:>9,.2f}  "
                f"invoice so far {usage.total:>9,.2f} {usage.currency}{flags}"
            )

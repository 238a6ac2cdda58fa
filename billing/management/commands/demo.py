"""Create demo customers on the Segment plans, with a few months of history (idempotent).

The demo tells the story the back office is for, so every screen has something true to show on
first run:

1. Load the Segment catalog if its plans are missing.
2. Three customers, one on each plan, subscribed at the start of the month HISTORY_MONTHS months
   ago in their own time zone (billing.services.subscriptions.subscription_create, which attaches
   the plan's 14-day trial, and for `team-annual` its $1,440 commitment, prepaid at once).
3. Month by month, MTU events for each customer (stored by the service behind the events API,
   metering.ingest.store_events, 1,000 per batch), then the period close of that month
   (billing.services.period_close.close_periods at the month's end), which finalizes the usage
   invoices with their tier breakdowns: Hooli on `free` past its 1,000-user limit, Acme on
   `team` in the third tier, Initech on `team-annual` drawing its commitment down.
4. After the first close, a late event: 25 more of Acme's users in that finalized month, billed
   as a `late_usage` line on the next invoice.
5. Money after the invoice: Initech's prepayment is paid; Acme's first invoice is paid, then
   credited $10.00 on its usage (a credit note: its next invoice uses the credit); Acme's later
   invoices stay unpaid, and with its 15-day payment term the second is overdue.
6. This month's events so far, an alert at Hooli's usage limit (triggered), and each
   customer's usage so far, priced (billing.selectors.usage.current_usage).

Each event's transaction id is derived from the customer, the month and the event's number, and
ids already stored are skipped; closes, payments and the credit note are made only when missing:
running the command again stores nothing new, and an interrupted run finishes the rest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Prefetch
from django.utils import timezone

from billing.engine.money import format_decimal
from billing.engine.periods import add_months, month_start
from billing.engine.vocabulary import CreditNoteReason, InvoiceKind, InvoiceStatus, LineKind
from billing.models import AlertType, BillingTime, Invoice, Plan, Subscription
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import current_usage
from billing.services.alerts import AlertInput, ThresholdInput, alert_create, check_alerts
from billing.services.credit_notes import credit_note_create
from billing.services.payments import payment_create
from billing.services.period_close import close_periods
from billing.services.subscriptions import subscription_create
from customers.models import Customer
from metering.days import day_start, local_date
from metering.ingest import store_events
from metering.models import BillableMetric, EventKey
from metering.validation import Owner, ValidEvent, payload_hash

HISTORY_MONTHS = 3  # ended months of history before this one
LATE_USERS = 25  # Acme's users reported late for its first month
CREDITED = Decimal("10.00")  # credited on Acme's first usage fee
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
    history: tuple[int, ...]  # distinct users in each ended month, oldest first (events: users × 1.2)
    net_payment_term: int | None = None


DEMO_CUSTOMERS = [
    DemoCustomer(
        "demo-hooli", "Hooli", "billing@hooli.example", "America/Los_Angeles", "free", 1_400, 2_500, (600, 900, 1_200)
    ),
    DemoCustomer(
        "demo-acme",
        "Acme Analytics",
        "finance@acme.example",
        "UTC",
        "team",
        30_000,
        50_000,
        (18_000, 24_000, 27_000),
        net_payment_term=15,
    ),
    DemoCustomer(
        "demo-initech",
        "Initech",
        "ap@initech.example",
        "Europe/Paris",
        "team-annual",
        12_000,
        20_000,
        (9_000, 10_500, 11_000),
    ),
]


def local_month_start(moment: datetime, tz: str) -> datetime:
    """The first instant of the month containing `moment` in zone `tz`, in UTC."""
    return day_start(month_start(local_date(moment, tz)), tz)


def months_ago(moment: datetime, tz: str, months: int) -> datetime:
    """The first instant, in UTC, of the local month `months` before the one containing `moment`."""
    return day_start(add_months(month_start(local_date(moment, tz)), -months), tz)


def planned_events(
    demo: DemoCustomer, month: str, users_count: int | None = None, events_count: int | None = None
) -> list[tuple[str, float, dict[str, str]]]:
    """(transaction id, position in the window from 0 to 1, properties) of the month's events.

    Seeded by customer and month, so every run plans the same ids. Every user sends at least one
    event; the rest go mostly to a few heavy users, as real traffic does.
    """
    rng = random.Random(f"{demo.external_id}/{month}")
    n_users = demo.users if users_count is None else users_count
    n_events = demo.events if events_count is None else events_count
    users = list(range(n_users))
    users += [int(n_users * rng.random() ** 3) for _ in range(n_events - n_users)]
    rng.shuffle(users)
    positions = sorted(rng.random() for _ in range(n_events))
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
                    "net_payment_term": demo.net_payment_term,
                },
            )
            external_id = f"{demo.external_id}-{demo.plan_code}"
            subscription = Subscription.objects.filter(external_id=external_id).order_by("-id").first()
            if subscription is None:
                started = months_ago(frozen_now, customer.timezone, HISTORY_MONTHS)
                subscription, was_created = subscription_create(
                    customer=customer,
                    plan=Plan.objects.current().get(code=demo.plan_code),
                    external_id=external_id,
                    subscription_at=started,
                    billing_time=BillingTime.CALENDAR,
                    now=started,
                )
                created += was_created
            subscriptions.append((demo, subscription))
        self.stdout.write(f"Demo data: {len(DEMO_CUSTOMERS)} customers, {created} new subscription(s).")
        self._pay_prepayments(subscriptions, frozen_now)

        # The ended months, oldest first: each customer's events, then its own close, an hour
        # after its grace period (never after now): months end at each customer's midnight.
        grace = timedelta(hours=settings.BILLING_GRACE_PERIOD_HOURS)
        for back in range(HISTORY_MONTHS, 0, -1):
            for demo, subscription in subscriptions:
                customer = subscription.customer
                start, end = (
                    months_ago(frozen_now, customer.timezone, back),
                    months_ago(frozen_now, customer.timezone, back - 1),
                )
                if end <= subscription.subscription_at:
                    continue
                users = demo.history[HISTORY_MONTHS - back]
                self._send_events(demo, subscription, metric, start, end, frozen_now, users, users * 6 // 5)
                closed_at = min(end + grace + timedelta(hours=1), frozen_now)
                report = close_periods(now=closed_at, customer_external_id=customer.external_id)
                if report.errors:
                    raise CommandError(f"closing {demo.name}'s {start:%B %Y}: " + "; ".join(report.errors))
                self.stdout.write(f"  {demo.name}: closed {local_date(start, customer.timezone):%B %Y}: {report}.")
                if back == HISTORY_MONTHS and demo.plan_code == "team":
                    self._late_event(subscriptions, metric, frozen_now)
                    self._money_after_the_first_invoice(subscriptions, closed_at, frozen_now)

        # This month so far.
        for demo, subscription in subscriptions:
            start = months_ago(frozen_now, subscription.customer.timezone, 0)
            self._send_events(demo, subscription, metric, start, frozen_now, frozen_now, demo.users, demo.events)
        self._limit_alerts(subscriptions, frozen_now)
        self._summary(subscriptions, frozen_now)

    def _pay_prepayments(self, subscriptions: list[tuple[DemoCustomer, Subscription]], frozen_now: datetime) -> None:
        """Initech's $1,440 prepayment, paid two days after it was invoiced (or now, if sooner)."""
        for _demo, subscription in subscriptions:
            for invoice in Invoice.objects.filter(
                subscription=subscription, kind=InvoiceKind.COMMITMENT, status=InvoiceStatus.FINALIZED
            ):
                if invoice.payments.exists() or invoice.finalized_at is None:
                    continue
                paid_at = min(invoice.finalized_at + timedelta(days=2), frozen_now)
                payment_create(
                    invoice=invoice, amount=invoice.total, reference="Wire 4471", paid_at=paid_at, now=paid_at
                )

    def _late_event(
        self, subscriptions: list[tuple[DemoCustomer, Subscription]], metric: BillableMetric, frozen_now: datetime
    ) -> None:
        """LATE_USERS more of Acme's users, reported after its first month was invoiced: the
        next invoice bills them as late usage."""
        demo, subscription = next((d, s) for d, s in subscriptions if d.plan_code == "team")
        tz = subscription.customer.timezone
        start = months_ago(frozen_now, tz, HISTORY_MONTHS)
        first_month = demo.history[0]
        late = [
            (f"{demo.external_id}-late-{i:03d}", 0.5 + i / 100, {"user_id": f"user_{first_month + i:06d}"})
            for i in range(LATE_USERS)
        ]
        end = months_ago(frozen_now, tz, HISTORY_MONTHS - 1)
        self._store(subscription, metric, late, start, end, received_at=min(end + timedelta(days=3), frozen_now))

    def _money_after_the_first_invoice(
        self, subscriptions: list[tuple[DemoCustomer, Subscription]], closed_at: datetime, frozen_now: datetime
    ) -> None:
        """Acme pays its first usage invoice, then is credited CREDITED on its usage fee."""
        _demo, subscription = next((d, s) for d, s in subscriptions if d.plan_code == "team")
        invoice = (
            Invoice.objects.filter(subscription=subscription, kind=InvoiceKind.PERIOD, status=InvoiceStatus.FINALIZED)
            .order_by("period_start")
            .first()
        )
        if invoice is None or invoice.total <= 0:
            return
        paid_at = min(closed_at + timedelta(days=5), frozen_now)
        if not invoice.payments.exists():
            payment_create(invoice=invoice, amount=invoice.total, reference="ACH 0092", paid_at=paid_at, now=paid_at)
        usage = invoice.lines.filter(kind=LineKind.USAGE, amount__gte=CREDITED).first()
        if usage is not None and not invoice.credit_notes.exists():
            credit_note_create(
                invoice=invoice,
                items=[(usage.pk, CREDITED)],
                reason=CreditNoteReason.PRODUCT_UNSATISFACTORY,
                credit_amount=CREDITED,
                refund_amount=Decimal(0),
                offset_amount=Decimal(0),
                description="Tracking outage on the 12th: ten dollars back as credit.",
                now=min(paid_at + timedelta(days=1), frozen_now),
            )

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
        self,
        demo: DemoCustomer,
        subscription: Subscription,
        metric: BillableMetric,
        start: datetime,
        end: datetime,
        frozen_now: datetime,
        users: int,
        events: int,
    ) -> None:
        """The customer's planned events of the month starting at `start`, spread over
        [start, end) (from the subscription's start at the earliest)."""
        start = max(start, subscription.subscription_at)
        local_start = local_date(start, subscription.customer.timezone)
        planned = planned_events(demo, f"{local_start:%Y%m}", users, events)
        label = f"{demo.name}, {local_start:%B %Y}"
        self._store(subscription, metric, planned, start, end, received_at=min(end, frozen_now), label=label)

    def _store(
        self,
        subscription: Subscription,
        metric: BillableMetric,
        planned: list[tuple[str, float, dict[str, str]]],
        start: datetime,
        end: datetime,
        *,
        received_at: datetime,
        label: str = "",
    ) -> None:
        """Store the planned events not stored yet, at their positions in [start, end)."""
        customer = subscription.customer
        span = end - start
        owner = Owner(customer.pk, customer.timezone, customer.external_id)
        stored = 0
        for first in range(0, len(planned), BATCH_SIZE):
            chunk = planned[first : first + BATCH_SIZE]
            existing = set(
                # The key table's primary key starts (customer_id, transaction_id): an index lookup.
                EventKey.objects.filter(customer=customer, transaction_id__in=[t for t, _, _ in chunk]).values_list(
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
                store_events(batch, received_at=received_at)
                stored += len(batch)
            done = first + len(chunk)
            if label and (done % PROGRESS_EVERY == 0 or done == len(planned)):
                self.stdout.write(f"  {label}: {done:,} / {len(planned):,} events ({stored:,} new)")

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

"""The demo command: customers on the three Segment plans with months of history, idempotent, so
every screen has something true to show on first run (issue 17's demo story)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import Count

from billing.engine.vocabulary import InvoiceKind, InvoiceStatus, LineKind, PaymentStatus
from billing.models import Alert, CreditNote, Invoice, Payment, Subscription, SubscriptionStatus, TriggeredAlert
from billing.selectors.dashboard import revenue_by_month
from billing.selectors.receivables import overdue_condition
from billing.selectors.usage import current_usage
from metering.models import Event

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)


def usage_of(external_id: str) -> tuple[Decimal, bool, Decimal]:
    """(MTUs, limit exceeded, invoice total so far) of the customer's demo subscription."""
    subscription = Subscription.objects.select_related("customer", "plan", "promotion").get(
        customer__external_id=external_id, status=SubscriptionStatus.ACTIVE
    )
    usage = current_usage(subscription=subscription, at=NOW)
    (charge,) = usage.charges
    assert charge.line.priced is not None
    return charge.measured.quantity, charge.line.priced.limit_exceeded, usage.total


def invoices(external_id: str) -> list[Invoice]:
    return list(
        Invoice.objects.filter(customer__external_id=external_id, kind=InvoiceKind.PERIOD).order_by("period_start")
    )


def test_demo_is_idempotent_and_tells_a_story_with_history() -> None:
    first, second = StringIO(), StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("demo", stdout=first)
        stored = (Event.objects.count(), Invoice.objects.count(), Payment.objects.count(), CreditNote.objects.count())
        call_command("demo", stdout=second)
        assert (
            Event.objects.count(),
            Invoice.objects.count(),
            Payment.objects.count(),
            CreditNote.objects.count(),
        ) == stored

        hooli = usage_of("demo-hooli")
        acme = usage_of("demo-acme")
        initech = usage_of("demo-initech")

    # This month so far: Hooli is over the free plan's 1,000 MTUs (flagged, not billed); Acme's
    # 30,000 MTUs on team are $235 of usage (15,000 × 0.012 + 5,000 × 0.011) besides its $120 fee.
    assert hooli == (Decimal(1_400), True, Decimal("0.00"))
    assert acme == (Decimal(30_000), False, Decimal("355.00"))
    assert initech[0] == Decimal(12_000)
    per_customer = dict(Event.objects.values_list("customer__external_id").annotate(n=Count("id")).order_by())
    assert per_customer["demo-acme"] == 50_000 + (18_000 + 24_000 + 27_000) * 6 // 5 + 25

    # Three ended months, each closed: finalized usage invoices with their tier breakdowns.
    acme_invoices = invoices("demo-acme")
    assert [i.status for i in acme_invoices] == [InvoiceStatus.FINALIZED] * 3
    assert [i.period_start.date().isoformat() for i in acme_invoices] == ["2025-03-01", "2025-04-01", "2025-05-01"]
    usage = acme_invoices[2].lines.get(kind=LineKind.USAGE)
    assert usage.amount == Decimal("202.00") and len(usage.details["tiers"]) == 4  # 15,000 × .012 + 2,000 × .011
    # The trial took part of the first month's base fee.
    assert acme_invoices[0].lines.filter(kind=LineKind.PROMOTION).exists()
    # 25 users reported after March was invoiced: billed on April's invoice as late usage.
    assert acme_invoices[1].lines.get(kind=LineKind.LATE_USAGE).amount == Decimal("0.30")
    # March is paid and credited $10.00 on its usage; April used that credit and is overdue.
    assert acme_invoices[0].payment_status == PaymentStatus.SUCCEEDED
    assert CreditNote.objects.get().invoice == acme_invoices[0]
    assert acme_invoices[1].lines.get(kind=LineKind.CREDIT_NOTE).amount == Decimal("-10.00")
    assert Invoice.objects.filter(overdue_condition(NOW), pk=acme_invoices[1].pk).exists()
    # Initech prepaid its commitment (paid) and draws it down month by month.
    prepayment = Invoice.objects.get(kind=InvoiceKind.COMMITMENT)
    assert prepayment.payment_status == PaymentStatus.SUCCEEDED
    assert all(i.lines.filter(kind=LineKind.COMMITMENT_DRAWDOWN).exists() for i in invoices("demo-initech"))
    # The dashboard has revenue to show this month: May's invoices, issued on June 1st (Acme's
    # $322.00, Initech's $12.00); Initech's prepayment was invoiced in March, when it subscribed.
    this_month = revenue_by_month(NOW.date()).month_totals(NOW.date().replace(day=1))
    assert this_month == {"USD": Decimal("322.00") + Decimal("12.00")}
    assert prepayment.issued_on is not None and prepayment.issued_on.isoformat() == "2025-03-01"
    assert prepayment.payments.get().paid_at == datetime(2025, 3, 2, 23, tzinfo=UTC)  # two days after, Paris

    assert "Demo data: 3 customers, 3 new subscription(s)." in first.getvalue()
    assert "Acme Analytics, June 2025: 50,000 / 50,000 events (50,000 new)" in first.getvalue()
    assert "Demo data: 3 customers, 0 new subscription(s)." in second.getvalue()
    assert "(0 new)" in second.getvalue() and "(2,500 new)" not in second.getvalue()
    assert "usage limit exceeded" in second.getvalue()

    # The free plan's usage limit is Hooli's alert: past it, triggered once however often the demo runs.
    alert = Alert.objects.get()
    assert (alert.subscription.customer.external_id, alert.code, alert.alert_type) == (
        "demo-hooli",
        "mtu-limit",
        "billable_metric_current_usage_units",
    )
    assert [t.value for t in alert.thresholds.all()] == [Decimal(1_000)]
    assert TriggeredAlert.objects.filter(current_value=Decimal(1_400)).count() == 1
    assert "Usage alerts: 1 subscriptions, 1 alerts checked, 0 triggered" in second.getvalue()


def test_demo_run_just_after_a_month_ends_bills_each_month_once_in_each_zone() -> None:
    # 00:30 UTC on July 1st: June has just ended for Acme (UTC) and Initech (Paris), not yet for
    # Hooli (Los Angeles, still June 30th). Each customer is closed at its own month's end, never
    # after now: no event is stored after its month was invoiced (no stray late usage).
    with time_machine.travel(datetime(2025, 7, 1, 0, 30, tzinfo=UTC), tick=False):
        call_command("demo", stdout=StringIO())
    acme = invoices("demo-acme")
    assert [i.period_start.date().isoformat() for i in acme] == ["2025-04-01", "2025-05-01", "2025-06-01"]
    assert [i.lines.filter(kind=LineKind.LATE_USAGE).count() for i in acme] == [0, 1, 0]
    hooli = invoices("demo-hooli")
    assert [i.period_start.date().isoformat() for i in hooli] == ["2025-03-01", "2025-04-01", "2025-05-01"]

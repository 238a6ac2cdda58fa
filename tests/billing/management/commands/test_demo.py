"""The demo command: customers on the three Segment plans with this month's MTU events, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import Count, Max, Min

from billing.models import Alert, Subscription, SubscriptionStatus, TriggeredAlert
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


def test_demo_is_idempotent_and_gives_each_customer_this_months_usage() -> None:
    first, second = StringIO(), StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("demo", stdout=first)
        stored = Event.objects.count()
        call_command("demo", stdout=second)

        assert Event.objects.count() == stored
        per_customer = dict(Event.objects.values_list("customer__external_id").annotate(n=Count("id")).order_by())
        assert per_customer == {"demo-hooli": 2_500, "demo-acme": 50_000, "demo-initech": 20_000}
        window = Event.objects.aggregate(first=Min("timestamp"), last=Max("timestamp"))
        assert window["first"] >= datetime(2025, 5, 31, 22, tzinfo=UTC)  # June 1st in Paris
        assert window["last"] < NOW

        hooli = usage_of("demo-hooli")
        acme = usage_of("demo-acme")
        initech = usage_of("demo-initech")

    # Hooli is over the free plan's 1,000 MTUs: flagged, not billed.
    assert hooli == (Decimal(1_400), True, Decimal("0.00"))
    # Acme: 30,000 MTUs on team is $235 of usage (15,000 × 0.012 + 5,000 × 0.011); its trial takes
    # 14 of June's 30 days off the base fee: 120 − 56 + 235.
    assert acme == (Decimal(30_000), False, Decimal("299.00"))
    assert initech[0] == Decimal(12_000)
    assert Subscription.objects.filter(customer__external_id__startswith="demo-").count() == 3

    assert "Demo data: 3 customers, 3 new subscription(s)." in first.getvalue()
    assert "Acme Analytics: 50,000 / 50,000 events (50,000 new)" in first.getvalue()
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
    assert TriggeredAlert.objects.get().current_value == Decimal(1_400)
    assert "Usage alerts: 1 subscriptions, 1 alerts checked, 1 triggered" in first.getvalue()
    assert "Usage alerts: 1 subscriptions, 1 alerts checked, 0 triggered" in second.getvalue()

"""`manage.py check_alerts` and the django-q2 task behind the "Check usage alerts" schedule:
one check of every alert, counts printed, once per period however often they run."""

from __future__ import annotations

from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command

from billing import tasks
from billing.models import TriggeredAlert
from billing.services import alerts as alert_service
from billing.services.alerts import AlertInput, ThresholdInput, alert_create
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import at

NOW = at(2026, 9, 20, 12)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture(autouse=True)
def alert() -> None:
    customer = CustomerFactory(external_id="acme")
    subscription = SubscriptionFactory(
        customer=customer, plan=scaled_team_plan(), external_id="acme-team", subscription_at=at(2026, 8, 1)
    )
    alert_create(
        subscription=subscription,
        alert=AlertInput(
            alert_type="billable_metric_current_usage_units",
            code="mtu-100",
            billable_metric_code="mtu",
            thresholds=[ThresholdInput(value="100")],
        ),
    )
    store_users(customer, range(150), at(2026, 9, 15), "sept")


def test_command_checks_once_and_prints_the_counts() -> None:
    first, second = StringIO(), StringIO()
    call_command("check_alerts", stdout=first)
    call_command("check_alerts", stdout=second)
    assert first.getvalue() == "Alerts: 1 subscriptions, 1 alerts checked, 1 triggered, 0 skipped, 0 errors\n"
    assert "1 alerts checked, 0 triggered" in second.getvalue()
    assert TriggeredAlert.objects.count() == 1


def test_command_exits_1_when_a_subscription_could_not_be_checked() -> None:
    err = StringIO()
    with (
        mock.patch.object(alert_service, "current_usage", side_effect=RuntimeError("boom")),
        pytest.raises(SystemExit) as exited,
    ):
        call_command("check_alerts", stdout=StringIO(), stderr=err)
    assert exited.value.code == 1
    assert "subscription acme-team: boom" in err.getvalue()


def test_task_checks_with_the_clock_and_reports_errors() -> None:
    assert tasks.check_alerts() == "1 subscriptions, 1 alerts checked, 1 triggered, 0 skipped, 0 errors"
    with (
        mock.patch.object(alert_service, "current_usage", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError, match="boom"),
    ):
        tasks.check_alerts()

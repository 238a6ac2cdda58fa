"""Usage alerts (billing.services.alerts): what an alert may be, which thresholds a check finds
crossed (Lago's ProcessAlertService), once per period, and the alert.triggered webhook written
in the check's transaction.

acme is on the scaled-down Team plan (tests.factories) since 2026-08-01: 100 MTUs included,
then $1.20 each up to 250, so 150 users in a month are 50 × $1.20 = $60.00 of usage (6000 cents).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.db import transaction

from billing.api.alert_json import alert_json, alerts_for_json
from billing.models import (
    Alert,
    AlertCrossing,
    AlertType,
    Subscription,
    SubscriptionStatus,
    TriggeredAlert,
    WebhookDelivery,
)
from billing.selectors.usage import current_usage
from billing.services import alerts as alert_service
from billing.services.alerts import (
    BAD_VALUE,
    CODE_TAKEN,
    MAX_RECURRING_CROSSINGS,
    METRIC_NOT_ALLOWED,
    METRIC_NOT_CHARGED,
    METRIC_REQUIRED,
    NO_THRESHOLDS,
    SECOND_RECURRING,
    TOO_MANY_THRESHOLDS,
    UNKNOWN_METRIC,
    VALUE_TOO_PRECISE,
    AlertError,
    AlertInput,
    Level,
    ThresholdInput,
    alert_create,
    alert_delete,
    alert_update,
    alerts_create,
    alerts_delete_all,
    check_alerts,
    crossed_levels,
)
from billing.services.webhooks import webhook_endpoint_create
from metering.models import Aggregation
from tests.conftest import using_postgres
from tests.factories import (
    BillableMetricFactory,
    CustomerFactory,
    SubscriptionFactory,
    scaled_team_plan,
    store_users,
)
from tests.helpers import at, run_concurrently

pytestmark = pytest.mark.django_db

D = Decimal
UNITS = AlertType.BILLABLE_METRIC_CURRENT_USAGE_UNITS
AMOUNT = AlertType.CURRENT_USAGE_AMOUNT
SEPT_10 = at(2026, 9, 10)
SEPT_20 = at(2026, 9, 20, 12)
OCT_20 = at(2026, 10, 20, 12)


@pytest.fixture
def subscription() -> Subscription:
    customer = CustomerFactory(external_id="acme", name="Acme")
    return SubscriptionFactory(
        customer=customer, plan=scaled_team_plan(), external_id="acme-team", subscription_at=at(2026, 8, 1)
    )


def units_alert(subscription: Subscription, *values: str, recurring: str | None = None, code: str = "mtu-100") -> Alert:
    thresholds = [ThresholdInput(value=v, code=f"t{v}") for v in values]
    if recurring is not None:
        thresholds.append(ThresholdInput(value=recurring, code="every", recurring=True))
    return alert_create(
        subscription=subscription,
        alert=AlertInput(alert_type=UNITS, code=code, name="MTUs", billable_metric_code="mtu", thresholds=thresholds),
    )


def crossings(triggered: TriggeredAlert) -> list[tuple[Decimal, bool]]:
    return [(c.value, c.recurring) for c in triggered.crossings.order_by("value")]


def refused(call: Any) -> dict[str, list[str]]:
    with pytest.raises(AlertError) as caught:
        call()
    return caught.value.errors


# --- the acceptance scenario ---------------------------------------------------------------------


def test_an_alert_at_100_units_fires_once_when_150_users_arrive_however_often_checks_run(
    subscription: Subscription,
) -> None:
    alert = units_alert(subscription, "100")
    assert check_alerts(now=SEPT_10).triggered == []  # nothing measured yet
    store_users(subscription.customer, range(50), SEPT_10, "early")
    assert check_alerts(now=at(2026, 9, 11)).triggered == []  # 50: below

    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")
    reports = [check_alerts(now=SEPT_20) for _ in range(3)] + [check_alerts(now=at(2026, 9, 25))]

    assert [len(r.triggered) for r in reports] == [1, 0, 0, 0]
    triggered = TriggeredAlert.objects.get()
    assert (triggered.previous_value, triggered.current_value) == (D(50), D(150))
    assert crossings(triggered) == [(D(100), False)]
    assert triggered.crossings.get().code == "t100"
    assert (triggered.alert_code, triggered.metric_code, triggered.period_start) == ("mtu-100", "mtu", at(2026, 9, 1))
    alert.refresh_from_db()
    assert (alert.previous_value, alert.previous_period_start, alert.last_processed_at) == (
        D(150),
        at(2026, 9, 1),
        at(2026, 9, 25),
    )

    # Usage restarts in October: the same threshold fires again there, from 0.
    store_users(subscription.customer, range(150), at(2026, 10, 5), "oct")
    assert len(check_alerts(now=OCT_20).triggered) == 1
    assert check_alerts(now=OCT_20).triggered == []
    october = TriggeredAlert.objects.get(period_start=at(2026, 10, 1))
    assert (october.previous_value, october.current_value) == (D(0), D(150))
    assert crossings(october) == [(D(100), False)]


def test_previous_value_restarts_at_zero_in_a_new_period(subscription: Subscription) -> None:
    alert = units_alert(subscription, "100", "200")
    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")
    check_alerts(now=SEPT_20)
    # October so far: 120 users. Measured from September's 150, nothing would be crossed.
    store_users(subscription.customer, range(120), at(2026, 10, 2), "oct")
    report = check_alerts(now=at(2026, 10, 3))
    assert len(report.triggered) == 1
    triggered = TriggeredAlert.objects.get(pk=report.triggered[0])
    assert (triggered.previous_value, triggered.current_value) == (D(0), D(120))
    assert crossings(triggered) == [(D(100), False)]
    alert.refresh_from_db()
    assert (alert.previous_value, alert.previous_period_start) == (D(120), at(2026, 10, 1))


def test_every_threshold_crossed_since_the_last_check_is_listed_in_one_triggered_alert(
    subscription: Subscription,
) -> None:
    units_alert(subscription, "100", "200", "300")
    store_users(subscription.customer, range(250), at(2026, 9, 15), "sept")
    report = check_alerts(now=SEPT_20)
    assert len(report.triggered) == 1
    assert crossings(TriggeredAlert.objects.get()) == [(D(100), False), (D(200), False)]


# --- recurring thresholds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ("0", "99", []),
        ("0", "100", [("100", False)]),  # reached exactly counts
        ("0", "149", [("100", False)]),
        ("0", "150", [("100", False), ("150", True)]),
        ("100", "260", [("150", True), ("200", True), ("250", True)]),
        ("150", "199", []),  # 150 fired when it was reached: (previous, current] leaves it out
        ("150", "200", [("200", True)]),
        ("260", "100", []),  # down: nothing
        ("260", "260", []),
    ],
)
def test_recurring_threshold_fires_again_at_each_step_after_the_highest_one_time_value(
    previous: str, current: str, expected: list[tuple[str, bool]]
) -> None:
    levels = [Level(D(100)), Level(D(50), recurring=True)]
    crossed = crossed_levels(previous=D(previous), current=D(current), levels=levels)
    assert [(str(level.value), level.recurring) for level in crossed] == expected


def test_a_recurring_threshold_alone_counts_from_zero() -> None:
    levels = [Level(D("0.5"), recurring=True, code="half")]
    crossed = crossed_levels(previous=D("0.2"), current=D("1.7"), levels=levels)
    assert [(level.value, level.code) for level in crossed] == [
        (D("0.5"), "half"),
        (D("1.0"), "half"),
        (D("1.5"), "half"),
    ]


def test_one_check_records_at_most_the_highest_recurring_crossings() -> None:
    crossed = crossed_levels(previous=D(0), current=D(10_000), levels=[Level(D(1), recurring=True)])
    assert len(crossed) == MAX_RECURRING_CROSSINGS
    assert (crossed[0].value, crossed[-1].value) == (D(10_000 - MAX_RECURRING_CROSSINGS + 1), D(10_000))


def test_recurring_thresholds_fire_across_checks(subscription: Subscription) -> None:
    units_alert(subscription, "100", recurring="50")
    store_users(subscription.customer, range(120), at(2026, 9, 15), "a")
    check_alerts(now=at(2026, 9, 16))
    store_users(subscription.customer, range(120, 260), at(2026, 9, 17), "b")
    check_alerts(now=at(2026, 9, 18))
    check_alerts(now=at(2026, 9, 19))
    first, second = TriggeredAlert.objects.order_by("triggered_at")
    assert crossings(first) == [(D(100), False)]
    assert crossings(second) == [(D(150), True), (D(200), True), (D(250), True)]
    assert {c.code for c in second.crossings.all()} == {"every"}


# --- amount alerts, in cents ------------------------------------------------------------------------


def test_amount_alert_compares_cents_of_usage_before_tax(subscription: Subscription) -> None:
    alert_create(
        subscription=subscription,
        alert=AlertInput(
            alert_type=AMOUNT,
            code="spend",
            thresholds=[ThresholdInput(value="5000"), ThresholdInput(value="6001"), ThresholdInput(value=6000)],
        ),
    )
    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")
    # The value the alert watches is current usage's amount_cents: 50 users × $1.20.
    usage = current_usage(subscription=Subscription.objects.get(pk=subscription.pk), at=SEPT_20)
    assert usage.usage_amount == D("60.00")
    report = check_alerts(now=SEPT_20)
    triggered = TriggeredAlert.objects.get(pk=report.triggered[0])
    assert triggered.current_value == D(6000)
    assert crossings(triggered) == [(D(5000), False), (D(6000), False)]  # not 6001
    assert (triggered.metric_code, triggered.alert_type) == ("", AMOUNT)


# --- the webhook, in the check's transaction --------------------------------------------------------


def test_alert_triggered_webhook_is_written_with_lagos_triggered_alert(subscription: Subscription) -> None:
    webhook_endpoint_create(webhook_url="https://hooks.example/lago")
    alert = units_alert(subscription, "100", recurring="25")
    store_users(subscription.customer, range(130), at(2026, 9, 15), "sept")
    report = check_alerts(now=SEPT_20)
    delivery = WebhookDelivery.objects.get()
    body = json.loads(delivery.body)
    assert (body["webhook_type"], body["object_type"]) == ("alert.triggered", "triggered_alert")
    assert (delivery.webhook_type, delivery.object_id) == ("alert.triggered", str(report.triggered[0]))
    assert body["triggered_alert"] == {
        "lago_id": str(report.triggered[0]),
        "lago_alert_id": str(alert.pk),
        "lago_subscription_id": str(subscription.pk),
        "external_subscription_id": "acme-team",
        "external_customer_id": "acme",
        "billable_metric_code": "mtu",
        "alert_name": "MTUs",
        "alert_code": "mtu-100",
        "alert_type": "billable_metric_current_usage_units",
        "current_value": "130.0",
        "previous_value": "0.0",
        "crossed_thresholds": [
            {"code": "t100", "value": "100.0", "recurring": False},
            {"code": "every", "value": "125.0", "recurring": True},
        ],
        "triggered_at": "2026-09-20T12:00:00Z",
    }
    check_alerts(now=SEPT_20)
    assert WebhookDelivery.objects.count() == 1


def test_nothing_is_written_when_the_checks_transaction_rolls_back(subscription: Subscription) -> None:
    webhook_endpoint_create(webhook_url="https://hooks.example/lago")
    alert = units_alert(subscription, "100")
    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        assert len(check_alerts(now=SEPT_20).triggered) == 1
        raise Abort

    assert not TriggeredAlert.objects.exists()
    assert not AlertCrossing.objects.exists()
    assert not WebhookDelivery.objects.exists()
    alert.refresh_from_db()
    assert (alert.previous_value, alert.last_processed_at) == (D(0), None)
    # The next check finds the crossing again, once.
    assert len(check_alerts(now=SEPT_20).triggered) == 1
    assert WebhookDelivery.objects.count() == 1


def test_no_webhook_without_an_endpoint(subscription: Subscription) -> None:
    units_alert(subscription, "100")
    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")
    assert len(check_alerts(now=SEPT_20).triggered) == 1
    assert not WebhookDelivery.objects.exists()


# --- once per period, whatever races --------------------------------------------------------------------


def test_a_threshold_already_recorded_in_the_period_does_not_fire_again(subscription: Subscription) -> None:
    """As if another check had recorded 100 and a stale one had stored a lower value since."""
    alert = units_alert(subscription, "100", "200")
    store_users(subscription.customer, range(150), at(2026, 9, 15), "a")
    check_alerts(now=SEPT_20)
    Alert.objects.filter(pk=alert.pk).update(previous_value=D(90))
    store_users(subscription.customer, range(150, 210), at(2026, 9, 21), "b")
    report = check_alerts(now=at(2026, 9, 22))
    assert crossings(TriggeredAlert.objects.get(pk=report.triggered[0])) == [(D(200), False)]  # 100 not again
    assert AlertCrossing.objects.filter(value=D(100)).count() == 1


def test_a_crossing_recorded_meanwhile_is_skipped_by_the_database_constraint(subscription: Subscription) -> None:
    alert = units_alert(subscription, "100")
    store_users(subscription.customer, range(150), at(2026, 9, 15), "a")
    check_alerts(now=SEPT_20)
    Alert.objects.filter(pk=alert.pk).update(previous_value=D(0))
    # The look-up of what fired misses it (a check racing this one): the unique constraint refuses it.
    with mock.patch.object(alert_service.AlertCrossing.objects, "filter", return_value=AlertCrossing.objects.none()):
        report = check_alerts(now=at(2026, 9, 21))
    assert (report.triggered, report.checked, report.errors) == ([], 1, [])
    assert TriggeredAlert.objects.count() == 1
    alert.refresh_from_db()
    assert alert.previous_value == D(150)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not using_postgres(), reason="concurrent checks need PostgreSQL row locks (SQLite has one writer)")
def test_checks_at_once_trigger_the_alert_once(subscription: Subscription) -> None:
    webhook_endpoint_create(webhook_url="https://hooks.example/lago")
    alert = units_alert(subscription, "100", recurring="20")
    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")

    reports = run_concurrently([lambda: check_alerts(now=SEPT_20) for _ in range(4)])

    assert sorted(len(r.triggered) for r in reports) == [0, 0, 0, 1]
    assert all(not r.errors for r in reports)
    triggered = TriggeredAlert.objects.get()
    assert crossings(triggered) == [(D(100), False), (D(120), True), (D(140), True)]
    assert WebhookDelivery.objects.count() == 1
    alert.refresh_from_db()
    assert alert.previous_value == D(150)


# --- what is checked, and how often usage is computed ----------------------------------------------------


def test_usage_is_computed_once_per_subscription_whatever_its_alerts(subscription: Subscription) -> None:
    units_alert(subscription, "100")
    units_alert(subscription, "120", code="mtu-120")
    alert_create(
        subscription=subscription,
        alert=AlertInput(alert_type=AMOUNT, code="spend", thresholds=[ThresholdInput(value="1000")]),
    )
    other = SubscriptionFactory(plan=subscription.plan, external_id="other", subscription_at=at(2026, 8, 1))
    units_alert(other, "1")
    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")
    with mock.patch.object(alert_service, "current_usage", wraps=current_usage) as measured:
        report = check_alerts(now=SEPT_20)
    assert measured.call_count == 2
    assert (report.subscriptions, report.checked, len(report.triggered), report.skipped) == (2, 4, 3, 0)
    assert str(report) == "2 subscriptions, 4 alerts checked, 3 triggered, 0 skipped, 0 errors"


def test_only_active_subscriptions_are_checked(subscription: Subscription) -> None:
    units_alert(subscription, "100")
    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")
    Subscription.objects.filter(pk=subscription.pk).update(status=SubscriptionStatus.TERMINATED)
    assert check_alerts(now=SEPT_20).subscriptions == 0
    assert not TriggeredAlert.objects.exists()


def test_an_alert_on_a_metric_the_plan_no_longer_charges_is_skipped(subscription: Subscription) -> None:
    seats = BillableMetricFactory(code="seats", name="Seats", aggregation=Aggregation.MAX, field="seats")
    Alert.objects.create(subscription=subscription, alert_type=UNITS, code="seats", metric=seats)
    report = check_alerts(now=SEPT_20)
    assert (report.checked, report.skipped) == (0, 1)
    assert Alert.objects.get(code="seats").last_processed_at is None


def test_one_broken_subscription_does_not_stop_the_others(subscription: Subscription) -> None:
    units_alert(subscription, "100")
    other = SubscriptionFactory(plan=subscription.plan, external_id="other", subscription_at=at(2026, 8, 1))
    units_alert(other, "1")
    store_users(other.customer, range(5), at(2026, 9, 15), "other")

    def measure(*, subscription: Subscription, at: datetime, count_events: bool = True, adjustments: bool) -> Any:
        if subscription.external_id == "acme-team":
            raise RuntimeError("boom")
        return current_usage(subscription=subscription, at=at, count_events=count_events, adjustments=adjustments)

    with mock.patch.object(alert_service, "current_usage", side_effect=measure):
        report = check_alerts(now=SEPT_20)
    assert report.errors == ["subscription acme-team: boom"]
    assert len(report.triggered) == 1


# --- writing alerts ------------------------------------------------------------------------------------------


def test_alert_json_is_lagos_alert(subscription: Subscription) -> None:
    alert = units_alert(subscription, "100", recurring="50")
    data = alert_json(alerts_for_json().get(pk=alert.pk))
    assert data["thresholds"] == [
        {"code": "t100", "value": "100.0", "recurring": False},
        {"code": "every", "value": "50.0", "recurring": True},
    ]
    assert data["billable_metric"]["aggregation_type"] == "unique_count_agg"
    assert (data["direction"], data["previous_value"], data["last_processed_at"]) == ("increasing", "0.0", None)


def test_an_alert_is_refused_naming_each_field(subscription: Subscription) -> None:
    units_alert(subscription, "100")
    errors = refused(
        lambda: alert_create(
            subscription=subscription,
            alert=AlertInput(
                alert_type=UNITS,
                code="mtu-100",
                thresholds=[
                    ThresholdInput(value="100"),
                    ThresholdInput(value="-1"),
                    ThresholdInput(value="100"),
                    ThresholdInput(value="1.0000001"),
                    ThresholdInput(value="5", recurring=True),
                    ThresholdInput(value="6", recurring=True),
                    ThresholdInput(value=1.5),
                ],
            ),
        )
    )
    assert errors == {
        "code": [CODE_TAKEN.format(code="mtu-100")],
        "billable_metric_code": [METRIC_REQUIRED],
        "thresholds.1.value": [BAD_VALUE],
        "thresholds.2.value": ["value 100 appears twice among the one-time thresholds"],
        "thresholds.3.value": [VALUE_TOO_PRECISE.format(n=6)],
        "thresholds.5.recurring": [SECOND_RECURRING],
        "thresholds.6.value": [BAD_VALUE],
    }
    assert Alert.objects.count() == 1


@pytest.mark.parametrize(
    ("alert_type", "metric_code", "expected"),
    [
        (AMOUNT, "mtu", {"billable_metric_code": [METRIC_NOT_ALLOWED]}),
        (UNITS, "nope", {"billable_metric_code": [UNKNOWN_METRIC.format(code="nope")]}),
        (UNITS, "seats", {"billable_metric_code": [METRIC_NOT_CHARGED.format(plan="team", code="seats")]}),
        ("lifetime_usage_amount", None, {"alert_type": ["must be one of: " + ", ".join(AlertType.values)]}),
    ],
)
def test_the_metric_is_required_for_and_only_for_units_alerts_and_must_be_charged(
    subscription: Subscription, alert_type: str, metric_code: str | None, expected: dict[str, list[str]]
) -> None:
    BillableMetricFactory(code="seats", name="Seats", aggregation=Aggregation.MAX, field="seats")
    alert = AlertInput(
        alert_type=alert_type, code="a", billable_metric_code=metric_code, thresholds=[ThresholdInput(value="1")]
    )
    assert refused(lambda: alert_create(subscription=subscription, alert=alert)) == expected


def test_thresholds_are_required_and_limited(subscription: Subscription) -> None:
    def create(thresholds: list[ThresholdInput]) -> Any:
        alert = AlertInput(alert_type=AMOUNT, code="a", thresholds=thresholds)
        return lambda: alert_create(subscription=subscription, alert=alert)

    assert refused(create([])) == {"thresholds": [NO_THRESHOLDS]}
    many = [ThresholdInput(value=str(v)) for v in range(1, 22)]
    assert refused(create(many)) == {"thresholds": [TOO_MANY_THRESHOLDS.format(n=20)]}


def test_a_batch_is_created_all_or_none_with_errors_by_index(subscription: Subscription) -> None:
    good = AlertInput(alert_type=AMOUNT, code="spend", thresholds=[ThresholdInput(value="1000")])
    twice = AlertInput(alert_type=AMOUNT, code="spend", thresholds=[ThresholdInput(value="0")])
    errors = refused(lambda: alerts_create(subscription=subscription, alerts=[good, twice]))
    assert errors == {"alerts.1.code": [CODE_TAKEN.format(code="spend")], "alerts.1.thresholds.0.value": [BAD_VALUE]}
    assert not Alert.objects.exists()
    created = alerts_create(subscription=subscription, alerts=[good])
    assert [a.code for a in created] == ["spend"]


def test_update_replaces_thresholds_and_keeps_the_type(subscription: Subscription) -> None:
    alert = units_alert(subscription, "100")
    updated = alert_update(
        alert=alert, code="renamed", name="", thresholds=[ThresholdInput(value="200"), ThresholdInput(value="300")]
    )
    assert (updated.code, updated.name, updated.alert_type) == ("renamed", "", UNITS)
    assert [t.value for t in updated.thresholds.all()] == [D(200), D(300)]
    assert refused(lambda: alert_update(alert=alert, billable_metric_code="")) == {
        "billable_metric_code": [METRIC_REQUIRED]
    }
    units_alert(subscription, "1", code="other")
    assert refused(lambda: alert_update(alert=alert, code="other")) == {"code": [CODE_TAKEN.format(code="other")]}


def test_deleting_an_alert_keeps_what_it_triggered(subscription: Subscription) -> None:
    alert = units_alert(subscription, "100")
    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")
    check_alerts(now=SEPT_20)
    alert_delete(alert=alert)
    triggered = TriggeredAlert.objects.get()
    assert (triggered.alert_id, triggered.alert_code) == (None, "mtu-100")
    assert crossings(triggered) == [(D(100), False)]


def test_delete_all_deletes_the_subscriptions_alerts_only(subscription: Subscription) -> None:
    units_alert(subscription, "100")
    units_alert(subscription, "200", code="second")
    other = SubscriptionFactory(plan=subscription.plan, external_id="other", subscription_at=at(2026, 8, 1))
    units_alert(other, "1")
    assert alerts_delete_all(subscription=subscription) == 2
    assert list(Alert.objects.values_list("subscription__external_id", flat=True)) == ["other"]


def test_alerts_follow_the_subscription_across_a_plan_change(subscription: Subscription) -> None:
    from billing.services.subscriptions import subscription_create

    alert = units_alert(subscription, "100")
    bigger = scaled_team_plan(code="team-plus", name="Team Plus")
    changed, created = subscription_create(
        customer=subscription.customer,
        plan=bigger,
        external_id=subscription.external_id,
        subscription_at=SEPT_10,
        billing_time="calendar",
        now=SEPT_10,
    )
    assert created and changed.pk != subscription.pk
    alert.refresh_from_db()
    assert alert.subscription_id == changed.pk  # checked on the live subscription, as Lago keys it by external id

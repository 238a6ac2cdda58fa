"""/api/v1/subscriptions/<external_id>/alerts: Lago's official SDK (create_alerts, delete_alerts)
against the live server, the routes the SDK has no method for, and what is refused (422 naming
the field, nothing stored; 404 for an unknown subscription or alert)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.alert import Alert as LagoAlert
from lago_python_client.models.alert import AlertResponse, AlertsList, AlertThreshold, AlertThresholdList
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.event import BatchEvent
from lago_python_client.models.event import Event as LagoEvent
from lago_python_client.models.subscription import Subscription as LagoSubscription
from rest_framework.test import APIClient

from billing.api.alerts import ALERTS_OR_ALERT, ALERTS_REQUIRED, VALUE_NOT_TEXT
from billing.models import Alert, Subscription, TriggeredAlert
from billing.models import AlertThreshold as AlertThresholdRow
from billing.services.alerts import (
    BAD_VALUE,
    CODE_TAKEN,
    METRIC_NOT_ALLOWED,
    METRIC_REQUIRED,
    TYPE_FIXED,
    UNKNOWN_METRIC,
    VALUE_TOO_LARGE,
    check_alerts,
)
from config.api import NOT_SUPPORTED, ORGANIZATION_ID
from customers.services import api_key_create
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan
from tests.helpers import at, delete, errors, get, post

pytestmark = pytest.mark.django_db

BASE = "/api/v1/subscriptions/acme-team/alerts"
UNITS_ALERT = {
    "alert_type": "billable_metric_current_usage_units",
    "code": "mtu-100",
    "name": "100 MTUs",
    "billable_metric_code": "mtu",
    "thresholds": [{"code": "warn", "value": "100"}, {"value": "50", "recurring": True}],
}
AMOUNT_ALERT = {"alert_type": "current_usage_amount", "code": "spend", "thresholds": [{"value": "12000"}]}


@pytest.fixture
def subscription() -> Subscription:
    customer = CustomerFactory(external_id="acme", name="Acme")
    return SubscriptionFactory(
        customer=customer, plan=scaled_team_plan(), external_id="acme-team", subscription_at=at(2026, 8, 1)
    )


def stored() -> list[tuple[str, list[str]]]:
    return [(a.code, [str(t.value) for t in a.thresholds.all()]) for a in Alert.objects.order_by("code")]


def http_client(raw_key: str) -> APIClient:
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return http


def lago_alerts(raw_key: str) -> list[AlertResponse]:
    """The SDK has no method to list a subscription's alerts: GET them with the same key, read
    with the SDK's model."""
    return [AlertResponse.parse_obj(a) for a in get(http_client(raw_key), BASE)["alerts"]]


# --- with Lago's SDK ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_alerts_with_the_lago_sdk(live_server: Any) -> None:
    scaled_team_plan()
    _, raw_key = api_key_create(name="lago sdk")
    lago = Client(api_key=raw_key, api_url=live_server.url)
    now = timezone.now()
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    lago.customers.create(LagoCustomer(external_id="acme", name="Acme", currency="USD", timezone="UTC"))
    lago.subscriptions.create(
        LagoSubscription(
            external_customer_id="acme",
            plan_code="team",
            external_id="acme-team",
            subscription_at=month_start.isoformat().replace("+00:00", "Z"),
        )
    )

    created = lago.subscriptions.create_alerts(
        "acme-team",
        AlertsList(
            alerts=[
                LagoAlert(
                    alert_type="billable_metric_current_usage_units",
                    code="mtu-100",
                    name="100 MTUs",
                    billable_metric_code="mtu",
                    thresholds=AlertThresholdList(__root__=[AlertThreshold(code="warn", value="100")]),
                ),
                LagoAlert(
                    alert_type="current_usage_amount",
                    code="spend",
                    thresholds=AlertThresholdList(
                        __root__=[AlertThreshold(value="5000"), AlertThreshold(value="1000", recurring=True)]
                    ),
                ),
            ]
        ),
    )["alerts"]
    units, amount = created
    assert (units.alert_type, units.code, units.name, units.direction) == (
        "billable_metric_current_usage_units",
        "mtu-100",
        "100 MTUs",
        "increasing",
    )
    assert (units.lago_organization_id, units.external_subscription_id) == (ORGANIZATION_ID, "acme-team")
    assert (units.lago_wallet_id, units.wallet_code, units.previous_value, units.last_processed_at) == (
        None,
        None,
        "0.0",
        None,
    )
    assert [(t.code, t.value, t.recurring) for t in units.thresholds.__root__] == [("warn", "100.0", False)]
    assert units.billable_metric is not None
    assert (units.billable_metric.code, units.billable_metric.aggregation_type) == ("mtu", "unique_count_agg")
    assert units.billable_metric.field_name == "user_id"
    assert [(t.value, t.recurring) for t in amount.thresholds.__root__] == [("5000.0", False), ("1000.0", True)]
    assert amount.billable_metric is None

    # 150 users arrive through the events API; the check fires the units alert once.
    moment = int((timezone.now() - timedelta(seconds=5)).timestamp())
    lago.events.batch_create(
        BatchEvent(
            events=[
                LagoEvent(
                    transaction_id=f"evt-{u}",
                    external_subscription_id="acme-team",
                    code="mtu",
                    timestamp=moment,
                    properties={"user_id": f"u{u}"},
                )
                for u in range(150)
            ]
        )
    )
    for _ in range(3):
        check_alerts(now=timezone.now())
    # 150 units cross 100; 50 billed users × $1.20 = 6000 cents cross 5000, then 5000 + 1000.
    fired = {t.alert_code: [(c.value, c.recurring) for c in t.crossings.all()] for t in TriggeredAlert.objects.all()}
    assert fired == {
        "mtu-100": [(Decimal(100), False)],
        "spend": [(Decimal(5000), False), (Decimal(6000), True)],
    }
    alerts = {a.code: a for a in lago_alerts(raw_key)}
    assert (alerts["mtu-100"].previous_value, alerts["spend"].previous_value) == ("150.0", "6000.0")
    assert alerts["spend"].last_processed_at is not None

    listed = get(http_client(raw_key), BASE)
    assert [a["code"] for a in listed["alerts"]] == ["mtu-100", "spend"]
    assert listed["meta"]["total_count"] == 2

    lago.subscriptions.delete_alerts("acme-team")
    assert not Alert.objects.exists()
    assert TriggeredAlert.objects.count() == 2  # what they triggered stays

    with pytest.raises(LagoApiError) as caught:
        lago.subscriptions.create_alerts("nobody", AlertsList(alerts=[]))
    assert caught.value.status_code == 404
    assert caught.value.response["code"] == "subscription_not_found"


# --- the routes, through the test client ----------------------------------------------------------------


def test_create_find_update_and_destroy_one_alert(api: APIClient, subscription: Subscription) -> None:
    created = post(api, BASE, {"alerts": [UNITS_ALERT, AMOUNT_ALERT]})["alerts"]
    assert [a["code"] for a in created] == ["mtu-100", "spend"]
    assert created[0]["thresholds"] == [
        {"code": "warn", "value": "100.0", "recurring": False},
        {"code": None, "value": "50.0", "recurring": True},
    ]
    assert created[0]["billable_metric"]["lago_id"] == str(subscription.plan.charges.get().metric_id)

    found = get(api, f"{BASE}/mtu-100")["alert"]
    assert found == created[0]

    changed = api.put(
        f"{BASE}/mtu-100",
        {"alert": {"code": "mtu-200", "name": None, "thresholds": [{"value": "200", "code": "hard"}]}},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    alert = changed.json()["alert"]
    assert (alert["code"], alert["name"], alert["lago_id"]) == ("mtu-200", None, found["lago_id"])
    assert alert["thresholds"] == [{"code": "hard", "value": "200.0", "recurring": False}]
    assert api.get(f"{BASE}/mtu-100").json()["code"] == "alert_not_found"

    deleted = delete(api, f"{BASE}/mtu-200")["alert"]
    assert deleted["code"] == "mtu-200"
    assert stored() == [("spend", ["12000.000000"])]
    assert delete(api, BASE)["alerts"][0]["code"] == "spend"
    assert not Alert.objects.exists() and not AlertThresholdRow.objects.exists()


def test_one_alert_may_be_posted_as_lagos_alert_envelope(api: APIClient, subscription: Subscription) -> None:
    alert = post(api, BASE, {"alert": AMOUNT_ALERT})["alert"]
    assert (alert["code"], alert["alert_type"]) == ("spend", "current_usage_amount")
    details = errors(api.post(BASE, {"alert": {**AMOUNT_ALERT, "thresholds": [{"value": "x"}]}}, format="json"))
    assert details == {"code": [CODE_TAKEN.format(code="spend")], "thresholds.0.value": [BAD_VALUE]}


def test_the_list_is_paginated(api: APIClient, subscription: Subscription) -> None:
    post(api, BASE, {"alerts": [{**AMOUNT_ALERT, "code": f"a{i}"} for i in range(3)]})
    page = get(api, BASE, per_page=2, page=2)
    assert [a["code"] for a in page["alerts"]] == ["a2"]
    assert page["meta"] == {"current_page": 2, "next_page": None, "prev_page": 1, "total_pages": 2, "total_count": 3}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"alerts": [AMOUNT_ALERT, {**UNITS_ALERT, "thresholds": [{"value": "100"}, {"value": "-5"}]}]},
            {"alerts.1.thresholds.1.value": [BAD_VALUE]},
        ),
        (
            {
                "alerts": [
                    {**UNITS_ALERT, "billable_metric_code": None},
                    {**AMOUNT_ALERT, "billable_metric_code": "mtu"},
                ]
            },
            {"alerts.0.billable_metric_code": [METRIC_REQUIRED], "alerts.1.billable_metric_code": [METRIC_NOT_ALLOWED]},
        ),
        (
            {"alerts": [{**UNITS_ALERT, "billable_metric_code": "nope"}]},
            {"alerts.0.billable_metric_code": [UNKNOWN_METRIC.format(code="nope")]},
        ),
        ({"alerts": [AMOUNT_ALERT, AMOUNT_ALERT]}, {"alerts.1.code": [CODE_TAKEN.format(code="spend")]}),
        (
            {"alerts": [{**AMOUNT_ALERT, "thresholds": [{"value": 1.5}]}]},
            {"alerts.0.thresholds.0.value": [VALUE_NOT_TEXT]},
        ),
        ({"alerts": [{**AMOUNT_ALERT, "direction": "decreasing"}]}, {"alerts.0.direction": [NOT_SUPPORTED]}),
        ({"alerts": [{**AMOUNT_ALERT, "alert_type": "lifetime_usage_amount"}]}, {"alerts.0.alert_type": None}),
        ({"alerts": [{**AMOUNT_ALERT, "code": 7}]}, {"alerts.0.code": None}),
        ({"alerts": [{**AMOUNT_ALERT, "thresholds": []}]}, {"alerts.0.thresholds": None}),
        (
            {"alerts": [{**AMOUNT_ALERT, "thresholds": [{"value": "1000000000000000"}]}]},
            {"alerts.0.thresholds.0.value": [VALUE_TOO_LARGE.format(n=15)]},
        ),
        ({"alerts": [AMOUNT_ALERT], "alert": AMOUNT_ALERT}, {"alerts": [ALERTS_OR_ALERT]}),
        ({}, {"alerts": [ALERTS_REQUIRED]}),
        ({"alerts": []}, {"alerts": None}),
        ({"alerts": "x"}, {"alerts": None}),
    ],
)
def test_refusals_name_the_field_and_store_nothing(
    api: APIClient, subscription: Subscription, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    details = errors(api.post(BASE, body, format="json"))
    assert list(details) == list(expected)
    for name, messages in expected.items():
        if messages is not None:
            assert details[name] == messages
    assert not Alert.objects.exists()
    assert not AlertThresholdRow.objects.exists()


def test_update_refusals_name_the_field_and_change_nothing(api: APIClient, subscription: Subscription) -> None:
    post(api, BASE, {"alerts": [UNITS_ALERT, AMOUNT_ALERT]})
    before = stored()
    cases = [
        ({"alert_type": "current_usage_amount"}, {"alert_type": [TYPE_FIXED]}),
        ({"code": "spend"}, {"code": [CODE_TAKEN.format(code="spend")]}),
        ({"thresholds": [{"value": "0"}]}, {"thresholds.0.value": [BAD_VALUE]}),
        ({"billable_metric_code": "nope"}, {"billable_metric_code": [UNKNOWN_METRIC.format(code="nope")]}),
        ({"external_subscription_id": "x"}, {"external_subscription_id": [NOT_SUPPORTED]}),
    ]
    for alert, expected in cases:
        assert errors(api.put(f"{BASE}/mtu-100", {"alert": alert}, format="json")) == expected, alert
    assert stored() == before


def test_unknown_subscription_or_alert_is_404(api: APIClient, subscription: Subscription) -> None:
    for method, path in [
        ("get", "/api/v1/subscriptions/nobody/alerts"),
        ("post", "/api/v1/subscriptions/nobody/alerts"),
        ("delete", "/api/v1/subscriptions/nobody/alerts"),
        ("get", "/api/v1/subscriptions/nobody/alerts/x"),
    ]:
        response = getattr(api, method)(path, {"alerts": [AMOUNT_ALERT]} if method == "post" else None, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "subscription_not_found"), path
    for method in ("get", "put", "delete"):
        response = getattr(api, method)(f"{BASE}/missing", {"alert": {"name": "x"}}, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "alert_not_found"), method


def test_the_subscription_is_found_in_the_status_asked_for(api: APIClient, subscription: Subscription) -> None:
    # A terminated subscription's alerts, as Lago: ?subscription_status=terminated.
    Subscription.objects.filter(pk=subscription.pk).update(status="terminated", terminated_at=at(2026, 9, 1))
    assert api.get(BASE).status_code == 404
    assert get(api, BASE, subscription_status="terminated")["alerts"] == []
    assert errors(api.get(BASE, {"subscription_status": "gone"})) == {
        "subscription_status": ["must be one of: pending, active, terminated, canceled"]
    }

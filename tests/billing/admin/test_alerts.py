"""Usage alerts in the admin (billing.admin.alerts): added and changed with their thresholds
inline through billing.services.alerts, refusals shown by field; the read-only list of triggered
alerts; the subscription page's alerts; read-only staff view only.

acme is on the scaled-down Team plan since 2026-08-01; 150 users in September.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from billing.admin.alerts import THRESHOLDS_INVALID
from billing.models import Alert, AlertType, Subscription, TriggeredAlert
from billing.services.alerts import AlertInput, ThresholdInput, alert_create, check_alerts
from billing.services.roles import FINANCE_READ_ONLY, ensure_roles
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan, store_users
from tests.helpers import at

NOW = at(2026, 9, 20, 12)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]

UNITS = AlertType.BILLABLE_METRIC_CURRENT_USAGE_UNITS


@pytest.fixture
def subscription() -> Subscription:
    customer = CustomerFactory(external_id="acme", name="Acme")
    return SubscriptionFactory(
        customer=customer, plan=scaled_team_plan(), external_id="acme-team", subscription_at=at(2026, 8, 1)
    )


@pytest.fixture
def triggered(subscription: Subscription) -> TriggeredAlert:
    alert_create(
        subscription=subscription,
        alert=AlertInput(
            alert_type=UNITS,
            code="mtu-100",
            billable_metric_code="mtu",
            thresholds=[ThresholdInput(value="100", code="warn"), ThresholdInput(value="25", recurring=True)],
        ),
    )
    alert_create(
        subscription=subscription,
        alert=AlertInput(
            alert_type=AlertType.CURRENT_USAGE_AMOUNT, code="spend", thresholds=[ThresholdInput(value="5000")]
        ),
    )
    store_users(subscription.customer, range(150), at(2026, 9, 15), "sept")
    report = check_alerts(now=NOW)
    assert len(report.triggered) == 2
    return TriggeredAlert.objects.get(alert_code="mtu-100")


def add_data(subscription: Subscription, *rows: dict[str, str], **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "subscription": subscription.pk,
        "alert_type": UNITS,
        "code": "mtu-limit",
        "name": "Limit",
        "metric": subscription.plan.charges.get().metric_id,
        "thresholds-TOTAL_FORMS": str(len(rows)),
        "thresholds-INITIAL_FORMS": "0",
        "thresholds-MIN_NUM_FORMS": "0",
        "thresholds-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for i, row in enumerate(rows):
        for name, value in row.items():
            data[f"thresholds-{i}-{name}"] = value
    return data


def form_errors(response: Any) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {name: list(errors) for name, errors in form.errors.items()}


def inline_errors(response: Any) -> tuple[list[dict[str, list[str]]], list[str]]:
    formset = response.context["inline_admin_formsets"][0].formset
    return [dict(form.errors) for form in formset.forms], list(formset.non_form_errors())


# --- adding and changing ---------------------------------------------------------------------------


def test_finance_adds_an_alert_with_its_thresholds_through_the_service(
    admin_client: Client, subscription: Subscription
) -> None:
    response = admin_client.post(
        reverse("admin:billing_alert_add"),
        add_data(subscription, {"value": "1000", "code": "limit"}, {"value": "250", "recurring": "on"}),
    )
    assert response.status_code == 302, form_errors(response)
    alert = Alert.objects.get()
    assert (alert.code, alert.name, alert.alert_type, alert.metric_id) == (
        "mtu-limit",
        "Limit",
        UNITS,
        subscription.plan.charges.get().metric_id,
    )
    assert [(t.value, t.recurring, t.code) for t in alert.thresholds.all()] == [
        (Decimal(1000), False, "limit"),
        (Decimal(250), True, ""),
    ]
    assert response["Location"] == reverse("admin:billing_alert_changelist")


def test_refusals_are_shown_next_to_the_input_and_nothing_is_stored(
    admin_client: Client, subscription: Subscription
) -> None:
    alert_create(
        subscription=subscription,
        alert=AlertInput(alert_type=UNITS, code="taken", billable_metric_code="mtu", thresholds=[ThresholdInput("1")]),
    )
    response = admin_client.post(
        reverse("admin:billing_alert_add"),
        add_data(subscription, {"value": "0"}, {"value": "5"}, code="taken", metric=""),
    )
    assert response.status_code == 200
    errors = form_errors(response)
    assert errors["code"] == ["An alert with code 'taken' already exists on this subscription"]
    assert errors["metric"] == ["Metric is required for billable_metric_current_usage_units alerts"]
    rows, _ = inline_errors(response)
    assert rows[0]["value"] == ['The value must be a decimal number greater than 0, e.g. "1000" or "12.5".']
    assert Alert.objects.count() == 1


def test_threshold_table_errors_name_the_row(admin_client: Client, subscription: Subscription) -> None:
    response = admin_client.post(
        reverse("admin:billing_alert_add"),
        add_data(subscription, {"value": "100"}, {"value": "100"}, {"value": "5", "recurring": "on"}),
    )
    assert response.status_code == 200
    rows, table = inline_errors(response)
    assert rows[1]["value"] == ["value 100 appears twice among the one-time thresholds"]
    assert table[0] == THRESHOLDS_INVALID
    assert not Alert.objects.exists()

    response = admin_client.post(reverse("admin:billing_alert_add"), add_data(subscription))
    assert inline_errors(response)[1] == [THRESHOLDS_INVALID, "At least one threshold is required."]


def test_an_alert_on_a_terminated_subscription_is_refused(admin_client: Client, subscription: Subscription) -> None:
    Subscription.objects.filter(pk=subscription.pk).update(status="terminated", terminated_at=at(2026, 9, 1))
    response = admin_client.post(reverse("admin:billing_alert_add"), add_data(subscription, {"value": "1"}))
    assert response.status_code == 200
    assert list(form_errors(response)) == ["subscription"]  # terminated subscriptions are not offered
    assert not Alert.objects.exists()


def test_finance_changes_the_code_and_replaces_the_thresholds(admin_client: Client, triggered: TriggeredAlert) -> None:
    alert = Alert.objects.get(code="mtu-100")
    kept, recurring = alert.thresholds.all()
    data = {
        "code": "mtu-renamed",
        "name": "",
        "metric": alert.metric_id,
        "thresholds-TOTAL_FORMS": "3",
        "thresholds-INITIAL_FORMS": "2",
        "thresholds-MIN_NUM_FORMS": "0",
        "thresholds-MAX_NUM_FORMS": "1000",
        "thresholds-0-id": kept.pk,
        "thresholds-0-alert": alert.pk,
        "thresholds-0-value": "120",
        "thresholds-0-code": "warn",
        "thresholds-1-id": recurring.pk,
        "thresholds-1-alert": alert.pk,
        "thresholds-1-value": "25",
        "thresholds-1-recurring": "on",
        "thresholds-1-DELETE": "on",
        "thresholds-2-value": "300",
    }
    response = admin_client.post(reverse("admin:billing_alert_change", args=[alert.pk]), data)
    assert response.status_code == 302, (form_errors(response), inline_errors(response))
    alert.refresh_from_db()
    assert alert.code == "mtu-renamed"
    assert [(t.value, t.recurring, t.code) for t in alert.thresholds.all()] == [
        (Decimal(120), False, "warn"),
        (Decimal(300), False, ""),
    ]
    assert alert.previous_value == Decimal(150)  # the check's state is kept


# --- the lists and pages ---------------------------------------------------------------------------------


def test_alert_list_shows_subscription_type_metric_thresholds_and_last_value(
    admin_client: Client, triggered: TriggeredAlert
) -> None:
    content = admin_client.get(reverse("admin:billing_alert_changelist")).content.decode()
    assert "acme-team" in content and "mtu-100" in content
    assert "100, every +25" in content  # units
    assert "$50.00" in content  # the amount alert's 5000 cents
    assert "$60.00" in content  # its value at the last check: 6000 cents
    alert = Alert.objects.get(code="mtu-100")
    page = admin_client.get(reverse("admin:billing_alert_change", args=[alert.pk])).content.decode()
    assert "1 time<" in page  # the link to what it triggered
    filtered = admin_client.get(
        reverse("admin:billing_alert_changelist"), {"subscription__id__exact": alert.subscription_id}
    )
    assert filtered.status_code == 200 and "mtu-100" in filtered.content.decode()


def test_triggered_alerts_are_listed_read_only(admin_client: Client, triggered: TriggeredAlert) -> None:
    response = admin_client.get(reverse("admin:billing_triggeredalert_changelist"))
    content = response.content.decode()
    assert response.status_code == 200
    for text in ("mtu-100", "acme-team", "acme", "150", "100 (warn)", "125 recurring"):
        assert text in content, text
    assert admin_client.get(reverse("admin:billing_triggeredalert_add")).status_code == 403
    page = admin_client.get(reverse("admin:billing_triggeredalert_change", args=[triggered.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    by_alert = admin_client.get(
        reverse("admin:billing_triggeredalert_changelist"), {"alert__id__exact": triggered.alert_id}
    )
    assert by_alert.status_code == 200 and "spend" not in by_alert.content.decode()


def test_subscription_page_shows_its_alerts(admin_client: Client, triggered: TriggeredAlert) -> None:
    page = admin_client.get(reverse("admin:billing_subscription_change", args=[triggered.subscription_id]))
    content = page.content.decode()
    assert "Usage alerts" in content
    assert reverse("admin:billing_alert_change", args=[triggered.alert_id]) in content
    assert f"?subscription__id__exact={triggered.subscription_id}" in content


def test_read_only_staff_view_alerts_and_change_nothing(triggered: TriggeredAlert) -> None:
    ensure_roles()
    reader = User.objects.create_user("rita", is_staff=True)
    reader.groups.add(Group.objects.get(name=FINANCE_READ_ONLY))
    client = Client()
    client.force_login(reader)
    alert = Alert.objects.get(code="mtu-100")
    assert client.get(reverse("admin:billing_alert_changelist")).status_code == 200
    page = client.get(reverse("admin:billing_alert_change", args=[alert.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.get(reverse("admin:billing_triggeredalert_changelist")).status_code == 200
    assert client.get(reverse("admin:billing_alert_add")).status_code == 403
    assert client.post(reverse("admin:billing_alert_change", args=[alert.pk]), {"code": "x"}).status_code == 403
    assert client.post(reverse("admin:billing_alert_delete", args=[alert.pk]), {"post": "yes"}).status_code == 403
    assert Alert.objects.get(pk=alert.pk).code == "mtu-100"


def test_deleting_an_alert_keeps_what_it_triggered(admin_client: Client, triggered: TriggeredAlert) -> None:
    alert_id = triggered.alert_id
    response = admin_client.post(reverse("admin:billing_alert_delete", args=[alert_id]), {"post": "yes"})
    assert response.status_code == 302
    assert not Alert.objects.filter(pk=alert_id).exists()
    triggered.refresh_from_db()
    assert triggered.alert_id is None and triggered.crossings.count() == 3  # 100, 125 and 150
    content = admin_client.get(reverse("admin:billing_triggeredalert_changelist")).content.decode()
    assert "mtu-100 (deleted)" in content and "100 (warn)" in content

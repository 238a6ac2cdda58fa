"""The billing dashboard (billing.admin.dashboard, its figures billing.selectors.dashboard); the SVG
charts it draws (billing.documents.charts) are tested in tests/billing/documents/test_charts.py.

The dataset is small and known: invoices written with the ORM in every status and two
currencies, MTUs stored through the ingestion service (so the maintained distinct-value sets
are the real ones), two Free customers (one over the 1,000-MTU limit) and Team customers, and
three commitments. The clock is frozen on 2026-11-15.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.admin import dashboard as admin_dashboard
from billing.models import (
    Commitment,
    CommitmentStatus,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    PaymentStatus,
    Plan,
    Subscription,
)
from billing.selectors import dashboard as dashboard_figures
from billing.services.webhooks import announce, deliver_due, webhook_endpoint_create
from config.admin import PRODUCT
from metering.models import BillableMetric
from tests.billing.services.webhook_receiver import webhook_receiver
from tests.factories import (
    BillableMetricFactory,
    CustomerFactory,
    PlanFactory,
    SubscriptionFactory,
    free_plan,
    store_users,
    team_plan,
)

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


def dashboard_url() -> str:
    return reverse("admin:billing_dashboard")


PAID = "paid"  # finalized and settled


def invoice(subscription: Subscription, month: int, status: str, total: str, issued_on: date | None, n: int) -> Invoice:
    tz = subscription.customer.timezone
    paid = status == PAID
    status = InvoiceStatus.FINALIZED if paid else status
    assert tz == "UTC"
    start = datetime(2026 if month > 0 else 2025, month if month > 0 else 12 + month, 1, tzinfo=UTC)
    return Invoice.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        kind=InvoiceKind.PERIOD,
        period_start=start,
        period_end=(start + timedelta(days=32)).replace(day=1),
        status=status,
        payment_status=PaymentStatus.SUCCEEDED if paid else PaymentStatus.PENDING,
        number=None if status == InvoiceStatus.DRAFT else f"INV-2026-{n:06d}",
        currency=subscription.plan.currency,
        total=Decimal(total),
        issued_on=issued_on,
    )


def commitment(subscription: Subscription, term_end: datetime, entries: list[tuple[str, str]]) -> Commitment:
    made = Commitment.objects.create(
        subscription=subscription,
        amount=Decimal("1440"),
        currency="USD",
        term_start=term_end - timedelta(days=365),
        term_end=term_end,
        months=12,
        status=CommitmentStatus.ACTIVE,
    )
    for kind, amount in entries:
        LedgerEntry.objects.create(
            commitment=made, kind=kind, amount=Decimal(amount), reason="test" if kind == LedgerKind.ADJUSTMENT else ""
        )
    return made


@pytest.fixture
def world() -> dict[str, Any]:
    mtu = BillableMetricFactory()
    team, free = team_plan(), free_plan()
    euro = PlanFactory(code="team-eur", name="Team EUR", currency="EUR", base_fee=Decimal("50"))

    def subscribe(name: str, plan: Plan, currency: str = "USD") -> Subscription:
        customer = CustomerFactory(external_id=name, name=name.title(), currency=currency)
        return SubscriptionFactory(customer=customer, plan=plan, external_id=f"{name}-sub", subscription_at=JAN_1)

    subs = {
        "bigco": subscribe("bigco", team),
        "quietco": subscribe("quietco", team),
        "freeco": subscribe("freeco", free),
        "tinyco": subscribe("tinyco", free),
        "euroco": subscribe("euroco", euro, "EUR"),
    }
    # MTUs this month (November): bigco 1,500, freeco 1,200 (over the Free limit), tinyco 10.
    november = datetime(2026, 11, 3, 9, tzinfo=UTC)
    store_users(subs["bigco"].customer, range(1500), november, "nov", mtu)
    store_users(subs["freeco"].customer, range(1200), november, "nov", mtu)
    store_users(subs["tinyco"].customer, range(10), november, "nov", mtu)
    # October's users are not this month's.
    store_users(subs["tinyco"].customer, range(50), datetime(2026, 10, 20, tzinfo=UTC), "oct", mtu)

    # Invoices: issued in November, October and a year ago; drafts; a void one.
    invoice(subs["bigco"], 10, InvoiceStatus.FINALIZED, "355.00", date(2026, 11, 2), 10)
    invoice(subs["quietco"], 10, PAID, "120.00", date(2026, 11, 3), 11)
    invoice(subs["freeco"], 10, InvoiceStatus.VOIDED, "999.00", date(2026, 11, 3), 12)
    invoice(subs["euroco"], 10, InvoiceStatus.FINALIZED, "100.00", date(2026, 11, 4), 13)
    invoice(subs["bigco"], 9, PAID, "240.50", date(2026, 10, 2), 14)
    invoice(subs["quietco"], 9, PAID, "0.25", date(2026, 10, 2), 15)
    invoice(subs["quietco"], -1, PAID, "77.00", date(2025, 11, 2), 16)  # 12 months ago: excluded
    invoice(subs["tinyco"], 10, InvoiceStatus.DRAFT, "10.00", None, 0)
    invoice(subs["freeco"], 9, InvoiceStatus.DRAFT, "20.00", None, 0)

    # Commitments: one ends in 16 days with $240 left, one with nothing left, one ends next year.
    commitment(subs["bigco"], datetime(2026, 12, 1, tzinfo=UTC), [("purchase", "1440"), ("adjustment", "-1200")])
    commitment(subs["quietco"], datetime(2026, 12, 1, tzinfo=UTC), [("purchase", "1440"), ("adjustment", "-1440")])
    commitment(subs["euroco"], datetime(2027, 3, 1, tzinfo=UTC), [("purchase", "1440")])
    return subs


def staff_client(*codenames: str) -> Client:
    user = User.objects.create_user(f"clerk-{'-'.join(codenames)}", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


# --- The figures --------------------------------------------------------------------------------


def test_dashboard_shows_the_known_figures(admin_client: Client, world: dict[str, Any]) -> None:
    response = admin_client.get(dashboard_url())
    assert response.status_code == 200
    ctx = response.context
    # Finalized + paid by issue month, per currency; the void invoice and drafts are left out.
    assert ctx["revenue_this_month"] == ["€100.00", "$475.00"]
    assert ctx["revenue_last_month"] == ["$240.75"]
    # Open period (November so far): Team's $120 base fee twice, Free $0, Team EUR €50.
    assert ctx["open_period"] == ["€50.00", "$240.00"]
    assert ctx["open_period_note"] == "" and ctx["open_period_active"] == 5
    assert (ctx["drafts"], ctx["drafts_amount"]) == (2, ["$30.00"])
    assert (ctx["unpaid"], ctx["unpaid_amount"]) == (2, ["€100.00", "$355.00"])
    assert ctx["drafts_url"] == reverse("admin:billing_invoice_changelist") + "?status__exact=draft"
    assert ctx["unpaid_url"] == reverse("admin:billing_invoice_changelist") + "?settlement=unpaid"
    assert [(r["customer"].external_id, r["count"], r["limit"], r["excess"]) for r in ctx["upgrades"]] == [
        ("freeco", "1,200", "1,000", "200")
    ]
    assert [(r["customer"].external_id, r["count"]) for r in ctx["top_customers"]] == [
        ("bigco", "1,500"),
        ("freeco", "1,200"),
        ("tinyco", "10"),
    ]
    assert [(r["subscription"], r["balance"], r["term_end"]) for r in ctx["expiring"]] == [
        ("bigco-sub", "$240.00", date(2026, 11, 30))
    ]

    content = response.content.decode()
    assert "$475.00" in content and "$240.75" in content
    assert 'href="/admin/billing/invoice/?status__exact=draft"' in content
    # The 12-month chart: inline SVG, one bar per month, November 2026's $475.00 in its tooltip.
    chart = ctx["revenue_charts"][1]
    assert chart["currency"] == "USD"
    svg = ET.fromstring(str(chart["svg"]))
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 12
    assert bars[-1].find(f"{SVG}title").text == "Nov 2026: $475.00"  # type: ignore[union-attr]
    assert bars[0].find(f"{SVG}title").text == "Dec 2025: $0.00"  # type: ignore[union-attr]
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in content
    assert "<script" not in content.split('id="content-main"')[1]


def test_month_counts_are_each_customers_local_month_from_the_maintained_sizes() -> None:
    """At 23:30 UTC on November 30, Tokyo is in December: each customer counts its own month,
    read from the sets' maintained sizes (one row per customer and month)."""
    mtu = BillableMetricFactory()
    london = CustomerFactory(external_id="london", timezone="Europe/London")
    tokyo = CustomerFactory(external_id="tokyo", timezone="Asia/Tokyo")
    late_november = datetime(2026, 11, 30, 20, tzinfo=UTC)  # Tokyo: December 1, 05:00
    store_users(london, range(30), late_november, "a", mtu)
    store_users(tokyo, range(7), late_november, "a", mtu)
    store_users(tokyo, range(5, 12), datetime(2026, 11, 20, tzinfo=UTC), "b", mtu)  # Tokyo's November
    store_users(london, range(30), datetime(2026, 10, 20, tzinfo=UTC), "c", mtu)  # London's October

    at = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    condition = dashboard_figures.month_condition(at)
    assert dashboard_figures.month_counts(condition, [mtu.pk]) == {(london.pk, mtu.pk): 30, (tokyo.pk, mtu.pk): 7}
    # A moment later London is in December too, and nobody has values there yet but Tokyo.
    december = dashboard_figures.month_condition(datetime(2026, 12, 1, 0, 30, tzinfo=UTC))
    assert dashboard_figures.month_counts(december, [mtu.pk]) == {(tokyo.pk, mtu.pk): 7}


def test_dashboard_shows_overdue_totals_and_links_the_aging_report(admin_client: Client, world: dict[str, Any]) -> None:
    # bigco's $355.00 was due on November 2 (13 days ago), euroco's €100.00 is due on the 20th.
    Invoice.objects.filter(subscription=world["bigco"], status=InvoiceStatus.FINALIZED).update(
        payment_due_date=date(2026, 11, 2)
    )
    Invoice.objects.filter(subscription=world["euroco"], status=InvoiceStatus.FINALIZED).update(
        payment_due_date=date(2026, 11, 20)
    )
    response = admin_client.get(dashboard_url())
    ctx = response.context
    assert (ctx["overdue"], ctx["overdue_amount"]) == (1, ["$355.00"])
    aging = reverse("admin:billing_receivables")
    assert ctx["receivables_url"] == aging
    content = response.content.decode()
    assert f'href="{aging}"' in content
    # the unpaid figure lists the finalized invoices not paid yet
    unpaid = admin_client.get(ctx["unpaid_url"]).context["cl"]
    assert sorted(i.number for i in unpaid.result_list) == ["INV-2026-000010", "INV-2026-000013"]


def test_open_period_previews_only_the_busiest_subscriptions_past_the_cap(
    admin_client: Client, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_figures, "PREVIEWED_SUBSCRIPTIONS", 2)
    ctx = admin_client.get(dashboard_url()).context
    # The two customers with the most MTUs this month: bigco (Team, $120) and freeco (Free, $0).
    assert ctx["open_period"] == ["$120.00"]
    assert ctx["open_period_note"] == admin_dashboard.PREVIEW_PARTIAL_NOTE.format(previewed=2, active=5)


def test_dashboard_queries_do_not_grow_with_the_data(
    admin_client: Client, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_figures, "PREVIEWED_SUBSCRIPTIONS", 3)
    admin_client.get(dashboard_url())  # warm up the session and content types
    with CaptureQueriesContext(connection) as before:
        assert admin_client.get(dashboard_url()).status_code == 200

    # Ten times the customers, subscriptions, invoices and commitments.
    mtu = BillableMetric.objects.get(code="mtu")
    team = Plan.objects.get(code="team")
    for i in range(20):
        subscription = SubscriptionFactory(plan=team, subscription_at=JAN_1)
        store_users(subscription.customer, range(i * 10 + 1), datetime(2026, 11, 2, tzinfo=UTC), "more", mtu)
        invoice(subscription, 10, InvoiceStatus.FINALIZED, "120.00", date(2026, 11, 2), 100 + i)
        invoice(subscription, 9, InvoiceStatus.DRAFT, "120.00", None, 0)
        commitment(subscription, datetime(2026, 12, 1, tzinfo=UTC), [("purchase", "1440")])
    with CaptureQueriesContext(connection) as after:
        response = admin_client.get(dashboard_url())
    assert response.status_code == 200
    assert len(after) == len(before), [q["sql"] for q in after.captured_queries]
    assert len(after) <= 45
    assert response.context["unpaid"] == 22


def test_dashboard_of_an_empty_database_renders(admin_client: Client) -> None:
    response = admin_client.get(dashboard_url())
    assert response.status_code == 200
    assert response.context["revenue_this_month"] == [] and response.context["open_period"] == []
    assert "No invoice was issued in the last 12 months." in response.content.decode()


def test_failed_webhook_deliveries_show_only_when_there_are_any(
    admin_client: Client, world: dict[str, Any], settings: Any
) -> None:
    assert 'id="webhooks-failed"' not in admin_client.get(dashboard_url()).content.decode()
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    subscription = world["bigco"]
    with webhook_receiver(statuses=[500, 500]) as receiver:
        webhook_endpoint_create(webhook_url=receiver.url)
        for webhook_type in ("subscription.started", "subscription.terminated", "subscription.trial_ended"):
            announce(webhook_type=webhook_type, object_type="subscription", obj=subscription, object_id=subscription.pk)
        report = deliver_due()
    assert (len(report.failed), len(report.succeeded)) == (2, 1)

    response = admin_client.get(dashboard_url())
    assert response.context["webhooks_failed"] == 2
    log = reverse("admin:billing_webhookdelivery_changelist")
    assert f'<a href="{log}?status__exact=failed">2</a>' in response.content.decode()
    assert admin_client.get(f"{log}?status__exact=failed").context["cl"].result_count == 2
    # Staff who may not view the deliveries log are not shown the figure.
    other = staff_client("view_invoice").get(dashboard_url())
    assert other.context["webhooks_failed"] == 0 and 'id="webhooks-failed"' not in other.content.decode()


def test_failed_webhook_deliveries_are_one_query(world: dict[str, Any], django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        assert dashboard_figures.failed_webhook_deliveries() == 0


# --- Who sees it --------------------------------------------------------------------------------


def test_index_links_the_dashboard_for_staff_who_may_view_invoices() -> None:
    client = staff_client("view_invoice")
    index = client.get(reverse("admin:index")).content.decode()
    assert f'href="{dashboard_url()}"' in index
    assert client.get(dashboard_url()).status_code == 200


def test_staff_without_invoice_permission_neither_see_nor_open_the_dashboard() -> None:
    client = staff_client("view_customer", "view_subscription")
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert dashboard_url() not in index.content.decode()
    assert client.get(dashboard_url()).status_code == 403


def test_the_home_page_is_the_dashboard_above_the_app_list() -> None:
    client = staff_client("view_invoice")
    index = client.get(reverse("admin:index"))
    content = index.content.decode()
    assert index.context["dashboard"] is True
    assert 'id="revenue-this-month"' in content and 'id="revenue-chart"' in content
    assert content.index('id="home-dashboard"') < content.index('class="app-')
    assert f"<title>Home | {PRODUCT}</title>" in content and "Django administration" not in content


def test_staff_without_invoice_permission_get_the_app_list_only() -> None:
    index = staff_client("view_customer").get(reverse("admin:index"))
    assert "dashboard" not in index.context and 'id="home-dashboard"' not in index.content.decode()


def test_the_site_root_and_the_favicon_lead_somewhere() -> None:
    client = staff_client("view_invoice")
    assert client.get("/").url == reverse("admin:index")
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 301 and favicon.url.endswith("billing/favicon.svg")
    assert 'rel="icon"' in client.get(reverse("admin:index")).content.decode()
    assert "View site" not in client.get(reverse("admin:index")).content.decode()

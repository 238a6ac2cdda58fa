"""The MTU audit (billing.admin.audit): the distinct values behind a usage line, page by page and
as CSV, the late usage that explains a difference, the open period, and the customer page's
per-day charts.

Events go through the ingestion service and invoices through close_periods, as in production.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from billing.admin import audit as admin_audit
from billing.admin.audit import COUNT_DIFFERS, COUNT_MATCHES, LATE_NOTE
from billing.models import Invoice, InvoiceKind, InvoiceLine, LineKind, Subscription
from billing.selectors.audit import daily_distinct
from billing.services.invoices import invoice_finalize
from billing.services.period_close import close_periods
from customers.models import Customer
from metering.ingest import store_events
from metering.models import BillableMetric
from metering.validation import Owner, ValidEvent, payload_hash
from tests.factories import BillableMetricFactory, CustomerFactory, SubscriptionFactory, team_plan

pytestmark = pytest.mark.django_db

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def send(customer: Customer, users: Iterable[str], at: datetime, prefix: str) -> None:
    """One `mtu` event per user at `at`, through the ingestion service."""
    metric = BillableMetric.objects.get(code="mtu")
    owner = Owner(customer.pk, customer.timezone, customer.external_id)
    events = []
    for user in users:
        properties = {"user_id": user}
        events.append(
            ValidEvent(
                owner=owner,
                metric=metric,
                transaction_id=f"{prefix}-{user}",
                timestamp=at,
                properties=properties,
                value=None,
                distinct=user,
                payload_hash=payload_hash(metric.code, at.isoformat(), properties),
            )
        )
    with time_machine.travel(at, tick=False):
        store_events(events, received_at=at)


def october_users() -> list[str]:
    # Mixed case, digits and symbols: the audit lists them by code point, as sorted() does.
    return [f"user-{i:04d}" for i in range(1234)] + ["Alice", "bob", "_bot", "42", "zoë"]


@pytest.fixture
def closed_october() -> dict[str, Any]:
    """A Team customer in New York with October closed and finalized.

    October's users are seen on several days (some twice); users seen on September 30 and
    November 1 (local time) are outside the period. One event at 02:00 UTC on November 1 is
    still October 31 in New York, and counts.
    """
    BillableMetricFactory()
    customer = CustomerFactory(external_id="acme", name="Acme", timezone="America/New_York")
    september = datetime(2026, 9, 1, 4, tzinfo=UTC)  # midnight in New York
    subscription = SubscriptionFactory(
        customer=customer, plan=team_plan(), external_id="acme-team", subscription_at=september
    )
    users = october_users()
    send(customer, users[:1000], datetime(2026, 10, 2, 15, tzinfo=UTC), "a")
    send(customer, users[500:1200], datetime(2026, 10, 20, 15, tzinfo=UTC), "b")
    send(customer, users[1200:-1], datetime(2026, 10, 31, 15, tzinfo=UTC), "c")
    send(customer, users[-1:], datetime(2026, 11, 1, 2, tzinfo=UTC), "d")  # Oct 31, 22:00 in New York
    send(customer, ["september-only"], datetime(2026, 10, 1, 2, tzinfo=UTC), "e")  # Sep 30, 22:00
    send(customer, ["november-only"], datetime(2026, 11, 1, 5, tzinfo=UTC), "f")  # Nov 1, 01:00
    with time_machine.travel(datetime(2026, 11, 1, 6, tzinfo=UTC), tick=False):
        report = close_periods(now=datetime(2026, 11, 1, 6, tzinfo=UTC))
    assert not report.errors
    invoice = Invoice.objects.get(
        subscription=subscription, kind=InvoiceKind.PERIOD, period_start=datetime(2026, 10, 1, 4, tzinfo=UTC)
    )
    assert invoice.status == "finalized"
    line = invoice.lines.get(kind=LineKind.USAGE)
    return {"customer": customer, "subscription": subscription, "invoice": invoice, "line": line, "users": users}


def audit_url(line: InvoiceLine) -> str:
    return reverse("admin:billing_invoiceline_audit", args=[line.pk])


def listed_values(client: Client, url: str, **params: str) -> tuple[list[str], Any]:
    """Every value the audit pages list, following the pages."""
    first = client.get(url, params)
    assert first.status_code == 200
    values = list(first.context["page"].object_list)
    for number in range(2, first.context["page"].paginator.num_pages + 1):
        values += list(client.get(url, {**params, "page": str(number)}).context["page"].object_list)
    return values, first


def csv_rows(response: StreamingHttpResponse) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    return list(csv.reader(io.StringIO(body)))


def test_audit_lists_exactly_the_users_billed_in_october(admin_client: Client, closed_october: dict[str, Any]) -> None:
    line = closed_october["line"]
    users = closed_october["users"]
    assert line.quantity == Decimal(len(users)) == Decimal(1239)

    values, page = listed_values(admin_client, audit_url(line))
    assert values == sorted(users)  # by code point: "42" < "Alice" < "_bot" < "bob" < "user-…" < "zoë"
    assert page.context["page"].paginator.num_pages == 3  # 500 a page
    assert page.context["page"].paginator.count == 1239
    content = page.content.decode()
    assert 'id="audit-count">1,239<' in content and 'id="audit-billed">1,239<' in content
    assert COUNT_MATCHES in content
    assert "October 1, 2026 – October 31, 2026 (America/New_York)" in content
    assert "september-only" not in values and "november-only" not in values


def test_audit_csv_downloads_every_value(admin_client: Client, closed_october: dict[str, Any]) -> None:
    line = closed_october["line"]
    response = admin_client.get(reverse("admin:billing_invoiceline_audit_csv", args=[line.pk]))
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    number = closed_october["invoice"].number
    assert response["Content-Disposition"] == f'attachment; filename="{number}-mtu-2026-10-line-{line.pk}.csv"'
    rows = csv_rows(response)
    assert rows[0] == ["user_id"]
    assert [row[0] for row in rows[1:]] == sorted(closed_october["users"])


def test_invoice_page_links_usage_lines_to_their_audit(admin_client: Client, closed_october: dict[str, Any]) -> None:
    invoice = closed_october["invoice"]
    content = admin_client.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()
    assert f'href="{audit_url(closed_october["line"])}"' in content
    base_fee = invoice.lines.get(kind=LineKind.BASE_FEE)
    assert audit_url(base_fee) not in content
    assert admin_client.get(audit_url(base_fee)).status_code == 404


def test_late_users_are_explained_and_their_late_line_audited(
    admin_client: Client, closed_october: dict[str, Any]
) -> None:
    customer = closed_october["customer"]
    line = closed_october["line"]
    # Two users of October arrive on November 3, after October was invoiced.
    send(customer, ["late-1", "late-2"], datetime(2026, 10, 30, 15, tzinfo=UTC), "late")
    with time_machine.travel(datetime(2026, 12, 1, 6, tzinfo=UTC), tick=False):
        assert not close_periods(now=datetime(2026, 12, 1, 6, tzinfo=UTC)).errors
    late = InvoiceLine.objects.get(kind=LineKind.LATE_USAGE)
    assert (late.quantity, late.details["quantity"]) == (Decimal(2), "1241")

    # The October line now counts 1,241 values: the page says the difference was billed late.
    response = admin_client.get(audit_url(line))
    content = response.content.decode()
    assert response.context["page"].paginator.count == 1241
    assert COUNT_DIFFERS.format(quantity="1,239") in content
    assert LATE_NOTE in content and late.invoice.number in content

    # The late line's own audit: the count it was computed from.
    values, response = listed_values(admin_client, audit_url(late))
    assert values == sorted([*closed_october["users"], "late-1", "late-2"])
    assert 'id="audit-billed">1,241<' in response.content.decode()
    assert response.context["matches"] is True


def test_a_draft_counts_events_stored_since_it_was_computed(admin_client: Client, settings: Any) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 48
    BillableMetricFactory()
    subscription = SubscriptionFactory(plan=team_plan(), subscription_at=OCTOBER)
    send(subscription.customer, ["a", "b"], datetime(2026, 10, 5, tzinfo=UTC), "x")
    with time_machine.travel(NOVEMBER + timedelta(hours=1), tick=False):
        close_periods(now=NOVEMBER + timedelta(hours=1))
    line = InvoiceLine.objects.get(kind=LineKind.USAGE)
    send(subscription.customer, ["c"], datetime(2026, 10, 6, tzinfo=UTC), "y")
    content = admin_client.get(audit_url(line)).content.decode()
    assert "This invoice is a draft" in content and COUNT_DIFFERS.format(quantity="2") in content
    with time_machine.travel(NOVEMBER + timedelta(hours=2), tick=False):
        invoice_finalize(invoice=line.invoice, now=NOVEMBER + timedelta(hours=2))
    line = InvoiceLine.objects.get(kind=LineKind.USAGE)
    assert admin_client.get(audit_url(line)).context["matches"] is True


# --- The open period and the customer page ------------------------------------------------------


@pytest.fixture
def open_november(closed_october: dict[str, Any]) -> Iterator[dict[str, Any]]:
    customer = closed_october["customer"]
    send(customer, ["n1", "n2", "n3"], datetime(2026, 11, 2, 15, tzinfo=UTC), "n")
    send(customer, ["n2", "n4"], datetime(2026, 11, 4, 15, tzinfo=UTC), "m")
    with time_machine.travel(datetime(2026, 11, 5, 12, tzinfo=UTC), tick=False):
        yield closed_october


def test_open_period_audit_lists_the_values_so_far(open_november: dict[str, Any], admin_client: Client) -> None:
    # (open_november first: the admin logs in on the frozen day, or the session would have expired)
    subscription: Subscription = open_november["subscription"]
    url = reverse("admin:billing_subscription_audit", args=[subscription.pk])
    values, response = listed_values(admin_client, url, metric="mtu")
    assert values == ["n1", "n2", "n3", "n4", "november-only"]
    assert 'id="audit-count">5<' in response.content.decode()
    # Without ?metric, the plan's first unique_count metric.
    assert admin_client.get(url).context["metric"].code == "mtu"
    response = admin_client.get(reverse("admin:billing_subscription_audit_csv", args=[subscription.pk]))
    assert [row[0] for row in csv_rows(response)] == ["user_id", "n1", "n2", "n3", "n4", "november-only"]


def test_customer_page_charts_the_open_period_per_day(open_november: dict[str, Any], admin_client: Client) -> None:
    customer = open_november["customer"]
    response = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk]))
    assert response.status_code == 200
    (chart,) = response.context["usage_charts"]
    assert chart["so_far"] == "5"
    per_day = ET.fromstring(str(chart["per_day"]))
    # November 1–5 in New York: november-only on the 1st, n1–n3 on the 2nd, n2 and n4 on the 4th.
    assert [bar.find(f"{SVG}title").text for bar in per_day.findall(f"{SVG}rect")] == [  # type: ignore[union-attr]
        "Nov 1: 1",
        "Nov 2: 3",
        "Nov 3: 0",
        "Nov 4: 2",
        "Nov 5: 0",
    ]
    cumulative = ET.fromstring(str(chart["cumulative"]))
    assert [dot.find(f"{SVG}title").text for dot in cumulative.findall(f"{SVG}circle")] == [  # type: ignore[union-attr]
        "Nov 1: 1",
        "Nov 2: 4",
        "Nov 3: 4",
        "Nov 4: 5",
        "Nov 5: 5",
    ]
    content = response.content.decode()
    assert reverse("admin:billing_subscription_audit", args=[open_november["subscription"].pk]) in content
    assert 'id="usage-charts"' in content and 'id="current-usage"' in content


def test_daily_distinct_counts_a_value_once_across_the_months_of_a_window() -> None:
    metric = BillableMetricFactory()
    customer = CustomerFactory()
    send(customer, ["a"], datetime(2026, 10, 20, tzinfo=UTC), "1")
    send(customer, ["a", "b"], datetime(2026, 11, 2, tzinfo=UTC), "2")
    send(customer, ["c"], datetime(2026, 10, 10, tzinfo=UTC), "3")  # before the window
    send(customer, ["c"], datetime(2026, 11, 3, tzinfo=UTC), "4")
    send(customer, ["d"], datetime(2026, 11, 20, tzinfo=UTC), "5")  # after the window
    rows = daily_distinct(customer=customer, metric=metric, first=date(2026, 10, 15), stop=date(2026, 11, 15))
    assert len(rows) == 31
    by_day = {day: (seen, so_far) for day, seen, so_far in rows}
    assert by_day[date(2026, 10, 19)] == (0, 0)
    assert by_day[date(2026, 10, 20)] == (1, 1)
    assert by_day[date(2026, 11, 2)] == (2, 2)  # a again (not new), b new
    assert by_day[date(2026, 11, 3)] == (1, 3)  # c: seen before the window only, so new here
    assert by_day[date(2026, 11, 14)] == (0, 3)
    assert daily_distinct(customer=customer, metric=metric, first=date(2026, 11, 1), stop=date(2026, 11, 1)) == []


# --- Permissions --------------------------------------------------------------------------------


def staff_client(*codenames: str) -> Client:
    user = User.objects.create_user(f"clerk-{'-'.join(codenames)}", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_audit_pages_need_view_permission(closed_october: dict[str, Any]) -> None:
    line = closed_october["line"]
    subscription = closed_october["subscription"]
    nobody = staff_client("view_customer")
    assert nobody.get(audit_url(line)).status_code == 403
    assert nobody.get(reverse("admin:billing_invoiceline_audit_csv", args=[line.pk])).status_code == 403
    assert nobody.get(reverse("admin:billing_subscription_audit", args=[subscription.pk])).status_code == 403
    reader = staff_client("view_invoice", "view_subscription")
    assert reader.get(audit_url(line)).status_code == 200
    assert reader.get(reverse("admin:billing_subscription_audit", args=[subscription.pk])).status_code == 200


def test_pages_are_read_by_slices_of_the_sorted_stream(
    admin_client: Client, closed_october: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_audit, "PAGE_SIZE", 100)
    values, response = listed_values(admin_client, audit_url(closed_october["line"]))
    assert response.context["page"].paginator.num_pages == 13
    assert values == sorted(closed_october["users"])

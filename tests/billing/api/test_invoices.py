"""GET /api/v1/invoices and GET /api/v1/invoices/<lago_id> (DESIGN §4): filters, pagination, lines.

Two customers on a Team plan scaled down a hundredfold (the tiers end at 100, 250 and 1,000 MTUs
at $1.20, $1.10 and $1.00, so the worked example's $355.00 needs 300 users, not 30,000),
invoiced by close_periods:
- acme (UTC) since Aug 1: August (trial on the base fee, no usage), September (300 MTUs:
  $120 + 150 × $1.20 + 50 × $1.10 = $355.00), October a draft (24 h grace period);
- globex (Europe/Paris) since Sep 1: September (trial), October a draft.
Invoices are keyed "<customer>-<month of the period's start in the customer's zone>".
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from lago_python_client.models.invoice import InvoiceResponse
from rest_framework.test import APIClient

from billing.models import Invoice, PaymentStatus, Plan
from billing.services.period_close import close_periods
from metering.days import local_date
from tests.factories import (
    CustomerFactory,
    SubscriptionFactory,
    scaled_team_plan,
    store_users,
)
from tests.helpers import get

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan() -> Plan:
    return scaled_team_plan()


@pytest.fixture
def invoices(plan: Plan, settings: Any) -> dict[str, Invoice]:
    settings.BILLING_GRACE_PERIOD_HOURS = 24
    acme = CustomerFactory(external_id="acme", name="Acme")
    globex = CustomerFactory(external_id="globex", name="Globex", timezone="Europe/Paris")
    SubscriptionFactory(
        customer=acme, plan=plan, external_id="acme-team", subscription_at=datetime(2026, 8, 1, tzinfo=UTC)
    )
    SubscriptionFactory(
        customer=globex, plan=plan, external_id="globex-team", subscription_at=datetime(2026, 8, 31, 22, tzinfo=UTC)
    )  # Sep 1, Paris
    store_users(acme, range(300), datetime(2026, 9, 20, tzinfo=UTC), "sep")
    close_periods(now=datetime(2026, 9, 2, 1, tzinfo=UTC))  # August, after its grace
    close_periods(now=datetime(2026, 10, 2, 1, tzinfo=UTC))  # September
    close_periods(now=datetime(2026, 11, 1, 1, tzinfo=UTC))  # October: drafts inside the grace
    by_key = {
        f"{inv.customer.external_id}-{local_date(inv.period_start, inv.customer.timezone):%m}": inv
        for inv in Invoice.objects.select_related("customer")
    }
    assert sorted(by_key) == ["acme-08", "acme-09", "acme-10", "globex-09", "globex-10"]
    return by_key


def ids(body: dict[str, Any]) -> list[str]:
    return [inv["lago_id"] for inv in body["invoices"]]


def test_detail_carries_lago_fields_decimal_strings_cents_and_tiers(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    september = invoices["acme-09"]
    body = get(api, f"/api/v1/invoices/{september.pk}")["invoice"]
    assert body["lago_id"] == str(september.pk)
    assert body["number"] == september.number
    assert body["number"].startswith("INV-2026-")
    assert body["status"] == "finalized"
    assert (body["invoice_type"], body["kind"]) == ("subscription", "period")
    assert body["currency"] == "USD"
    assert body["issuing_date"] == "2026-10-02"
    assert body["total"] == "355.00"
    assert body["total_amount_cents"] == 35500
    assert isinstance(body["total_amount_cents"], int)
    assert body["fees_amount_cents"] == 35500
    assert body["coupons_amount_cents"] == 0
    assert body["period_start"] == "2026-09-01T00:00:00Z"
    assert body["period_end"] == "2026-10-01T00:00:00Z"
    assert body["customer"]["lago_id"] == str(september.customer_id)
    assert body["customer"]["external_id"] == "acme"
    assert body["customer"]["name"] == "Acme"
    assert [s["external_id"] for s in body["subscriptions"]] == ["acme-team"]

    base, usage = body["lines"]
    assert base["kind"] == "base_fee"
    assert (base["amount"], base["amount_cents"]) == ("120.00", 12000)
    assert (base["quantity"], base["unit_amount"]) == ("1", "120")
    assert base["tiers"] == []
    assert base["metric"] is None
    assert usage["kind"] == "usage"
    assert usage["metric"] == "mtu"
    assert usage["description"] == "Monthly tracked users"
    assert (usage["quantity"], usage["amount"], usage["amount_cents"]) == ("300", "235.00", 23500)
    assert (usage["period_start"], usage["period_end"]) == ("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z")
    assert [(t["units"], t["unit_amount"], t["amount"]) for t in usage["tiers"]] == [
        ("100", "0", "0"),
        ("150", "1.2", "180"),
        ("50", "1.1", "55"),
        ("0", "1", "0"),
    ]
    assert sum(Decimal(line["amount"]) for line in body["lines"]) == Decimal(body["total"])


def test_trial_discount_is_a_promotion_line_and_lago_coupons_amount(
    api: APIClient, invoices: dict[str, Invoice]
) -> None:
    body = get(api, f"/api/v1/invoices/{invoices['acme-08'].pk}")["invoice"]
    assert [(line["kind"], line["amount"]) for line in body["lines"]] == [
        ("base_fee", "120.00"),
        ("promotion", "-54.19"),  # 14 of 31 days
    ]
    assert body["lines"][1]["amount_cents"] == -5419
    assert (body["fees_amount_cents"], body["coupons_amount_cents"], body["total_amount_cents"]) == (12000, 5419, 6581)
    assert body["total"] == "65.81"


def test_responses_parse_with_lagos_python_sdk(api: APIClient, invoices: dict[str, Invoice]) -> None:
    for invoice in invoices.values():
        parsed = InvoiceResponse.parse_obj(get(api, f"/api/v1/invoices/{invoice.pk}")["invoice"])
        assert parsed.lago_id == str(invoice.pk)
        assert parsed.total_amount_cents == int(invoice.total * 100)
    draft = get(api, f"/api/v1/invoices/{invoices['acme-10'].pk}")["invoice"]
    assert draft["status"] == "draft"
    assert draft["number"] == f"DRAFT-{invoices['acme-10'].pk}"  # Lago's SDK requires a number


def test_unknown_or_malformed_id_is_404(api: APIClient, invoices: dict[str, Invoice]) -> None:
    for ref in ("999999", "abc", "1" * 40, "-1"):
        body = get(api, f"/api/v1/invoices/{ref}", expect=404)
        assert body["code"] == "invoice_not_found"
        assert body["status"] == 404


@pytest.mark.parametrize("path", ["/api/v1/invoices", "/api/v1/invoices/1"])
def test_no_key_or_a_bad_key_is_401(path: str) -> None:
    client = APIClient()
    assert client.get(path).status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer bk_not_a_key")
    assert client.get(path).status_code == 401


def test_list_is_newest_period_first_with_lago_meta(api: APIClient, invoices: dict[str, Invoice]) -> None:
    body = get(api, "/api/v1/invoices")
    assert body["meta"] == {"current_page": 1, "next_page": None, "prev_page": None, "total_pages": 1, "total_count": 5}
    periods = [inv["period_start"] for inv in body["invoices"]]
    assert periods == sorted(periods, reverse=True)
    assert all(inv["lines"] for inv in body["invoices"])


def test_list_pages(api: APIClient, invoices: dict[str, Invoice]) -> None:
    everything = ids(get(api, "/api/v1/invoices"))
    first = get(api, "/api/v1/invoices", per_page=2)
    second = get(api, "/api/v1/invoices", per_page=2, page=2)
    third = get(api, "/api/v1/invoices", per_page=2, page=3)
    assert ids(first) + ids(second) + ids(third) == everything
    assert first["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 3, "total_count": 5}
    assert third["meta"]["next_page"] is None
    assert third["meta"]["prev_page"] == 2
    assert get(api, "/api/v1/invoices", per_page=2, page=4)["invoices"] == []


def test_list_filters_by_customer_status_and_type(api: APIClient, invoices: dict[str, Invoice]) -> None:
    acme = get(api, "/api/v1/invoices", external_customer_id="acme")
    assert {inv["customer"]["external_id"] for inv in acme["invoices"]} == {"acme"}
    assert acme["meta"]["total_count"] == 3
    drafts = get(api, "/api/v1/invoices", status="draft")
    assert set(ids(drafts)) == {str(invoices["acme-10"].pk), str(invoices["globex-10"].pk)}
    finalized = get(api, "/api/v1/invoices", status="finalized", external_customer_id="acme")
    assert set(ids(finalized)) == {str(invoices["acme-08"].pk), str(invoices["acme-09"].pk)}
    assert get(api, "/api/v1/invoices", kind="period")["meta"]["total_count"] == 5
    assert get(api, "/api/v1/invoices", invoice_type="subscription")["meta"]["total_count"] == 5
    assert get(api, "/api/v1/invoices", invoice_type="credit")["invoices"] == []
    assert get(api, "/api/v1/invoices", kind="advance")["invoices"] == []
    assert get(api, "/api/v1/invoices", external_customer_id="nobody")["meta"]["total_count"] == 0


def test_period_filters_the_issuing_month(api: APIClient, invoices: dict[str, Invoice]) -> None:
    # finalized: the day of finalization; drafts: the day they are due (the period's end)
    assert set(ids(get(api, "/api/v1/invoices", period="2026-09"))) == {str(invoices["acme-08"].pk)}
    assert set(ids(get(api, "/api/v1/invoices", period="2026-10"))) == {
        str(invoices["acme-09"].pk),
        str(invoices["globex-09"].pk),
    }
    assert set(ids(get(api, "/api/v1/invoices", period="2026-11"))) == {
        str(invoices["acme-10"].pk),
        str(invoices["globex-10"].pk),
    }
    assert get(api, "/api/v1/invoices", period="2026-12")["invoices"] == []
    issued = get(api, "/api/v1/invoices", issuing_date_from="2026-10-02", issuing_date_to="2026-10-02")
    assert set(ids(issued)) == {str(invoices["acme-09"].pk), str(invoices["globex-09"].pk)}


def test_period_range_uses_the_customers_calendar_days(api: APIClient, invoices: dict[str, Invoice]) -> None:
    # globex's "September" starts 2026-08-31T22:00Z and its October 2026-09-30T22:00Z: in UTC the
    # October invoice would touch September, in Paris it does not.
    september = get(api, "/api/v1/invoices", period_from="2026-09-01", period_to="2026-09-30")
    assert set(ids(september)) == {str(invoices["acme-09"].pk), str(invoices["globex-09"].pk)}
    assert invoices["globex-09"].period_start == datetime(2026, 8, 31, 22, tzinfo=UTC)
    late_summer = get(api, "/api/v1/invoices", period_from="2026-08-15", period_to="2026-09-01")
    assert set(ids(late_summer)) == {
        str(invoices["acme-08"].pk),
        str(invoices["acme-09"].pk),
        str(invoices["globex-09"].pk),
    }
    since_october = get(api, "/api/v1/invoices", period_from="2026-10-01")
    assert set(ids(since_october)) == {str(invoices["acme-10"].pk), str(invoices["globex-10"].pk)}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "open"}, "status"),
        ({"invoice_type": "period"}, "invoice_type"),
        ({"kind": "subscription"}, "kind"),
        ({"payment_status": "paid"}, "payment_status"),
        ({"payment_overdue": "maybe"}, "payment_overdue"),
        ({"period": "2026-13"}, "period"),
        ({"period": "09-2026"}, "period"),
        ({"period_from": "2026-02-30"}, "period_from"),
        ({"issuing_date_to": "tomorrow"}, "issuing_date_to"),
        ({"period_from": "2026-10-01", "period_to": "2026-09-01"}, "period_to"),
        ({"page": "0"}, "page"),
        ({"per_page": "many"}, "per_page"),
    ],
)
def test_invalid_filters_are_422_by_parameter(
    api: APIClient, invoices: dict[str, Invoice], params: dict[str, str], field: str
) -> None:
    body = get(api, "/api/v1/invoices", expect=422, **params)
    assert body["code"] == "validation_errors"
    assert list(body["error_details"]) == [field]


def test_list_queries_do_not_grow_with_the_number_of_invoices(api: APIClient, invoices: dict[str, Invoice]) -> None:
    get(api, "/api/v1/invoices")  # the key's first use of the day writes its last_used_at
    with CaptureQueriesContext(connection) as one:
        assert len(get(api, "/api/v1/invoices", per_page=1)["invoices"]) == 1
    with CaptureQueriesContext(connection) as five:
        assert len(get(api, "/api/v1/invoices", per_page=100)["invoices"]) == 5
    assert len(five.captured_queries) == len(one.captured_queries)
    # key, count, invoices with customer/subscription/plan, lines with metric, payments, credit notes
    assert len(five.captured_queries) <= 6, [q["sql"] for q in five.captured_queries]


def test_paid_and_void_invoices_show_lagos_payment_amounts(api: APIClient, invoices: dict[str, Invoice]) -> None:
    from billing.services.invoices import invoice_void
    from billing.services.payments import invoice_mark_paid

    with time_machine.travel(datetime(2026, 11, 5, tzinfo=UTC), tick=False):
        invoice_mark_paid(invoice=invoices["acme-09"], now=datetime(2026, 11, 5, tzinfo=UTC))
        invoice_void(invoice=invoices["acme-08"], reason="goodwill", now=datetime(2026, 11, 5, tzinfo=UTC))
    paid = get(api, f"/api/v1/invoices/{invoices['acme-09'].pk}")["invoice"]
    assert (paid["status"], paid["payment_status"]) == ("finalized", "succeeded")
    assert (paid["total_paid_amount_cents"], paid["total_due_amount_cents"]) == (35500, 0)
    void = get(api, f"/api/v1/invoices/{invoices['acme-08'].pk}")["invoice"]
    assert (void["status"], void["void_reason"], void["total_due_amount_cents"]) == ("voided", "goodwill", 0)
    assert void["voided_at"] == "2026-11-05T00:00:00Z"
    assert set(ids(get(api, "/api/v1/invoices", payment_status="succeeded"))) == {str(invoices["acme-09"].pk)}
    assert set(ids(get(api, "/api/v1/invoices", status="voided"))) == {str(invoices["acme-08"].pk)}
    assert Invoice.objects.get(pk=invoices["acme-09"].pk).payment_status == PaymentStatus.SUCCEEDED

"""Late usage (DESIGN §3 "Invoices"): events for a period whose invoice is already final.

They are stored (and flagged `is_late`), and the customer's next invoice carries a `late_usage`
line: price(the period's quantity with them) − price(the quantity already invoiced). The
invariant proved here: over all invoices, the usage and late_usage lines of a period add up to
the price of that period's final quantity. Nothing is lost, nothing is billed twice.

The plan `mini` is the Team plan scaled down a thousandfold so a few dozen users cross its
tiers: $120 a month, MTUs 1–10 free, 11–25 at $1.20, 26–100 at $1.10, above at $1.00.
`mini-trial` adds a 14-day plan-scope trial (100 % off base fee and usage, as Amberflo's).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from billing.engine.pricing import price_charge
from billing.models import Invoice, InvoiceLine, InvoiceStatus, LineKind
from billing.selectors.plans import charge_spec, current_plan
from customers.models import Customer
from metering.models import BillableMetric, Event
from metering.selectors import aggregate
from tests.helpers import api_client, at, load_catalog, post, travel

pytestmark = pytest.mark.django_db

MINI_TIERS = [
    {"up_to": 10, "unit_amount": "0"},
    {"up_to": 25, "unit_amount": "1.2"},
    {"up_to": 100, "unit_amount": "1.1"},
    {"up_to": None, "unit_amount": "1.0"},
]
CATALOG = {
    "billable_metrics": [
        {"code": "mtu", "name": "Monthly tracked users", "aggregation": "unique_count", "field": "user_id"}
    ],
    "promotions": [
        {"code": "trial-mini", "name": "Trial", "percent_off": "100", "duration_days": 14, "applies_to": "plan"}
    ],
    "plans": [
        {
            "code": "mini",
            "name": "Mini",
            "interval": "month",
            "currency": "USD",
            "base_fee": "120",
            "charges": [{"metric": "mtu", "model": "graduated", "tiers": MINI_TIERS}],
        },
        {
            "code": "mini-trial",
            "name": "Mini with trial",
            "interval": "month",
            "currency": "USD",
            "base_fee": "120",
            "promotion": "trial-mini",
            "charges": [{"metric": "mtu", "model": "graduated", "tiers": MINI_TIERS}],
        },
        {
            "code": "mini-plus",
            "name": "Mini Plus",
            "interval": "month",
            "currency": "USD",
            "base_fee": "200",
            "charges": [{"metric": "mtu", "model": "graduated", "tiers": MINI_TIERS}],
        },
    ],
}


@pytest.fixture
def api(tmp_path: Path) -> APIClient:
    load_catalog(tmp_path, CATALOG)
    return api_client()


def subscribe(api: APIClient, plan: str, start: str, *, at_moment: datetime) -> None:
    with travel(at_moment):
        post(api, "/api/v1/customers", {"customer": {"external_id": "acme", "name": "Acme", "currency": "USD"}})
        post(
            api,
            "/api/v1/subscriptions",
            {
                "subscription": {
                    "external_customer_id": "acme",
                    "plan_code": plan,
                    "external_id": "acme-sub",
                    "subscription_at": start,
                    "billing_time": "calendar",
                }
            },
        )


def events(users: range | list[int], when: datetime, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "transaction_id": f"{prefix}-{u}",
            "external_customer_id": "acme",
            "code": "mtu",
            "timestamp": int(when.timestamp()),
            "properties": {"user_id": f"u{u}"},
        }
        for u in users
    ]


def send(api: APIClient, batch: list[dict[str, Any]], *, sent_at: datetime) -> list[dict[str, Any]]:
    with travel(sent_at):
        return post(api, "/api/v1/events/batch", {"events": batch})["events"]


def close(moment: datetime) -> None:
    with travel(moment):
        call_command("close_period", stdout=StringIO())


def invoice_for(period_start: datetime) -> Invoice:
    return Invoice.objects.get(kind="period", period_start=period_start)


def lines(invoice: Invoice) -> list[tuple[str, str, str]]:
    return [(ln.kind, f"{ln.quantity.normalize():f}", f"{ln.amount:.2f}") for ln in invoice.lines.order_by("position")]


def billed_for(period_start: datetime) -> Decimal:
    """What all invoices billed for a period's usage: its usage line and every late_usage line after it."""
    rows = InvoiceLine.objects.filter(
        period_start=period_start, kind__in=[LineKind.USAGE, LineKind.LATE_USAGE]
    ).exclude(invoice__status=InvoiceStatus.VOIDED)
    return sum((row.amount for row in rows), Decimal(0))


def price_of_final_quantity(plan_code: str, start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
    """The period's quantity measured now from the stored events, and its price (no promotion)."""
    plan = current_plan(plan_code)
    (charge,) = plan.charges.all()
    quantity = aggregate(
        customer=Customer.objects.get(external_id="acme"),
        metric=BillableMetric.objects.get(code="mtu"),
        start=start,
        end=end,
    ).quantity
    return quantity, price_charge(charge_spec(charge), quantity, "USD").amount


def state() -> list[tuple[Any, ...]]:
    return [(inv.pk, inv.status, inv.number, inv.total, lines(inv)) for inv in Invoice.objects.order_by("pk")]


def test_late_events_are_billed_on_the_next_invoices_once_and_completely(api: APIClient) -> None:
    subscribe(api, "mini", "2026-08-01T00:00:00Z", at_moment=at(2026, 8, 1, 9))
    close(at(2026, 9, 1, 0, 5))  # August: base fee only
    september_batch = events(range(20), at(2026, 9, 20), "sep")
    send(api, september_batch, sent_at=at(2026, 9, 20, 1))
    close(at(2026, 10, 1, 0, 5))
    september = invoice_for(at(2026, 9, 1))
    assert september.status == InvoiceStatus.FINALIZED
    assert lines(september) == [("base_fee", "1", "120.00"), ("usage", "20", "12.00")]  # 10 × 1.20
    september_before = state()

    # Oct 5: ten new September users (late), September's own events again (duplicates), and
    # new events from users September already counted; plus October's own usage.
    late = send(api, events(range(20, 30), at(2026, 9, 25), "sep-late"), sent_at=at(2026, 10, 5))
    assert {e["is_late"] for e in late} == {True}
    duplicates = send(api, september_batch, sent_at=at(2026, 10, 5))
    assert {e["is_late"] for e in duplicates} == {False}  # the stored originals, unchanged
    send(api, events([0, 1, 2], at(2026, 9, 26), "sep-again"), sent_at=at(2026, 10, 5))
    send(api, events(range(100, 112), at(2026, 10, 10), "oct"), sent_at=at(2026, 10, 10))
    assert Event.objects.filter(transaction_id__startswith="sep-").count() == 33  # 20 + 10 late + 3 again
    assert Event.objects.filter(is_late=True).count() == 13

    close(at(2026, 10, 20))  # nothing ended: nothing changes, September stays as it was
    assert state()[: len(september_before)] == september_before
    close(at(2026, 11, 1, 0, 5))
    october = invoice_for(at(2026, 10, 1))
    assert lines(october) == [
        ("base_fee", "1", "120.00"),
        ("usage", "12", "2.40"),
        ("late_usage", "10", "11.50"),  # price(30) − price(20) = 23.50 − 12.00
    ]
    late_line = october.lines.get(kind=LineKind.LATE_USAGE)
    assert (late_line.period_start, late_line.period_end) == (at(2026, 9, 1), at(2026, 10, 1))
    assert late_line.description == "Late Monthly tracked users for Sep 1 – Sep 30, 2026: 20 → 30"
    assert late_line.details["previously_billed_quantity"] == "20"

    # Nov 3: more late September users (33 days old: still accepted) and late October users.
    more = send(api, events(range(30, 40), at(2026, 9, 30, 12), "sep-later"), sent_at=at(2026, 11, 3))
    assert {e["is_late"] for e in more} == {True}
    send(api, events(range(112, 117), at(2026, 10, 28), "oct-late"), sent_at=at(2026, 11, 3))
    close(at(2026, 12, 1, 0, 5))
    november = invoice_for(at(2026, 11, 1))
    assert lines(november) == [
        ("base_fee", "1", "120.00"),
        ("late_usage", "10", "11.00"),  # September: price(40) − price(30) = 34.50 − 23.50
        ("late_usage", "5", "6.00"),  # October: price(17) − price(12) = 8.40 − 2.40
    ]

    # Too old to be accepted: rejected whole, nothing stored.
    with travel(at(2026, 11, 10)):
        response = api.post("/api/v1/events/batch", {"events": events([999], at(2026, 9, 1), "too-old")}, format="json")
    assert response.status_code == 422

    # Duplicates of everything already billed, then more closes: nothing more is billed.
    send(api, events(range(30, 40), at(2026, 9, 30, 12), "sep-later"), sent_at=at(2026, 11, 4))
    send(api, events(range(112, 117), at(2026, 10, 28), "oct-late"), sent_at=at(2026, 11, 4))
    close(at(2027, 1, 1, 0, 5))
    december = invoice_for(at(2026, 12, 1))
    assert lines(december) == [("base_fee", "1", "120.00")]

    # The invariant: per period, everything billed = the price of its final quantity.
    for start, end, expected_quantity in (
        (at(2026, 9, 1), at(2026, 10, 1), 40),
        (at(2026, 10, 1), at(2026, 11, 1), 17),
    ):
        quantity, price = price_of_final_quantity("mini", start, end)
        assert quantity == expected_quantity
        assert billed_for(start) == price
    assert billed_for(at(2026, 9, 1)) == Decimal("34.50")
    assert billed_for(at(2026, 10, 1)) == Decimal("8.40")


def test_late_events_in_a_plan_scope_trial_are_priced_net_of_it(api: APIClient) -> None:
    subscribe(api, "mini-trial", "2026-09-01T00:00:00Z", at_moment=at(2026, 9, 1, 9))
    send(api, events(range(20), at(2026, 9, 5), "in-trial"), sent_at=at(2026, 9, 5))  # trial: Sep 1–14
    send(api, events(range(100, 115), at(2026, 9, 20), "after-trial"), sent_at=at(2026, 9, 20))
    close(at(2026, 10, 1, 0, 5))
    september = invoice_for(at(2026, 9, 1))
    # usage: price(35) = 29.00; the trial takes off what only trial users cost: 29.00 − price(15)
    assert [(k, a) for k, _, a in lines(september)] == [
        ("base_fee", "120.00"),
        ("promotion", "-56.00"),
        ("usage", "29.00"),
        ("promotion", "-23.00"),
    ]

    # Late users seen only during the trial cost nothing; late users after it cost the difference.
    send(api, events(range(200, 205), at(2026, 9, 10), "late-in-trial"), sent_at=at(2026, 10, 3))
    send(api, events(range(300, 310), at(2026, 9, 25), "late-after-trial"), sent_at=at(2026, 10, 3))
    close(at(2026, 11, 1, 0, 5))
    october = invoice_for(at(2026, 10, 1))
    (late,) = october.lines.filter(kind=LineKind.LATE_USAGE)
    # billed: price(q_out=15) = 6.00; now q_all = 50, q_out = 25: at 100 % the customer pays
    # price(25) = 18.00, so 12.00 more.
    assert (late.quantity, late.amount) == (Decimal(15), Decimal("12.00"))
    net_september = sum(
        (ln.amount for ln in InvoiceLine.objects.filter(period_start=at(2026, 9, 1), metric__code="mtu")),
        Decimal(0),
    )
    _, price_outside_trial = price_of_final_quantity("mini-trial", at(2026, 9, 15), at(2026, 10, 1))
    assert net_september == price_outside_trial == Decimal("18.00")


def test_late_events_inside_the_grace_period_go_on_the_draft_not_a_late_line(api: APIClient, settings: Any) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 24
    subscribe(api, "mini", "2026-08-01T00:00:00Z", at_moment=at(2026, 8, 1, 9))
    send(api, events(range(20), at(2026, 9, 20), "sep"), sent_at=at(2026, 9, 20))
    close(at(2026, 10, 1, 0, 5))
    sent = send(api, events(range(20, 30), at(2026, 9, 30), "sep-grace"), sent_at=at(2026, 10, 1, 8))
    assert {e["is_late"] for e in sent} == {False}
    close(at(2026, 10, 2, 0, 5))
    september = invoice_for(at(2026, 9, 1))
    assert september.status == InvoiceStatus.FINALIZED
    assert lines(september)[-1] == ("usage", "30", "23.50")
    close(at(2026, 11, 2, 0, 5))
    assert not InvoiceLine.objects.filter(kind=LineKind.LATE_USAGE).exists()
    assert billed_for(at(2026, 9, 1)) == price_of_final_quantity("mini", at(2026, 9, 1), at(2026, 10, 1))[1]


def test_a_voided_late_line_is_billed_again(api: APIClient) -> None:
    from billing.services.invoices import invoice_void

    subscribe(api, "mini", "2026-08-01T00:00:00Z", at_moment=at(2026, 8, 1, 9))
    send(api, events(range(20), at(2026, 9, 20), "sep"), sent_at=at(2026, 9, 20))
    close(at(2026, 10, 1, 0, 5))
    send(api, events(range(20, 30), at(2026, 9, 25), "late"), sent_at=at(2026, 10, 5))
    close(at(2026, 11, 1, 0, 5))
    october = invoice_for(at(2026, 10, 1))
    invoice_void(invoice=october, reason="wrong address", now=at(2026, 11, 2))
    close(at(2026, 12, 1, 0, 5))
    november = invoice_for(at(2026, 11, 1))
    assert [(k, a) for k, _, a in lines(november)] == [("base_fee", "120.00"), ("late_usage", "11.50")]
    assert billed_for(at(2026, 9, 1)) == Decimal("23.50")


def test_late_events_for_the_plan_before_a_change_are_billed_on_the_new_plans_invoice(api: APIClient) -> None:
    subscribe(api, "mini", "2026-08-01T00:00:00Z", at_moment=at(2026, 8, 1, 9))
    send(api, events(range(20), at(2026, 9, 10), "early-sep"), sent_at=at(2026, 9, 10))
    with travel(at(2026, 9, 16, 0, 1)):
        post(
            api,
            "/api/v1/subscriptions",
            {
                "subscription": {
                    "external_customer_id": "acme",
                    "plan_code": "mini-plus",
                    "external_id": "acme-sub",
                    "subscription_at": "2026-09-16T00:00:00Z",
                    "billing_time": "calendar",
                }
            },
        )
    close(at(2026, 9, 16, 0, 5))  # the old plan's last period [Sep 1, Sep 16) is final now
    old_final = invoice_for(at(2026, 9, 1))
    assert old_final.status == InvoiceStatus.FINALIZED
    assert lines(old_final)[-1] == ("usage", "20", "12.00")

    late = send(api, events(range(20, 30), at(2026, 9, 12), "late"), sent_at=at(2026, 9, 17))
    assert {e["is_late"] for e in late} == {True}
    close(at(2026, 10, 1, 0, 5))
    new_first = invoice_for(at(2026, 9, 16))
    (late_line,) = new_first.lines.filter(kind=LineKind.LATE_USAGE)
    assert (late_line.period_start, late_line.period_end) == (at(2026, 9, 1), at(2026, 9, 16))
    assert (late_line.quantity, late_line.amount) == (Decimal(10), Decimal("11.50"))
    assert billed_for(at(2026, 9, 1)) == price_of_final_quantity("mini", at(2026, 9, 1), at(2026, 9, 16))[1]
    close(at(2026, 11, 1, 0, 5))
    assert InvoiceLine.objects.filter(kind=LineKind.LATE_USAGE).count() == 1  # not billed twice

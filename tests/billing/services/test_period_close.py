"""close_period (DESIGN §3 "Periods", "Invoices"; §4 management commands and scheduled tasks).

Everything goes through the public edges: customers, subscriptions and events through the API
at a frozen time, then `manage.py close_period` (or the django-q2 task) at a later frozen time.
Besides the shipped Segment catalog, a small one: `metered` ($10 a month + $0.10 per MTU) and
`metered-advance` ($30 a month billed in advance + $0.10 per MTU), so amounts stay readable
with a handful of events.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils.module_loading import import_string
from django_q.conf import Conf
from django_q.models import Schedule
from rest_framework.test import APIClient

from billing.models import Invoice, InvoiceKind, InvoiceStatus, Subscription
from billing.tasks import close_ended_periods
from tests.helpers import api_client, at, delete, load_catalog, post, travel

pytestmark = pytest.mark.django_db

TEST_CATALOG = {
    "billable_metrics": [
        {"code": "mtu", "name": "Monthly tracked users", "aggregation": "unique_count", "field": "user_id"}
    ],
    "plans": [
        {
            "code": "metered",
            "name": "Metered",
            "interval": "month",
            "currency": "USD",
            "base_fee": "10",
            "charges": [{"metric": "mtu", "model": "standard", "unit_amount": "0.10"}],
        },
        {
            "code": "metered-advance",
            "name": "Metered in advance",
            "interval": "month",
            "currency": "USD",
            "base_fee": "30",
            "pay_in_advance": True,
            "charges": [{"metric": "mtu", "model": "standard", "unit_amount": "0.10"}],
        },
    ],
}


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> APIClient:
    call_command("load_catalog", stdout=StringIO())
    load_catalog(tmp_path, TEST_CATALOG)
    return api_client()


def customer(api: APIClient, external_id: str, tz: str = "UTC") -> None:
    post(
        api,
        "/api/v1/customers",
        {"customer": {"external_id": external_id, "name": external_id.title(), "currency": "USD", "timezone": tz}},
    )


def subscribe(
    api: APIClient,
    customer_id: str,
    plan: str,
    start: str,
    *,
    external_id: str | None = None,
    billing_time: str = "calendar",
) -> dict[str, Any]:
    body = {
        "external_customer_id": customer_id,
        "plan_code": plan,
        "external_id": external_id or customer_id,
        "subscription_at": start,
        "billing_time": billing_time,
    }
    return post(api, "/api/v1/subscriptions", {"subscription": body})["subscription"]


def send_users(api: APIClient, customer_id: str, users: range, when: datetime, prefix: str) -> list[dict[str, Any]]:
    """One mtu event per user at `when`, through the API (call it at a frozen time near `when`)."""
    events = [
        {
            "transaction_id": f"{customer_id}-{prefix}-{u}",
            "external_customer_id": customer_id,
            "code": "mtu",
            "timestamp": when.isoformat(),
            "properties": {"user_id": f"u{u}"},
        }
        for u in users
    ]
    return post(api, "/api/v1/events/batch", {"events": events})["events"]


def close(moment: datetime, *args: str) -> str:
    out = StringIO()
    with travel(moment):
        call_command("close_period", *args, stdout=out, stderr=out)
    return out.getvalue()


def lines(invoice: Invoice) -> list[tuple[str, str]]:
    return [(ln.kind, f"{ln.amount:.2f}") for ln in invoice.lines.order_by("position")]


def invoices(**filters: Any) -> list[Invoice]:
    return list(Invoice.objects.filter(**filters).order_by("period_start", "subscription_id", "kind"))


def state() -> list[tuple[Any, ...]]:
    """Everything a close could change, to compare before and after."""
    return [
        (inv.pk, inv.status, inv.number, inv.total, inv.updated_at, inv.issued_on, lines(inv))
        for inv in Invoice.objects.order_by("pk")
    ]


def numbers() -> list[str]:
    return list(Invoice.objects.exclude(number=None).order_by("finalized_at", "pk").values_list("number", flat=True))


# --- idempotence and catching up -----------------------------------------------------------


def test_closing_twice_changes_nothing(api: APIClient) -> None:
    with travel(at(2026, 9, 20)):
        customer(api, "acme")
        subscribe(api, "acme", "metered", "2026-09-01T00:00:00Z")
        send_users(api, "acme", range(30), at(2026, 9, 20), "sep")
    out = close(at(2026, 10, 1, 0, 5))
    assert "1 created" in out and "1 finalized" in out
    (september,) = invoices()
    assert lines(september) == [("base_fee", "10.00"), ("usage", "3.00")]
    assert september.number == "INV-2026-000001"
    before = state()
    out = close(at(2026, 10, 1, 0, 5))
    assert "0 created" in out and "0 finalized" in out
    close(at(2026, 10, 15))
    assert state() == before


def catch_up_setup(api: APIClient) -> None:
    """acme on `metered` since June 1, with events in June, July and August, never closed."""
    with travel(at(2026, 6, 1, 9)):
        customer(api, "acme")
        subscribe(api, "acme", "metered", "2026-06-01T00:00:00Z")
    for month, users in ((6, 10), (7, 20), (8, 30)):
        with travel(at(2026, month, 10, 12)):
            send_users(api, "acme", range(users), at(2026, month, 10), f"m{month}")


def test_one_run_catches_up_every_missed_month(api: APIClient) -> None:
    catch_up_setup(api)
    out = close(at(2026, 9, 1, 0, 5))
    assert "3 created" in out and "3 finalized" in out
    june, july, august = invoices()
    assert [inv.period_start for inv in (june, july, august)] == [at(2026, 6, 1), at(2026, 7, 1), at(2026, 8, 1)]
    assert [lines(inv) for inv in (june, july, august)] == [
        [("base_fee", "10.00"), ("usage", "1.00")],
        [("base_fee", "10.00"), ("usage", "2.00")],
        [("base_fee", "10.00"), ("usage", "3.00")],
    ]
    assert [inv.number for inv in (june, july, august)] == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]
    assert {inv.status for inv in (june, july, august)} == {InvoiceStatus.FINALIZED}


def test_period_option_closes_only_that_month_and_later_runs_catch_up(api: APIClient) -> None:
    catch_up_setup(api)
    close(at(2026, 9, 1, 0, 5), "--period", "2026-07")
    (july,) = invoices()
    assert (july.period_start, july.number, july.total) == (at(2026, 7, 1), "INV-2026-000001", Decimal("12.00"))

    # A later run without --period invoices the months before and after it, and leaves July alone.
    before = state()
    close(at(2026, 9, 1, 1))
    assert state()[0] == before[0]
    june, july_again, august = invoices()
    assert july_again.pk == july.pk
    assert (june.period_start, june.total) == (at(2026, 6, 1), Decimal("11.00"))
    assert (august.period_start, august.total) == (at(2026, 8, 1), Decimal("13.00"))
    assert numbers() == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]  # finalization order


def test_period_option_must_be_a_month() -> None:
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("close_period", "--period", "2026-13", stdout=StringIO())


def test_customer_option_closes_only_that_customer(api: APIClient) -> None:
    with travel(at(2026, 9, 20)):
        for name in ("acme", "globex"):
            customer(api, name)
            subscribe(api, name, "metered", "2026-09-01T00:00:00Z")
    close(at(2026, 10, 1, 0, 5), "--customer", "acme")
    assert [inv.customer.external_id for inv in invoices()] == ["acme"]
    close(at(2026, 10, 1, 0, 10))
    assert sorted(inv.customer.external_id for inv in invoices()) == ["acme", "globex"]


def test_dry_run_prints_what_it_would_do_and_changes_nothing(api: APIClient) -> None:
    with travel(at(2026, 9, 20)):
        customer(api, "acme")
        subscribe(api, "acme", "metered", "2026-09-01T00:00:00Z")
        send_users(api, "acme", range(30), at(2026, 9, 20), "sep")
    out = close(at(2026, 10, 1, 0, 5), "--dry-run")
    assert "would invoice acme: 2026-09-01 – 2026-10-01 13 USD" in out
    assert "Dry run: 1 invoice(s) would be created." in out
    assert Invoice.objects.count() == 0
    close(at(2026, 10, 1, 0, 10))
    assert numbers() == ["INV-2026-000001"]  # the dry run used no number


def test_dry_run_does_not_finalize_a_draft_whose_grace_has_passed(api: APIClient, settings: Any) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 24
    with travel(at(2026, 9, 20)):
        customer(api, "acme")
        subscribe(api, "acme", "metered", "2026-09-01T00:00:00Z")
    close(at(2026, 10, 1, 0, 5))
    before = state()
    out = close(at(2026, 10, 3), "--dry-run")
    assert "Dry run: 0 invoice(s) would be created." in out
    assert state() == before
    assert Invoice.objects.get().status == InvoiceStatus.DRAFT


# --- grace period, finality, numbers -------------------------------------------------------


def test_grace_period_keeps_a_recomputable_draft_then_finalizes(api: APIClient, settings: Any) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 24
    with travel(at(2026, 9, 20)):
        customer(api, "acme")
        subscribe(api, "acme", "metered", "2026-09-01T00:00:00Z")
        send_users(api, "acme", range(100), at(2026, 9, 20), "sep")
    close(at(2026, 10, 1, 0, 5))
    september = Invoice.objects.get()
    assert (september.status, september.number) == (InvoiceStatus.DRAFT, None)
    assert lines(september) == [("base_fee", "10.00"), ("usage", "10.00")]

    # Events for September inside the grace: not late (the invoice is still a draft) ...
    with travel(at(2026, 10, 1, 10)):
        sent = send_users(api, "acme", range(100, 150), at(2026, 9, 30, 23), "sep-grace")
    assert {e["is_late"] for e in sent} == {False}
    out = close(at(2026, 10, 1, 12))
    assert "1 recomputed" in out
    september.refresh_from_db()
    assert (september.status, lines(september)) == (InvoiceStatus.DRAFT, [("base_fee", "10.00"), ("usage", "15.00")])

    # ... then finalized once the grace has passed, with them in it.
    close(at(2026, 10, 2, 0, 5))
    september.refresh_from_db()
    assert (september.status, september.number) == (InvoiceStatus.FINALIZED, "INV-2026-000001")
    assert september.issued_on.isoformat() == "2026-10-02"
    assert september.total == Decimal("25.00")

    # They were billed once: no late_usage on the next invoice.
    close(at(2026, 11, 2, 0, 5))
    october = Invoice.objects.get(period_start=at(2026, 10, 1))
    assert lines(october) == [("base_fee", "10.00")]


def test_finalized_invoices_never_change_in_later_runs(api: APIClient) -> None:
    with travel(at(2026, 9, 20)):
        customer(api, "acme")
        subscribe(api, "acme", "metered", "2026-09-01T00:00:00Z")
        send_users(api, "acme", range(10), at(2026, 9, 20), "sep")
    close(at(2026, 10, 1, 0, 5))
    before = state()
    with travel(at(2026, 10, 5)):
        sent = send_users(api, "acme", range(10, 40), at(2026, 9, 25), "late")
    assert {e["is_late"] for e in sent} == {True}
    for moment in (at(2026, 10, 5, 1), at(2026, 10, 20), at(2026, 10, 31, 23)):
        close(moment)
        assert state() == before
    close(at(2026, 11, 1, 0, 5))
    assert state()[0] == before[0]  # September as it was; the late events went on October's invoice
    october = Invoice.objects.get(period_start=at(2026, 10, 1))
    assert lines(october) == [("base_fee", "10.00"), ("late_usage", "3.00")]


def test_numbers_are_gap_free_per_year_in_finalization_order(api: APIClient) -> None:
    from billing.services.invoices import invoice_void

    with travel(at(2026, 10, 10)):
        for name in ("acme", "globex"):
            customer(api, name)
            subscribe(api, name, "metered", "2026-09-01T00:00:00Z")
        customer(api, "initech")
        subscribe(api, "initech", "metered", "2026-10-10T00:00:00Z")
    close(at(2026, 10, 1, 0, 5))
    close(at(2026, 11, 1, 0, 5))
    first = Invoice.objects.get(number="INV-2026-000001")
    invoice_void(invoice=first, reason="test", now=at(2026, 11, 2))  # a void invoice keeps its number
    close(at(2026, 12, 1, 0, 5))
    close(at(2027, 1, 1, 0, 5))
    expected_2026 = [f"INV-2026-{n:06d}" for n in range(1, 9)]
    expected_2027 = [f"INV-2027-{n:06d}" for n in range(1, 4)]
    assert numbers() == expected_2026 + expected_2027
    # within one run, subscriptions are closed in a fixed order (by id)
    november = invoices(period_start__gte=at(2026, 10, 1), period_start__lt=at(2026, 11, 1))
    assert [inv.customer.external_id for inv in sorted(november, key=lambda i: i.number or "")] == [
        "acme",
        "globex",
        "initech",
    ]
    assert Invoice.objects.get(number="INV-2026-000001").status == InvoiceStatus.VOIDED


# --- periods --------------------------------------------------------------------------------


def test_anniversary_periods_start_on_the_31st_clamped_to_month_end(api: APIClient) -> None:
    with travel(at(2026, 1, 31, 9)):
        customer(api, "acme")
        subscribe(api, "acme", "metered", "2026-01-31T00:00:00Z", billing_time="anniversary")
    with travel(at(2026, 2, 28, 12)):
        send_users(api, "acme", range(3), at(2026, 2, 27, 12), "feb27")  # first period
        send_users(api, "acme", range(3, 5), at(2026, 2, 28, 1), "feb28")  # second period
    close(at(2026, 5, 31, 0, 5))
    found = [(inv.period_start, inv.period_end, lines(inv)) for inv in invoices()]
    assert found == [
        (at(2026, 1, 31), at(2026, 2, 28), [("base_fee", "10.00"), ("usage", "0.30")]),
        (at(2026, 2, 28), at(2026, 3, 31), [("base_fee", "10.00"), ("usage", "0.20")]),
        (at(2026, 3, 31), at(2026, 4, 30), [("base_fee", "10.00")]),
        (at(2026, 4, 30), at(2026, 5, 31), [("base_fee", "10.00")]),
    ]


def test_periods_of_a_paris_customer_start_at_local_midnight(api: APIClient) -> None:
    with travel(at(2026, 9, 30, 22, 40)):
        customer(api, "pierre", tz="Europe/Paris")
        subscribe(api, "pierre", "metered", "2026-09-01T00:00:00+02:00")
        send_users(api, "pierre", range(1), at(2026, 9, 30, 21, 30), "sep")  # 23:30 in Paris: September
        send_users(api, "pierre", range(1, 3), at(2026, 9, 30, 22, 30), "oct")  # 00:30 Oct 1 in Paris
    assert close(at(2026, 9, 30, 21, 55)) and Invoice.objects.count() == 0  # not over in Paris yet
    close(at(2026, 9, 30, 22, 5))
    (september,) = invoices()
    assert (september.period_start, september.period_end) == (at(2026, 8, 31, 22), at(2026, 9, 30, 22))
    assert lines(september) == [("base_fee", "10.00"), ("usage", "0.10")]
    assert september.issued_on.isoformat() == "2026-10-01"  # Paris date of 22:05 UTC
    close(at(2026, 10, 31, 23, 5))  # October ends at 23:00 UTC: summer time ended on the 25th
    october = Invoice.objects.get(period_start=at(2026, 9, 30, 22))
    assert october.period_end == at(2026, 10, 31, 23)
    assert lines(october) == [("base_fee", "10.00"), ("usage", "0.20")]


# --- subscription changes -------------------------------------------------------------------


def test_termination_mid_period_bills_a_final_prorated_period_and_nothing_after(api: APIClient) -> None:
    with travel(at(2026, 8, 1, 9)):
        customer(api, "acme")
        subscribe(api, "acme", "team", "2026-08-01T00:00:00Z")
    close(at(2026, 9, 1, 0, 5))
    close(at(2026, 10, 1, 0, 5))
    with travel(at(2026, 10, 10)):
        send_users(api, "acme", range(5), at(2026, 10, 10), "oct")
    with travel(at(2026, 10, 16, 12)):
        body = delete(api, "/api/v1/subscriptions/acme")["subscription"]
    assert (body["status"], body["terminated_at"]) == ("terminated", "2026-10-16T12:00:00Z")
    close(at(2026, 10, 16, 12, 5))
    final = Invoice.objects.get(period_start=at(2026, 10, 1))
    # The day a subscription ends does not count (DESIGN §3): October 1–15, 15 of 31 days.
    assert (final.period_end, final.status) == (at(2026, 10, 16), InvoiceStatus.FINALIZED)
    assert lines(final) == [("base_fee", "58.06"), ("usage", "0.00")]  # 120 × 15 / 31 = 58.064…
    assert final.lines.get(kind="base_fee").description == "Team base fee (15 of 31 days)"
    before = state()
    close(at(2026, 11, 1, 0, 5))
    close(at(2026, 12, 1, 0, 5))
    assert state() == before
    assert Invoice.objects.count() == 3  # August, September, the final October


def test_plan_change_from_free_to_team_mid_month(api: APIClient) -> None:
    with travel(at(2026, 9, 5)):
        customer(api, "acme")
        subscribe(api, "acme", "free", "2026-09-01T00:00:00Z")
        send_users(api, "acme", range(800), at(2026, 9, 5), "free")
    with travel(at(2026, 9, 16, 9)):
        subscribe(api, "acme", "team", "2026-09-16T00:00:00Z")
    with travel(at(2026, 9, 20)):
        send_users(api, "acme", range(12), at(2026, 9, 20), "team")
    close(at(2026, 10, 1, 0, 5))
    free_sub, team_sub = Subscription.objects.order_by("subscription_at")
    assert (free_sub.status, free_sub.terminated_at) == ("terminated", at(2026, 9, 16))
    assert team_sub.previous_id == free_sub.pk
    (free_invoice,) = invoices(subscription=free_sub)
    (team_invoice,) = invoices(subscription=team_sub)
    assert (free_invoice.period_start, free_invoice.period_end) == (at(2026, 9, 1), at(2026, 9, 16))
    assert lines(free_invoice) == [("base_fee", "0.00"), ("usage", "0.00")]
    assert free_invoice.lines.get(kind="usage").quantity == 800
    assert (team_invoice.period_start, team_invoice.period_end) == (at(2026, 9, 16), at(2026, 10, 1))
    # Half of September at $120; the free plan had no trial, so there is none to carry over.
    assert lines(team_invoice) == [("base_fee", "60.00"), ("usage", "0.00")]
    assert team_invoice.lines.get(kind="usage").quantity == 12
    assert team_invoice.lines.get(kind="base_fee").description == "Team base fee (15 of 30 days)"
    close(at(2026, 11, 1, 0, 5))
    assert [lines(inv) for inv in invoices(subscription=free_sub)] == [lines(free_invoice)]  # nothing after
    assert lines(invoices(subscription=team_sub)[-1]) == [("base_fee", "120.00")]


def test_plan_change_mid_day_bills_the_day_of_the_change_once_on_the_new_plan(api: APIClient) -> None:
    with travel(at(2026, 9, 5)):
        customer(api, "acme")
        subscribe(api, "acme", "metered", "2026-09-01T00:00:00Z")
        send_users(api, "acme", range(10), at(2026, 9, 5), "early")
    with travel(at(2026, 9, 16, 14)):
        send_users(api, "acme", range(100, 104), at(2026, 9, 16, 9), "change-day")  # before the change
        body = {"external_customer_id": "acme", "plan_code": "team", "external_id": "acme"}  # now
        post(api, "/api/v1/subscriptions", {"subscription": body})
    old, new = Subscription.objects.order_by("subscription_at")
    assert old.terminated_at == at(2026, 9, 16)  # the start of the day of the change
    assert new.subscription_at == at(2026, 9, 16, 14)
    close(at(2026, 10, 1, 0, 5))
    (old_invoice,) = invoices(subscription=old)
    (new_invoice,) = invoices(subscription=new)
    assert (old_invoice.period_start, old_invoice.period_end) == (at(2026, 9, 1), at(2026, 9, 16))
    assert lines(old_invoice) == [("base_fee", "5.00"), ("usage", "1.00")]  # 15 of 30 days; 10 users
    assert (new_invoice.period_start, new_invoice.period_end) == (at(2026, 9, 16), at(2026, 10, 1))
    assert lines(new_invoice) == [("base_fee", "60.00"), ("usage", "0.00")]  # 15 of 30 days; 4 users
    assert new_invoice.lines.get(kind="usage").quantity == 4


def test_plan_change_on_the_day_a_subscription_started_replaces_it_from_its_start(api: APIClient) -> None:
    with travel(at(2026, 9, 16, 9)):
        customer(api, "acme")
        post(
            api,
            "/api/v1/subscriptions",
            {"subscription": {"external_customer_id": "acme", "plan_code": "metered", "external_id": "acme"}},
        )
    with travel(at(2026, 9, 16, 14)):
        post(
            api,
            "/api/v1/subscriptions",
            {"subscription": {"external_customer_id": "acme", "plan_code": "team", "external_id": "acme"}},
        )
    old, new = Subscription.objects.order_by("subscription_at")
    assert old.terminated_at == old.subscription_at == at(2026, 9, 16, 9)  # it never ran
    close(at(2026, 10, 1, 0, 5))
    assert invoices(subscription=old) == []
    (new_invoice,) = invoices(subscription=new)
    assert new_invoice.period_start == at(2026, 9, 16)
    assert lines(new_invoice)[0] == ("base_fee", "60.00")


def test_trial_is_given_once_across_a_plan_change(api: APIClient) -> None:
    with travel(at(2026, 9, 1, 9)):
        customer(api, "acme")
        subscribe(api, "acme", "team", "2026-09-01T00:00:00Z")
    close(at(2026, 10, 1, 0, 5))
    (september,) = invoices()
    assert lines(september) == [("base_fee", "120.00"), ("promotion", "-56.00")]  # 14 of 30 days

    with travel(at(2026, 10, 16, 9)):
        subscribe(api, "acme", "team-annual", "2026-10-16T00:00:00Z")
    team_sub, annual_sub = Subscription.objects.order_by("subscription_at")
    assert annual_sub.promotion_start == at(2026, 9, 1)  # the window of the first subscription
    close(at(2026, 11, 1, 0, 5))
    close(at(2026, 12, 1, 0, 5))
    periods = invoices(kind=InvoiceKind.PERIOD)
    team_october = [inv for inv in periods if inv.subscription_id == team_sub.pk and inv != september]
    annual = [inv for inv in periods if inv.subscription_id == annual_sub.pk]
    assert [lines(inv) for inv in team_october] == [[("base_fee", "58.06")]]  # 15 of 31 days
    assert [inv.period_start for inv in annual] == [at(2026, 10, 16), at(2026, 11, 1)]
    for invoice in annual:
        kinds = [kind for kind, _ in lines(invoice)]
        assert "promotion" not in kinds, lines(invoice)  # no second trial
    assert lines(annual[0])[0] == ("base_fee", "61.94")  # 16 of 31 days
    assert lines(annual[1])[0] == ("base_fee", "120.00")


def test_pay_in_advance_bills_the_base_fee_at_the_start_and_usage_at_the_end(api: APIClient) -> None:
    with travel(at(2026, 9, 10, 8)):
        customer(api, "acme")
        subscribe(api, "acme", "metered-advance", "2026-09-10T00:00:00Z")
    close(at(2026, 9, 10, 8, 5))
    (advance,) = invoices()
    assert (advance.kind, advance.status) == (InvoiceKind.ADVANCE, InvoiceStatus.FINALIZED)
    assert (advance.period_start, advance.period_end) == (at(2026, 9, 10), at(2026, 10, 1))
    assert lines(advance) == [("base_fee", "21.00")]  # 21 of 30 days of $30

    with travel(at(2026, 9, 15)):
        send_users(api, "acme", range(20), at(2026, 9, 15), "sep")
    close(at(2026, 10, 1, 0, 5))
    september_usage = Invoice.objects.get(kind=InvoiceKind.PERIOD, period_start=at(2026, 9, 10))
    assert lines(september_usage) == [("usage", "2.00")]  # no base fee: it was billed in advance
    october_advance = Invoice.objects.get(kind=InvoiceKind.ADVANCE, period_start=at(2026, 10, 1))
    assert (october_advance.period_end, lines(october_advance)) == (at(2026, 11, 1), [("base_fee", "30.00")])
    before = state()
    close(at(2026, 10, 1, 0, 10))
    assert state() == before
    assert numbers() == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]


# --- scheduling -----------------------------------------------------------------------------


def run_command(moment: datetime) -> None:
    close(moment)


def run_task(moment: datetime) -> None:
    with travel(moment):
        summary = close_ended_periods()  # the chunk tasks it queues run at once (sync_tasks)
    assert summary.endswith("subscriptions in 1 chunk queued")


@pytest.fixture
def sync_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2 runs queued tasks at once, in this process and transaction (its sync mode)."""
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.mark.usefixtures("sync_tasks")
@pytest.mark.parametrize("runner", [run_command, run_task], ids=["command", "task"])
def test_the_django_q2_task_invoices_like_the_command(api: APIClient, runner: Any) -> None:
    with travel(at(2026, 9, 20)):
        for name, users in (("acme", 30), ("globex", 5)):
            customer(api, name)
            subscribe(api, name, "metered", "2026-09-01T00:00:00Z")
            send_users(api, name, range(users), at(2026, 9, 20), "sep")
        customer(api, "initech")
        subscribe(api, "initech", "team", "2026-09-10T00:00:00Z")
    runner(at(2026, 10, 1, 0, 5))
    runner(at(2026, 10, 1, 0, 6))  # idempotent either way
    found = [
        (inv.customer.external_id, inv.kind, inv.period_start, inv.status, inv.number, lines(inv))
        for inv in Invoice.objects.order_by("number")
    ]
    assert found == [
        ("acme", "period", at(2026, 9, 1), "finalized", "INV-2026-000001", [("base_fee", "10.00"), ("usage", "3.00")]),
        (
            "globex",
            "period",
            at(2026, 9, 1),
            "finalized",
            "INV-2026-000002",
            [("base_fee", "10.00"), ("usage", "0.50")],
        ),
        (
            "initech",
            "period",
            at(2026, 9, 10),
            "finalized",
            "INV-2026-000003",
            [("base_fee", "84.00"), ("promotion", "-56.00")],
        ),
    ]


def test_setup_schedules_creates_the_period_close_schedule_once() -> None:
    first, second = StringIO(), StringIO()
    call_command("setup_schedules", stdout=first)
    call_command("setup_schedules", stdout=second)
    (schedule,) = Schedule.objects.filter(func="billing.tasks.close_ended_periods")
    assert import_string(schedule.func) is close_ended_periods
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.MINUTES, -1)
    assert "created" in first.getvalue()
    assert "created" not in second.getvalue() and "up to date" in second.getvalue()
    assert Schedule.objects.count() == len({s.name for s in Schedule.objects.all()})  # no duplicates

"""The invoice admin: the list and its filters, the read-only invoice page, the document, the
actions (finalize, mark paid, recompute, void with a reason) and "Close ended periods".

Invoices the actions work on are made by close_periods from factory subscriptions, as in
production; the list's hundred invoices are written with the ORM.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from billing.admin.invoice_corrections import INVOICES_VOIDED, NOTHING_TO_VOID, VOID_REASON_MISSING
from billing.admin.invoices import CLOSE_SUMMARY, DRAFTS_RECOMPUTED, INVOICES_FINALIZED, INVOICES_PAID
from billing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, LineKind, PaymentStatus, Plan, Subscription
from billing.services.invoices import (
    CANNOT_VOID,
    NOT_A_DRAFT,
    VOID_PAID,
    invoice_finalize,
    invoice_void,
)
from billing.services.payments import NOT_FINALIZED, invoice_mark_paid
from billing.services.period_close import close_periods
from customers.models import Customer
from metering.days import day_start
from tests.factories import CustomerFactory, PlanFactory, SubscriptionFactory, team_plan

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:billing_invoice_changelist"
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
CLOSE_AT = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)


def changelist_url() -> str:
    return reverse(CHANGELIST)


def change_url(invoice: Invoice) -> str:
    return reverse("admin:billing_invoice_change", args=[invoice.pk])


def document_url(invoice: Invoice) -> str:
    return reverse("admin:billing_invoice_document", args=[invoice.pk])


def messages_of(response: HttpResponse) -> list[str]:
    """The messages shown on the page a POST redirected to (posted with follow=True)."""
    return [str(message) for message in response.context["messages"]]  # type: ignore[attr-defined]


def redirected_to_list(response: HttpResponse) -> bool:
    chain = response.redirect_chain  # type: ignore[attr-defined]
    return bool(chain) and chain[-1][0].split("?")[0] == changelist_url()


def run_action(client: Client, action: str, invoices: list[Invoice], **extra: str) -> HttpResponse:
    """Post an action as the list's "Go" button does, and follow the redirect back to the list."""
    data: dict[str, Any] = {"action": action, "_selected_action": [i.pk for i in invoices], "index": "0", **extra}
    return client.post(changelist_url(), data, follow=True)


def staff_user(*codenames: str) -> User:
    user = User.objects.create_user("clerk", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))
    return user


@pytest.fixture
def october(settings: Any) -> dict[str, Invoice]:
    """Four October invoices of the team plan ($120 base fee, no usage): one draft, one finalized
    (INV-2026-000001), one paid (…02) and one void (…03)."""
    settings.BILLING_GRACE_PERIOD_HOURS = 48  # close_periods leaves them drafts
    plan = team_plan()
    subscriptions = {
        name: SubscriptionFactory(
            customer=CustomerFactory(external_id=f"{name}-co", name=f"{name.title()} Co"),
            plan=plan,
            external_id=f"{name}-sub",
            subscription_at=OCTOBER,
        )
        for name in ("finalized", "paid", "void", "draft")
    }
    report = close_periods(now=CLOSE_AT)
    assert len(report.created) == 4 and not report.errors
    invoices = {name: Invoice.objects.get(subscription=sub) for name, sub in subscriptions.items()}
    finalized_at = datetime(2026, 11, 3, 9, tzinfo=UTC)
    for name in ("finalized", "paid", "void"):
        invoices[name] = invoice_finalize(invoice=invoices[name], now=finalized_at)
    invoice_mark_paid(invoice=invoices["paid"], now=finalized_at)
    invoice_void(invoice=invoices["void"], reason="duplicate", now=finalized_at)
    for invoice in invoices.values():
        invoice.refresh_from_db()
    assert [invoices[n].number for n in ("finalized", "paid", "void")] == [
        "INV-2026-000001",
        "INV-2026-000002",
        "INV-2026-000003",
    ]
    return invoices


# --- The list -----------------------------------------------------------------------------------


def hundred_invoices() -> list[Subscription]:
    """100 invoices over 10 customers (2 plans, 1 customer in Tokyo) and 10 months, all statuses."""
    team, free = team_plan(), PlanFactory(code="free", name="Free")
    names = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne"]
    subscriptions = []
    for i, name in enumerate(names):
        customer = CustomerFactory(timezone="Asia/Tokyo" if i == 0 else "UTC", name=f"{name} Industries")
        subscriptions.append(
            SubscriptionFactory(
                customer=customer, plan=team if i % 2 == 0 else free, subscription_at=datetime(2026, 1, 1, tzinfo=UTC)
            )
        )
    statuses = [
        (InvoiceStatus.DRAFT, PaymentStatus.PENDING),
        (InvoiceStatus.FINALIZED, PaymentStatus.PENDING),
        (InvoiceStatus.FINALIZED, PaymentStatus.SUCCEEDED),
        (InvoiceStatus.VOIDED, PaymentStatus.PENDING),
    ]
    invoices = []
    n = 0
    for subscription in subscriptions:
        tz = subscription.customer.timezone
        for month in range(1, 11):
            start = day_start(date(2026, month, 1), tz)
            end = day_start(date(2026, month + 1, 1), tz)
            status, payment_status = statuses[n % 4]
            n += 1
            invoices.append(
                Invoice(
                    customer=subscription.customer,
                    subscription=subscription,
                    period_start=start,
                    period_end=end,
                    status=status,
                    payment_status=payment_status,
                    number=None if status == InvoiceStatus.DRAFT else f"INV-2026-{n:06d}",
                    currency="USD",
                    total=Decimal("120.00"),
                    issued_on=None if status == InvoiceStatus.DRAFT else end.date(),
                )
            )
    Invoice.objects.bulk_create(invoices)
    return subscriptions


def test_changelist_lists_a_hundred_invoices_in_a_bounded_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    hundred_invoices()
    with django_assert_max_num_queries(10):
        response = admin_client.get(changelist_url())
    assert response.status_code == 200
    assert response.context["cl"].result_count == 100
    content = response.content.decode()
    assert "INV-2026-000002" in content
    assert "120.00 USD" in content
    # the filters are there
    for parameter in (
        "status__exact=finalized",
        "kind__exact=period",
        "period=2026-10",
        "plan_code=team",
        "customer=",
    ):
        assert parameter in content, parameter

    # filters and search do not add queries per row either
    with django_assert_max_num_queries(10):
        response = admin_client.get(
            changelist_url(), {"status__exact": "finalized", "plan_code": "team", "period": "2026-10"}
        )
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert len(rows) == 5
    assert all(r.status == "finalized" and r.subscription.plan.code == "team" for r in rows)


def test_period_filter_uses_each_customers_time_zone(admin_client: Client) -> None:
    subscriptions = hundred_invoices()
    tokyo = subscriptions[0].customer
    response = admin_client.get(changelist_url(), {"period": "2026-10", "customer": tokyo.external_id})
    rows = list(response.context["cl"].result_list)
    # Tokyo's October starts on September 30 at 15:00 UTC, and is still filed under October.
    assert len(rows) == 1
    assert rows[0].period_start == datetime(2026, 9, 30, 15, tzinfo=UTC)
    # every customer has exactly one October invoice
    response = admin_client.get(changelist_url(), {"period": "2026-10"})
    assert response.context["cl"].result_count == 10
    # a malformed month is refused, not a server error
    response = admin_client.get(changelist_url(), {"period": "october"})
    assert response.status_code == 302 and "e=1" in response["Location"]


def test_search_by_number_and_customer(admin_client: Client) -> None:
    subscriptions = hundred_invoices()
    response = admin_client.get(changelist_url(), {"q": "INV-2026-000042"})
    assert [i.number for i in response.context["cl"].result_list] == ["INV-2026-000042"]
    customer = subscriptions[3].customer
    for term in (customer.external_id, customer.name, f'"{customer.name}"'):
        response = admin_client.get(changelist_url(), {"q": term})
        assert {i.customer_id for i in response.context["cl"].result_list} == {customer.pk}


# --- The invoice page ---------------------------------------------------------------------------


def test_finalized_invoice_page_is_read_only_with_read_only_lines(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    invoice = october["finalized"]
    response = admin_client.get(change_url(invoice))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="_save"' not in content
    assert 'name="_continue"' not in content
    assert "INV-2026-000001" in content
    assert "Team base fee" in content  # the line is shown …
    assert 'name="lines-0-description"' not in content  # … but not as a form field
    assert 'name="lines-0-amount"' not in content
    assert document_url(invoice) in content and "View invoice" in content
    assert "/delete/" not in content  # a numbered invoice is never deleted

    # nothing can be posted to it either
    response = admin_client.post(change_url(invoice), {"status": "draft", "total": "0"})
    assert response.status_code == 403
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.total == Decimal("120.00")
    assert admin_client.get(reverse("admin:billing_invoice_delete", args=[invoice.pk])).status_code == 403


def test_draft_page_has_no_save_button_but_the_draft_can_be_deleted(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    draft = october["draft"]
    response = admin_client.get(change_url(draft))
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
    delete_url = reverse("admin:billing_invoice_delete", args=[draft.pk])
    assert delete_url in response.content.decode()
    response = admin_client.post(delete_url, {"post": "yes"})
    assert response.status_code == 302
    assert not Invoice.objects.filter(pk=draft.pk).exists()


def test_invoices_cannot_be_added_or_bulk_deleted(admin_client: Client, october: dict[str, Invoice]) -> None:
    assert admin_client.get(reverse("admin:billing_invoice_add")).status_code == 403
    response = admin_client.get(changelist_url())
    assert 'value="delete_selected"' not in response.content.decode()


def test_usage_line_shows_its_tier_breakdown_on_the_invoice_page(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    invoice = october["draft"]
    InvoiceLine.objects.create(
        invoice=invoice,
        position=5,
        kind=LineKind.USAGE,
        description="Monthly tracked users",
        quantity=Decimal(30_000),
        amount=Decimal("235.00"),
        currency="USD",
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        details={
            "tiers": [
                {
                    "position": 1,
                    "from": "1",
                    "up_to": "10000",
                    "units": "10000",
                    "unit_amount": "0",
                    "flat_amount": "0",
                    "amount": "0",
                },
                {
                    "position": 2,
                    "from": "10001",
                    "up_to": "25000",
                    "units": "15000",
                    "unit_amount": "0.012",
                    "flat_amount": "0",
                    "amount": "180",
                },
                {
                    "position": 4,
                    "from": "100001",
                    "up_to": None,
                    "units": "0",
                    "unit_amount": "0.010",
                    "flat_amount": "0",
                    "amount": "0",
                },
            ]
        },
    )
    content = admin_client.get(change_url(invoice)).content.decode()
    assert "Tier 2: 10,001 – 25,000: 15,000 × $0.012 = $180.00" in content
    assert "Tier 4" not in content
    assert "$235.00" in content


# --- The document -------------------------------------------------------------------------------


def test_document_view_returns_the_html_invoice(admin_client: Client, october: dict[str, Invoice]) -> None:
    response = admin_client.get(document_url(october["finalized"]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    content = response.content.decode()
    assert "<!DOCTYPE html>" in content
    assert "INV-2026-000001" in content
    assert "$120.00" in content
    assert "Finalized Co" in content

    draft = admin_client.get(document_url(october["draft"])).content.decode()
    assert "DRAFT — not final" in draft


def test_document_view_needs_view_permission(client: Client, october: dict[str, Invoice]) -> None:
    client.force_login(staff_user())
    assert client.get(document_url(october["finalized"])).status_code == 403

    viewer = User.objects.get(username="clerk")
    viewer.user_permissions.set(Permission.objects.filter(codename="view_invoice"))
    client.force_login(viewer)
    response = client.get(document_url(october["finalized"]))
    assert response.status_code == 200 and "INV-2026-000001" in response.content.decode()
    # a viewer sees the list, but neither the actions nor "Close ended periods"
    content = client.get(changelist_url()).content.decode()
    assert "finalize_selected" not in content
    assert "close-periods" not in content


# --- Actions ------------------------------------------------------------------------------------


def test_finalize_numbers_drafts_and_refuses_the_others(admin_client: Client, october: dict[str, Invoice]) -> None:
    draft, paid = october["draft"], october["paid"]
    response = run_action(admin_client, "finalize_selected", [draft, paid])
    assert redirected_to_list(response)
    draft.refresh_from_db()
    paid.refresh_from_db()
    assert draft.status == InvoiceStatus.FINALIZED
    assert draft.number == "INV-2026-000004"
    assert draft.customer_snapshot["name"] == "Draft Co"
    assert paid.status == InvoiceStatus.FINALIZED and paid.payment_status == PaymentStatus.SUCCEEDED
    assert messages_of(response) == [
        INVOICES_FINALIZED[0] % {"count": 1},
        NOT_A_DRAFT.format(invoice="INV-2026-000002", status="finalized"),
    ]


def test_mark_paid_accepts_finalized_invoices_only(admin_client: Client, october: dict[str, Invoice]) -> None:
    finalized, draft, void = october["finalized"], october["draft"], october["void"]
    response = run_action(admin_client, "mark_paid_selected", [finalized, draft, void])
    finalized.refresh_from_db()
    draft.refresh_from_db()
    assert finalized.payment_status == PaymentStatus.SUCCEEDED and finalized.paid_at is not None
    assert finalized.payments.get().amount == finalized.total
    assert draft.status == InvoiceStatus.DRAFT
    assert messages_of(response) == [
        INVOICES_PAID[0] % {"count": 1},
        f"payment_status: {NOT_FINALIZED.format(invoice='INV-2026-000003', status='voided')}",
        f"payment_status: {NOT_FINALIZED.format(invoice=draft, status='draft')}",
    ]


def test_recompute_rewrites_drafts_from_usage_and_refuses_final_invoices(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    draft, finalized = october["draft"], october["finalized"]
    # a stale draft: its line and total no longer match what the events and prices give
    InvoiceLine.objects.filter(invoice=draft).update(amount=Decimal("1.00"))
    Invoice.objects.filter(pk=draft.pk).update(total=Decimal("1.00"))

    response = run_action(admin_client, "recompute_selected", [draft, finalized])
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.DRAFT
    assert draft.total == Decimal("120.00")
    assert list(draft.lines.values_list("kind", "amount")) == [("base_fee", Decimal("120.00"))]
    assert messages_of(response) == [
        DRAFTS_RECOMPUTED[0] % {"count": 1, "changed": 1, "unchanged": 0},
        NOT_A_DRAFT.format(invoice="INV-2026-000001", status="finalized"),
    ]

    response = run_action(admin_client, "recompute_selected", [draft])
    assert messages_of(response) == [DRAFTS_RECOMPUTED[0] % {"count": 1, "changed": 0, "unchanged": 1}]


def test_void_asks_for_a_reason_then_voids_finalized_invoices_only(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    finalized, paid, void = october["finalized"], october["paid"], october["void"]
    selection = [finalized, paid, void]

    # 1. the confirmation page: what will be voided, what will not, and a reason field
    response = run_action(admin_client, "void_selected", selection)
    assert response.status_code == 200
    content = response.content.decode()
    assert all(f"INV-2026-00000{n}" in content for n in (1, 2, 3))
    assert 'name="reason"' in content
    assert "Only finalized invoices can be voided" in content or "only finalized invoices can be voided" in content
    finalized.refresh_from_db()
    assert finalized.status == InvoiceStatus.FINALIZED

    # 2. no reason (or only spaces): refused, the page again, nothing voided
    confirm = {"action": "void_selected", "_selected_action": [i.pk for i in selection], "apply": "yes"}
    for reason in ("", "   "):
        response = admin_client.post(changelist_url(), {**confirm, "reason": reason})
        assert response.status_code == 200
        assert response.templates[0].name == "admin/billing/invoice/void_confirmation.html"
        assert VOID_REASON_MISSING in response.content.decode()
        finalized.refresh_from_db()
        assert finalized.status == InvoiceStatus.FINALIZED

    # 3. with a reason: voided; the paid one refused by name (it needs a credit note for its payment)
    response = admin_client.post(changelist_url(), {**confirm, "reason": "Billed to the wrong entity"}, follow=True)
    assert redirected_to_list(response)
    finalized.refresh_from_db()
    paid.refresh_from_db()
    assert finalized.status == InvoiceStatus.VOIDED
    assert finalized.void_reason == "Billed to the wrong entity"
    assert finalized.voided_at is not None
    assert paid.status == InvoiceStatus.FINALIZED and paid.payment_status == PaymentStatus.SUCCEEDED
    assert messages_of(response) == [
        INVOICES_VOIDED[0] % {"count": 1},
        VOID_PAID.format(invoice="INV-2026-000002"),
        CANNOT_VOID.format(invoice="INV-2026-000003", status="voided"),
    ]


def test_void_with_nothing_voidable_says_so_without_a_confirmation_page(
    admin_client: Client, october: dict[str, Invoice]
) -> None:
    response = run_action(admin_client, "void_selected", [october["draft"], october["void"]])
    assert redirected_to_list(response)
    assert messages_of(response) == [NOTHING_TO_VOID]


# --- Close ended periods ------------------------------------------------------------------------


def test_close_periods_view_confirms_then_creates_and_finalizes_invoices(admin_client: Client) -> None:
    plan = team_plan()
    subscription = SubscriptionFactory(plan=plan, subscription_at=datetime(2026, 9, 1, tzinfo=UTC))
    url = reverse("admin:billing_invoice_close_periods")

    assert url in admin_client.get(changelist_url()).content.decode()
    response = admin_client.get(url)
    assert response.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in response.content.decode()
    assert not Invoice.objects.exists()  # a GET changes nothing

    with time_machine.travel(datetime(2026, 10, 1, 0, 5, tzinfo=UTC), tick=False):
        response = admin_client.post(url, follow=True)
    assert redirected_to_list(response)
    invoice = Invoice.objects.get(subscription=subscription)
    assert invoice.kind == InvoiceKind.PERIOD
    assert invoice.status == InvoiceStatus.FINALIZED
    assert invoice.total == Decimal("120.00")
    assert messages_of(response) == [
        CLOSE_SUMMARY % {"created": 1, "recomputed": 0, "finalized": 1, "unchanged": 0, "errors": 0}
    ]

    # idempotent: again, nothing new (September is done, October has not ended)
    with time_machine.travel(datetime(2026, 10, 1, 1, 0, tzinfo=UTC), tick=False):
        response = admin_client.post(url, follow=True)
    assert Invoice.objects.count() == 1
    assert messages_of(response) == [
        CLOSE_SUMMARY % {"created": 0, "recomputed": 0, "finalized": 0, "unchanged": 0, "errors": 0}
    ]


def test_close_periods_needs_change_permission_and_a_csrf_token(october: dict[str, Invoice]) -> None:
    url = reverse("admin:billing_invoice_close_periods")
    viewer = staff_user("view_invoice")
    client = Client()
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403

    clerk = User.objects.create_user("finance", password="x", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(codename__in=["view_invoice", "change_invoice"]))
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(clerk)
    assert strict.get(url).status_code == 200
    before = Invoice.objects.count()
    assert strict.post(url).status_code == 403  # no CSRF token
    assert Invoice.objects.count() == before


def test_customer_filter_lists_invoiced_customers(admin_client: Client, october: dict[str, Invoice]) -> None:
    Customer.objects.create(external_id="never-invoiced", name="Nobody")
    content = admin_client.get(changelist_url()).content.decode()
    assert "customer=draft-co" in content
    assert "customer=never-invoiced" not in content
    response = admin_client.get(changelist_url(), {"customer": "paid-co"})
    assert [i.pk for i in response.context["cl"].result_list] == [october["paid"].pk]
    assert Plan.objects.filter(code="team").exists()


def test_payment_filter_lists_unpaid_and_overdue_invoices(admin_client: Client, october: dict[str, Invoice]) -> None:
    # INV-2026-000001 is finalized on November 3 with no payment term: due that day.
    def listed(value: str) -> list[str]:
        response = admin_client.get(changelist_url(), {"settlement": value})
        return [i.number for i in response.context["cl"].result_list]

    with time_machine.travel(datetime(2026, 11, 3, 23, 0, tzinfo=UTC), tick=False):
        assert listed("unpaid") == ["INV-2026-000001"]
        assert listed("overdue") == []
    with time_machine.travel(datetime(2026, 11, 4, 0, 0, tzinfo=UTC), tick=False):
        admin_client.force_login(User.objects.get(username="admin"))
        assert listed("overdue") == ["INV-2026-000001"]
        content = admin_client.get(changelist_url()).content.decode()
    assert "?settlement=overdue" in content and "?settlement=unpaid" in content
    assert "Not paid (finalized)" in content

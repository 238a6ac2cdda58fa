"""Payments in the admin (billing.admin.payments): "Record payment" on an invoice's page, which
calls billing.services.payments.payment_create and shows its refusals by field, and the
append-only payment list.

The invoice is October's $120.00 Team invoice, made by close_periods and finalized on November 3
with a 30-day payment term (due December 3).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from billing.admin.money_input import SEPARATOR_REFUSED, TOO_MANY_DECIMALS
from billing.admin.payments import (
    NOT_PAYABLE_DRAFT,
    NOTHING_DUE,
    PAID_AT_IN_FUTURE,
    PAID_IN_FULL,
    PAYMENT_RECORDED,
    STILL_DUE,
)
from billing.models import Invoice, InvoiceStatus, Payment, PaymentStatus
from billing.services.invoices import invoice_finalize
from billing.services.payments import NOT_FINALIZED, OVERPAID, invoice_mark_paid
from billing.services.period_close import close_periods
from tests.factories import CustomerFactory, SubscriptionFactory, team_plan

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
CLOSE_AT = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
FINALIZED_AT = datetime(2026, 11, 3, 9, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def invoices(settings: Any) -> dict[str, Invoice]:
    """October invoices of the Team plan ($120, no usage): one finalized (due December 3), one draft."""
    settings.BILLING_GRACE_PERIOD_HOURS = 48
    plan = team_plan()
    subscriptions = {
        name: SubscriptionFactory(
            customer=CustomerFactory(external_id=f"{name}-co", name=f"{name.title()} Co", net_payment_term=30),
            plan=plan,
            external_id=f"{name}-sub",
            subscription_at=OCTOBER,
        )
        for name in ("open", "draft")
    }
    close_periods(now=CLOSE_AT)
    found = {name: Invoice.objects.get(subscription=sub) for name, sub in subscriptions.items()}
    found["open"] = invoice_finalize(invoice=found["open"], now=FINALIZED_AT)
    assert found["open"].total == Decimal("120.00") and str(found["open"].payment_due_date) == "2026-12-03"
    return found


def page_url(invoice: Invoice) -> str:
    return reverse("admin:billing_invoice_record_payment", args=[invoice.pk])


def change_url(invoice: Invoice) -> str:
    return reverse("admin:billing_invoice_change", args=[invoice.pk])


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def form_errors(response: Any) -> dict[str, list[str]]:
    form = response.context["form"]
    return {name or "__all__": list(errors) for name, errors in form.errors.items()}


def record(client: Client, invoice: Invoice, **data: str) -> Any:
    body = {"amount": "50.00", "reference": "WIRE-0042", "paid_at": "2026-11-09T15:30", **data}
    return client.post(page_url(invoice), body, follow=True)


def staff_client(*codenames: str) -> Client:
    user = User.objects.create_user("clerk", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


# --- Recording a payment ------------------------------------------------------------------------


def test_invoice_page_offers_record_payment_while_something_is_due(
    admin_client: Client, invoices: dict[str, Invoice]
) -> None:
    content = admin_client.get(change_url(invoices["open"])).content.decode()
    assert page_url(invoices["open"]) in content and "Record payment" in content
    # not on a draft, nor once paid
    assert page_url(invoices["draft"]) not in admin_client.get(change_url(invoices["draft"])).content.decode()
    invoice_mark_paid(invoice=invoices["open"], now=NOW)
    assert page_url(invoices["open"]) not in admin_client.get(change_url(invoices["open"])).content.decode()


def test_payment_page_shows_what_is_due_and_proposes_it(admin_client: Client, invoices: dict[str, Invoice]) -> None:
    response = admin_client.get(page_url(invoices["open"]))
    assert response.status_code == 200
    content = response.content.decode()
    assert "$120.00" in content and "Record a payment on INV-2026-000001" in content
    form = response.context["form"]
    assert form["amount"].value() == "120.00"
    assert form["paid_at"].value().isoformat() == "2026-11-10T12:00:00"  # in TIME_ZONE (UTC)
    assert 'type="datetime-local"' in content


def test_a_partial_payment_is_recorded_by_the_service_with_who_recorded_it(
    admin_client: Client, admin_user: User, invoices: dict[str, Invoice]
) -> None:
    invoice = invoices["open"]
    response = record(admin_client, invoice)
    assert response.redirect_chain[-1][0] == change_url(invoice)
    rest = STILL_DUE.format(due="$70.00")
    assert messages_of(response) == [PAYMENT_RECORDED.format(amount="$50.00", invoice=invoice, rest=rest)]
    payment = Payment.objects.get()
    assert (payment.amount, payment.currency, payment.reference) == (Decimal("50.00"), "USD", "WIRE-0042")
    assert payment.paid_at == datetime(2026, 11, 9, 15, 30, tzinfo=UTC)  # typed in TIME_ZONE, UTC here
    assert payment.created_by == admin_user
    invoice.refresh_from_db()
    assert invoice.payment_status == PaymentStatus.PENDING
    # the invoice page now shows it, and what is still due
    content = response.content.decode()
    assert "WIRE-0042" in content and "$70.00" in content


def test_paying_the_rest_settles_the_invoice(admin_client: Client, invoices: dict[str, Invoice]) -> None:
    invoice = invoices["open"]
    record(admin_client, invoice, amount="50")
    response = record(admin_client, invoice, amount="70.00", reference="WIRE-0043")
    assert messages_of(response) == [PAYMENT_RECORDED.format(amount="$70.00", invoice=invoice, rest=PAID_IN_FULL)]
    invoice.refresh_from_db()
    assert invoice.payment_status == PaymentStatus.SUCCEEDED and invoice.paid_at == NOW
    # nothing is due any more: the page says so and offers no form
    page = admin_client.get(page_url(invoice)).content.decode()
    assert escape(NOTHING_DUE.format(invoice=invoice)) in page and 'id="payment-form"' not in page


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"amount": "120.01"},
            "amount",
            "Amount " + OVERPAID.format(invoice="INV-2026-000001", due="120.00", currency="USD"),
        ),
        ({"amount": "10.005"}, "amount", TOO_MANY_DECIMALS.format(currency="USD", digits=2)),
        ({"amount": "1,000"}, "amount", SEPARATOR_REFUSED),
        ({"amount": "0"}, "amount", "Amount must be greater than 0"),
        ({"amount": "-5"}, "amount", "Amount must be greater than 0"),
        ({"amount": "ten"}, "amount", "Enter an amount, e.g. 120.50."),
        ({"reference": "  "}, "reference", "This field is required."),
        ({"paid_at": "2026-11-11T09:00"}, "paid_at", PAID_AT_IN_FUTURE),
        ({"paid_at": "yesterday"}, "paid_at", "Enter a valid date/time."),
    ],
)
def test_a_refused_payment_is_shown_on_its_field_and_nothing_is_stored(
    admin_client: Client, invoices: dict[str, Invoice], data: dict[str, str], field: str, message: str
) -> None:
    response = record(admin_client, invoices["open"], **data)
    assert response.status_code == 200
    assert form_errors(response) == {field: [message]}
    assert escape(message) in response.content.decode()
    assert not Payment.objects.exists()
    assert Invoice.objects.get(pk=invoices["open"].pk).payment_status == PaymentStatus.PENDING


def test_a_draft_cannot_be_paid(admin_client: Client, invoices: dict[str, Invoice]) -> None:
    draft = invoices["draft"]
    page = admin_client.get(page_url(draft)).content.decode()
    assert escape(NOT_PAYABLE_DRAFT.format(invoice=draft)) in page and 'id="payment-form"' not in page
    # posted anyway: the service refuses it, above the form
    response = record(admin_client, draft)
    refusal = NOT_FINALIZED.format(invoice=draft, status=InvoiceStatus.DRAFT)
    assert form_errors(response) == {"__all__": [refusal[:1].upper() + refusal[1:]]}
    assert not Payment.objects.exists()


def test_unknown_invoice_returns_to_the_list(admin_client: Client, invoices: dict[str, Invoice]) -> None:
    response = admin_client.get(reverse("admin:billing_invoice_record_payment", args=[987654]))
    assert response.status_code == 302


# --- Who may record one -------------------------------------------------------------------------


def test_staff_who_may_only_view_invoices_neither_see_nor_use_record_payment(invoices: dict[str, Invoice]) -> None:
    client = staff_client("view_invoice", "change_invoice")
    invoice = invoices["open"]
    assert page_url(invoice) not in client.get(change_url(invoice)).content.decode()
    assert client.get(page_url(invoice)).status_code == 403
    assert record(client, invoice).status_code == 403
    assert not Payment.objects.exists()


def test_staff_who_may_add_payments_record_them(invoices: dict[str, Invoice]) -> None:
    client = staff_client("view_invoice", "add_payment")
    invoice = invoices["open"]
    assert page_url(invoice) in client.get(change_url(invoice)).content.decode()
    response = record(client, invoice)
    assert response.status_code == 200
    created_by = Payment.objects.get().created_by
    assert created_by is not None and created_by.username == "clerk"


# --- The payment list ---------------------------------------------------------------------------


def test_payment_list_is_read_only_and_append_only(admin_client: Client, invoices: dict[str, Invoice]) -> None:
    record(admin_client, invoices["open"])
    payment = Payment.objects.get()
    listing = admin_client.get(reverse("admin:billing_payment_changelist"))
    assert listing.status_code == 200
    content = listing.content.decode()
    assert "WIRE-0042" in content and "INV-2026-000001" in content and "50.00" in content
    assert listing.context["action_form"] is None  # no action: not even delete
    assert admin_client.get(reverse("admin:billing_payment_add")).status_code == 403
    page = admin_client.get(reverse("admin:billing_payment_change", args=[payment.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.post(reverse("admin:billing_payment_change", args=[payment.pk]), {}).status_code == 403
    assert (
        admin_client.post(reverse("admin:billing_payment_delete", args=[payment.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert Payment.objects.get().amount == Decimal("50.00")


def test_payment_list_searches_and_filters_by_customer(admin_client: Client, invoices: dict[str, Invoice]) -> None:
    record(admin_client, invoices["open"])
    url = reverse("admin:billing_payment_changelist")
    assert admin_client.get(url, {"q": "WIRE-0042"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"q": "INV-2026-000001"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"customer": "open-co"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"customer": "draft-co"}).context["cl"].result_count == 0

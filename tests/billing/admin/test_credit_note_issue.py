"""'Issue credit note' on an invoice's page (billing.admin.credit_note_issue): enter the amounts
per fee, preview what billing.services.credit_notes.credit_note_estimate computes, confirm to
issue it with credit_note_create; refusals shown next to the input they are about.

The invoice is `discounted_invoice` (tests/billing/admin/conftest.py): base fee 120.00 (30.00
discount), usage 12.00 (3.00 discount), total 99.00. A 40.00 item on the base fee takes back
40 × 30 / 120 = 10.00 of discount: the note's total is 30.00.
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

from billing.admin.credit_note_issue import CHANGED_SINCE_PREVIEW, NOT_CREDITABLE, NOTE_ISSUED
from billing.admin.money_input import TOO_MANY_DECIMALS
from billing.models import (
    CreditNote,
    CreditNoteReason,
    CreditStatus,
    Invoice,
    InvoiceLine,
    LineKind,
    PaymentStatus,
    RefundStatus,
)
from billing.services.credit_notes import ITEM_TOO_LARGE, PARTS_DO_NOT_ADD_UP, REFUND_TOO_LARGE
from billing.services.invoices import invoice_void
from billing.services.payments import payment_create

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


def base_fee(invoice: Invoice) -> InvoiceLine:
    return invoice.lines.get(kind=LineKind.BASE_FEE)


def usage_fee(invoice: Invoice) -> InvoiceLine:
    return invoice.lines.get(kind=LineKind.USAGE)


def page_url(invoice: Invoice) -> str:
    return reverse("admin:billing_invoice_credit_note", args=[invoice.pk])


def change_url(invoice: Invoice) -> str:
    return reverse("admin:billing_invoice_change", args=[invoice.pk])


def form_errors(response: Any) -> dict[str, list[str]]:
    form = response.context["form"]
    return {name or "__all__": list(errors) for name, errors in form.errors.items()}


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def note_data(invoice: Invoice, base: str = "40.00", usage: str = "", **extra: str) -> dict[str, str]:
    return {
        f"fee_{base_fee(invoice).pk}": base,
        f"fee_{usage_fee(invoice).pk}": usage,
        "reason": CreditNoteReason.PRODUCT_UNSATISFACTORY,
        "description": "Outage on October 12",
        "credit": "",
        "refund": "",
        "offset": "",
        **extra,
    }


def preview(client: Client, invoice: Invoice, data: dict[str, str]) -> Any:
    return client.post(page_url(invoice), {**data, "_preview": "Preview"})


def confirm(client: Client, invoice: Invoice, data: dict[str, str], previewed: str) -> Any:
    return client.post(page_url(invoice), {**data, "previewed": previewed, "_confirm": "Confirm"}, follow=True)


def staff_client(*codenames: str) -> Client:
    user = User.objects.create_user("clerk", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


# --- Enter --------------------------------------------------------------------------------------


def test_invoice_page_offers_issue_credit_note(admin_client: Client, discounted_invoice: Invoice) -> None:
    content = admin_client.get(change_url(discounted_invoice)).content.decode()
    assert page_url(discounted_invoice) in content and "Issue credit note" in content


def test_page_lists_the_fees_with_what_is_left_to_credit(admin_client: Client, discounted_invoice: Invoice) -> None:
    response = admin_client.get(page_url(discounted_invoice))
    assert response.status_code == 200
    rows = response.context["fee_rows"]
    assert [(r["fee"].kind, r["amount"], r["discount"], r["left"]) for r in rows] == [
        (LineKind.BASE_FEE, "$120.00", "-$30.00", "$120.00"),
        (LineKind.USAGE, "$12.00", "-$3.00", "$12.00"),
    ]
    content = response.content.decode()
    assert f'name="fee_{base_fee(discounted_invoice).pk}"' in content
    assert 'name="_confirm"' not in content  # nothing previewed yet
    assert "$99.00" in content  # still due


# --- Preview ------------------------------------------------------------------------------------


def test_preview_shows_the_services_amounts_and_proposes_the_total_as_credit(
    admin_client: Client, discounted_invoice: Invoice
) -> None:
    response = preview(admin_client, discounted_invoice, note_data(discounted_invoice))
    assert response.status_code == 200
    shown = response.context["preview"]
    assert (shown["items_amount"], shown["adjustment"], shown["sub_total"], shown["taxes"], shown["total"]) == (
        "$40.00",
        "-$10.00",
        "$30.00",
        "$0.00",
        "$30.00",
    )
    assert (shown["max_refund"], shown["max_offset"]) == ("$0.00", "$30.00")  # nothing paid; 99.00 due
    assert shown["adds_up"]
    assert response.context["form"]["credit"].value() == "30.00"
    content = response.content.decode()
    assert 'name="_confirm"' in content and response.context["previewed"]
    assert not CreditNote.objects.exists()


def test_preview_with_a_payment_allows_a_refund(admin_client: Client, discounted_invoice: Invoice) -> None:
    payment_create(invoice=discounted_invoice, amount=Decimal(50), reference="wire", paid_at=NOW, now=NOW)
    data = note_data(discounted_invoice, base="120", usage="12", refund="50.00", credit="49.00")
    shown = preview(admin_client, discounted_invoice, data).context["preview"]
    # 132.00 of fees less their 33.00 of discounts
    assert (shown["total"], shown["max_refund"], shown["max_offset"]) == ("$99.00", "$50.00", "$49.00")
    assert shown["adds_up"] and shown["entered"] == "$99.00"


def test_preview_says_when_the_parts_do_not_add_up(admin_client: Client, discounted_invoice: Invoice) -> None:
    response = preview(admin_client, discounted_invoice, note_data(discounted_invoice, credit="20"))
    shown = response.context["preview"]
    assert not shown["adds_up"] and shown["entered"] == "$20.00"
    assert "must add up to the total, $30.00" in response.content.decode()


# --- Confirm ------------------------------------------------------------------------------------


def test_confirming_the_previewed_note_issues_it(
    admin_client: Client, admin_user: User, discounted_invoice: Invoice
) -> None:
    data = note_data(discounted_invoice)
    previewed = preview(admin_client, discounted_invoice, data).context["previewed"]
    response = confirm(admin_client, discounted_invoice, {**data, "credit": "30.00"}, previewed)
    note = CreditNote.objects.get()
    assert response.redirect_chain[-1][0] == reverse("admin:billing_creditnote_change", args=[note.pk])
    assert messages_of(response) == [
        NOTE_ISSUED.format(number="INV-2026-000001-CN1", total="$30.00", parts="credit $30.00")
    ]
    assert (note.number, note.reason, note.description) == (
        "INV-2026-000001-CN1",
        CreditNoteReason.PRODUCT_UNSATISFACTORY,
        "Outage on October 12",
    )
    assert (note.items_amount, note.coupons_adjustment_amount, note.total_amount) == (
        Decimal(40),
        Decimal(10),
        Decimal(30),
    )
    assert (note.credit_amount, note.balance_amount, note.credit_status) == (
        Decimal(30),
        Decimal(30),
        CreditStatus.AVAILABLE,
    )
    assert [(item.fee_id, item.amount) for item in note.items.all()] == [(base_fee(discounted_invoice).pk, Decimal(40))]
    assert note.created_by == admin_user
    # the invoice page lists it, and what is left to credit went down
    assert "INV-2026-000001-CN1" in admin_client.get(change_url(discounted_invoice)).content.decode()
    rows = admin_client.get(page_url(discounted_invoice)).context["fee_rows"]
    assert (rows[0]["credited"], rows[0]["left"]) == ("$40.00", "$80.00")


def test_an_offset_note_settles_what_is_due(admin_client: Client, discounted_invoice: Invoice) -> None:
    data = note_data(discounted_invoice, base="120", usage="12", offset="99")
    previewed = preview(admin_client, discounted_invoice, data).context["previewed"]
    response = confirm(admin_client, discounted_invoice, data, previewed)
    assert messages_of(response) == [
        NOTE_ISSUED.format(number="INV-2026-000001-CN1", total="$99.00", parts="offset $99.00")
    ]
    discounted_invoice.refresh_from_db()
    assert discounted_invoice.payment_status == PaymentStatus.SUCCEEDED
    # every fee is credited in full now: nothing left to enter
    rows = admin_client.get(page_url(discounted_invoice)).context["fee_rows"]
    assert all(row["exhausted"] for row in rows)


def test_a_refund_note_waits_for_its_refund(admin_client: Client, discounted_invoice: Invoice) -> None:
    payment_create(invoice=discounted_invoice, amount=Decimal(99), reference="wire", paid_at=NOW, now=NOW)
    data = note_data(discounted_invoice, refund="30")
    previewed = preview(admin_client, discounted_invoice, data).context["previewed"]
    confirm(admin_client, discounted_invoice, data, previewed)
    note = CreditNote.objects.get()
    assert (note.refund_amount, note.refund_status, note.credit_amount) == (
        Decimal(30),
        RefundStatus.PENDING,
        Decimal(0),
    )


def test_inputs_changed_after_the_preview_are_previewed_again(
    admin_client: Client, discounted_invoice: Invoice
) -> None:
    data = note_data(discounted_invoice)
    previewed = preview(admin_client, discounted_invoice, data).context["previewed"]
    changed = {**data, f"fee_{base_fee(discounted_invoice).pk}": "80.00", "credit": "30.00"}
    response = confirm(admin_client, discounted_invoice, changed, previewed)
    assert not CreditNote.objects.exists()
    assert CHANGED_SINCE_PREVIEW in messages_of(response)
    assert response.context["preview"]["total"] == "$60.00"
    # confirmed without any preview: the same
    response = confirm(admin_client, discounted_invoice, changed, "")
    assert not CreditNote.objects.exists()


# --- Refused ------------------------------------------------------------------------------------


def test_each_refusal_shows_next_to_its_input_and_nothing_is_stored(
    admin_client: Client, discounted_invoice: Invoice
) -> None:
    base, usage = base_fee(discounted_invoice), usage_fee(discounted_invoice)
    # More than is left on the usage fee: on that fee's input (the second item sent).
    response = preview(admin_client, discounted_invoice, note_data(discounted_invoice, usage="12.01"))
    too_large = ITEM_TOO_LARGE.format(fee=usage.pk, left="12.00")
    assert form_errors(response) == {f"fee_{usage.pk}": [f"Amount {too_large}"]}
    assert escape(f"Amount {too_large}") in response.content.decode()
    assert response.context["preview"] is None

    # A refund with nothing paid, and parts that do not add up: on the refund and the credit.
    data = note_data(discounted_invoice, refund="10", credit="5")
    previewed = preview(admin_client, discounted_invoice, data).context["previewed"]
    response = confirm(admin_client, discounted_invoice, data, previewed)
    assert form_errors(response) == {
        "refund": ["Refund " + REFUND_TOO_LARGE.format(left="0.00")],
        "credit": [PARTS_DO_NOT_ADD_UP.format(parts="15.00", total="30.00").capitalize()],
    }
    assert response.context["preview"]["total"] == "$30.00"  # still shown beside the errors
    assert 'name="_confirm"' not in response.content.decode()  # preview again first
    assert not CreditNote.objects.exists()
    assert base.pk != usage.pk


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"base": "40.001"}, "base", TOO_MANY_DECIMALS.format(currency="USD", digits=2)),
        ({"base": "0"}, "base", "Amount must be greater than 0"),
        ({"base": "", "usage": ""}, "__all__", "At least one item is required"),
        ({"reason": ""}, "reason", "This field is required."),
        ({"reason": "bored"}, "reason", "Select a valid choice. bored is not one of the available choices."),
        ({"credit": "1,5"}, "credit", "Use a dot for decimals and no thousands separator, e.g. 1250.50."),
    ],
)
def test_inputs_refused_before_the_preview(
    admin_client: Client, discounted_invoice: Invoice, changes: dict[str, str], field: str, message: str
) -> None:
    fields = {"base": f"fee_{base_fee(discounted_invoice).pk}", "usage": f"fee_{usage_fee(discounted_invoice).pk}"}
    data = note_data(discounted_invoice)
    data.update({fields.get(name, name): value for name, value in changes.items()})
    response = preview(admin_client, discounted_invoice, data)
    assert form_errors(response) == {fields.get(field, field): [message]}
    assert response.context["preview"] is None
    assert not CreditNote.objects.exists()


def test_a_voided_invoice_is_not_credited(admin_client: Client, discounted_invoice: Invoice) -> None:
    invoice_void(invoice=discounted_invoice, reason="wrong customer", now=NOW)
    assert "Issue credit note" not in admin_client.get(change_url(discounted_invoice)).content.decode()
    page = admin_client.get(page_url(discounted_invoice)).content.decode()
    assert escape(NOT_CREDITABLE.format(invoice=discounted_invoice, status="voided")) in page
    response = preview(admin_client, discounted_invoice, note_data(discounted_invoice))
    assert list(form_errors(response)) == ["__all__"]
    assert "only a finalized invoice can be credited" in form_errors(response)["__all__"][0]
    assert not CreditNote.objects.exists()


# --- Who may issue one --------------------------------------------------------------------------


def test_staff_who_may_not_add_credit_notes_neither_see_nor_use_the_page(discounted_invoice: Invoice) -> None:
    client = staff_client("view_invoice", "change_invoice", "view_creditnote")
    assert page_url(discounted_invoice) not in client.get(change_url(discounted_invoice)).content.decode()
    assert client.get(page_url(discounted_invoice)).status_code == 403
    data = note_data(discounted_invoice, credit="30")
    assert client.post(page_url(discounted_invoice), {**data, "_confirm": "1"}).status_code == 403
    assert not CreditNote.objects.exists()


def test_staff_who_may_add_but_not_view_notes_return_to_the_invoice(discounted_invoice: Invoice) -> None:
    client = staff_client("view_invoice", "add_creditnote")
    data = note_data(discounted_invoice)
    previewed = preview(client, discounted_invoice, data).context["previewed"]
    response = confirm(client, discounted_invoice, {**data, "credit": "30.00"}, previewed)
    assert response.redirect_chain[-1][0] == change_url(discounted_invoice)
    created_by = CreditNote.objects.get().created_by
    assert created_by is not None and created_by.username == "clerk"


def test_the_confirmation_uses_the_previewed_split(admin_client: Client, discounted_invoice: Invoice) -> Any:
    # With the parts left blank, the preview proposes the whole total as credit and the
    # confirmation posts that proposal back (the form's own value).
    response = preview(admin_client, discounted_invoice, note_data(discounted_invoice))
    form = response.context["form"]
    posted = {name: form[name].value() or "" for name in form.fields}
    confirm(admin_client, discounted_invoice, posted, response.context["previewed"])
    assert CreditNote.objects.get().credit_amount == Decimal(30)

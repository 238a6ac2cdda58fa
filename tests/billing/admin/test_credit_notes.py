"""The credit note admin (billing.admin.credit_notes): the list, the read-only note page with its
items and documents, and the actions "Mark refund done" and "Void remaining credit".

The notes are issued by billing.services.credit_notes on `discounted_invoice`
(tests/billing/admin/conftest.py: total 99.00, paid in full here): CN1 takes 40.00 of the base fee
back less its 10.00 share of the discount and refunds the 30.00; CN2 takes the 12.00 of usage less
3.00 and credits the 9.00 to the customer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.admin import helpers
from django.test import Client
from django.urls import reverse

from billing.admin.credit_notes import CREDITS_VOIDED, NOTHING_LEFT, NOTHING_TO_VOID, REFUND_DONE_ALREADY, REFUNDS_DONE
from billing.models import CreditNote, CreditNoteReason, CreditStatus, Invoice, LineKind, RefundStatus
from billing.services.credit_notes import NOT_REFUNDED, credit_note_create, credit_note_void
from billing.services.payments import payment_create

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 12, 8, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def notes(discounted_invoice: Invoice) -> dict[str, CreditNote]:
    """CN1: 40.00 of the base fee (total 30.00) refunded; CN2: 12.00 of usage (total 9.00) as credit."""
    invoice = discounted_invoice
    payment_create(invoice=invoice, amount=Decimal(99), reference="wire", paid_at=NOW, now=NOW)
    base = invoice.lines.get(kind=LineKind.BASE_FEE)
    usage = invoice.lines.get(kind=LineKind.USAGE)

    def issue(fee_id: int, amount: str, credit: str, refund: str) -> CreditNote:
        return credit_note_create(
            invoice=invoice,
            items=[(fee_id, Decimal(amount))],
            reason=CreditNoteReason.ORDER_CHANGE,
            credit_amount=Decimal(credit),
            refund_amount=Decimal(refund),
            offset_amount=Decimal(0),
            now=NOW,
        )

    return {"refund": issue(base.pk, "40", "0", "30"), "credit": issue(usage.pk, "12", "9", "0")}


def changelist() -> str:
    return reverse("admin:billing_creditnote_changelist")


def run(client: Client, action: str, notes: list[CreditNote], **extra: str) -> Any:
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [n.pk for n in notes], "index": "0", **extra}
    return client.post(changelist(), data, follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- List and page ------------------------------------------------------------------------------


def test_list_shows_each_notes_amounts_and_statuses(
    admin_client: Client, notes: dict[str, CreditNote], django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(12):
        response = admin_client.get(changelist())
    assert response.status_code == 200
    rows = {note.number: note for note in response.context["cl"].result_list}
    assert set(rows) == {"INV-2026-000001-CN1", "INV-2026-000001-CN2"}
    content = response.content.decode()
    for text in ("Acme Inc. (acme)", "INV-2026-000001", "30.00", "9.00", "Pending", "Available"):
        assert text in content, text
    assert 'value="mark_refund_done"' in content and 'value="void_credit_selected"' in content
    assert 'value="delete_selected"' not in content


def test_list_searches_by_number_and_customer_and_filters(admin_client: Client, notes: dict[str, CreditNote]) -> None:
    def count(**params: str) -> int:
        return int(admin_client.get(changelist(), params).context["cl"].result_count)

    assert count(q="CN2") == 1
    assert count(q="acme") == 2
    assert count(q="Acme Inc") == 2
    assert count(customer="acme") == 2
    assert count(refund_status__exact=RefundStatus.PENDING) == 1
    assert count(credit_status__exact=CreditStatus.AVAILABLE) == 2


def test_note_page_is_read_only_with_its_items_and_documents(
    admin_client: Client, notes: dict[str, CreditNote]
) -> None:
    note = notes["refund"]
    url = reverse("admin:billing_creditnote_change", args=[note.pk])
    content = admin_client.get(url).content.decode()
    assert 'name="_save"' not in content and "/delete/" not in content
    assert "Team base fee" in content and "40.00 USD" in content and "-10.00 USD" in content  # item, adjustment
    assert reverse("admin:billing_creditnote_document", args=[note.pk]) in content
    assert reverse("admin:billing_creditnote_pdf", args=[note.pk]) in content
    assert admin_client.post(url, {"credit_amount": "1000"}).status_code == 403
    assert admin_client.get(reverse("admin:billing_creditnote_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:billing_creditnote_delete", args=[note.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert CreditNote.objects.count() == 2


def test_document_and_pdf_views(admin_client: Client, notes: dict[str, CreditNote]) -> None:
    note = notes["credit"]
    response = admin_client.get(reverse("admin:billing_creditnote_document", args=[note.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert note.number in response.content.decode()
    response = admin_client.get(reverse("admin:billing_creditnote_pdf", args=[note.pk]))
    if response.status_code == 302:  # this machine cannot make PDFs (PdfUnavailable): the page says why
        assert response["Location"] == reverse("admin:billing_creditnote_change", args=[note.pk])
        return
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    assert response["Content-Disposition"].startswith("attachment")


# --- Mark refund done ---------------------------------------------------------------------------


def test_mark_refund_done(admin_client: Client, notes: dict[str, CreditNote]) -> None:
    response = run(admin_client, "mark_refund_done", [notes["refund"], notes["credit"]])
    refund = CreditNote.objects.get(pk=notes["refund"].pk)
    assert (refund.refund_status, refund.refunded_at) == (RefundStatus.SUCCEEDED, NOW)
    assert messages_of(response) == [
        REFUNDS_DONE[0] % {"count": 1},
        f"{notes['credit']}: refund_status: {NOT_REFUNDED.format(note=notes['credit'].number)}",
    ]
    # again, later: refused, and the date it was done stands
    with time_machine.travel(LATER, tick=False):
        response = run(admin_client, "mark_refund_done", [notes["refund"]])
    assert messages_of(response) == [
        REFUNDS_DONE[1] % {"count": 0},
        REFUND_DONE_ALREADY.format(note=notes["refund"]),
    ]
    assert CreditNote.objects.get(pk=notes["refund"].pk).refunded_at == NOW


# --- Void remaining credit ----------------------------------------------------------------------


def test_void_remaining_credit_asks_first_then_voids(admin_client: Client, notes: dict[str, CreditNote]) -> None:
    selected = [notes["refund"], notes["credit"]]
    page = run(admin_client, "void_credit_selected", selected)
    assert page.status_code == 200
    content = page.content.decode()
    assert 'id="void-credit-form"' in content and "$9.00" in content
    assert "INV-2026-000001-CN1" in content.split('id="void-credit-refused"')[1]  # nothing left on it
    assert CreditNote.objects.get(pk=notes["credit"].pk).credit_status == CreditStatus.AVAILABLE

    response = run(admin_client, "void_credit_selected", selected, apply="yes")
    voided = CreditNote.objects.get(pk=notes["credit"].pk)
    assert voided.credit_status == CreditStatus.VOIDED
    assert (voided.balance_amount, voided.voided_at) == (Decimal(0), NOW)
    assert messages_of(response) == [
        CREDITS_VOIDED[0] % {"count": 1},
        NOTHING_LEFT.format(note=notes["refund"], status="available"),
    ]
    # the refund note's refund stands
    assert CreditNote.objects.get(pk=notes["refund"].pk).refund_status == RefundStatus.PENDING


def test_void_with_nothing_left_to_void_says_so(admin_client: Client, notes: dict[str, CreditNote]) -> None:
    credit_note_void(credit_note=notes["credit"], now=NOW)
    response = run(admin_client, "void_credit_selected", [notes["refund"], notes["credit"]], apply="yes")
    assert messages_of(response) == [NOTHING_TO_VOID]
    assert CreditNote.objects.get(pk=notes["credit"].pk).voided_at == NOW

"""The credit note document (billing.documents.credit_note) and its PDF (billing.documents.pdf).

The credited invoice is made the way production makes it: a customer on a Pro plan ($120 a
month, $2 per monthly tracked user), 25 users sent through the events API in October, then
close_periods with no grace period (a finalized INV-2026-000001: base fee $120, usage $50).
The notes themselves are rows written with the ORM, so these tests fix what the document shows
for given amounts, whatever the credit note service computes.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
import time_machine
from pypdf import PdfReader

from billing.documents.credit_note import (
    ADJUSTMENT_LABEL,
    BALANCE_LABEL,
    CREDIT_LABEL,
    CREDIT_VOIDED_LABEL,
    VOID_BANNER,
    credit_note_context,
    render_credit_note_html,
)
from billing.documents.pdf import PdfUnavailable, credit_note_pdf_filename, render_credit_note_pdf
from billing.models import (
    ChargeModel,
    CreditApplication,
    CreditNote,
    CreditNoteItem,
    CreditNoteReason,
    CreditStatus,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    RefundStatus,
)
from billing.services.period_close import close_periods
from customers.models import Customer
from tests.factories import BillableMetricFactory, ChargeFactory, CustomerFactory, PlanFactory, SubscriptionFactory
from tests.helpers import api_client, post

pytestmark = pytest.mark.django_db

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
CLOSE = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)
ISSUED = date(2026, 11, 5)
USERS = 25


# --- Building an invoice and its notes ------------------------------------------------------------


def finalized_invoice(settings: Any) -> Invoice:
    """INV-2026-000001 for October: the Pro base fee ($120) and 25 users at $2 ($50)."""
    settings.BILLING_GRACE_PERIOD_HOURS = 0
    plan = PlanFactory(code="pro", name="Pro", base_fee=Decimal("120"))
    ChargeFactory(plan=plan, metric=BillableMetricFactory(), model=ChargeModel.STANDARD, unit_amount=Decimal("2"))
    customer = CustomerFactory(
        external_id="acme",
        name="Acme",
        legal_name="Acme Corporation Ltd",
        address_line1="12 Rue de la Paix",
        city="Paris",
        zipcode="75002",
        country="FR",
        tax_identification_number="FR40303265045",
    )
    SubscriptionFactory(customer=customer, plan=plan, external_id="acme-pro", subscription_at=OCTOBER)
    api = api_client()
    sent_at = datetime(2026, 10, 20, 12, tzinfo=UTC)
    events = [
        {
            "transaction_id": f"cn-u{u}",
            "external_customer_id": "acme",
            "code": "mtu",
            "timestamp": int(sent_at.timestamp()),
            "properties": {"user_id": f"u{u}"},
        }
        for u in range(USERS)
    ]
    with time_machine.travel(sent_at, tick=False):
        post(api, "/api/v1/events/batch", {"events": events})
    report = close_periods(now=CLOSE)
    assert not report.errors, report.errors
    invoice = Invoice.objects.get(customer=customer, period_start=OCTOBER)
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.number == "INV-2026-000001"
    assert [(line.kind, line.amount) for line in fees(invoice)] == [
        (LineKind.BASE_FEE, Decimal("120.00")),
        (LineKind.USAGE, Decimal("50.00")),
    ]
    return invoice


@pytest.fixture
def invoice(settings: Any) -> Invoice:
    return finalized_invoice(settings)


def fees(invoice: Invoice) -> list[InvoiceLine]:
    return list(invoice.lines.order_by("position", "id"))


def make_note(
    invoice: Invoice,
    items: list[tuple[InvoiceLine, str]],
    *,
    credit: str = "0",
    refund: str = "0",
    offset: str = "0",
    adjustment: str = "0",
    taxes: str = "0",
    balance: str | None = None,
    sequence: int = 1,
    **fields: Any,
) -> CreditNote:
    """A note on `invoice` as the credit note service writes one: parts adding up to the total,
    the balance at most the credit, a refund status exactly when there is a refund."""
    items_amount = sum((Decimal(amount) for _, amount in items), Decimal(0))
    sub_total = items_amount - Decimal(adjustment)
    total = sub_total + Decimal(taxes)
    assert total == Decimal(credit) + Decimal(refund) + Decimal(offset)
    if Decimal(refund) > 0:  # else the model's "no refund" default
        fields.setdefault("refund_status", RefundStatus.PENDING)
    note = CreditNote.objects.create(
        invoice=invoice,
        customer=invoice.customer,
        sequence=sequence,
        number=f"{invoice.number}-CN{sequence}",
        reason=fields.pop("reason", CreditNoteReason.DUPLICATED_CHARGE),
        currency=invoice.currency,
        items_amount=items_amount,
        coupons_adjustment_amount=Decimal(adjustment),
        sub_total_excluding_taxes_amount=sub_total,
        taxes_amount=Decimal(taxes),
        total_amount=total,
        credit_amount=Decimal(credit),
        refund_amount=Decimal(refund),
        offset_amount=Decimal(offset),
        balance_amount=Decimal(credit if balance is None else balance),
        issued_on=ISSUED,
        **fields,
    )
    for fee, amount in items:
        CreditNoteItem.objects.create(credit_note=note, fee=fee, amount=Decimal(amount))
    return note


def text_of(html: str) -> str:
    """The visible text, unescaped and whitespace collapsed, for assertions that span elements."""
    without_style = re.sub(r"<style.*?</style>", " ", html, flags=re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without_style)).strip())


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


# --- The document ---------------------------------------------------------------------------------


def test_a_note_shows_its_items_adjustment_totals_and_how_it_is_settled(invoice: Invoice) -> None:
    base_fee, usage = fees(invoice)
    note = make_note(
        invoice,
        [(base_fee, "60"), (usage, "50")],
        adjustment="10",
        credit="50",
        refund="30",
        offset="20",
        balance="35",
        description="Users counted twice on October 20.",
    )
    # Edited after the invoice was sent: the note names the customer as the invoice did.
    Customer.objects.filter(pk=invoice.customer_id).update(legal_name="Renamed Holdings")

    html = render_credit_note_html(CreditNote.objects.get(pk=note.pk))
    text = text_of(html)

    assert "Credit note INV-2026-000001-CN1" in text
    assert "Segment Demo Inc." in text
    assert "Acme Corporation Ltd" in text and "Renamed" not in text
    assert "12 Rue de la Paix" in text and "75002 Paris" in text and "France" in text
    assert "Tax ID: FR40303265045" in text
    assert "Issue date November 5, 2026" in text
    assert "Credited invoice INV-2026-000001 Invoice date November 1, 2026" in text
    assert "Reason Duplicated charge" in text
    assert "Users counted twice on October 20." in text
    assert "Credit status Available" in text
    assert "Refund status Pending" in text
    assert "Currency USD" in text
    # the items: the fee's description and the amount credited
    assert "Base fee Pro base fee $60.00" in text
    assert "Usage Monthly tracked users $50.00" in text
    assert f"{ADJUSTMENT_LABEL} -$10.00" in text
    assert "Sub-total (excluding taxes) $100.00" in text
    assert "Taxes" not in text  # none yet: no line for them
    assert "Total credited $100.00" in text
    # where the total goes, and the credit left
    assert f"{CREDIT_LABEL} $50.00" in text
    assert "Refunded (pending) $30.00" in text
    assert "Offset against invoice INV-2026-000001 $20.00" in text
    assert f"{BALANCE_LABEL} $35.00" in text
    assert VOID_BANNER not in text and 'id="void-banner"' not in html
    # self-contained, with the invoice's style
    assert "<link" not in html and "<script" not in html
    assert "http://" not in html and "https://" not in html
    assert ".sheet { max-width: 820px;" in html


def test_a_refund_only_note_has_no_credit_status_and_shows_taxes_when_there_are_some(invoice: Invoice) -> None:
    base_fee, _ = fees(invoice)
    note = make_note(invoice, [(base_fee, "100")], taxes="20", refund="120", reason=CreditNoteReason.OTHER)
    CreditNote.objects.filter(pk=note.pk).update(
        refund_status=RefundStatus.SUCCEEDED, refunded_at=datetime(2026, 11, 9, 23, 30, tzinfo=UTC)
    )
    context = credit_note_context(CreditNote.objects.get(pk=note.pk))

    assert context["adjustment"] == ""
    assert context["taxes"] == "$20.00"
    assert context["total"] == "$120.00"
    assert context["status_rows"] == [("Refund status", "Succeeded on November 9, 2026")]
    assert [(row["label"], row["amount"]) for row in context["settlement"]] == [
        (CREDIT_LABEL, "$0.00"),
        ("Refunded (succeeded)", "$120.00"),
        ("Offset against invoice INV-2026-000001", "$0.00"),
    ]  # no credit part: no credit left to speak of
    text = text_of(render_credit_note_html(note))
    assert "Taxes $20.00" in text
    assert ADJUSTMENT_LABEL not in text


def test_a_voided_note_says_its_remaining_credit_was_voided(invoice: Invoice) -> None:
    base_fee, _ = fees(invoice)
    note = make_note(invoice, [(base_fee, "120")], credit="100", refund="20", balance="0")
    # $30 of the credit went to a later invoice before the note was voided (the application names
    # an invoice; which one does not matter to the document), so $70 was voided.
    CreditApplication.objects.create(credit_note=note, invoice=invoice, amount=Decimal("30"))
    CreditNote.objects.filter(pk=note.pk).update(
        credit_status=CreditStatus.VOIDED, voided_at=datetime(2026, 11, 12, 15, tzinfo=UTC)
    )

    html = render_credit_note_html(CreditNote.objects.get(pk=note.pk))
    text = text_of(html)
    assert 'id="void-banner"' in html
    assert f"{VOID_BANNER} The credit left on this note, $70.00, was voided on November 12, 2026" in text
    assert "Its refund and offset, if any, stand." in text
    assert "Credit status Voided" in text
    assert "Voided on November 12, 2026" in text
    assert f"{CREDIT_LABEL} $100.00" in text
    assert "Refunded (pending) $20.00" in text  # the refund stands
    assert f"{CREDIT_VOIDED_LABEL} $70.00" in text
    assert BALANCE_LABEL not in text
    assert "Total credited $120.00" in text
    assert "credit-status-voided" in html


def test_the_note_as_pdf(invoice: Invoice) -> None:
    base_fee, usage = fees(invoice)
    note = make_note(invoice, [(base_fee, "60"), (usage, "50")], adjustment="10", credit="100")

    assert credit_note_pdf_filename(note) == "INV-2026-000001-CN1.pdf"
    try:
        content = render_credit_note_pdf(note)
    except PdfUnavailable as exc:  # pragma: no cover - a machine without WeasyPrint's libraries
        pytest.skip(str(exc))
    assert content.startswith(b"%PDF-")
    rows = pdf_text(content).splitlines()
    assert "INV-2026-000001-CN1" in rows
    assert "Total credited $100.00" in rows
    assert f"{ADJUSTMENT_LABEL} -$10.00" in rows

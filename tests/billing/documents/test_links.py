"""Signed document links (billing.documents.links): the API's `file_url`, opened without a login.

Every request here comes from an anonymous client: the link is the only permission. The invoice
and notes are built as tests/billing/documents/test_credit_note.py builds them.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.signing import TimestampSigner
from django.test import Client, RequestFactory
from django.urls import reverse
from pypdf import PdfReader

from billing.documents import pdf
from billing.documents.links import (
    CACHE_CONTROL,
    CREDIT_NOTE,
    INVOICE,
    LINK_EXPIRED,
    UNAVAILABLE_STATUS,
    document_url,
)
from billing.documents.pdf import LIBRARIES_MISSING
from billing.models import Invoice, InvoiceStatus
from billing.services.period_close import close_periods
from tests.billing.documents.test_credit_note import OCTOBER, fees, finalized_invoice, make_note
from tests.factories import CustomerFactory, SubscriptionFactory, team_plan

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 6, 9, tzinfo=UTC)


@pytest.fixture
def invoice(settings: Any) -> Invoice:
    return finalized_invoice(settings)


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_a_link_serves_the_invoice_pdf_without_login(invoice: Invoice, settings: Any) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "billing.example.com"]
    request = RequestFactory().get("/api/v1/invoices", HTTP_HOST="billing.example.com", secure=True)
    url = document_url(request, INVOICE, invoice.pk)
    assert url.startswith("https://billing.example.com/documents/")
    settings.BILLING_PUBLIC_URL = "https://billing.example.com"  # without a request (webhooks, emails)
    path = document_url(None, INVOICE, invoice.pk)
    assert path.startswith("https://billing.example.com/documents/")

    response = Client().get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="INV-2026-000001.pdf"'
    assert response["Cache-Control"] == CACHE_CONTROL == "private, no-store"
    assert response.content.startswith(b"%PDF-")
    assert "INV-2026-000001" in pdf_text(response.content)

    head = Client().head(path)
    assert head.status_code == 200 and head["Content-Type"] == "application/pdf"
    assert Client().post(path).status_code == 405  # GET and HEAD only


def test_a_credit_note_link_serves_the_note_pdf(invoice: Invoice) -> None:
    base_fee, _ = fees(invoice)
    note = make_note(invoice, [(base_fee, "40")], credit="40")

    response = Client().get(document_url(None, CREDIT_NOTE, note.pk))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="INV-2026-000001-CN1.pdf"'
    assert response["Cache-Control"] == "private, no-store"
    text = pdf_text(response.content)
    assert "INV-2026-000001-CN1" in text and "$40.00" in text


def test_a_tampered_token_is_not_found(invoice: Invoice) -> None:
    url = document_url(None, INVOICE, invoice.pk)
    token = url.rsplit("/", 1)[1]
    # The same document signed with another salt, or a token whose signature was altered.
    foreign = TimestampSigner(salt="something else").sign_object([INVOICE, invoice.pk])
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (altered, foreign, "not-a-token"):
        assert Client().get(reverse("document-pdf", args=[bad])).status_code == 404


def test_an_expired_link_is_gone(invoice: Invoice, settings: Any) -> None:
    with time_machine.travel(NOW, tick=False):
        url = document_url(None, INVOICE, invoice.pk)
    max_age = timedelta(seconds=settings.BILLING_DOCUMENT_LINK_MAX_AGE_SECONDS)
    assert max_age == timedelta(days=7)
    with time_machine.travel(NOW + max_age + timedelta(seconds=1), tick=False):
        response = Client().get(url)
    assert response.status_code == 410
    assert response.content.decode() == LINK_EXPIRED


def test_a_draft_invoice_has_no_pdf_link(settings: Any) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 48  # close_periods leaves it a draft
    subscription = SubscriptionFactory(customer=CustomerFactory(), plan=team_plan(), subscription_at=OCTOBER)
    close_periods(now=datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    draft = Invoice.objects.get(subscription=subscription)
    assert draft.status == InvoiceStatus.DRAFT

    assert Client().get(document_url(None, INVOICE, draft.pk)).status_code == 404
    assert Client().get(document_url(None, CREDIT_NOTE, 999_999)).status_code == 404  # no such note


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown document kind 'receipt'"):
        document_url(None, "receipt", 1)


def test_without_weasyprint_the_link_says_why(invoice: Invoice, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pango(name: str) -> Any:
        raise OSError("cannot load library 'libpango-1.0-0'")

    monkeypatch.setattr(pdf, "import_module", no_pango)
    response = Client().get(document_url(None, INVOICE, invoice.pk))
    assert response.status_code == UNAVAILABLE_STATUS == 503
    assert response.content.decode().startswith(LIBRARIES_MISSING.split("{error}")[0])

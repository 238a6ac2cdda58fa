"""Invoice exports from the admin: the PDF document (billing.documents.pdf) with its "Download PDF" button,
and the invoice list's "Export selected to CSV" action.

The PDF's text is read back with pypdf. The April invoice of the team-annual seed scenario is
rebuilt as tests/billing/services/test_seed_templates.py builds it (catalog, API, close_period
under time_machine); March's users are left out, as April's invoice does not depend on them.
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from billing.admin.invoices import CSV_HEADER
from billing.documents import pdf
from billing.documents.pdf import LIBRARIES_MISSING, WEASYPRINT_MISSING, PdfUnavailable, render_invoice_pdf
from billing.models import Invoice
from billing.services.invoices import invoice_finalize
from billing.services.payments import invoice_mark_paid
from billing.services.period_close import close_periods
from tests.billing.services.test_seed_templates import lines, period_invoice, run, send_users
from tests.factories import CustomerFactory, PlanFactory, SubscriptionFactory, team_plan
from tests.helpers import api_client, at, post

pytestmark = pytest.mark.django_db

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def pdf_url(invoice: Invoice) -> str:
    return reverse("admin:billing_invoice_pdf", args=[invoice.pk])


def team_annual_april() -> Invoice:
    call_command("load_catalog", stdout=StringIO())
    api = api_client()
    with time_machine.travel(at(2026, 3, 1, 0, 10), tick=False):
        post(api, "/api/v1/customers", {"customer": {"external_id": "initech", "name": "Initech", "currency": "USD"}})
        post(api, "/api/v1/subscriptions", {"subscription": {
            "external_customer_id": "initech", "plan_code": "team-annual", "external_id": "initech-annual",
            "subscription_at": "2026-03-01T00:00:00Z", "billing_time": "calendar"}})  # fmt: skip
    run("close_period", at(2026, 4, 1, 0, 5))
    with time_machine.travel(at(2026, 4, 20), tick=False):
        send_users(api, "initech", range(30_000), at(2026, 4, 15))
    run("close_period", at(2026, 5, 1, 0, 5))
    april = period_invoice(2026, 4)
    assert lines(april) == [
        ("base_fee", Decimal("120.00")),
        ("usage", Decimal("235.00")),
        ("commitment_drawdown", Decimal("-120.00")),
    ]
    assert april.total == Decimal("235.00") and april.number
    return april


def test_the_april_team_annual_invoice_as_pdf(admin_client: Client) -> None:
    april = team_annual_april()

    content = render_invoice_pdf(april)
    assert content.startswith(b"%PDF-")
    text = pdf_text(content)
    assert april.number in text
    assert "$235.00" in text
    assert "Initech" in text
    # The tier breakdown of 30,000 MTUs: 10,000 free, 15,000 at $0.012, 5,000 at $0.011.
    rows = text.splitlines()
    assert "Tier 1: Up to 10,000 10,000 $0.00 $0.00" in rows
    assert "Tier 2: 10,001 – 25,000 15,000 $0.012 $180.00" in rows
    assert "Tier 3: 25,001 – 100,000 5,000 $0.011 $55.00" in rows
    assert "Total $235.00" in rows

    # The admin URL and the button on the invoice page.
    response = admin_client.get(pdf_url(april))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{april.number}.pdf"'
    assert april.number in pdf_text(response.content)
    page = admin_client.get(reverse("admin:billing_invoice_change", args=[april.pk])).content.decode()
    assert f'href="{pdf_url(april)}"' in page and "Download PDF" in page


# --- Small invoices -----------------------------------------------------------------------------


@pytest.fixture
def october(settings: Any) -> dict[str, Invoice]:
    """October invoices of three Team customers ($120 each, no usage) and one Free: a draft, two
    finalized (INV-2026-000001 and, for Free, …03) and one paid (…02)."""
    settings.BILLING_GRACE_PERIOD_HOURS = 48  # close_periods leaves them drafts
    team = team_plan()
    free = PlanFactory(code="free", name="Free")
    subscriptions = {
        name: SubscriptionFactory(
            customer=CustomerFactory(external_id=f"{name}-co", name=f'{name.title()}, Inc. "quoted"'),
            plan=free if name == "free" else team,
            subscription_at=OCTOBER,
        )
        for name in ("draft", "finalized", "paid", "free")
    }
    close_periods(now=datetime(2026, 11, 1, 0, 5, tzinfo=UTC))
    invoices = {name: Invoice.objects.get(subscription=sub) for name, sub in subscriptions.items()}
    finalized_at = datetime(2026, 11, 3, 9, tzinfo=UTC)
    for name in ("finalized", "paid", "free"):
        invoices[name] = invoice_finalize(invoice=invoices[name], now=finalized_at)
    invoice_mark_paid(invoice=invoices["paid"], now=finalized_at)
    for invoice in invoices.values():
        invoice.refresh_from_db()
    return invoices


def test_a_draft_pdf_is_marked_draft_and_named_by_its_id(admin_client: Client, october: dict[str, Invoice]) -> None:
    draft = october["draft"]
    response = admin_client.get(pdf_url(draft))
    assert response["Content-Disposition"] == f'attachment; filename="draft-{draft.pk}.pdf"'
    assert "DRAFT" in pdf_text(response.content)


def test_missing_system_libraries_give_a_message_naming_the_debian_packages(
    admin_client: Client, october: dict[str, Invoice], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pango(name: str) -> Any:
        raise OSError("cannot load library 'libpango-1.0-0': libpango-1.0-0: cannot open shared object file")

    monkeypatch.setattr(pdf, "import_module", no_pango)
    invoice = october["finalized"]
    with pytest.raises(PdfUnavailable) as raised:
        render_invoice_pdf(invoice)
    message = str(raised.value)
    assert message.startswith(LIBRARIES_MISSING.split("{error}")[0])
    assert "apt-get install libpango-1.0-0 libpangoft2-1.0-0" in message

    # The admin says so on the invoice page instead of failing with a server error.
    response = admin_client.get(pdf_url(invoice), follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:billing_invoice_change", args=[invoice.pk])
    assert [str(m) for m in response.context["messages"]] == [message]


def test_missing_weasyprint_package_is_named(october: dict[str, Invoice], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    with pytest.raises(PdfUnavailable, match="weasyprint") as raised:
        render_invoice_pdf(october["finalized"])
    assert str(raised.value) == WEASYPRINT_MISSING


def test_the_pdf_needs_view_permission_on_invoices(october: dict[str, Invoice]) -> None:
    user = User.objects.create_user("clerk", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_customer"))
    client = Client()
    client.force_login(user)
    assert client.get(pdf_url(october["finalized"])).status_code == 403


# --- CSV export ---------------------------------------------------------------------------------


def export(client: Client, invoices: list[Invoice], query: str = "", **extra: str) -> list[list[str]]:
    response = client.post(
        reverse("admin:billing_invoice_changelist") + query,
        {"action": "export_csv", "_selected_action": [i.pk for i in invoices], "index": "0", **extra},
    )
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="invoices-')
    body = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    return list(csv.reader(io.StringIO(body)))


def test_export_selected_invoices_to_csv(admin_client: Client, october: dict[str, Invoice]) -> None:
    rows = export(admin_client, [october["paid"], october["draft"]])
    assert rows[0] == list(CSV_HEADER)
    assert sorted(rows[1:]) == sorted(
        [
            ["INV-2026-000002", "paid-co", 'Paid, Inc. "quoted"', "period", "finalized", "2026-10-01", "2026-10-31",
             "2026-11-03", "USD", "120.00"],
            ["", "draft-co", 'Draft, Inc. "quoted"', "period", "draft", "2026-10-01", "2026-10-31", "", "USD",
             "120.00"],
        ]
    )  # fmt: skip


def test_export_of_all_matching_the_filters(admin_client: Client, october: dict[str, Invoice]) -> None:
    # "Select all" across pages exports what the filters match, not only the page's rows.
    rows = export(admin_client, [october["paid"]], query="?status__exact=finalized", select_across="1")
    assert sorted((row[0], row[1], row[9]) for row in rows[1:]) == [
        ("INV-2026-000001", "finalized-co", "120.00"),
        ("INV-2026-000002", "paid-co", "120.00"),  # paid is a payment status: the invoice stays finalized
        ("INV-2026-000003", "free-co", "0.00"),
    ]

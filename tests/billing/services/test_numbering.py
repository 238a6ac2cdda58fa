"""Numbering at finalization (billing.services.numbering): the invoice counter's row stays locked
from the number until the commit, and every finalization waits for it, so the number is taken
after everything that does not need it and only one write of the invoice follows it."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Invoice, InvoiceEmail, InvoiceStatus
from billing.services.invoices import invoice_finalize
from billing.services.period_close import close_periods
from tests.factories import CustomerFactory, SubscriptionFactory, scaled_team_plan
from tests.helpers import at

pytestmark = pytest.mark.django_db

CLOSE = at(2026, 10, 2, 9)


def after_the_counter(queries: CaptureQueriesContext) -> list[str]:
    """The statements that followed the counter's last statement (savepoints left out)."""
    sql = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    last = max(i for i, statement in enumerate(sql) if "sequences_sequence" in statement)
    return sql[last + 1 :]


def only_the_invoice_and_the_endpoint_read(statements: list[str], first: str) -> bool:
    """One write of the invoice (`first`: how it starts), then whether a webhook endpoint exists."""
    return (
        len(statements) == 2
        and statements[0].startswith(first)
        and '"number"' in statements[0]
        and "billing_webhookendpoint" in statements[1]
    )


def test_the_close_numbers_a_new_invoice_after_writing_its_lines_and_its_email() -> None:
    SubscriptionFactory(
        customer=CustomerFactory(email="billing@acme.test"), plan=scaled_team_plan(), subscription_at=at(2026, 9, 1)
    )
    with CaptureQueriesContext(connection) as queries:
        report = close_periods(now=CLOSE)
    assert len(report.finalized) == 1
    # PostgreSQL checks foreign keys at the commit: the invoice is INSERTed after its lines, final
    # at once; SQLite stores it first, as a draft, and makes it final with an UPDATE.
    write = 'INSERT INTO "billing_invoice" ' if connection.vendor == "postgresql" else 'UPDATE "billing_invoice" SET '
    assert only_the_invoice_and_the_endpoint_read(after_the_counter(queries), write)
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.number) == (InvoiceStatus.FINALIZED, "INV-2026-000001")
    assert InvoiceEmail.objects.filter(invoice=invoice).count() == 1


def test_finalizing_a_draft_takes_the_number_last_and_updates_only_what_finalizing_sets(settings: Any) -> None:
    settings.BILLING_GRACE_PERIOD_HOURS = 48  # September closes as a draft
    SubscriptionFactory(
        customer=CustomerFactory(email="billing@acme.test"), plan=scaled_team_plan(), subscription_at=at(2026, 9, 1)
    )
    close_periods(now=CLOSE)
    draft = Invoice.objects.get()
    with CaptureQueriesContext(connection) as queries:
        invoice_finalize(invoice=draft, now=CLOSE)
    after = after_the_counter(queries)
    assert only_the_invoice_and_the_endpoint_read(after, 'UPDATE "billing_invoice" SET ')
    assert '"metadata"' not in after[0] and '"total"' not in after[0]  # one UPDATE of the finalized columns
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.number, invoice.total) == (InvoiceStatus.FINALIZED, "INV-2026-000001", draft.total)
    assert invoice.customer_snapshot["email"] == "billing@acme.test"
    assert InvoiceEmail.objects.filter(invoice=invoice).count() == 1

"""New invoices made final at once, several in a few statements: the period close's batched path
(billing.services.period_close, `close_group`).

What invoice_create does for one invoice with finalize=True, for a group of them, in the same
order of steps: ids reserved from the invoices' sequence, the lines, what the lines consume,
the email rows, then — last, as the invoice counter stays locked from the numbers until the
commit — the numbers (one counter statement per year), the invoices' INSERT, the commitment's
drawdowns and the webhooks. Each step is one statement for the whole group instead of one per
invoice. PostgreSQL only (ids reserved before the rows exist; its foreign keys are checked at
the commit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connections, router

from billing.engine.lines import Line, total
from billing.engine.periods import Period
from billing.models import Invoice, LineKind, Subscription
from billing.services.commitments import drawdown_record
from billing.services.coupons import coupon_applications_record
from billing.services.credit_notes import credit_applications_record
from billing.services.invoice_events import invoices_finalizing, invoices_numbered
from billing.services.invoices import insert_lines_of, metric_ids_for
from billing.services.numbering import finalized_identity, number_all
from billing.services.outbox import insert_rows
from billing.services.wallets import wallet_consumption_record


@dataclass(frozen=True)
class NewInvoice:
    """One invoice to make: its subscription (plan and customer loaded), kind, period and lines."""

    subscription: Subscription
    kind: str
    period: Period
    lines: list[Line]


def reserved_ids(count: int) -> list[int]:
    """`count` new invoice ids from the invoices' identity sequence, in one statement."""
    connection = connections[router.db_for_write(Invoice)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [Invoice._meta.db_table, Invoice._meta.pk.column, count],
        )
        return [int(row[0]) for row in cursor.fetchall()]


def invoices_create_final(new: list[NewInvoice], now: datetime, metric_ids: dict[str, int]) -> list[Invoice]:
    """Store the invoices, numbered and final, with their lines, in the order given (their numbers
    follow it). The caller holds the subscriptions' and customers' locks."""
    if not new:
        return []
    invoices = [
        Invoice(
            pk=pk,
            customer=item.subscription.customer,
            subscription=item.subscription,
            kind=item.kind,
            period_start=item.period.start,
            period_end=item.period.end,
            currency=item.subscription.plan.currency,
            total=total(item.lines),
        )
        for pk, item in zip(reserved_ids(len(new)), new, strict=True)
    ]
    pairs = [(invoice, item.lines) for invoice, item in zip(invoices, new, strict=True)]
    all_lines = [ln for item in new for ln in item.lines]
    insert_lines_of(pairs, metric_ids_for(all_lines, metric_ids))
    for invoice, lines in pairs:
        coupon_applications_record(invoice=invoice, lines=lines)
        credit_applications_record(invoice=invoice, lines=lines)
        wallet_consumption_record(invoice=invoice, lines=lines)
        finalized_identity(invoice, now)
    invoices_finalizing(invoices=invoices)
    # Last: the counter is locked from here until the commit.
    number_all(invoices)
    insert_rows(invoices, with_pk=True)
    for invoice, lines in pairs:
        invoice._state.adding = False
        invoice._state.db = router.db_for_write(Invoice)
        if any(ln.kind == LineKind.COMMITMENT_DRAWDOWN for ln in lines):
            drawdown_record(invoice=invoice, lines=lines)
    invoices_numbered(invoices=invoices)
    return invoices
